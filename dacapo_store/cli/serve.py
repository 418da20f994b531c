"""`dacapo-store serve`: the read-only dashboard and JSON API over the store."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys

import click

from .app import command, fail, say, settings

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
    try:
        import uvicorn

        from ..web import create_app
        from ..web.app import MAX_REQUEST_HEAD, MIN_TOKEN_LENGTH
    except ImportError as exc:
        raise fail(
            f"the dashboard needs the web extra ({exc.name} is not installed): "
            "pip install 'dacapo-store[web]'",
            2,
        ) from None

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
    listening = _listen(host, port)  # before the stores: a busy port is a usage error, at once
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

    Server(config).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port); a busy port or an address that isn't this machine's is a
    usage error (exit 2), one line."""
    try:
        found = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = found[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise fail(f"can't listen on {host}:{port}: {exc}", 2) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = (
            "the port is in use (another server?); pick another with --port"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror or str(exc)
        )
        raise fail(f"can't listen on {host}:{port}: {why}", 2) from None
    sock.set_inheritable(True)
    return sock
