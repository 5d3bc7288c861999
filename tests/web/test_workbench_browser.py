"""The workbench in a real Chromium: the keyboard loop, slots and entities, help, safety, adjudication, isolation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from earmark.catalog import import_catalog, import_inventory
from earmark.models import Annotation, Clip, HelpRequest, QueueItem, SafetyOutcome
from earmark.types import Actor, Role
from earmark.workspace import Workspace
from tests import factories as f
from tests.web.browser import chromium, live_server

pytestmark = pytest.mark.browser

DATA = Path(__file__).resolve().parents[2] / "earmark" / "data"

# Counts every pointer or mouse event the page receives, trusted or not.
COUNT_POINTER = """
window.__pointer = 0;
for (const t of ['mousedown', 'mouseup', 'click', 'pointerdown', 'pointerup', 'dblclick', 'contextmenu']) {
  window.addEventListener(t, (ev) => { if (ev.isTrusted) window.__pointer++; }, true);
}
"""


def _inventory(ws: Workspace) -> None:
    with ws.transaction() as s:
        import_inventory(s, actor=Actor.cli(), path=DATA / "inventory.json")
        import_catalog(s, actor=Actor.cli(), lines=(DATA / "catalog.jsonl").read_text().splitlines())


def _login(browser: Browser, base: str, username: str, password: str = "reviewer-password") -> Page:
    """A fresh context (own cookies) logged in from the keyboard alone."""
    page = browser.new_context().new_page()
    page.add_init_script(COUNT_POINTER)
    page.goto(f"{base}/login")
    page.focus("input[name=username]")  # focus, not a click (autofocus only acts in the focused window)
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def _start(page: Page, base: str, queue: str = "/review") -> None:
    """Open a queue's page and press its start button from the keyboard (the lease is a POST)."""
    page.goto(f"{base}{queue}")
    page.get_by_test_id("start").focus()  # focus, not a click (see _login)
    page.keyboard.press("Enter")


def _wait_review_page(page: Page, previous: str | None = None) -> str:
    """The next clip's page, however it came: a navigation or the in-page swap after a submit."""
    page.wait_for_function(
        """(previous) => /\\/review\\/[A-Za-z0-9_-]{16,}$/.test(location.pathname) && location.href !== previous
            && document.getElementById('transcript') !== null && document.activeElement.id === 'transcript'""",
        arg=previous,
    )
    return str(page.evaluate("location.href"))


def _config(page: Page) -> dict:  # type: ignore[type-arg]
    return json.loads(page.locator("#review").get_attribute("data-config") or "{}")


def _select_words(page: Page, words: str) -> None:
    """Select `words` in the transcript with Home and Shift+arrows, as a reviewer would."""
    value = page.locator("#transcript").input_value()
    start = value.index(words)
    page.keyboard.press("Home")
    for _ in range(start):
        page.keyboard.press("ArrowRight")
    for _ in range(len(words)):
        page.keyboard.press("Shift+ArrowRight")


