"""The gold set page: an admin picks, adds and removes gold clips in the browser; counts only."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from earmark.models import AuditEvent, Clip, GoldAnswer, User
from earmark.types import Role
from earmark.workspace import Workspace
from tests import factories as f
from tests.conftest import ADMIN_PASSWORD
from tests.web.browser import chromium, live_server, sign_in
from tests.web.helpers import client, login

TEXT = "play shake it off by taylor swift"


def _reviewed(ws: Workspace, clips: int = 4, accounts: int = 2) -> list[int]:
    """`clips` clips over `accounts` households, each reviewed by two agreeing passes."""
    ws.settings.review_passes = 2
    f.queue_clips(ws, clips, accounts=accounts)
    f.review_all(ws, f.user(ws, "r1"), f.user(ws, "r2"), transcript=lambda clip_id, u: f"{TEXT} number {clip_id}")
    with ws.sessions() as s:
        return list(s.execute(select(Clip.id).order_by(Clip.id)).scalars())


def _gold(ws: Workspace) -> list[int]:
    with ws.sessions() as s:
        return sorted(s.execute(select(GoldAnswer.clip_id)).scalars())


def _rows(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-clip="(\d+)">', page)]


def test_an_admin_picks_adds_and_removes_gold_clips_on_the_page(ws: Workspace) -> None:
    clips = _reviewed(ws)
    c = client(ws)
    csrf = login(c, "admin", ADMIN_PASSWORD)
    page = c.get("/admin/gold").text
    assert 'data-testid="gold-empty"' in page and 'data-testid="eligible">4<' in page
    assert "from 2 household(s) without a gold clip" in page
    # Without the CSRF token, and with a number that is not one: refused, nothing added.
    assert c.post("/admin/gold/pick", data={"n": "5"}).status_code == 403
    bad = c.post("/admin/gold/pick", data={"n": "five", "csrf_token": csrf})
    assert bad.status_code == 422 and "how many: give a whole number" in bad.text
    too_many = c.post("/admin/gold/pick", data={"n": "5", "per_account": "0", "csrf_token": csrf})
    assert too_many.status_code == 422 and "per household: give a number from 1 to 100" in too_many.text
    assert _gold(ws) == []
    picked = c.post("/admin/gold/pick", data={"n": "5", "per_account": "1", "csrf_token": csrf})
    assert picked.status_code == 303 and picked.headers["location"] == "/admin/gold?added=2&asked=5"
    page = c.get(picked.headers["location"]).text
    assert "2 clip(s) added to the gold set (5 asked; no more clips are eligible)." in page
    gold = _gold(ws)
    assert len(gold) == 2 and _rows(page) == gold
    assert 'data-testid="eligible">2<' in page and "from 0 household(s)" in page
    assert TEXT not in page  # the answers stay off the page
    # One more clip by id: a clip already gold, a clip that does not exist, then one that may be.
    again = c.post("/admin/gold/add", data={"clip": str(gold[0]), "csrf_token": csrf})
    assert again.status_code == 422 and f"clip {gold[0]} is gold already" in again.text
    missing = c.post("/admin/gold/add", data={"clip": "999999", "csrf_token": csrf})
    assert missing.status_code == 404 and "no clip 999999" in missing.text
    extra = next(x for x in clips if x not in gold)
    added = c.post("/admin/gold/add", data={"clip": str(extra), "csrf_token": csrf})
    assert added.status_code == 303 and _gold(ws) == sorted([*gold, extra])
    removed = c.post(f"/admin/gold/{gold[0]}/remove", data={"csrf_token": csrf})
    assert removed.status_code == 303 and removed.headers["location"] == f"/admin/gold?removed={gold[0]}"
    page = c.get(removed.headers["location"]).text
    assert f"Clip {gold[0]} left the gold set." in page and gold[0] not in _rows(page)
    gone = c.post(f"/admin/gold/{gold[0]}/remove", data={"csrf_token": csrf})
    assert gone.status_code == 404 and "is not a gold clip" in gone.text
    huge = c.post(f"/admin/gold/{10**23}/remove", data={"csrf_token": csrf})  # was a 500 on SQLite
    assert huge.status_code == 422
    with ws.sessions() as s:
        admin_id = s.execute(select(User.id).where(User.username == "admin")).scalar_one()
        events = s.execute(
            select(AuditEvent.action, AuditEvent.object_id, AuditEvent.actor).where(
                AuditEvent.action.in_(["gold.add", "gold.remove"])
            )
        ).all()
    assert sorted((a, int(o)) for a, o, _ in events) == sorted(
        [("gold.add", x) for x in [*gold, extra]] + [("gold.remove", gold[0])]
    )
    assert {actor for *_, actor in events} == {f"user:{admin_id}"}


def test_a_gold_clip_most_reviewers_got_wrong_is_marked_for_a_check(ws: Workspace) -> None:
    _reviewed(ws, clips=1, accounts=1)
    c = client(ws)
    csrf = login(c, "admin", ADMIN_PASSWORD)
    c.post("/admin/gold/pick", data={"n": "1", "csrf_token": csrf})
    [clip] = _gold(ws)
    for i, text in enumerate(["stop the music", "play the news", "call my sister"]):
        assert f.answer_gold(ws, f.user(ws, f"g{i}"), text) == clip
    page = c.get("/admin/gold").text
    row = page[page.index(f'<tr data-clip="{clip}">') :].split("</tr>")[0]
    assert "<td>3</td>" in row and "0 (0%)" in row and "check answer" in row
    assert re.search(r"<h2>Gold answers</h2><p class=\"big\">3</p>\s*<p>0% correct</p>", page)


def test_an_empty_gold_page_says_why_nothing_can_be_picked(ws: Workspace) -> None:
    ws.settings.review_passes = 1
    f.queue_clips(ws, 1)
    f.review_all(ws, f.user(ws, "r1"))
    c = client(ws)
    login(c, "admin", ADMIN_PASSWORD)
    why = c.get("/admin/gold").text
    assert 'data-testid="eligible">0<' in why and "review_passes = 2" in why


def test_only_admins_reach_the_gold_set(ws: Workspace) -> None:
    [clip, *_] = _reviewed(ws, clips=1, accounts=1)
    f.user(ws, "sen1", Role.senior)
    for name in ("r1", "sen1"):
        c = client(ws)
        csrf = login(c, name, "reviewer-password")
        assert c.get("/admin/gold").status_code in (403, 404)
        assert c.post("/admin/gold/pick", data={"n": "1", "csrf_token": csrf}).status_code in (403, 404)
        assert c.post("/admin/gold/add", data={"clip": str(clip), "csrf_token": csrf}).status_code in (403, 404)
    assert _gold(ws) == []


@pytest.mark.browser
def test_the_gold_set_from_the_overview_in_chromium(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    _reviewed(ws, clips=2, accounts=2)
    with live_server(ws) as base, chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        sign_in(page, base, "admin", ADMIN_PASSWORD)
        page.goto(f"{base}/admin")
        page.get_by_test_id("gold").get_by_role("link").first.click()
        page.wait_for_url(f"{base}/admin/gold")
        assert page.get_by_test_id("eligible").inner_text() == "2"
        page.fill("#pick-n", "1")
        page.press("#pick-n", "Enter")
        page.wait_for_url(f"{base}/admin/gold?added=1&asked=1")
        assert page.get_by_test_id("notice").inner_text() == "1 clip(s) added to the gold set."
        [clip] = _gold(ws)
        page.get_by_role("button", name=f"Remove clip {clip} from the gold set").click()
        page.wait_for_url(f"{base}/admin/gold?removed={clip}")
        assert page.get_by_test_id("gold-empty").is_visible()
        assert not errors, errors
    assert _gold(ws) == []
