"""The dashboard's ASGI app: routes, HTML and JSON twins of each view, token check, safe headers."""

from __future__ import annotations

import collections
import contextlib
import gzip
import hashlib
import hmac
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape
from starlette.applications import Starlette
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import DacapoStoreError, StoreConnectionError
from ..mongo import redact
from ..queries import RunCatalog
from ..weights.base import WeightsStore
from . import tables, views
from .openapi import openapi_document
from .params import BadRequest, NotFound, Params
from .picker import MAX_TRACES

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "dacapo_store_session"
DASH = "\u2013"  # an en dash: "no value"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


#: A token shorter than this is refused: it guards a registry from anyone who can reach the port.
MIN_TOKEN_LENGTH = 16
#: How long a login lasts without a request, and how old a cookie gets before it is replaced.
SESSION_MAX_AGE = 12 * 3600
SESSION_ROTATE_AFTER = 3600
#: Wrong tokens a client may send to /login within LOGIN_WINDOW seconds before it must wait.
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW = 60.0
#: The longest request target (path and query) answered; longer ones get a 414. The server reads
#: requests of up to MAX_REQUEST_HEAD bytes whole (`serve` tells uvicorn) so that it can say so.
MAX_URL = 32 * 1024
MAX_REQUEST_HEAD = 1024 * 1024
#: Where a page's ETag goes while it is rendered (the ETag is a hash of the page holding this).
ETAG_SLOT = "@@dacapo-store-etag@@"
#: A year: a static file's URL carries its version, so a new version is a new URL.
IMMUTABLE = "public, max-age=31536000, immutable"


