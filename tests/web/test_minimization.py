"""Metadata minimization and quiet logs: collect everything the human roles can fetch in a full
review run, and every log line, and search them for what must never be there."""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import select

from earmark import auth
from earmark.models import Clip
from earmark.types import Actor, Role
from earmark.workspace import Workspace
from tests import factories as f
from tests.web.helpers import client, login, next_clip

AUDIO_RE = re.compile(r'src="(/review/[^"]+/audio\?[^"]+)"')
TEXT = "call jennifer on five five five one two three four"


def _run_reviews(ws: Workspace, username: str, role: Role, seen: list[str], queue: str = "/review") -> None:
    f.user(ws, username, role, password="minimize-password")
    c = client(ws)
    csrf = login(c, username, "minimize-password")
    for path in ("/", queue):
        r = c.get(path, follow_redirects=True)
        seen.append(str(r.headers) + r.text)
    for _ in range(2):
        page = next_clip(c, csrf, queue)
        seen.append(str(page.headers) + page.text)
        found = AUDIO_RE.search(page.text)
        if not found:
            break
        audio = c.get(found.group(1).replace("&amp;", "&"))
        seen.append(str(audio.headers) + audio.content.decode("latin-1"))
        if queue == "/wakeword":
            done = c.post(
                page.url.path.replace("/review/", "/wakeword/") + "/answer", data={"label": "media", "csrf_token": csrf}
            )
        else:
            done = c.post(
                page.url.path + "/submit",
                data={"transcript": "call [PERSON]", "intent": "MakeCall", "csrf_token": csrf},
            )
        seen.append(str(done.headers) + done.text)


def test_human_roles_never_receive_customer_metadata(ws: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for i in range(4):
        f.ingest_speech(ws, TEXT, account_id=f"acct-secret-{i}", device_id=f"device-secret-{i}", locale="en-GB")
    f.allow(ws, *[f"acct-secret-{i}" for i in range(4)])
    f.sample_all(ws)
    ws.process_pending()
    f.wake_clips(ws, 2, account="acct-secret-w", device_id="device-secret-w", locale="en-GB")
    seen: list[str] = []
    for name, role in (("rev1", Role.reviewer), ("sen1", Role.senior), ("saf1", Role.safety)):
        _run_reviews(ws, name, role, seen)
    _run_reviews(ws, "wake1", Role.wakeword, seen, "/wakeword")
    everything = "\n".join(seen)
    assert "audio/wav" in everything  # the run did reach the audio
    assert 'id="wakeword-form"' in everything
    with ws.sessions() as s:
        clips = s.execute(select(Clip)).scalars().all()
    forbidden = ["acct-secret", "device-secret", "en-GB", "GB<", "/blobs", "2026-11-20T"]
    for clip in clips:
        forbidden += [clip.external_id, clip.recorded_at.isoformat(), str(clip.blob_key), str(clip.protected_blob_key)]
    for value in forbidden:
        assert value not in everything, value
    # The PII in the device hypothesis is masked before a reviewer sees the transcript.
    assert "jennifer" not in everything and "[PERSON]" in everything


def test_logs_hold_no_content_no_secrets(ws: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    f.ingest_speech(ws, TEXT, account_id="acct-log-1")
    f.allow(ws, "acct-log-1")
    f.sample_all(ws)
    ws.process_pending()
    with ws.transaction() as s:
        _, token = auth.create_token(s, actor=Actor.cli(), role=Role.service)
    c = client(ws)
    c.get("/api/v1/stats", headers={"Authorization": f"Bearer {token}"})
    seen: list[str] = []
    _run_reviews(ws, "rev1", Role.reviewer, seen)
    c.post("/login", data={"username": "rev1", "password": "a-wrong-password-xyz", "csrf_token": "x"})
    # Everything the server side logged (the test's own HTTP client logs full URLs; it is not the app).
    logs = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "GET /review/{assignment_id}" in logs  # the request log ran, with route templates only
    for secret in (
        "jennifer",
        "five five five",
        token,
        "minimize-password",
        "a-wrong-password-xyz",
        "acct-log-1",
        "sig=",
    ):
        assert secret not in logs, secret
