from __future__ import annotations

import re
import time

from sqlalchemy import func, select, update

from earmark.models import (
    Annotation,
    Assignment,
    AuditEvent,
    Clip,
    ClipProtection,
    HelpRequest,
    QueueItem,
    User,
    WebSession,
    utcnow,
)
from earmark.quality import add_gold, serve_gold
from earmark.types import Actor, Role
from earmark.workspace import Workspace
from tests import factories as f
from tests.conftest import ADMIN_PASSWORD
from tests.web.helpers import CSRF_RE, client, login, next_clip

AUDIO_RE = re.compile(r'src="(/review/[^"]+/audio\?exp=\d+&amp;sig=[0-9a-f]+)"')


def _open_review(ws: Workspace, username: str = "rev1"):  # type: ignore[no-untyped-def]
    f.user(ws, username)
    c = client(ws)
    csrf = login(c, username, "reviewer-password")
    page = next_clip(c, csrf)
    assert page.status_code == 200, page.text
    return c, csrf, page


def test_login_errors(ws: Workspace) -> None:
    f.user(ws, "rev1")
    c = client(ws)
    form = c.get("/login")
    token = CSRF_RE.search(form.text).group(1)  # type: ignore[union-attr]
    bad = c.post("/login", data={"username": "rev1", "password": "wrong-password", "csrf_token": token})
    assert bad.status_code == 401 and "wrong username or password" in bad.text
    no_csrf = c.post("/login", data={"username": "rev1", "password": "reviewer-password"})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text


def test_pages_need_a_login(ws: Workspace) -> None:
    c = client(ws)
    for path in ("/", "/review", "/admin"):
        resp = c.get(path)
        assert resp.status_code == 303 and resp.headers["location"] == "/login"


