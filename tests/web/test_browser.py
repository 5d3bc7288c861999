"""The reviewer's path in a real Chromium: log in, hear the clip, edit, submit, next clip."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from earmark.models import Annotation
from earmark.workspace import Workspace
from tests import factories as f
from tests.web.browser import chromium, live_server

pytestmark = pytest.mark.browser


def test_reviewer_hears_edits_submits_and_gets_the_next_clip(sqlite_ws: Workspace) -> None:
    ws = sqlite_ws
    f.queue_clips(ws, 3)
    f.user(ws, "rev1", password="reviewer-password")
    console_errors: list[str] = []
    with live_server(ws) as base, chromium() as browser:
        page = browser.new_page()
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "rev1")
        page.fill("input[name=password]", "reviewer-password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/review")  # the queue's page: how many wait, and a start button
        assert page.get_by_test_id("ready").inner_text() == "3 clip(s) ready for you."
        page.get_by_test_id("start").click()
        page.wait_for_url(f"{base}/review/*")
        first_url = page.url
        duration = page.evaluate(
            """() => new Promise((resolve, reject) => {
                const a = document.getElementById('clip-audio');
                if (a.readyState >= 1) return resolve(a.duration);
                a.addEventListener('loadedmetadata', () => resolve(a.duration));
                a.addEventListener('error', () => reject(new Error('audio failed to load')));
            })"""
        )
        assert duration > 0.5
        # A visible play control (autoplay may be blocked; a mouse or screen-reader user needs one).
        was_paused = page.evaluate("document.getElementById('clip-audio').paused")
        page.get_by_test_id("play").click()
        page.wait_for_function("(p) => document.getElementById('clip-audio').paused !== p", arg=was_paused)
        assert page.evaluate("document.activeElement.id") == "transcript"  # Enter still submits
        label = page.get_by_test_id("play").inner_text()
        assert label.startswith("Play" if not was_paused else "Pause")
        box = page.locator("#transcript")
        assert box.input_value() == "play shake it off by taylor swift"
        box.fill("play shake it off by taylor swift please")
        box.press("Enter")  # Enter submits from inside the transcript box
        page.wait_for_url(lambda url: url != first_url and "/review/" in url)
        assert page.locator("#transcript").input_value().startswith("play")
        assert not console_errors, console_errors  # includes CSP violations
    with ws.sessions() as s:
        rows = s.execute(select(Annotation)).scalars().all()
    assert [r.transcript for r in rows] == ["play shake it off by taylor swift please"]