def plotly_js() -> Path | None:
    """plotly.js as bundled in the `plotly` wheel (served by us: no CDN)."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


class Guard:
    """ASGI middleware: the token (when one is set) on every request, and the security headers.

    A browser logs in once at /login and gets a cookie `ISSUED.MAC`: when it was issued and an
    HMAC of that under the token, never the token. It lasts SESSION_MAX_AGE seconds, and a
    request carrying one older than SESSION_ROTATE_AFTER gets a new one, so an open dashboard
    stays logged in, a cookie left behind expires, and a changed token ends every session.
    """

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    def session_cookie(self, issued: int | None = None) -> str:
        """A login cookie value, issued now (or at `issued`, seconds since the epoch)."""
        assert self.token is not None
        issued = int(time.time()) if issued is None else issued
        mac = hmac.new(self.token.encode(), f"dacapo-store session {issued}".encode(), hashlib.sha256)
        return f"{issued}.{mac.hexdigest()}"

    def _session_age(self, value: str) -> float | None:
        """How old a login cookie is, None if it is not one of ours or has expired."""
        issued, _, _ = value.partition(".")
        if not (issued.isascii() and issued.isdigit()) or len(issued) > 12:
            return None
        if not hmac.compare_digest(value.encode(), self.session_cookie(int(issued)).encode()):
            return None
        age = time.time() - int(issued)
        return age if -60 <= age <= SESSION_MAX_AGE else None

    def allowed(self, scope: dict) -> tuple[bool, bool]:
        """(may it pass, should its login cookie be replaced)."""
        if self.token is None or scope["path"] in (
            "/login",
            "/static/app.css",
            "/static/favicon.svg",
            "/favicon.ico",
        ):
            return True, False
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(
            auth[7:].strip().encode(), self.token.encode()
        ):
            return True, False
        for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
            key, _, value = part.strip().partition("=")
            if key == COOKIE:
                age = self._session_age(value)
                if age is not None:
                    return True, age > SESSION_ROTATE_AFTER
        return False, False

    def set_cookie(self, response: Response, secure: bool) -> None:
        response.set_cookie(
            COOKIE,
            self.session_cookie(),
            max_age=SESSION_MAX_AGE,
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed, rotate = self.allowed(scope)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if rotate:
                    fresh = Response()
                    self.set_cookie(fresh, secure=scope.get("scheme") == "https")
                    extra += [(k, v) for k, v in fresh.raw_headers if k == b"set-cookie"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        if len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") > MAX_URL:
            response: Response = _error_json(
                414, f"the request's URL is longer than {MAX_URL // 1024} KiB: ask for less at once"
            )
            await response(scope, receive, send_with_headers)
            return
        if allowed:
            await self.app(scope, receive, send_with_headers)
            return
        request = Request(scope, receive)
        if request.method == "GET" and not scope["path"].startswith("/api/") and _wants_html(request):
            target = scope["path"] + (
                f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else ""
            )
            response = RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
        else:
            response = _error_json(
                401, "a token is needed: send 'Authorization: Bearer <token>' or log in at /login"
            )
            response.headers["www-authenticate"] = "Bearer"
        await response(scope, receive, send_with_headers)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _error_json(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": redact(message)}}, status_code=status)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity (a stored config may hold one): they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(
            _clean(content), default=_json_default, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")


def create_app(
    configs: Any,
    weights: WeightsStore,
    *,
    token: str | None = None,
    recheck: float = 1.0,
    stale_after: timedelta | None = None,
    live_every: float = 5.0,
) -> Any:
    """The read-only dashboard and JSON API over a config store and a weights store.

    `live_every`: how often (seconds) an open runs table, leaderboard or run page asks whether
    the registry changed (a 304 when it did not); 0 turns that off.
    """
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"the token has {len(token)} characters; use at least {MIN_TOKEN_LENGTH} "
            "(python -c 'import secrets; print(secrets.token_urlsafe())' makes a good one)"
        )
    catalog = RunCatalog(
        configs, weights, recheck=recheck, **({"stale_after": stale_after} if stale_after else {})
    )
    registry = views.Registry(configs, weights, catalog)
    assets = Assets(HERE / "static")
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = _number
    env.filters["when"] = _when
    env.filters["size"] = _size
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.globals["query"] = _query
    env.globals["part_links"] = views.part_links
    env.globals["store"] = registry.describe()
    env.globals["kinds"] = views.KINDS
    env.globals["locked"] = token is not None
    env.globals["asset"] = assets.url
    env.globals["max_traces"] = MAX_TRACES
    env.globals["live_every"] = int(live_every * 1000) if live_every > 0 else 0

    def page(
        view: Callable[[Request, views.Registry], dict],
        template: str | None,
        csv: tuple[Callable[[dict], str], Callable[[dict], str]] | None = None,
    ) -> tuple[Callable, Callable]:
        """The HTML page and the JSON twin of a view (and its CSV twin: `csv` is (render,
        file name)), each with an ETag: a request whose If-None-Match names it gets a 304."""

        async def answer(request: Request, html: bool) -> Response:
            data = await _call(view, request, registry)
            if isinstance(data, Response):
                return _error_page(env, request, data) if html else data
            if csv is not None and request.query_params.get("format") == "csv":
                render, name = csv
                body = render(data).encode("utf-8")
                return _fresh(request, body, "text/csv; charset=utf-8", {"content-disposition": name(data)})
            if not html:
                return _fresh(request, JSON(data).body, "application/json")
            return await _run_sync(render_page, request, template, data)

        def render_page(request: Request, template: str, data: dict) -> Response:
            """The page, whose ETag (a hash of it with a slot where the ETag goes) it also carries
            in a <meta>, so that live.js can ask whether it changed from its very first poll."""
            text = env.get_template(template).render(
                data=data, request=request, path=request.url.path, etag=ETAG_SLOT
            )
            body = text.encode("utf-8")
            etag = _etag(b"html " + body)
            if _not_modified(request, etag):
                return _304(etag)
            body = body.replace(ETAG_SLOT.encode(), str(escape(etag)).encode(), 1)
            return _fresh(request, body, "text/html; charset=utf-8", etag=etag)

        async def html(request: Request) -> Response:
            return await answer(request, True)

        async def api(request: Request) -> Response:
            return await answer(request, False)

        return html, api

    routes: list[Any] = []
    csv_of = {
        views.runs: (tables.runs_csv, lambda data: tables.filename("runs")),
        views.leaderboard: (
            tables.leaderboard_csv,
            lambda data: tables.filename(f"leaderboard-{data.get('criterion') or 'none'}"),
        ),
    }
    _, scores_api = page(  # JSON and CSV only: the run page shows the scores
        views.run_scores, None, (tables.scores_csv, lambda data: tables.filename(f"{data['run']}-scores"))
    )

    async def checkpoint(request: Request) -> Response:
        try:
            found = await _call(views.checkpoint, request, registry)
        except views.Refused as exc:
            return _error_json(422, str(exc))
        if isinstance(found, Response):
            return found
        return Response(
            found.body,
            media_type="application/octet-stream",
            headers={
                "content-disposition": tables.filename(f"{found.run}-{found.iteration}", ".safetensors"),
                "cache-control": "no-cache",
            },
        )

    # a run's sub-resources come first: `{name:path}` would take them as part of a run's name
    routes += [
        Route("/api/v1/runs/{name:path}/scores", scores_api),
        Route("/api/v1/runs/{name:path}/checkpoint", checkpoint),
    ]
    for path, view, template in [
        ("/", views.runs, "runs.html"),
        ("/runs/{name:path}", views.run, "run.html"),
        ("/compare", views.compare, "compare.html"),
        ("/leaderboard", views.leaderboard, "leaderboard.html"),
        ("/configs/{kind}", views.configs, "configs.html"),
        ("/configs/{kind}/{name:path}", views.config, "config.html"),
    ]:
        html, api = page(view, template, csv_of.get(view))
        api_path = "/api/v1/runs" if path == "/" else "/api/v1" + path
        routes += [Route(path, html, name=template[:-5]), Route(api_path, api)]

    def no_params(handler: Callable) -> Callable:
        """A route that takes no query parameters: any is a 400, as on every other page."""

        async def checked(request: Request) -> Response:
            try:
                Params(request.query_params, ())
            except BadRequest as exc:
                return _error_json(400, str(exc))
            return await handler(request)

        return checked

    @no_params
    async def healthz(request: Request) -> Response:
        data = await _run_sync(views.health, registry)
        return JSON(data, status_code=200 if data["ok"] else 503, headers={"cache-control": "no-store"})

    @no_params
    async def openapi(request: Request) -> Response:
        return _fresh(request, JSON(openapi_document()).body, "application/json")

    @no_params
    async def api_root(request: Request) -> Response:
        return JSON({"openapi": "/api/v1/openapi.json", "health": "/healthz"})

    async def static(request: Request) -> Response:
        return await _run_sync(assets.response, request, request.path_params["path"])

    async def favicon(request: Request) -> Response:
        return await _run_sync(assets.response, request, "favicon.svg")

    attempts = LoginAttempts()

    async def login(request: Request) -> Response:
        try:
            Params(request.query_params, ("next",))
        except BadRequest as exc:
            return _error_json(400, str(exc))
        next_url = request.query_params.get("next", "/")
        if not next_url.startswith("/") or next_url.startswith("//"):
            next_url = "/"
        if request.method == "POST":
            client = request.client.host if request.client else "?"
            wait = attempts.wait(client)
            if wait:
                response = _error_json(429, f"too many wrong tokens from {client}: try again in {wait} s")
                response.headers["retry-after"] = str(wait)
                return response
            body = (await request.body()).decode("utf-8", "replace")
            given = (parse_qs(body).get("token") or [""])[0]
            if token is not None and hmac.compare_digest(given.encode(), token.encode()):
                attempts.forget(client)
                response = RedirectResponse(next_url, status_code=303)
                _guard.set_cookie(response, secure=request.url.scheme == "https")
                return response
            attempts.failed(client)
            status, message = 401, "wrong token"
        else:
            status, message = 200, None
        body = env.get_template("login.html").render(next=next_url, message=message, path="/login")
        return HTMLResponse(body, status_code=status)

    routes += [
        Route("/healthz", healthz),
        Route("/api/v1/openapi.json", openapi),
        Route("/api/v1", api_root),
        Route("/api/v1/", api_root),
        Route("/favicon.ico", favicon),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/static/{path:path}", static),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        response = _error_json(404, f"no page at {request.url.path}")
        return _error_page(env, request, response) if _wants_html(request) else response

    async def not_allowed(request: Request, exc: Exception) -> Response:
        response = _error_json(405, f"{request.method} is not allowed here: the dashboard is read-only")
        response.headers["allow"] = (getattr(exc, "headers", None) or {}).get("Allow", "GET, HEAD")
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield
        await _run_sync(catalog.flush)  # a saved copy being written is finished, not cut short

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed}, lifespan=lifespan)
    app.state.registry = registry
    compressed = GZipMiddleware(
        app,
        minimum_size=1024,
        compresslevel=3,  # 2 ms for a DaCapo run's 155 KB of JSON, 21 KB; level 6 takes three times that
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/octet-stream"),
    )
    _guard = Guard(compressed, token)
    return _guard


class LoginAttempts:
    """Wrong tokens per client address: after LOGIN_ATTEMPTS within LOGIN_WINDOW seconds, /login
    answers 429 until the oldest of them is that old (a guess a second at most, on average)."""

    def __init__(
        self,
        attempts: int = LOGIN_ATTEMPTS,
        window: float = LOGIN_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts, self.window, self.clock = attempts, window, clock
        self.failures: dict[str, collections.deque[float]] = {}

    def wait(self, client: str) -> int:
        """Seconds the client must wait before it may try again (0: it may now)."""
        times = self.failures.get(client)
        now = self.clock()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times or len(times) < self.attempts:
            return 0
        return max(1, math.ceil(self.window - (now - times[0])))

    def failed(self, client: str) -> None:
        if len(self.failures) > 10_000:  # forget the quiet ones rather than grow without end
            now = self.clock()
            self.failures = {k: v for k, v in self.failures.items() if v and now - v[-1] < self.window}
        self.failures.setdefault(client, collections.deque(maxlen=self.attempts)).append(self.clock())

    def forget(self, client: str) -> None:
        self.failures.pop(client, None)


class Assets:
    """The static files, each served with its version in the URL (a year's cache) and gzip'ed
    when the browser takes it; plotly.js (4.8 MB, 1.4 MB gzip'ed) is compressed once, on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, tuple[bytes, bytes | None, str, str]] = {}
        self._lock = threading.Lock()
        digest = hashlib.sha256()
        for path in sorted(folder.iterdir()):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
        plotly = plotly_js()
        if plotly is not None:
            stat = plotly.stat()
            digest.update(f"{plotly}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        self.version = digest.hexdigest()[:12]

    def url(self, name: str) -> str:
        return f"/static/{name}?v={self.version}"

    def _load(self, name: str) -> tuple[bytes, bytes | None, str, str] | None:
        found = self._files.get(name)
        if found is not None:
            return found
        if name == "vendor/plotly.min.js":
            path = plotly_js()
        elif "/" not in name and not name.startswith("."):
            path = self.folder / name
        else:
            path = None
        if path is None or not path.is_file():
            return None
        with self._lock:
            found = self._files.get(name)
            if found is None:
                body = path.read_bytes()
                packed = gzip.compress(body, 9, mtime=0) if len(body) > 1024 else None
                found = (body, packed, _etag(body), _MEDIA.get(path.suffix, "application/octet-stream"))
                self._files[name] = found
        return found

    def response(self, request: Request, name: str) -> Response:
        try:
            Params(request.query_params, ("v",))
        except BadRequest as exc:
            return _error_json(400, str(exc))
        found = self._load(name)
        if found is None:
            if name == "vendor/plotly.min.js":
                return _error_json(404, "plotly is not installed: charts are off")
            return _error_json(404, f"no page at {request.url.path}")
        body, packed, etag, media = found
        versioned = request.query_params.get("v") == self.version
        headers = {
            "etag": etag,
            "cache-control": IMMUTABLE if versioned else "no-cache",
            "vary": "accept-encoding",
        }
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        if packed is not None and "gzip" in request.headers.get("accept-encoding", ""):
            return Response(packed, media_type=media, headers={**headers, "content-encoding": "gzip"})
        return Response(body, media_type=media, headers=headers)


_MEDIA = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _etag(body: bytes) -> str:
    return 'W/"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _not_modified(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match")
    if not given:
        return False
    tags = {t.strip().removeprefix("W/") for t in given.split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags


def _304(etag: str) -> Response:
    return Response(status_code=304, headers={"etag": etag, "cache-control": "no-cache"})


def _fresh(
    request: Request,
    body: bytes,
    media: str,
    headers: dict[str, str] | None = None,
    *,
    etag: str | None = None,
) -> Response:
    """A 200 with an ETag and `no-cache` (every use asks again), or a 304 without a body."""
    etag = etag or _etag(media.encode() + b" " + body)
    if _not_modified(request, etag):
        return _304(etag)
    return Response(
        body, media_type=media, headers={**(headers or {}), "etag": etag, "cache-control": "no-cache"}
    )


async def _run_sync(fn: Callable, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


async def _call(view: Callable, request: Request, registry: views.Registry) -> Any:
    """Run a view on one version of the catalog. A bad request is a 400, something it names that
    is not there a 404, an unreachable store a 503; anything else is the server's fault (500),
    logged with its traceback and answered with a message that names no server path."""
    try:
        return await _run_sync(lambda: view(request, registry.for_request()))
    except BadRequest as exc:
        return _error_json(400, str(exc))
    except NotFound as exc:
        return _error_json(404, str(exc))
    except StoreConnectionError as exc:
        return _error_json(503, str(exc))
    except views.Refused as exc:  # a checkpoint the restricted unpickler won't read
        return _error_json(422, str(exc))
    except (DacapoStoreError, OSError) as exc:
        log.error(
            "%s %s: the store failed: %s", request.method, request.url.path, redact(str(exc)), exc_info=True
        )
        return _error_json(
            500, f"the registry could not be read ({type(exc).__name__}); the server's log says why"
        )
    except Exception as exc:
        log.error("%s %s: %s", request.method, request.url.path, redact(repr(exc)), exc_info=True)
        return _error_json(500, "internal error; the server's log says why")


def _error_page(env: Environment, request: Request, response: Response) -> Response:
    error = json.loads(response.body)["error"]
    body = env.get_template("error.html").render(error=error, path=request.url.path)
    return HTMLResponse(body, status_code=response.status_code)


def _query(current: dict[str, Any] | None = None, **changes: Any) -> str:
    """A query string from the current filters with some changed (None drops a key)."""
    merged = {k: v for k, v in (current or {}).items() if v not in (None, "", [], ())}
    for key, value in changes.items():
        if value in (None, "", [], ()):
            merged.pop(key, None)
        else:
            merged[key] = value
    return "?" + urlencode(merged, doseq=True) if merged else "?"


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return DASH
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _when(value: Any) -> str:
    if not value:
        return DASH
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text[:19].replace("T", " ")


def _size(value: Any) -> str:
    if value is None:
        return DASH
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)
