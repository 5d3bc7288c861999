from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from earmark import auth
from earmark.models import Assignment, Clip, User
from earmark.types import Actor, Role
from earmark.workspace import Workspace
from tests import factories as f
from tests.conftest import ADMIN_PASSWORD
from tests.web.helpers import client, login, next_clip


def _token(ws: Workspace, role: Role = Role.service) -> dict[str, str]:
    with ws.transaction() as s:
        return {"Authorization": f"Bearer {auth.create_token(s, actor=Actor.cli(), role=role)[1]}"}


def test_report_and_erase_through_the_service_api(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    c, headers = client(ws), _token(ws)
    report = c.get("/api/v1/accounts/acct-q0/report", headers=headers)
    assert report.status_code == 200 and report.json()["recordings"]["stored"] == 2
    html = c.get("/api/v1/accounts/acct-q0/report?format=html", headers=headers)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    policy = html.headers["content-security-policy"]  # its own <style> applies; no script runs
    assert "style-src 'unsafe-inline'" in policy and "default-src 'none'" in policy and "script" not in policy
    assert c.get("/api/v1/accounts/nobody/report", headers=headers).json()["known"] is False
    # An id no account can have: refused, not reported on as "we hold no data" (nor audited).
    for bad in ("%20acct-q0%20", "x" * 129, "%00%ff", "-x"):
        for call in (c.get(f"/api/v1/accounts/{bad}/report", headers=headers),
                     c.post(f"/api/v1/accounts/{bad}/erase", headers=headers)):  # fmt: skip
            assert call.status_code == 422, (bad, call.status_code, call.text[:200])
    erased = c.post("/api/v1/accounts/acct-q0/erase", headers=headers)
    assert erased.status_code == 200 and erased.json()["clips"] == 2 and not erased.json()["already_erased"]
    assert c.post("/api/v1/accounts/acct-q0/erase", headers=headers).json()["already_erased"] is True
    unknown = c.post("/api/v1/accounts/nobody/erase", headers=headers)
    assert unknown.status_code == 404 and "unknown account" in unknown.json()["error"]["message"]


def test_auditor_searches_the_log_and_verifies_the_chain(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    f.user(ws, "aud1", Role.auditor, password="auditor-password")
    c = client(ws)
    login(c, "aud1", "auditor-password")
    page = c.get("/audit?action=pipeline.")
    assert page.status_code == 200
    rows = page.text.split('data-testid="audit-rows"')[1]
    assert "<td>pipeline.process</td>" in rows and "<td>sample.draw</td>" not in rows
    for before in ("10" * 16, "-1", "0"):  # beyond any event number: a clear error, not a crash
        bad = c.get(f"/audit?before={before}")
        assert bad.status_code == 422 and "event number" in bad.text
    checked = c.get("/audit?verify=true")
    assert "Chain intact" in checked.text
    reviewer = client(ws)
    f.user(ws, "rev1")
    login(reviewer, "rev1", "reviewer-password")
    assert reviewer.get("/audit").status_code == 403


def test_an_auditor_finds_who_heard_a_clip(ws: Workspace) -> None:
    """Listens, leases and submits are recorded against the pass (assignment): a search for the
    clip, by its id or its clip id, brings them, and nothing of another clip."""
    f.queue_clips(ws, 2)
    f.user(ws, "rev1")
    f.user(ws, "aud1", Role.auditor, password="auditor-password")
    rev = client(ws)
    page = next_clip(rev, login(rev, "rev1", "reviewer-password"))
    src = re.search(r'<audio id="clip-audio"[^>]* src="([^"]+)"', page.text)
    assert src and rev.get(html.unescape(src.group(1))).status_code == 200  # a listen
    with ws.sessions() as s:
        heard = s.execute(select(Clip).join(Assignment, Assignment.clip_id == Clip.id)).scalar_one()
        other = s.execute(select(Clip.id).where(Clip.id != heard.id)).scalar_one()
    c = client(ws)
    login(c, "aud1", "auditor-password")
    for key in (str(heard.id), heard.external_id):
        found = c.get("/audit", params={"object_type": "clip", "object_id": key})
        rows = found.text.split('data-testid="audit-rows"')[1]
        assert "review.audio" in rows and "review.lease" in rows and "pipeline.process" in rows, key
        assert f"clip {other}<" not in rows
    odd = c.get("/audit", params={"object_type": "clip", "object_id": "²"})  # isdigit() but no number: a 500
    assert odd.status_code == 200 and "No events match." in odd.text
    wildcard = c.get("/audit", params={"action": "%"}).text.split('data-testid="audit-rows"')[1]
    assert "No events match." in wildcard  # "%" is a character, not a wildcard
    # The person behind an id, and a search by name: an investigation reads people, not numbers.
    with ws.sessions() as s:
        rev_id = s.execute(select(User.id).where(User.username == "rev1")).scalar_one()
    by_name = c.get("/audit", params={"actor": "rev1"}).text.split('data-testid="audit-rows"')[1]
    assert f"<td>user:{rev_id} · rev1</td>" in by_name and "review.audio" in by_name
    assert "aud1" not in by_name  # only rev1's events
    unknown = c.get("/audit", params={"actor": "Rev1"}).text
    assert "No events match." in unknown and "No user is named &#39;Rev1&#39; (names are case-sensitive" in unknown
    created = c.get("/audit", params={"action": "user.create"}).text.split('data-testid="audit-rows"')[1]
    assert f"user {rev_id} · rev1</td>" in created  # the user a row is about, named too


def test_an_auditor_opens_a_customers_report_in_the_browser_ui(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    f.user(ws, "aud1", Role.auditor, password="auditor-password")
    f.user(ws, "rev1")
    c = client(ws)
    csrf = login(c, "aud1", "auditor-password")
    assert 'method="post" action="/audit/report"' in c.get("/audit").text
    # A POST: the account id stays out of the URL (history, access logs); a GET is not a route.
    assert c.get("/audit/report", params={"account": "acct-q0"}).status_code == 405
    report = c.post("/audit/report", data={"account": "acct-q0", "csrf_token": csrf})
    assert report.status_code == 200 and "Your voice recordings and human review" in report.text
    assert "style-src 'unsafe-inline'" in report.headers["content-security-policy"]
    assert "We hold no recordings" in c.post("/audit/report", data={"account": "nobody", "csrf_token": csrf}).text
    assert c.post("/audit/report", data={"account": "acct-q0"}).status_code == 403  # no CSRF token
    rows = c.get("/audit", params={"action": "report.create"}).text.split('data-testid="audit-rows"')[1]
    assert rows.count("report.create") == 2  # each report made is audited, under the auditor
    reviewer = client(ws)
    token = login(reviewer, "rev1", "reviewer-password")
    assert reviewer.post("/audit/report", data={"account": "acct-q0", "csrf_token": token}).status_code == 403


def test_admin_can_open_the_audit_view_too(ws: Workspace) -> None:
    c = client(ws)
    login(c, "admin", ADMIN_PASSWORD)
    assert c.get("/audit").status_code == 200


@pytest.mark.browser
def test_an_auditor_opens_a_report_in_chromium_without_the_account_in_a_url(sqlite_ws: Workspace) -> None:
    from tests.web.browser import chromium, live_server, sign_in

    f.queue_clips(sqlite_ws, 1)
    f.user(sqlite_ws, "aud1", Role.auditor, password="auditor-password")
    with live_server(sqlite_ws) as base, chromium() as browser:
        page = browser.new_page()
        sign_in(page, base, "aud1", "auditor-password")
        assert page.url == f"{base}/audit"
        page.fill("[data-testid=report-form] input[name=account]", "acct-q0")
        with page.expect_popup() as opened:
            page.get_by_role("button", name="Open report").click()
        report = opened.value
        report.wait_for_load_state()
        assert "Your voice recordings and human review" in report.content()
        assert "acct-q0" not in report.url and report.url == f"{base}/audit/report"
