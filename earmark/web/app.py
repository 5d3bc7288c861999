"""`create_app(workspace)`: the FastAPI application. Nothing is created at import time."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from earmark.db import BUSY_MESSAGE, is_transient
from earmark.errors import EarmarkError
from earmark.web.deps import SESSION_COOKIE, LoginRequired
from earmark.worker import BackgroundWorker
from earmark.workspace import Workspace

log = logging.getLogger("earmark.web")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, before a handler buffers them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(self.limit, scope, receive, send)
                return
        seen, over, answered = 0, False, False

        async def limited() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise _BodyTooLarge()
            return message

        async def guarded(message: Message) -> None:
            # A body without Content-Length (chunked) that runs over: a parser that catches the
            # error would answer 400; the client gets the 413 that says why instead.
            nonlocal answered
            if not over:
                await send(message)
            elif not answered:
                answered = True
                await _too_large(self.limit, scope, receive, send)

        try:
            await self.app(scope, limited, guarded)
        except _BodyTooLarge:
            if not answered:
                answered = True
                await _too_large(self.limit, scope, receive, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    resp = JSONResponse(
        {"error": {"message": f"request body is larger than the limit of {limit} bytes", "field": None}},
        status_code=413,
    )
    await resp(scope, receive, send)


def asset_version() -> str:
    """A short hash of the static files: links carry it, so browsers may cache them for a day."""
    digest = hashlib.sha256()
    static = resources.files("earmark.web") / "static"
    for item in sorted(static.iterdir(), key=lambda i: i.name):
        if item.is_file():
            digest.update(item.name.encode())
            digest.update(item.read_bytes())
    return digest.hexdigest()[:10]


def templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(resources.files("earmark.web") / "templates"))
    t.env.globals["asset_v"] = asset_version()
    return t


def routers() -> list[APIRouter]:
    """Every router the app serves; tests enumerate their routes against the policy table."""
    from earmark.web import admin, api, auditview, pages, review

    return [pages.router, review.router, admin.router, auditview.router, api.router]


def create_app(ws: Workspace, *, worker: bool = False) -> FastAPI:
    """Build the web app around an open workspace; `worker` also runs the pipeline in the background."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background = None
        if worker:
            background = BackgroundWorker(ws, interval=ws.settings.worker_interval_seconds)
            background.start()
        app.state.worker = background
        try:
            yield
        finally:
            if background is not None:
                background.stop()

    app = FastAPI(title="earmark", docs_url=None, redoc_url=None, openapi_url="/api/v1/openapi.json", lifespan=lifespan)
    app.state.ws = ws
    app.state.templates = templates()
    from earmark.web.pages import LoginThrottle

    app.state.login_throttle = LoginThrottle()

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.url.path.startswith("/static/"):
            # Not private, and versioned by asset_v: no request per page for them.
            response.headers.setdefault("Cache-Control", "public, max-age=86400, immutable")
        response.headers.setdefault("Cache-Control", "no-store")
        route = request.scope.get("route")
        # Route templates, never concrete paths or query strings: those may carry assignment ids
        # and signatures. No bodies, no transcript text.
        log.info(
            "%s %s %s %.1fms",
            request.method,
            getattr(route, "path", "-"),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    app.add_middleware(BodyLimit, limit=ws.settings.max_upload_bytes)

    def wants_json(request: Request) -> bool:
        """The API, and the workbench's own fetch calls (they send JSON), get errors as JSON."""
        return request.url.path.startswith("/api/") or request.headers.get("content-type", "").startswith(
            "application/json"
        )

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        # A session cookie that no longer names a session: it ended (expired, logged out elsewhere).
        ended = bool(request.cookies.get(SESSION_COOKIE))
        target = "/login?reason=ended" if ended else "/login"
        if wants_json(request):
            # The workbench's fetch would follow a redirect and take the login page for success.
            message = "your login session ended, so nothing was saved; log in again"
            return JSONResponse({"error": {"message": message, "field": None}, "next": target}, status_code=401)
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(EarmarkError)
    async def _earmark_error(request: Request, exc: EarmarkError) -> Response:
        if wants_json(request):
            return JSONResponse({"error": {"message": exc.message, "field": exc.field}}, status_code=exc.http_status)
        return app.state.templates.TemplateResponse(
            request,
            "error.html",
            {"message": str(exc), "status": exc.http_status},
            status_code=exc.http_status,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            "the request body is not valid JSON"
            if e.get("type") == "json_invalid"
            else f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
            for e in exc.errors()
        )
        if wants_json(request):
            return JSONResponse({"error": {"message": problems, "field": None}}, status_code=422)
        return app.state.templates.TemplateResponse(
            request, "error.html", {"message": problems, "status": 422}, status_code=422
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> Response:
        if not is_transient(exc):
            raise exc  # a 500, logged
        # A conflict the database resolved by rolling this request back: say so, so the client
        # (or the person) sends it again; the transaction left nothing behind.
        log.warning("database conflict on %s %s: %s", request.method, request.url.path, type(exc.orig).__name__)
        headers = {"Retry-After": "1"}
        if wants_json(request):
            return JSONResponse({"error": {"message": BUSY_MESSAGE, "field": None}}, status_code=503, headers=headers)
        return app.state.templates.TemplateResponse(
            request, "error.html", {"message": BUSY_MESSAGE, "status": 503}, status_code=503, headers=headers
        )

    for router in routers():
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(resources.files("earmark.web") / "static")), name="static")
    return app
