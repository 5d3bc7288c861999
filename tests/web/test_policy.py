"""Every route of the app, for every role, against the one policy table (earmark.web.policy)."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.routing import Mount

from earmark import auth
from earmark.models import Assignment
from earmark.types import Actor, Role
from earmark.web.app import create_app, routers
from earmark.web.policy import POLICY, PUBLIC, allowed
from earmark.workspace import Workspace
from tests import factories as f
from tests.conftest import ADMIN_PASSWORD
from tests.web.helpers import client, login

TOKEN_ROLES = {Role.service, Role.admin, Role.auditor}


def _routes(ws: Workspace) -> list[APIRoute]:
    routes = [r for router in routers() for r in router.routes if isinstance(r, APIRoute)]
    app = create_app(ws)
    mounts = [r for r in app.routes if isinstance(r, Mount)]
    assert all(m.name in PUBLIC for m in mounts)
    # Nothing the app serves escapes the enumeration: its OpenAPI paths are all among these routes.
    served = {path for path in app.openapi()["paths"]}
    assert served <= {r.path for r in routes}
    return routes


def test_every_route_is_in_the_policy_table(sqlite_ws: Workspace) -> None:
    names = {r.name for r in _routes(sqlite_ws)}
    assert names - POLICY.keys() - PUBLIC == set(), "add new routes to earmark/web/policy.py"
    assert POLICY.keys() - names == set(), "the policy table names routes that no longer exist"


def test_every_route_for_every_role(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    f.queue_clips(ws, 2)
    sessions: dict[Role, tuple[object, str]] = {}
    for role in Role:
        if role == Role.service:
            continue
        name = f"pol-{role.value}"
        f.user(ws, name, role, password="policy-password")
        c = client(ws)
        sessions[role] = (c, login(c, name, "policy-password"))
    tokens: dict[Role, str] = {}
    with ws.transaction() as s:
        for role in TOKEN_ROLES:
            tokens[role] = auth.create_token(s, actor=Actor.cli(), role=role)[1]
    anonymous = client(ws)
    # Logout goes last: it ends the sessions the other checks use.
    for route in sorted(_routes(ws), key=lambda r: r.name == "logout"):
        if route.name in PUBLIC:
            continue
        path = re.sub(r"\{[^}]+\}", "nonexistent", route.path)
        for method in sorted(route.methods - {"HEAD"}):
            for role in Role:
                if route.path.startswith("/api/"):
                    headers = {"Authorization": f"Bearer {tokens[role]}"} if role in TOKEN_ROLES else {}
                    c = anonymous
                else:
                    if role not in sessions:
                        c, headers = anonymous, {}
                    else:
                        c, csrf = sessions[role]  # type: ignore[assignment]
                        headers = {"X-CSRF-Token": csrf}
                resp = c.request(method, path, headers=headers)  # type: ignore[attr-defined]
                to_login = resp.headers.get("location") == "/login"
                # Logout's own success is a redirect to /login; only 401/403 mean "refused" there.
                denied = resp.status_code in (401, 403) or (to_login and route.name != "logout")
                if route.name == "logout" and role == Role.service:
                    denied = to_login  # no session at all: sent to log in
                assert denied == (not allowed(route.name, role)), (
                    route.name,
                    method,
                    role.value,
                    resp.status_code,
                )


def test_no_admin_or_auditor_hears_a_customer(ws: Workspace) -> None:
    """Admins run the program and can find out whose a clip is; auditors read the log. Neither
    leases a clip or hears audio through earmark (docs/privacy.md, "Who sees what")."""
    hearing = {name for name in POLICY if name.split(".")[0] in ("review", "help", "adjudicate", "safety", "wakeword")}
    assert {"review.audio", "help.audio", "review.start", "adjudicate.start"} <= hearing
    for name in hearing:
        assert not POLICY[name] & {Role.admin, Role.auditor, Role.service}, name
    f.queue_clips(ws, 1)
    c = client(ws)
    csrf = login(c, "admin", ADMIN_PASSWORD)
    for path in ("/review", "/help", "/adjudicate"):
        assert c.get(path).status_code == 403, path
    assert c.post("/review/next", headers={"X-CSRF-Token": csrf}).status_code == 403
    with ws.sessions() as s:
        assert s.execute(select(Assignment)).first() is None
