"""The dashboard's ASGI app: routes, HTML and JSON twins of each view, token check, safe headers."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import DacapoStoreError, StoreConnectionError
from ..mongo import redact
from ..queries import RunCatalog
from ..weights.base import WeightsStore
from . import views
from .openapi import openapi_document
from .params import BadRequest, NotFound

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "dacapo_store_session"
DASH = "\u2013"  # an en dash: "no value"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def plotly_js() -> Path | None:
    """plotly.js as bundled in the `plotly` wheel (served by us: no CDN)."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


class Guard:
    """ASGI middleware: the token (when one is set) on every request, and the security headers."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token
        # The cookie holds a value derived from the token, never the token itself.
        self.session = (
            hmac.new(token.encode(), b"dacapo-store session", hashlib.sha256).hexdigest() if token else None
        )

    def allowed(self, scope: dict) -> bool:
        if self.token is None or scope["path"] in (
            "/login",
            "/static/app.css",
            "/static/favicon.svg",
            "/favicon.ico",
        ):
            return True
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(
            auth[7:].strip().encode(), self.token.encode()
        ):
            return True
        for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
            key, _, value = part.strip().partition("=")
            if key == COOKIE and hmac.compare_digest(value.encode(), self.session.encode()):
                return True
        return False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        if self.allowed(scope):
            await self.app(scope, receive, send_with_headers)
            return
        request = Request(scope, receive)
        if request.method == "GET" and not scope["path"].startswith("/api/") and _wants_html(request):
            target = scope["path"] + (
                f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else ""
            )
            response: Response = RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
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
) -> Any:
    """The read-only dashboard and JSON API over a config store and a weights store."""
    catalog = RunCatalog(
        configs, weights, recheck=recheck, **({"stale_after": stale_after} if stale_after else {})
    )
    registry = views.Registry(configs, weights, catalog)
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

    def page(view: Callable[[Request, views.Registry], dict], template: str) -> Callable:
        async def html(request: Request) -> Response:
            data = await _call(view, request, registry)
            if isinstance(data, Response):
                return _error_page(env, request, data)
            body = env.get_template(template).render(data=data, request=request, path=request.url.path)
            return HTMLResponse(body)

        async def api(request: Request) -> Response:
            data = await _call(view, request, registry)
            return data if isinstance(data, Response) else JSON(data)

        return html, api

    routes: list[Any] = []
    for path, view, template in [
        ("/", views.runs, "runs.html"),
        ("/runs/{name:path}", views.run, "run.html"),
        ("/compare", views.compare, "compare.html"),
        ("/leaderboard", views.leaderboard, "leaderboard.html"),
        ("/configs/{kind}", views.configs, "configs.html"),
        ("/configs/{kind}/{name:path}", views.config, "config.html"),
    ]:
        html, api = page(view, template)
        api_path = "/api/v1/runs" if path == "/" else "/api/v1" + path
        routes += [Route(path, html, name=template[:-5]), Route(api_path, api)]

    async def healthz(request: Request) -> Response:
        data = await _run_sync(views.health, registry)
        return JSON(data, status_code=200 if data["ok"] else 503)

    async def openapi(request: Request) -> Response:
        return JSON(openapi_document())

    async def api_root(request: Request) -> Response:
        return JSON({"openapi": "/api/v1/openapi.json", "health": "/healthz"})

    async def plotly(request: Request) -> Response:
        path = plotly_js()
        if path is None:
            return _error_json(404, "plotly is not installed: charts are off")
        return FileResponse(path, media_type="text/javascript", headers={"cache-control": "max-age=86400"})

    async def favicon(request: Request) -> Response:
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    async def login(request: Request) -> Response:
        next_url = request.query_params.get("next", "/")
        if not next_url.startswith("/") or next_url.startswith("//"):
            next_url = "/"
        if request.method == "POST":
            body = (await request.body()).decode("utf-8", "replace")
            given = (parse_qs(body).get("token") or [""])[0]
            if token is not None and hmac.compare_digest(given.encode(), token.encode()):
                response = RedirectResponse(next_url, status_code=303)
                response.set_cookie(
                    COOKIE,
                    _guard.session,
                    httponly=True,
                    samesite="strict",
                    secure=request.url.scheme == "https",
                    path="/",
                )
                return response
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
        Route("/static/vendor/plotly.min.js", plotly),
        Route("/favicon.ico", favicon),
        Route("/login", login, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        response = _error_json(404, f"no page at {request.url.path}")
        return _error_page(env, request, response) if _wants_html(request) else response

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error_json(405, f"{request.method} is not allowed here: the dashboard is read-only")

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.state.registry = registry
    _guard = Guard(app, token)
    return _guard


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