def test_twenty_clips_with_the_keyboard_only(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    f.queue_clips(ws, 20, accounts=5)
    f.user(ws, "rev1")
    errors: list[str] = []
    with live_server(ws) as base, chromium() as browser:
        page = _login(browser, base, "rev1")
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        _start(page, base)
        url = _wait_review_page(page)
        # the player from the keyboard, with the cursor in the transcript box
        page.keyboard.press("Alt+ArrowUp")
        assert page.locator("#speed").inner_text() == "1.25×"
        assert page.evaluate("document.getElementById('clip-audio').playbackRate") == 1.25
        page.keyboard.press("Control+Space")
        paused = page.evaluate("document.getElementById('clip-audio').paused")
        page.keyboard.press("Control+Space")
        assert page.evaluate("document.getElementById('clip-audio').paused") != paused
        page.keyboard.press("?")  # shows the keys only outside text fields: here it types
        page.keyboard.press("Control+/")
        assert page.locator("#keys-dialog").is_visible()
        page.keyboard.press("Escape")
        page.keyboard.press("Backspace")  # undo the typed '?'
        page.evaluate("window.__same_document = true")
        history_length = page.evaluate("history.length")
        for i in range(20):
            if i % 4 == 1:  # edit mode: fix a word
                page.keyboard.press("End")
                page.keyboard.type(" please")
                assert page.locator("#mode").inner_text() == "edit"
            else:
                assert page.locator("#mode").inner_text() == "verify"
            page.keyboard.press("Enter")
            if i < 19:
                url = _wait_review_page(page, url)
                # The next clip came with the submit answer and was swapped in: no page load.
                assert page.evaluate("window.__same_document === true")
                # Submitted clips leave no history entries: Back leaves the session.
                assert page.evaluate("history.length") == history_length
        page.wait_for_url(lambda u: u.endswith("/review"))
        page.get_by_test_id("queue-empty").wait_for()
        assert page.evaluate("window.__pointer") == 0
        assert not errors, errors
    with ws.sessions() as s:
        rows = s.execute(select(Annotation)).scalars().all()
    assert len(rows) == 20 and len({r.clip_id for r in rows}) == 20
    assert sum(r.mode == "edit" for r in rows) == 5
    assert all(r.transcript.endswith("please") == (r.mode == "edit") for r in rows)
    assert all(r.ms is not None and r.ms > 0 for r in rows)


def test_a_held_enter_submits_one_clip_and_enter_on_a_link_follows_the_link(sqlite_ws: Workspace) -> None:
    """Holding Enter submitted clip after clip, each open for 30 ms, unheard; Enter on the focused
    "My day" link or the log-out button submitted the clip as verified."""
    ws = sqlite_ws
    f.queue_clips(ws, 3)
    f.user(ws, "rev1")
    with live_server(ws) as base, chromium() as browser:
        page = _login(browser, base, "rev1")
        _start(page, base)
        first = _wait_review_page(page)
        page.keyboard.down("Enter")  # submits the first clip
        second = _wait_review_page(page, first)
        page.keyboard.down("Enter")  # the key still held: a repeat, which must not submit
        assert page.locator("#status").inner_text() != "saving…"
        page.keyboard.up("Enter")
        assert page.evaluate("location.href") == second
        page.focus("a[href='/me']")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/me")
    with ws.sessions() as s:
        assert len(s.execute(select(Annotation)).scalars().all()) == 1


def test_slot_tagging_and_entity_linking(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    _inventory(ws)
    f.queue_clips(ws, 1, text="play shake it off by tailor swift")
    f.user(ws, "rev1")
    with live_server(ws) as base, chromium() as browser:
        page = _login(browser, base, "rev1")
        _start(page, base)
        _wait_review_page(page)
        cfg = _config(page)
        assert cfg["slot_types"][:2] == ["artist", "song"]
        assert page.locator("#mode").inner_text() == "verify"
        page.keyboard.press("Alt+KeyX")  # drop the device's slot, tag afresh
        _select_words(page, "tailor swift")
        page.keyboard.press("Alt+Digit1")  # artist
        assert page.locator("#mode").inner_text() == "edit"  # a slot tagged is an edit
        option = page.locator("[data-testid=slot] select option[value='artist:taylor-swift']")
        option.wait_for(state="attached")
        assert page.locator("[data-testid=slot] select").input_value() == "artist:taylor-swift"
        _select_words(page, "shake it off")
        page.keyboard.press("Alt+Digit2")  # song
        page.wait_for_function("document.querySelectorAll('[data-testid=slot]').length === 2")
        page.keyboard.press("Alt+KeyI")
        page.keyboard.press("Control+A")
        page.keyboard.type("PlayMus")  # type-to-search: the datalist offers PlayMusic
        page.keyboard.type("ic")
        page.keyboard.press("Alt+KeyT")
        page.keyboard.press("Enter")
        page.wait_for_url(lambda u: u.endswith("/review"))
        assert page.evaluate("window.__pointer") == 0
    with ws.sessions() as s:
        ann = s.execute(select(Annotation)).scalar_one()
    slots = {sl["type"]: sl for sl in ann.slots}
    assert slots["artist"]["value"] == "tailor swift"
    assert slots["artist"]["entity_id"] == "artist:taylor-swift"
    assert slots["song"]["value"] == "shake it off"
    assert ann.intent == "PlayMusic"
    assert ann.mode == "edit"  # only the slots changed (the text and the intent are the device's)


def test_help_request_round_trip_between_two_users(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    f.queue_clips(ws, 1, text="set an alarm in tulsa")
    f.user(ws, "rev1")
    f.user(ws, "sen1", Role.senior, password="senior-password")
    with live_server(ws) as base, chromium() as browser:
        rev = _login(browser, base, "rev1")
        _start(rev, base)
        _wait_review_page(rev)
        rev.keyboard.press("Alt+KeyH")
        rev.keyboard.type("is this word <b>tulsa</b> or tulsi?")
        rev.keyboard.press("Enter")
        rev.get_by_text("(waiting)").wait_for()

        sen = _login(browser, base, "sen1", "senior-password")
        sen.goto(f"{base}/help")
        # shown as text, never as markup
        assert sen.locator("[data-testid=help-queue]").inner_text().count("<b>tulsa</b>") == 1
        sen.get_by_role("link", name="Answer").click()
        assert sen.locator("#help-audio").count() == 1
        audio_src = sen.locator("#help-audio").get_attribute("src")
        sen.locator("#answer").fill("tulsa")
        sen.keyboard.press("Enter")
        sen.wait_for_url(f"{base}/help")
        assert sen.get_by_test_id("help-empty").count() == 1
        gone = sen.request.get(f"{base}{audio_src}")
        assert gone.status == 404  # no link outlives the request

        rev.get_by_text("A: tulsa").wait_for(timeout=15_000)  # the inbox polls
        rev.locator("#transcript").focus()
        _select_words(rev, "tulsa")
        rev.keyboard.press("Alt+KeyY")
        rev.wait_for_function("document.getElementById('inbox').textContent.indexOf('(waiting)') < 0")
        rev.keyboard.press("Enter")
        rev.wait_for_url(lambda u: u.endswith("/review"))
    with ws.sessions() as s:
        req = s.execute(select(HelpRequest)).scalar_one()
        assert (req.state, req.answer) == ("applied", "tulsa")
        assert s.execute(select(Annotation.transcript)).scalar_one() == "set an alarm in tulsa"


def test_sensitive_flag_takes_the_clip_off_screen_into_the_safety_queue(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    f.queue_clips(ws, 2)
    f.user(ws, "rev1")
    f.user(ws, "saf1", Role.safety, password="safety-password")
    with live_server(ws) as base, chromium() as browser:
        rev = _login(browser, base, "rev1")
        _start(rev, base)
        flagged_url = _wait_review_page(rev)
        rev.keyboard.press("Alt+KeyS")
        rev.wait_for_url(f"{base}/break")
        assert rev.get_by_test_id("break").count() == 1
        rev.go_back()  # the flagged clip left the history, as a submitted one does
        assert rev.url == f"{base}/review"
        again = rev.goto(flagged_url)
        assert again is not None and again.status in (404, 409, 410)
        assert rev.locator("#clip-audio").count() == 0  # the clip is off the reviewer's screen

        saf = _login(browser, base, "saf1", "safety-password")
        _start(saf, base, "/safety")
        saf.wait_for_url(lambda u: "/review/" in u)
        assert saf.get_by_test_id("protocol").inner_text().strip() != ""
        # No outcome is preselected: recording without a choice is refused in the page, so a
        # distressing clip never goes back to general review by default.
        assert not saf.get_by_label("False alarm: back to review").is_checked()
        safety_page = saf.url
        saf.get_by_role("button", name="Record outcome").click()
        assert saf.url == safety_page and saf.locator("input[name=outcome]:invalid").count() == 3
        saf.get_by_label("Handled per protocol").check()
        saf.locator("#note").fill("handled per step 2")
        saf.get_by_role("button", name="Record outcome").click()
        saf.wait_for_url(lambda u: "/safety" in u or "/review/" not in u)
        # a general reviewer never sees the safety queue
        assert rev.goto(f"{base}/safety").status == 403  # type: ignore[union-attr]
    with ws.sessions() as s:
        outcome = s.execute(select(SafetyOutcome)).scalar_one()
        assert outcome.outcome == "handled"
        clip = s.get(Clip, outcome.clip_id)
        assert clip is not None
        assert (
            s.execute(
                select(QueueItem.state).where(QueueItem.clip_id == clip.id, QueueItem.queue == "general")
            ).scalar_one()
            == "withdrawn"
        )


def test_adjudication_after_two_disagreeing_passes(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    ws.settings.review_passes = 2
    f.queue_clips(ws, 1)
    f.user(ws, "rev1")
    f.user(ws, "rev2")
    f.user(ws, "sen1", Role.senior, password="senior-password")
    with live_server(ws) as base, chromium() as browser:
        for name, text in (("rev1", None), ("rev2", "play bake it off by tailor swiss")):
            page = _login(browser, base, name)
            _start(page, base)
            _wait_review_page(page)
            if text:
                page.locator("#transcript").fill(text)
                page.keyboard.press("Alt+KeyI")
                page.keyboard.press("Control+A")
                page.keyboard.type("AddToPlaylist")
            page.keyboard.press("Enter")
            page.wait_for_url(lambda u: u.endswith("/review"))
            page.context.close()
        sen = _login(browser, base, "sen1", "senior-password")
        _start(sen, base, "/adjudicate")
        _wait_review_page(sen)
        table = sen.get_by_test_id("passes").inner_text()
        assert "play bake it off by tailor swiss" in table and "AddToPlaylist" in table
        sen.keyboard.press("Enter")  # the senior accepts the first reading
        sen.wait_for_url(lambda u: u.endswith("/adjudicate"))
    with ws.sessions() as s:
        kinds = sorted(a.kind for a in s.execute(select(Annotation)).scalars())
        assert kinds == ["adjudication", "label", "label"]
        assert s.execute(select(Clip.status)).scalar_one() == "reviewed"


def test_another_reviewers_assignment_is_404(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    f.queue_clips(ws, 2)
    f.user(ws, "rev1")
    f.user(ws, "rev2")
    with live_server(ws) as base, chromium() as browser:
        one = _login(browser, base, "rev1")
        _start(one, base)
        url = _wait_review_page(one)
        audio = one.locator("#clip-audio").get_attribute("src")
        two = _login(browser, base, "rev2")
        resp = two.goto(url)
        assert resp is not None and resp.status == 404
        assert two.locator("#clip-audio").count() == 0
        assert two.request.get(f"{base}{audio}").status in (403, 404)
        assert two.request.get(f"{url}/inbox").status == 404


def test_the_wakeword_team_answers_from_the_keyboard(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    f.wake_clips(ws, 3)
    f.user(ws, "wake1", Role.wakeword)
    with live_server(ws) as base, chromium() as browser:
        page = _login(browser, base, "wake1")
        assert page.url == f"{base}/wakeword"
        _start(page, base, "/wakeword")
        page.wait_for_selector("#wakeword-form")
        page.wait_for_function("() => document.activeElement.id === 'wake-choice'")  # said to a screen reader
        first = page.url
        page.keyboard.press("Enter")  # nothing chosen: nothing is sent
        assert page.locator("#status").inner_text().startswith("choose what woke the device first")
        assert page.url == first
        page.keyboard.press("3")
        assert page.get_by_label("TV, radio or music").is_checked()
        page.keyboard.press("?")  # also with the choice focused: it is not a text field
        page.get_by_test_id("keys").wait_for()
        assert "choose what woke the device" in page.get_by_test_id("keys").inner_text()
        page.keyboard.press("Escape")
        page.wait_for_function("() => !document.getElementById('keys-dialog').open")
        page.get_by_label("TV, radio or music").focus()
        page.keyboard.press("Enter")
        page.wait_for_function(
            "(first) => location.href !== first && !!document.getElementById('wakeword-form')", arg=first
        )
        second = page.url
        # The next clip's page was swapped in with nothing chosen; a held key does not repeat.
        assert page.locator("input[name=label]:checked").count() == 0
        page.keyboard.press("Numpad1")  # NumLock off (as Playwright's keyboard has it): End, not a choice
        assert page.locator("input[name=label]:checked").count() == 0
        page.evaluate(  # NumLock on: the keypad's 1
            """() => document.activeElement.dispatchEvent(new KeyboardEvent("keydown",
                 {key: "1", code: "Numpad1", bubbles: true, cancelable: true}))"""
        )
        assert page.get_by_label("The wake word, said to the device (then nothing)").is_checked()
        # A key held down sends repeats: they never record an answer.
        page.evaluate(
            """() => document.activeElement.dispatchEvent(new KeyboardEvent("keydown",
                 {key: "Enter", code: "Enter", repeat: true, bubbles: true, cancelable: true}))"""
        )
        page.wait_for_timeout(300)
        assert page.url == second
        page.keyboard.press("Enter")
        page.wait_for_function("(second) => location.href !== second", arg=second)
        page.keyboard.press("6")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/wakeword")
        assert page.get_by_test_id("queue-empty").count() == 1
        assert page.evaluate("window.__pointer") == 0
    with ws.sessions() as s:
        assert s.execute(select(Annotation.reason).order_by(Annotation.id)).scalars().all() == [
            "media",
            "wake_word",
            "unclear",
        ]
