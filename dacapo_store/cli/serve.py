"""`dacapo-store serve`: the read-only dashboard and JSON API over the store."""

from __future__ import annotations

import ipaddress
import os
import sys

import click

from .app import command, say, settings

TOKEN_VAR = "DACAPO_STORE_TOKEN"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@command(epilog="Example: dacapo-store --store files:dacapo-demo serve   (then open http://127.0.0.1:8765/)")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one)."
)
@click.option(
    "--token",
    metavar="TOKEN",
    help=f"Require this token on every request (default: ${TOKEN_VAR}). Needed for a non-loopback --host.",
)
@click.option(
    "--live",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0),
    metavar="SECONDS",
    help="How often open pages check for changes in the registry (0: never).",
)
def serve(host: str, port: int, token: str | None, live: float) -> None:
    """Serve the registry as a read-only web dashboard and JSON API (/api/v1/, /healthz)."""
    import uvicorn

    from ..web import create_app
    from ..web.app import MAX_REQUEST_HEAD, MIN_TOKEN_LENGTH

    token = token or os.environ.get(TOKEN_VAR) or None
    if not is_loopback(host) and token is None:
        raise click.UsageError(
            f"--host {host} is reachable from other machines: give a --token (or ${TOKEN_VAR}), "
            "or listen on 127.0.0.1"
        )
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise click.UsageError(
            f"the token has {len(token)} characters; give one of at least {MIN_TOKEN_LENGTH} "
            "(python -c 'import secrets; print(secrets.token_urlsafe())' makes a good one)"
        )
    s = settings()
    configs = s.config_store()
    weights = s.weights_store()
    app = create_app(configs, weights, token=token, live_every=live)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="debug" if s.debug else "warning",
        access_log=s.debug,
        # h11 reads a request head of up to this whole, so that a long URL gets the app's 414
        # rather than h11's 400 and a reset while the client is still sending it
        http="h11",
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:  # listening now: say where (the real port, also for --port 0)
                bound = self.servers[0].sockets[0].getsockname()[1] if self.servers else port
                shown = f"[{host}]" if ":" in host else host
                say(f"dacapo-store dashboard for {configs.describe()} at http://{shown}:{bound}/")
                if token:
                    say("   a token is required: log in at /login or send 'Authorization: Bearer <token>'")
                sys.stdout.flush()

    Server(config).run()