def test_review_page_shows_the_clip_but_no_customer_metadata(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    _, _, page = _open_review(ws)
    assert "play shake it off by taylor swift" in page.text
    assert "PlayMusic" in page.text
    with ws.sessions() as s:
        clips = s.execute(select(Clip)).scalars().all()
    for clip in clips:
        for value in (
            clip.external_id,
            clip.device_id,
            "acct-q0",
            clip.recorded_at.isoformat()[:16],
            "en-US",
            clip.blob_key,
        ):
            assert value not in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in page.text  # no inline script at all


def test_audio_url_is_bound_to_the_assignment_holder_and_expires(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    c, _, page = _open_review(ws)
    url = AUDIO_RE.search(page.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    audio = c.get(url)
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert "no-store" in audio.headers["cache-control"]
    assert audio.content[:4] == b"RIFF"
    assert c.get(url[:-4] + "0000").status_code == 404  # forged signature
    expired = re.sub(r"exp=\d+", f"exp={int(time.time()) - 10}", url)
    assert c.get(expired).status_code == 404  # the signature covers the expiry
    other, _, _ = _open_review(ws, "rev2")
    assert other.get(url).status_code == 404  # someone else's URL, even with a valid signature


def test_another_reviewers_assignment_page_is_404(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    _, _, page = _open_review(ws, "rev1")
    assignment_path = page.url.path
    c2, _, _ = _open_review(ws, "rev2")
    assert c2.get(assignment_path).status_code == 404


def test_submit_needs_csrf_then_stores_and_moves_on(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    c, csrf, page = _open_review(ws)
    submit = page.url.path + "/submit"
    refused = c.post(submit, data={"transcript": "x", "intent": "PlayMusic"})
    assert refused.status_code == 403
    ok = c.post(
        submit,
        data={"transcript": "play shake it off by taylor swift", "intent": "PlayMusic", "csrf_token": csrf},
    )
    assert ok.status_code == 303 and ok.headers["location"].startswith("/review/")  # straight to the next clip
    nxt = c.get("/review", follow_redirects=True)
    assert nxt.url.path != page.url.path and nxt.status_code == 200
    same = {"transcript": "play shake it off by taylor swift", "intent": "PlayMusic", "csrf_token": csrf}
    assert c.post(submit, data=same).status_code == 303  # a double click: not stored twice
    other = c.post(submit, data={"transcript": "changed", "intent": "", "csrf_token": csrf})
    assert other.status_code == 409 and "what you changed here was not saved" in other.text  # a second tab
    with ws.sessions() as s:
        rows = s.execute(select(Annotation)).scalars().all()
    assert [r.transcript for r in rows] == ["play shake it off by taylor swift"]


def test_submit_after_expiry_shows_a_clear_message(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    c, csrf, page = _open_review(ws)
    with ws.transaction() as s:
        s.execute(update(Assignment).values(expires_at=Assignment.leased_at))
        s.execute(update(QueueItem).values(lease_expires_at=QueueItem.enqueued_at))
    resp = c.post(page.url.path + "/submit", data={"transcript": "late", "intent": "", "csrf_token": csrf})
    assert resp.status_code == 409 and "expired" in resp.text and "nothing was saved" in resp.text


def test_markup_in_transcripts_is_shown_as_text(ws: Workspace) -> None:
    f.ingest_speech(ws, "<script>alert(1)</script> play", account_id="xss")
    f.allow(ws, "xss")
    f.sample_all(ws)
    ws.process_pending()
    _, _, page = _open_review(ws)
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_admin_overview(ws: Workspace) -> None:
    f.queue_clips(ws, 3)
    c = client(ws)
    login(c, "admin", ADMIN_PASSWORD)
    page = c.get("/admin")
    assert page.status_code == 200 and 'data-testid="queued">3<' in page.text
    assert "No clip has two passes yet" in page.text
    assert '0 gold answers · <a href="/admin/gold">0 gold clips</a>' in page.text and "earmark gold pick" in page.text
    with ws.transaction() as s:
        add_gold(s, actor=Actor.cli(), clip=s.execute(select(Clip)).scalars().first(), transcript="x", intent=None)  # type: ignore[arg-type]
    assert '0 gold answers · <a href="/admin/gold">1 gold clips</a>' in c.get("/admin").text


def _submit_next(c, csrf: str, transcript: str | None = None, intent: str = "PlayMusic") -> None:  # type: ignore[no-untyped-def]
    page = next_clip(c, csrf)
    url = re.search(r'action="(/review/[^"/]+)/submit"', page.text).group(1)  # type: ignore[union-attr]
    body = {"transcript": transcript or "play shake it off by taylor swift", "intent": intent, "ms": 3000}
    resp = c.post(f"{url}/submit", json=body, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 200, resp.text


def test_malformed_review_input_is_refused_and_the_clip_stays_open(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    c, csrf, page = _open_review(ws)
    url, json_headers = page.url.path, {"X-CSRF-Token": csrf}
    bad = [
        ("/submit", {"data": {"transcript": "x", "intent": "", "slots": "[{broken", "csrf_token": csrf}}, "slots"),
        ("/submit", {"content": b'{"transcript": "x", "intent": "Play\\ud800"}'}, "lone surrogate"),
        ("/help", {"json": {"start": 0.1, "end": "inf", "question": "what?"}}, "seconds"),
        ("/help", {"content": b'{"start": 0.1, "end": Infinity, "question": "?"}'}, "not valid JSON"),
        ("/help", {"content": b'{"start": 0.1, "end": 0.5, "question": "\\udc00"}'}, "lone surrogate"),
        ("/pii", {"json": {"start": 0.1, "end": "nan"}}, "seconds"),
    ]
    for action, body, message in bad:
        headers = json_headers if "data" not in body else {}
        if "content" in body:
            headers = {**headers, "content-type": "application/json"}
        resp = c.post(url + action, headers=headers, **body)
        assert resp.status_code == 422, (action, resp.status_code, resp.text[:300])
        assert message in resp.text, (action, resp.text[:300])
    with ws.sessions() as s:
        assert s.execute(select(Annotation)).first() is None
        assert s.execute(select(QueueItem.state)).scalar_one() == "leased"  # nothing lost, nothing changed
    ok = c.post(url + "/submit", json={"transcript": "play shake it off by taylor swift", "intent": "PlayMusic"},
                headers=json_headers)  # fmt: skip
    assert ok.status_code == 200, ok.text


def test_a_help_range_far_past_the_end_asks_up_to_the_end(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    c, csrf, page = _open_review(ws)
    resp = c.post(
        page.url.path + "/help", json={"start": 0.5, "end": 1e308, "question": "what?"}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status_code == 200, resp.text
    with ws.sessions() as s:
        asked = s.execute(select(HelpRequest)).scalar_one()
        clip = s.get(Clip, asked.clip_id)
        assert (asked.start, asked.end) == (8000, clip.protected_num_samples)  # type: ignore[union-attr]


def test_a_senior_holding_a_review_clip_reaches_adjudication(ws: Workspace) -> None:
    ws.settings.review_passes = 2
    f.queue_clips(ws, 3)
    f.user(ws, "rev1")
    f.user(ws, "rev2")
    f.user(ws, "sen1", Role.senior)
    one, two = client(ws), client(ws)
    csrf1, csrf2 = login(one, "rev1", "reviewer-password"), login(two, "rev2", "reviewer-password")
    _submit_next(one, csrf1)
    _submit_next(two, csrf2, "play bake it off by tailor swiss", "AddToPlaylist")  # disagrees
    senior = client(ws)
    senior_csrf = login(senior, "sen1", "reviewer-password")
    review = next_clip(senior, senior_csrf)  # where a senior lands: a review clip
    assert review.status_code == 200 and 'data-testid="passes"' not in review.text
    adjudicate = next_clip(senior, senior_csrf, "/adjudicate")
    assert adjudicate.url.path != review.url.path
    assert 'data-testid="passes"' in adjudicate.text and "tailor swiss" in adjudicate.text
    stale = senior.get(review.url.path)  # the review clip went back to its queue, unsaved
    assert stale.status_code == 409 and "opened another queue" in stale.text
    with ws.sessions() as s:
        states = s.execute(select(QueueItem.queue, QueueItem.state).order_by(QueueItem.id)).all()
    assert ("adjudication", "leased") in states and states.count(("general", "leased")) == 2  # rev1, rev2


def test_a_reviewer_blocked_for_the_day_gets_no_near_sensitive_clip_gold_included(ws: Workspace) -> None:
    ws.settings.gold_rate = 1.0  # every lease tries gold first
    ids = f.queue_clips(ws, 3)
    with ws.transaction() as s:
        clips = [s.execute(select(Clip).where(Clip.external_id == i)).scalar_one() for i in ids]
        add_gold(s, actor=Actor.cli(), clip=clips[0], transcript="play shake it off", intent="PlayMusic")
        for near in clips[:2]:  # the gold clip and the oldest general one are near-sensitive
            s.get(ClipProtection, near.id).sensitivity = 0.5  # type: ignore[union-attr]
        fine = clips[2].id
    rev = f.user(ws, "rev1")
    with ws.transaction() as s:
        s.get(User, rev.id).sensitive_blocked_on = utcnow().date().isoformat()  # type: ignore[union-attr]
    c = client(ws)
    assert next_clip(c, login(c, "rev1", "reviewer-password")).status_code == 200
    with ws.sessions() as s:
        leased = s.execute(select(QueueItem.clip_id).where(QueueItem.state == "leased")).scalars().all()
    assert leased == [fine]


def test_a_gold_clip_looks_like_any_other_to_the_reviewer(ws: Workspace) -> None:
    ids = f.queue_clips(ws, 2)
    with ws.transaction() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == ids[0])).scalar_one()
        add_gold(s, actor=Actor.cli(), clip=clip, transcript="play shake it off by taylor swift", intent="PlayMusic")
    ws.settings.gold_rate = 1.0
    _client, _csrf, page = _open_review(ws)
    with ws.sessions() as s:
        queue = s.execute(select(QueueItem.queue).where(QueueItem.state == "leased")).scalar_one()
    assert queue == "gold"  # served as a gold clip...
    assert "gold" not in page.text.lower()  # ...and nothing on the page says so


def test_a_withdrawn_gold_clip_leaves_the_gold_queue_and_reviewers_get_the_gold_clip_checked(ws: Workspace) -> None:
    from earmark.consent import set_consent
    from earmark.queues import lease_next
    from earmark.review import skip_assignment, submit_annotation
    from earmark.types import Consent

    text = "play shake it off by taylor swift"
    ids = f.queue_clips(ws, 2, accounts=2)  # one clip in acct-q0, one in acct-q1
    first = f.user(ws, "rev0")
    for _ in ids:
        with ws.transaction() as s:
            a = lease_next(s, actor=first)
            submit_annotation(s, actor=first, assignment_id=a.id, transcript=text, intent="PlayMusic")  # type: ignore[union-attr]
    with ws.transaction() as s:
        gone, kept = (s.execute(select(Clip).where(Clip.external_id == i)).scalar_one() for i in ids)
        add_gold(s, actor=Actor.cli(), clip=gone, transcript=text, intent="PlayMusic")
        gone_id = gone.id
    taker = f.user(ws, "rev1")
    with ws.transaction() as s:
        item = serve_gold(s, user=taker)
        g = lease_next(s, actor=taker, queue="gold", only_item=item.id)  # type: ignore[union-attr]
        skip_assignment(s, actor=taker, assignment_id=g.id, reason="too_hard")  # type: ignore[union-attr]  # waits again
    with ws.transaction() as s:
        set_consent(s, actor=Actor.cli(), account_id="acct-q0", human_review=Consent.deny)
    with ws.sessions() as s:
        states = s.execute(select(QueueItem.state).where(QueueItem.clip_id == gone_id, QueueItem.queue == "gold"))
        assert set(states.scalars()) == {"withdrawn"}
    with ws.transaction() as s:
        add_gold(s, actor=Actor.cli(), clip=s.merge(kept), transcript=text, intent="PlayMusic")
    ws.settings.gold_rate = 1.0
    _client, _csrf, _page = _open_review(ws, "rev2")  # gets the gold clip that was checked, no 404
    with ws.sessions() as s:
        leased = s.execute(select(QueueItem.clip_id).where(QueueItem.state == "leased")).scalars().all()
    assert leased == [kept.id]


def test_admin_dashboard_shows_throughput_agreement_and_reviewers(ws: Workspace) -> None:
    ws.settings.review_passes = 2
    f.queue_clips(ws, 2)
    f.user(ws, "rev1")
    f.user(ws, "rev2")
    one, two = client(ws), client(ws)
    csrf1, csrf2 = login(one, "rev1", "reviewer-password"), login(two, "rev2", "reviewer-password")
    _submit_next(one, csrf1)
    _submit_next(two, csrf2, "play bake it off by tailor swiss", "AddToPlaylist")  # disagrees
    _submit_next(one, csrf1)
    admin = client(ws)
    login(admin, "admin", ADMIN_PASSWORD)
    page = admin.get("/admin").text
    queues = page[page.index('data-testid="queues"') :]
    assert "<td>adjudication</td><td>1</td>" in queues  # the disagreement waits for a senior
    # three passes done; the last one is already leased: a submit leases the submitter's next clip
    assert "<td>general</td><td>0</td><td>1</td><td>3</td>" in queues
    assert 'data-testid="agreement"' in page and "Intent kappa" in page
    reviewers = page[page.index('data-testid="reviewers"') :]
    assert "<td>rev1</td><td>reviewer</td>\n      <td>2</td><td>3.0</td>" in reviewers
    assert admin.get("/admin?page=2").status_code == 200
    assert admin.get("/admin?page=0").status_code == 422


def test_workbench_errors_come_back_as_json(ws: Workspace) -> None:
    f.queue_clips(ws, 1, text="call jennifer on her mobile")
    f.user(ws, "rev1")
    c = client(ws)
    csrf = login(c, "rev1", "reviewer-password")
    page = next_clip(c, csrf)
    url = re.search(r'action="(/review/[^"/]+)/submit"', page.text).group(1)  # type: ignore[union-attr]
    resp = c.post(f"{url}/submit", json={"transcript": "call jennifer now"}, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 422
    assert "placeholders" in resp.json()["error"]["message"]
    resp = c.post(f"{url}/submit", json={"transcript": 5, "bogus": 1}, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 422 and "bogus" in resp.json()["error"]["message"]


def test_logout_ends_the_session(ws: Workspace) -> None:
    f.user(ws, "rev1")
    c = client(ws)
    csrf = login(c, "rev1", "reviewer-password")
    assert c.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert c.get("/review").headers["location"] == "/login"


def test_a_session_that_ended_is_said_so_and_a_submit_is_not_taken_for_saved(ws: Workspace) -> None:
    """The workbench's fetch followed the redirect to /login and took the login page for success:
    a help question showed "sent" and a submit lost its edits without a word."""
    f.queue_clips(ws, 1)
    c, csrf, page = _open_review(ws)
    with ws.transaction() as s:  # the session expires (or ends in another tab)
        s.execute(update(WebSession).values(expires_at=utcnow()))
    submit = c.post(
        f"{page.url.path}/submit",
        json={"transcript": "play it", "intent": "PlayMusic"},
        headers={"X-CSRF-Token": csrf},
    )
    assert submit.status_code == 401
    assert submit.json()["next"] == "/login?reason=ended" and "nothing was saved" in submit.json()["error"]["message"]
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Annotation)).scalar_one() == 0
    assert c.get("/review").headers["location"] == "/login?reason=ended"
    assert "Your session ended" in c.get("/login?reason=ended").text


def test_the_login_page_shows_no_text_from_its_address(ws: Workspace) -> None:
    c = client(ws)
    page = c.get("/login", params={"error": "Call IT at 555-0100 and give them your password"})
    assert page.status_code == 200 and "555-0100" not in page.text and 'role="alert"' not in page.text
    assert "555-0100" not in c.get("/login", params={"reason": "Call IT at 555-0100"}).text


def test_login_attempts_from_one_address_are_throttled(ws: Workspace) -> None:
    c = client(ws)
    statuses = []
    for _ in range(22):
        form = c.get("/login")
        token = CSRF_RE.search(form.text).group(1)  # type: ignore[union-attr]
        statuses.append(
            c.post("/login", data={"username": "x", "password": "wrong-password", "csrf_token": token}).status_code
        )
    assert statuses[:20] == [401] * 20 and statuses[-1] == 429


def test_metrics_page_draws_charts_and_masks_personal_data(ws: Workspace) -> None:
    f.queue_clips(ws, 2, text="call [PHONE] now please")
    f.user(ws, "rev1")
    rev = client(ws)
    csrf = login(rev, "rev1", "reviewer-password")
    _submit_next(rev, csrf, "call [PHONE] right now please", "MakeCall")
    _submit_next(rev, csrf, "call [PHONE] now please", "PlayMusic")
    assert rev.get("/admin/metrics").status_code in (403, 404)  # reviewers do not see program metrics
    admin = client(ws)
    login(admin, "admin", ADMIN_PASSWORD)
    page = admin.get("/admin/metrics")
    assert page.status_code == 200
    text = page.text
    assert 'data-testid="chart-asr_wer"' in text and "<rect" in text  # server-drawn bars, no script
    assert not re.search(r"<script(?![^>]*\bsrc=)", text)  # no inline script: the CSP forbids it
    worst = text[text.index('data-testid="worst"') :]
    assert "call [PHONE] right now please" in worst  # masked on both sides
    confusion = text[text.index('data-testid="confusion"') :]
    assert "<td>PlayMusic</td><td>MakeCall</td><td>1</td>" in confusion
    assert admin.get("/admin/metrics?days=7").status_code == 200
    assert admin.get("/admin/metrics?days=0").status_code == 422


def _audit_count(ws: Workspace) -> int:
    with ws.sessions() as s:
        return s.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def test_queue_pages_only_read_a_lease_is_a_post_with_the_csrf_token(ws: Workspace) -> None:
    f.queue_clips(ws, 3)
    f.user(ws, "rev1")
    f.user(ws, "sen1", Role.senior)
    c = client(ws)
    csrf = login(c, "rev1", "reviewer-password")
    before = _audit_count(ws)
    for _ in range(2):  # a link followed, a prefetch, a reload: nothing happens
        page = c.get("/review")
        assert page.status_code == 200 and 'data-testid="ready">3 clip(s) ready' in page.text
        assert 'action="/review/next"' in page.text
    assert c.post("/review/next").status_code == 403  # no CSRF token: refused, nothing leased
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Assignment)).scalar_one() == 0
    assert _audit_count(ws) == before
    opened = next_clip(c, csrf)
    assert re.fullmatch(r"/review/[A-Za-z0-9_-]{16,}", opened.url.path)
    assert c.get("/review").headers["location"] == opened.url.path  # the page resumes the clip held
    # A senior holding a review clip who opens the adjudication page keeps it until a POST.
    senior = client(ws)
    senior_csrf = login(senior, "sen1", "reviewer-password")
    held = next_clip(senior, senior_csrf).url.path
    before = _audit_count(ws)
    adjudicate = senior.get("/adjudicate")
    assert adjudicate.status_code == 200 and "No clip waits for adjudication." in adjudicate.text
    assert f'<a href="{held}">go back to it</a>' in adjudicate.text  # the held clip is one link away
    assert _audit_count(ws) == before
    assert senior.get(held).status_code == 200  # still the senior's
    # A start that finds nothing redirects back to the page (a reload must not post again).
    none = senior.post("/adjudicate/next", headers={"X-CSRF-Token": senior_csrf})
    assert none.status_code == 303 and none.headers["location"] == "/adjudicate?empty=1"
    assert "No clip waits for adjudication." in senior.get(none.headers["location"]).text


def test_the_safety_page_neither_leases_nor_records_a_pause(ws: Workspace) -> None:
    from earmark.queues import lease_next
    from earmark.review import flag_sensitive

    ws.settings.safety_max_clips = 1
    f.queue_clips(ws, 3)
    reviewer = f.user(ws, "rev1")
    for _ in range(2):  # two clips flagged as distressing: waiting in the safety queue
        with ws.transaction() as s:
            a = lease_next(s, actor=reviewer)
            assert a is not None
            flag_sensitive(s, actor=reviewer, assignment_id=a.id)
    f.user(ws, "saf1", Role.safety, password="safety-password")
    c = client(ws)
    csrf = login(c, "saf1", "safety-password")
    before = _audit_count(ws)
    page = c.get("/safety")
    assert 'data-testid="ready">2 clip(s) ready' in page.text and _audit_count(ws) == before
    clip = next_clip(c, csrf, "/safety")
    assert 'data-testid="protocol"' in clip.text
    assignment_id = clip.url.path.rsplit("/", 1)[1]
    before = _audit_count(ws)
    done = c.post(f"/safety/{assignment_id}/outcome", data={"outcome": "false_alarm", "csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/safety"
    with ws.sessions() as s:  # the outcome that reached the limit (one clip heard) records the pause
        actions = s.execute(select(AuditEvent.action).where(AuditEvent.seq > before)).scalars().all()
    assert actions == ["safety.outcome", "safety.pause"]
    before = _audit_count(ws)
    paused = c.get("/safety")
    assert paused.status_code == 200 and 'data-testid="break"' in paused.text
    assert 'http-equiv="refresh"' in paused.text  # the page opens the queue again by itself
    assert _audit_count(ws) == before  # only looked: nothing recorded
    assert 'data-testid="break"' in next_clip(c, csrf, "/safety").text  # a stale start button
    with ws.sessions() as s:
        actions = s.execute(select(AuditEvent.action).where(AuditEvent.seq > before)).scalars().all()
    assert actions == ["safety.pause"]


def test_entity_candidates_come_only_for_slot_types_that_link_to_entities(ws: Workspace) -> None:
    """An item slot searched the whole catalog and the page took the first hit: bananas -> Beyonce."""
    from pathlib import Path

    from earmark.catalog import import_catalog, import_inventory

    data = Path(__file__).resolve().parents[2] / "earmark" / "data"
    with ws.transaction() as s:
        import_inventory(s, actor=Actor.cli(), path=data / "inventory.json")
        import_catalog(s, actor=Actor.cli(), lines=(data / "catalog.jsonl").read_text().splitlines())
    f.queue_clips(ws, 1)
    c, _csrf, page = _open_review(ws)
    artist = c.get(f"{page.url.path}/link", params={"type": "artist", "value": "beyonse"}).json()
    assert artist and artist[0]["type"] == "MusicArtist"
    assert c.get(f"{page.url.path}/link", params={"type": "item", "value": "beyonse"}).json() == []


def test_skip_goes_straight_to_the_next_clip(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    c, csrf, page = _open_review(ws)
    skipped = c.post(f"{page.url.path}/skip", data={"reason": "too_hard", "csrf_token": csrf})
    assert skipped.status_code == 303
    assert re.fullmatch(r"/review/[A-Za-z0-9_-]{16,}", skipped.headers["location"])
    assert skipped.headers["location"] != page.url.path
    last = c.post(f"{skipped.headers['location']}/skip", data={"reason": "too_hard", "csrf_token": csrf})
    assert last.headers["location"] == "/review"
    assert 'data-testid="queue-empty"' in c.get("/review").text


def test_every_workbench_link_opens_for_the_role_that_sees_it(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    pages = {
        Role.reviewer: "/review",
        Role.senior: "/adjudicate",
        Role.safety: "/safety",
        Role.wakeword: "/wakeword",
        Role.admin: "/me",
    }
    for role, page in pages.items():
        f.user(ws, f"nav-{role.value}", role)
        c = client(ws)
        login(c, f"nav-{role.value}", "reviewer-password")
        html = c.get(page, follow_redirects=True).text
        nav = re.search(r"<nav>(.*?)</nav>", html, re.S).group(1)  # type: ignore[union-attr]
        links = re.findall(r'<a href="(/[^"]*)"', nav)
        assert "/me" in links and len(links) >= 2, (role, links)
        for link in links:
            assert c.get(link).status_code in (200, 303), (role, link)
