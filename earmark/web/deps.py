"""Request dependencies: workspace, database session, the caller, role policy, CSRF."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from earmark import auth
from earmark.errors import AuthenticationFailed, InvalidInput, PermissionDenied
from earmark.manifest import load_json_text
from earmark.models import User, WebSession
from earmark.types import Actor, Role
from earmark.web.policy import allowed
from earmark.workspace import Workspace

SESSION_COOKIE = "earmark_session"
LOGIN_CSRF_COOKIE = "earmark_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """Raised for a page that needs a login; the app redirects to /login."""


def load_json(raw: str | bytes, *, field: str | None = None) -> Any:
    """Parse a JSON body or field with the rules of a manifest line (earmark.manifest.load_json_text):
    malformed JSON, bytes that are not UTF-8 and a lone surrogate escape are the caller's error."""
    try:
        return load_json_text(raw)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=field) from None


def get_ws(request: Request) -> Workspace:
    ws: Workspace = request.app.state.ws
    return ws


def get_db(request: Request) -> Iterator[Session]:
    """One session per request; the route commits once, anything uncommitted rolls back."""
    with get_ws(request).sessions() as session:
        yield session


@dataclass
class Caller:
    user: User
    web_session: WebSession

    @property
    def actor(self) -> Actor:
        return Actor("user", self.user.id, self.user.role)


def _route_name(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "name", "") or ""


def page_caller(request: Request, session: Session = Depends(get_db)) -> Caller:
    """The logged-in user of a page, allowed by the policy table for this route."""
    found = auth.session_user(session, request.cookies.get(SESSION_COOKIE))
    if found is None:
        raise LoginRequired()
    user, web_session = found
    if not allowed(_route_name(request), user.role):
        raise PermissionDenied("your role cannot open this page")
    request.state.caller = Caller(user, web_session)
    return request.state.caller  # type: ignore[no-any-return]


async def csrf_checked(request: Request, caller: Caller = Depends(page_caller)) -> Caller:
    """A state-changing form or fetch must carry the session's CSRF token."""
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not auth.csrf_matches(caller.web_session.csrf_token, given):
        raise PermissionDenied("missing or wrong CSRF token; reload the page and try again")
    return caller


def api_actor(request: Request) -> Actor:
    """The caller of an API route: a bearer token, allowed by the policy table for this route.

    Looked up in a short session of its own, so a route that then runs its own transaction (ingest)
    does not wait on this one (SQLite allows one writer at a time).
    """
    header = request.headers.get("authorization", "")
    actor: Actor | None = None
    if header.lower().startswith("bearer "):
        with get_ws(request).sessions() as session:
            actor = auth.token_actor(session, header[7:].strip())
    if actor is None:
        raise AuthenticationFailed("send a valid service token as 'Authorization: Bearer <token>'")
    if actor.role is None or not allowed(_route_name(request), Role(actor.role)):
        raise PermissionDenied("this token's role cannot call this route")
    return actor
