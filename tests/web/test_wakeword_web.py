"""The wake-word team's pages: their own queue, a page with no transcript and one choice, the next
clip at once; nobody else reaches these clips."""

from __future__ import annotations

import re

from sqlalchemy import select

from earmark import auth
from earmark.models import Annotation, Assignment, AuditEvent
from earmark.types import Actor, Role
from earmark.workspace import Workspace
from tests import factories as f
from tests.conftest import ADMIN_PASSWORD
from tests.web.helpers import client, login, next_clip

ASSIGNMENT_RE = re.compile(r"/review/([A-Za-z0-9_-]{16,64})")


def _team(ws: Workspace, username: str = "wake1"):  # type: ignore[no-untyped-def]
    f.user(ws, username, Role.wakeword)
    c = client(ws)
    return c, login(c, username, "reviewer-password")


def test_the_wakeword_team_hears_each_clip_and_answers_with_one_choice(ws: Workspace) -> None:
    f.wake_clips(ws, 2)
    c, csrf = _team(ws)
    assert c.get("/").headers["location"] == "/wakeword"
    start = c.get("/wakeword")
    assert 'data-testid="ready">2 clip(s) ready' in start.text
    page = next_clip(c, csrf, "/wakeword")
    assert page.status_code == 200
    assert 'id="wakeword-form"' in page.text and 'id="review-form"' not in page.text
    assert 'id="transcript"' not in page.text and "nothing is preselected" in page.text
    assert 'id="mode"' not in page.text  # no verify/edit badge: there is nothing to verify
    assert "<title>Wake-word clip · earmark</title>" in page.text
    assert len(re.findall(r'name="label" value="', page.text)) == 6
    assert 'name="label" value="media" required data-key="3"' in page.text
    first = ASSIGNMENT_RE.search(str(page.url)).group(1)  # type: ignore[union-attr]
    # The plain form (no script): the answer, then straight to the next clip.
    done = c.post(f"/wakeword/{first}/answer", data={"label": "media", "ms": "", "csrf_token": csrf})
    assert done.status_code == 303
    second = ASSIGNMENT_RE.fullmatch(done.headers["location"]).group(1)  # type: ignore[union-attr]
    assert second != first
    # The page's script: JSON in, the next page's HTML out (here: the queue is done).
    last = c.post(f"/wakeword/{second}/answer", json={"label": "wake_word", "ms": 2100}, headers={"X-CSRF-Token": csrf})
    assert last.status_code == 200 and last.json() == {"next": "/wakeword"}
    assert "No clip waits for the wake-word team." in c.get("/wakeword").text
    admin = client(ws)
    login(admin, "admin", ADMIN_PASSWORD)
    reviewers = re.search(r'data-testid="reviewers".*?</table>', admin.get("/admin").text, re.S)
    assert reviewers is not None and "wake1" in reviewers.group(0)  # their day's work is on the admin page
    with ws.sessions() as s:
        answers = s.execute(select(Annotation.reason, Annotation.ms).order_by(Annotation.id)).all()
        assert [tuple(a) for a in answers] == [("media", None), ("wake_word", 2100)]
        actions = s.execute(select(AuditEvent.action).where(AuditEvent.actor_role == "wakeword")).scalars().all()
    assert actions.count("wakeword.answer") == 2 and actions.count("review.audio") == 0  # no page played it here


