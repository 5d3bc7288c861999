"""Shared helpers for HTTP tests: an app client per workspace, logins, CSRF tokens."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from earmark.web.app import create_app
from earmark.workspace import Workspace

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
META_CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def client(ws: Workspace) -> TestClient:
    return TestClient(create_app(ws), base_url="http://127.0.0.1", follow_redirects=False)


def login(c: TestClient, username: str, password: str) -> str:
    """Log in through the real form; returns the session's CSRF token."""
    form = c.get("/login")
    token = CSRF_RE.search(form.text)
    assert token, form.text
    resp = c.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)})
    assert resp.status_code == 303, resp.text
    home = c.get("/", follow_redirects=True)
    found = META_CSRF_RE.search(home.text)
    assert found and found.group(1)
    return found.group(1)


def next_clip(c: TestClient, csrf: str, queue: str = "/review"):  # type: ignore[no-untyped-def]
    """Press the start button of a queue's page: lease (or resume) a clip and open it."""
    return c.post(f"{queue}/next", headers={"X-CSRF-Token": csrf}, follow_redirects=True)
