"""Login and the reviewer's pages. Thin: parse, call one domain function, commit, render."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from earmark import auth
from earmark.errors import AuthenticationFailed, PermissionDenied
from earmark.types import Role
from earmark.web.deps import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Caller,
    csrf_checked,
    get_db,
    get_ws,
    page_caller,
)

router = APIRouter()


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    caller: Caller | None = getattr(request.state, "caller", None)
    base = {
        "user": caller.user if caller else None,
        "csrf_token": caller.web_session.csrf_token if caller else "",
        "csrf_field": CSRF_FIELD,
    }
    return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, name, {**base, **context}, status_code=status_code
    )


@router.get("/health", name="health")
def health() -> dict[str, str]:
    return {"status": "ok"}


# Why the login page was opened, by code: the page never shows text taken from its address (a
# link could otherwise put any message, "call IT at ... and give them your password", on it).
LOGIN_REASONS = {"ended": "Your session ended (it expired, or you logged out in another tab). Log in again."}


@router.get("/login", name="login.form")
def login_form(request: Request, reason: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", {"login_csrf": token, "error": LOGIN_REASONS.get(reason, "")})
    ws = get_ws(request)
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=ws.settings.secure_cookies,
        max_age=3600,
    )
    return resp


class LoginThrottle:
    """At most `limit` login attempts per client address per `window` seconds (in memory).

    Complements the per-user lockout: it slows one address guessing across many usernames.
    """

    def __init__(self, limit: int = 20, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._seen.setdefault(client, deque())
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True


@router.post("/login", name="login.submit")
def login_submit(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    session: Session = Depends(get_db),
) -> Response:
    ws = get_ws(request)
    throttle: LoginThrottle = request.app.state.login_throttle
    if not throttle.allow(request.client.host if request.client else "?"):
        return render(
            request,
            "login.html",
            {"login_csrf": "", "error": "too many login attempts from your address; wait a few minutes"},
            status_code=429,
        )
    if not auth.csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token):
        raise PermissionDenied("the login form expired or lacks its CSRF token; reload the page")
    try:
        user = auth.authenticate(
            session,
            username=username.strip().lower(),
            password=password,
            max_failures=ws.settings.login_max_failures,
            lockout_minutes=ws.settings.login_lockout_minutes,
        )
    except AuthenticationFailed as exc:
        session.commit()  # keep the failure count and its audit row
        token = secrets.token_urlsafe(24)
        resp = render(request, "login.html", {"login_csrf": token, "error": exc.message}, status_code=401)
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=ws.settings.secure_cookies)
        return resp
    new = auth.start_session(session, user=user, hours=ws.settings.session_hours)
    session.commit()
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        new.token,
        httponly=True,
        samesite="strict",
        secure=ws.settings.secure_cookies,
        max_age=ws.settings.session_hours * 3600,
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE)
    return resp


@router.post("/logout", name="logout")
def logout(request: Request, caller: Caller = Depends(csrf_checked), session: Session = Depends(get_db)) -> Response:
    auth.end_session(session, token=request.cookies.get(SESSION_COOKIE, ""))
    session.commit()
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


@router.get("/", name="home")
def home(request: Request, caller: Caller = Depends(page_caller)) -> Response:
    role = Role(caller.user.role)
    if role in (Role.reviewer, Role.senior):
        return RedirectResponse("/review", status_code=303)
    if role == Role.safety:
        return RedirectResponse("/safety", status_code=303)
    if role == Role.wakeword:
        return RedirectResponse("/wakeword", status_code=303)
    if role == Role.admin:
        return RedirectResponse("/admin", status_code=303)
    if role == Role.auditor:
        return RedirectResponse("/audit", status_code=303)
    return render(request, "home.html", {"role": role.value})