def test_a_bad_answer_is_refused_and_the_clip_stays_open(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    c, csrf = _team(ws)
    page = next_clip(c, csrf, "/wakeword")
    aid = ASSIGNMENT_RE.search(str(page.url)).group(1)  # type: ignore[union-attr]
    headers = {"X-CSRF-Token": csrf}
    for body, field in (
        ({"label": "alexa"}, "label"),
        ({"label": 3}, "label"),
        ({"label": "media", "ms": "soon"}, "ms"),
        ({"label": "media", "ms": -5}, "ms"),
        ({"label": "media", "ms": 10**12}, "ms"),
        ({"label": "media", "note": "x"}, "note"),
    ):
        resp = c.post(f"/wakeword/{aid}/answer", json=body, headers=headers)
        assert resp.status_code == 422 and resp.json()["error"]["field"] == field, (body, resp.json())
    bad_json = {**headers, "Content-Type": "application/json"}
    resp = c.post(f"/wakeword/{aid}/answer", content=b"{not json", headers=bad_json)
    assert resp.status_code == 422 and "JSON" in resp.json()["error"]["message"]
    assert c.get(f"/review/{aid}").status_code == 200  # still open, nothing stored
    ok = c.post(f"/wakeword/{aid}/answer", json={"label": "unclear"}, headers=headers)
    assert ok.status_code == 200


def test_nobody_else_reaches_the_wakeword_queue(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    f.user(ws, "rev1")
    c = client(ws)
    csrf = login(c, "rev1", "reviewer-password")
    assert c.get("/wakeword").status_code == 403
    assert c.post("/wakeword/next", headers={"X-CSRF-Token": csrf}).status_code == 403
    assert "The review queue is empty." in next_clip(c, csrf).text
    admin = client(ws)
    login(admin, "admin", ADMIN_PASSWORD)
    assert admin.get("/wakeword").status_code == 403


def test_distress_heard_in_a_wakeword_clip_goes_to_the_safety_team(ws: Workspace) -> None:
    f.wake_clips(ws, 2)
    c, csrf = _team(ws)
    page = next_clip(c, csrf, "/wakeword")
    aid = ASSIGNMENT_RE.search(str(page.url)).group(1)  # type: ignore[union-attr]
    flagged = c.post(f"/review/{aid}/sensitive", headers={"X-CSRF-Token": csrf}, json={})
    assert flagged.json() == {"next": "/break"}
    assert c.get("/", follow_redirects=True).url.path == "/wakeword"
    f.user(ws, "saf1", Role.safety)
    s = client(ws)
    s_csrf = login(s, "saf1", "reviewer-password")
    assert 'data-testid="protocol"' in next_clip(s, s_csrf, "/safety").text


def test_the_metrics_page_says_what_woke_the_device(ws: Workspace) -> None:
    f.wake_clips(ws, 2, wake_scores=[0.55, 0.9], device_type="speaker")
    c, csrf = _team(ws)
    for label in ("media", "wake_word"):
        page = next_clip(c, csrf, "/wakeword")
        aid = ASSIGNMENT_RE.search(str(page.url)).group(1)  # type: ignore[union-attr]
        c.post(f"/wakeword/{aid}/answer", json={"label": label}, headers={"X-CSRF-Token": csrf})
    admin = client(ws)
    login(admin, "admin", ADMIN_PASSWORD)
    html = admin.get("/admin/metrics").text
    section = re.search(r'data-testid="wake-word">(.*?)</section>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "for 2 accidental activation(s)" in section and "1 false wake(s)" in section
    assert "Weighted by how the clips were drawn,\n    50.0% of them" in section
    assert "<td>TV, radio or music</td><td>1</td>\n      <td>0.55</td>" in section
    assert "<tr><td>speaker</td><td>2</td><td>1</td>\n      <td>50.0%</td><td>9.4%–90.5%</td></tr>" in section
    interval = re.search(r'data-testid="wake-interval">(.*?)</span>', section, re.S).group(1)  # type: ignore[union-attr]
    assert " ".join(interval.split()) == (
        "(95% interval 9.4%–90.5%; the weighted answers are worth 2.0 drawn evenly: "
        "few, so read the share as that range)"
    )


def test_a_wakeword_clip_stays_with_the_team_when_its_holder_changes_role(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    c, csrf = _team(ws)
    page = next_clip(c, csrf, "/wakeword")
    aid = ASSIGNMENT_RE.search(str(page.url)).group(1)  # type: ignore[union-attr]
    audio = re.search(r'src="(/review/[^"]+/audio\?[^"]+)"', page.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    with ws.transaction() as s:
        auth.change_role(s, actor=Actor.cli(), username="wake1", role=Role.reviewer)
    # The clip went back to its queue at once, for the team.
    with ws.sessions() as s:
        assert s.execute(select(Assignment.state).where(Assignment.id == aid)).scalar_one() == "released"
        events = s.execute(select(AuditEvent.action, AuditEvent.details).order_by(AuditEvent.seq.desc()).limit(2)).all()
    assert [tuple(e) for e in events] == [
        ("user.role_change", {"old": "wakeword", "new": "reviewer", "clips_given_back": 1}),
        ("review.release", {"queue": "wakeword", "reason": "role_change"}),
    ]
    c2 = client(ws)
    csrf2 = login(c2, "wake1", "reviewer-password")
    headers = {"X-CSRF-Token": csrf2}
    closed = c2.get(f"/review/{aid}")
    assert closed.status_code == 409 and "your role changed" in closed.text
    assert c2.get(audio).status_code == 404
    submit = c2.post(f"/review/{aid}/submit", json={"transcript": "", "intent": "PlayMusic"}, headers=headers)
    assert submit.status_code == 409
    other, other_csrf = _team(ws, "wake2")
    assert ASSIGNMENT_RE.search(str(next_clip(other, other_csrf, "/wakeword").url))  # free for the team now
    with ws.sessions() as s:
        assert s.execute(select(Annotation)).first() is None


def test_after_a_role_change_nothing_leases_from_the_old_queue(ws: Workspace) -> None:
    f.wake_clips(ws, 3)
    c, csrf = _team(ws)
    first = ASSIGNMENT_RE.search(str(next_clip(c, csrf, "/wakeword").url)).group(1)  # type: ignore[union-attr]
    answered = c.post(f"/wakeword/{first}/answer", json={"label": "media"}, headers={"X-CSRF-Token": csrf})
    held = ASSIGNMENT_RE.fullmatch(answered.json()["next"]).group(1)  # type: ignore[union-attr]
    with ws.transaction() as s:
        auth.change_role(s, actor=Actor.cli(), username="wake1", role=Role.reviewer)
    c2 = client(ws)
    headers = {"X-CSRF-Token": login(c2, "wake1", "reviewer-password")}
    # The answered pass is not a review label; the held clip went back, and going on from it
    # leases no wake-word clip to a reviewer.
    assert c2.post(f"/review/{first}/submit", json={"transcript": "", "intent": ""}, headers=headers).status_code == 404
    assert c2.post(f"/review/{held}/skip", json={"reason": "too_hard"}, headers=headers).status_code == 409
    with ws.sessions() as s:
        active = s.execute(select(Assignment).where(Assignment.state == "active")).scalars().all()
        assert active == []
    assert "The review queue is empty." in next_clip(c2, headers["X-CSRF-Token"]).text


def test_a_team_of_one_is_told_when_clips_wait_for_someone_else(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    c, csrf = _team(ws)
    aid = ASSIGNMENT_RE.search(str(next_clip(c, csrf, "/wakeword").url)).group(1)  # type: ignore[union-attr]
    report = c.post(f"/review/{aid}/pii", json={"start": 0.2, "end": 0.8}, headers={"X-CSRF-Token": csrf})
    assert report.status_code == 200
    ws.process_pending()  # re-protected: back in the wake-word queue, for someone else
    page = c.get("/wakeword").text
    assert "No clip waits for the wake-word team." in page
    assert 'data-testid="others">1 clip(s) wait for another member of your team' in page


def test_a_deactivated_member_gives_back_the_clip_they_held(ws: Workspace) -> None:
    f.wake_clips(ws, 1)
    c, csrf = _team(ws)
    aid = ASSIGNMENT_RE.search(str(next_clip(c, csrf, "/wakeword").url)).group(1)  # type: ignore[union-attr]
    with ws.transaction() as s:
        auth.deactivate_user(s, actor=Actor.cli(), username="wake1")
    with ws.sessions() as s:
        assert s.execute(select(Assignment.state).where(Assignment.id == aid)).scalar_one() == "released"
    other, other_csrf = _team(ws, "wake2")
    assert ASSIGNMENT_RE.search(str(next_clip(other, other_csrf, "/wakeword").url))
