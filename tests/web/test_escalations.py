"""The program owner's follow-up of the safety team's escalations: listed for admins only, the
account looked up on request (audited, never in a URL), closed with what was done."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from earmark import escalation
from earmark.models import Account, AuditEvent, Clip, SafetyOutcome
from earmark.queues import lease_next
from earmark.review import flag_sensitive
from earmark.types import Actor, Role
from earmark.workspace import Workspace
from tests import factories as f
from tests.conftest import ADMIN_PASSWORD
from tests.web.browser import chromium, live_server, sign_in
from tests.web.helpers import client, login


def _escalate(ws: Workspace, note: str = "caller asked for help; someone may be hurt") -> int:
    """A reviewer flags a clip; the safety team escalates it. The clip's internal id."""
    reviewer = f.user(ws, "rev1") if not _has(ws, "rev1") else _get(ws, "rev1")
    with ws.transaction() as s:
        a = lease_next(s, actor=reviewer)
        assert a is not None
        flag_sensitive(s, actor=reviewer, assignment_id=a.id)
        clip_id = a.clip_id
    safety = f.user(ws, "saf1", Role.safety) if not _has(ws, "saf1") else _get(ws, "saf1")
    with ws.transaction() as s:
        lease = escalation.lease_safety(s, actor=safety, max_clips=10, window_minutes=60, lease_seconds=600)
        assert lease.assignment is not None
        escalation.record_outcome(s, actor=safety, assignment_id=lease.assignment.id, outcome="escalated", note=note)
    return clip_id


def _has(ws: Workspace, name: str) -> bool:
    from earmark.models import User

    with ws.sessions() as s:
        return s.execute(select(User.id).where(User.username == name)).first() is not None


def _get(ws: Workspace, name: str):  # type: ignore[no-untyped-def]
    from earmark.models import User

    with ws.sessions() as s:
        return s.execute(select(User).where(User.username == name)).scalar_one()


def test_an_escalation_reaches_the_program_owner_who_looks_up_the_account_and_closes_it(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    clip_id = _escalate(ws)
    admin = client(ws)
    csrf = login(admin, "admin", ADMIN_PASSWORD)
    assert "1 escalation(s) from the safety\n    team wait for you" in admin.get("/admin").text
    page = admin.get("/admin/escalations")
    assert page.status_code == 200
    row = re.search(r'<tr data-escalation="(\d+)">(.*?)</tr>', page.text, re.S)
    assert row is not None and "caller asked for help; someone may be hurt" in row.group(2)
    assert "acct-q0" not in page.text  # not before it is asked for
    outcome_id = int(row.group(1))
    shown = admin.post(f"/admin/escalations/{outcome_id}/lookup", headers={"X-CSRF-Token": csrf})
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    assert '<strong data-testid="account">acct-q0</strong>' in shown.text
    with ws.sessions() as s:
        looked = s.execute(select(AuditEvent).where(AuditEvent.action == "safety.account_lookup")).scalar_one()
        assert (looked.object_id, looked.details, looked.actor_role) == (
            str(clip_id),
            {"escalation": outcome_id},
            "admin",
        )
    assert "(looked up before)" in admin.get("/admin/escalations").text
    # Closing needs an answer from the list.
    bad = admin.post(
        f"/admin/escalations/{outcome_id}/resolve", data={"resolution": "shrug"}, headers={"X-CSRF-Token": csrf}
    )
    assert bad.status_code == 422 and "resolution must be one of" in bad.text
    done = admin.post(
        f"/admin/escalations/{outcome_id}/resolve", data={"resolution": "referred"}, headers={"X-CSRF-Token": csrf}
    )
    assert done.status_code == 303 and done.headers["location"] == f"/admin/escalations?closed={outcome_id}"
    page = admin.get(done.headers["location"]).text
    assert 'data-testid="no-escalations"' in page and "Referred to emergency services" in page
    assert "escalation(s) from the safety" not in admin.get("/admin").text
    with ws.sessions() as s:
        row_ = s.get(SafetyOutcome, outcome_id)
        assert row_ is not None and row_.resolution == "referred" and row_.resolved_at is not None
        assert s.execute(select(AuditEvent.details).where(AuditEvent.action == "safety.resolve")).scalar_one() == {
            "escalation": outcome_id,
            "resolution": "referred",
        }
    # Closed: no more lookups, no second close.
    again = admin.post(f"/admin/escalations/{outcome_id}/lookup", headers={"X-CSRF-Token": csrf})
    assert again.status_code == 422 and "closed already" in again.text
    assert "acct-q0" not in again.text


def test_only_admins_see_escalations_and_other_outcomes_are_not_escalations(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    _escalate(ws)
    for role in (Role.reviewer, Role.senior, Role.safety, Role.auditor, Role.wakeword):
        f.user(ws, f"u-{role.value}", role)
        c = client(ws)
        csrf = login(c, f"u-{role.value}", "reviewer-password")
        assert c.get("/admin/escalations").status_code == 403, role
        assert c.post("/admin/escalations/1/lookup", headers={"X-CSRF-Token": csrf}).status_code == 403, role
    with ws.transaction() as s:
        handled = SafetyOutcome(clip_id=s.execute(select(Clip.id)).scalars().first(), user_id=1, outcome="handled")
        s.add(handled)
        s.flush()
        handled_id = handled.id
    admin = client(ws)
    csrf = login(admin, "admin", ADMIN_PASSWORD)
    missing = admin.post(f"/admin/escalations/{handled_id}/lookup", headers={"X-CSRF-Token": csrf})
    assert missing.status_code == 404 and "no such escalation" in missing.text


def test_an_erased_customers_escalation_says_so_instead_of_an_id(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    _escalate(ws)
    ws.erase(actor=Actor.cli(), account_id="acct-q0")
    with ws.transaction() as s:
        [e] = escalation.escalations(s)
        assert e.note is None  # the note went with the erasure
        account = escalation.look_up_account(s, actor=Actor.cli(), outcome_id=e.id)
        assert account.startswith("(erased") and "acct-q0" not in account
        assert s.execute(select(Account.external_id)).scalar_one() != "acct-q0"


@pytest.mark.browser
def test_the_program_owner_follows_an_escalation_up_in_chromium(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    f.queue_clips(ws, 2)
    _escalate(ws)
    with live_server(ws) as base, chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        assert page.url == f"{base}/admin"
        page.get_by_test_id("open-escalations").get_by_role("link").click()
        page.wait_for_url(f"{base}/admin/escalations")
        assert "someone may be hurt" in page.locator("[data-escalation]").inner_text()
        page.get_by_role("button", name="Look up account").click()
        assert page.get_by_test_id("account").inner_text() == "acct-q0"
        page.get_by_label("What was done").select_option("contacted")
        page.get_by_role("button", name="Close").click()
        page.wait_for_url(lambda u: "closed=" in u)
        assert page.get_by_test_id("no-escalations").is_visible()
        assert "contacted through the proper channel" in page.get_by_test_id("closed-escalations").inner_text()
        assert not errors, errors
