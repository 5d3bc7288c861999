"""Plain factory functions that build real objects: audio bytes, metadata, users, queued clips; and
the wait that concurrency tests on PostgreSQL synchronize on."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import event
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from earmark import auth
from earmark.audio import encode_wav, resample
from earmark.consent import set_consent
from earmark.manifest import ClipMeta
from earmark.models import User
from earmark.sampling import draw_sample
from earmark.sampling_policy import SamplingPolicy
from earmark.synth import synthesize
from earmark.types import Actor, Consent, Role
from earmark.workspace import Workspace

_counter = itertools.count()


def tone(seconds: float = 1.0, sample_rate: int = 16_000, freq: float = 220.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def audio_bytes(
    seconds: float = 1.0,
    sample_rate: int = 16_000,
    channels: int = 1,
    fmt: str = "WAV",
    subtype: str | None = None,
    freq: float | None = None,
) -> bytes:
    """A real encoded clip; each call differs (frequency varies) unless `freq` is given."""
    f = freq if freq is not None else 200.0 + 7 * next(_counter)
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, sample_rate, f, channels), sample_rate, format=fmt, subtype=subtype)
    return buf.getvalue()


_speech_cache: dict[str, bytes] = {}


def speech_bytes(text: str = "play shake it off by taylor swift", *, pitch: int = 45) -> bytes:
    """Synthesized speech as a 16 kHz WAV (cached per text: espeak output depends on call history)."""
    key = f"{text}|{pitch}"
    if key not in _speech_cache:
        syn = synthesize(text, variant="m3", pitch=pitch)
        x = resample(syn.samples, syn.sample_rate, 16_000)
        x = np.concatenate([np.zeros(3200, np.float32), 0.6 * x, np.zeros(3200, np.float32)])
        x = x + np.random.default_rng(len(text)).normal(0, 0.002, x.size).astype(np.float32)
        _speech_cache[key] = encode_wav(x, 16_000)
    return _speech_cache[key]


def meta(**fields: Any) -> ClipMeta:
    n = next(_counter)
    base: dict[str, Any] = {
        "clip_id": f"clip-{n:06d}",
        "account_id": "acct-1",
        "device_id": "dev-1",
        "recorded_at": datetime(2026, 11, 20, 9, 30, tzinfo=UTC) + timedelta(minutes=n),
        "locale": "en-US",
        "device_asr": {"text": "play shake it off by taylor swift", "confidence": 0.9},
        "device_nlu": {
            "intent": "PlayMusic",
            "slots": [{"type": "artist", "value": "taylor swift"}],
            "confidence": 0.8,
        },
    }
    base.update(fields)
    return ClipMeta.model_validate(base)


def ingest(ws: Workspace, n: int = 1, **fields: Any) -> list[str]:
    ids = []
    for _ in range(n):
        m = meta(**fields)
        ids.append(ws.ingest(actor=Actor.cli(), meta=m, audio=audio_bytes(), via="test").clip_id)
    return ids


def allow(ws: Workspace, *accounts: str) -> None:
    with ws.transaction() as s:
        for a in accounts:
            set_consent(s, actor=Actor.cli(), account_id=a, human_review=Consent.allow, create=True)


def user(ws: Workspace, username: str, role: Role = Role.reviewer, password: str = "reviewer-password") -> User:
    with ws.transaction() as s:
        return auth.create_user(s, actor=Actor.cli(), username=username, password=password, role=role)


def ingest_speech(ws: Workspace, text: str, **fields: Any) -> str:
    m = meta(device_asr={"text": text, "confidence": 0.9}, **fields)
    return ws.ingest(actor=Actor.cli(), meta=m, audio=speech_bytes(text), via="test").clip_id


def sample_all(ws: Workspace, *, seed: int = 0) -> None:
    with ws.transaction() as s:
        draw_sample(
            s,
            actor=Actor.cli(),
            policy=SamplingPolicy.uniform(1.0, cap=10_000, period_days=30),
            key=seed.to_bytes(8, "big"),
            default_consent=Consent.deny,
        )


def queue_clips(
    ws: Workspace, n: int, *, accounts: int = 1, seed: int = 0, text: str = "play shake it off by taylor swift"
) -> list[str]:
    """Ingest `n` speech clips over `accounts` consenting accounts, sample and protect all of them."""
    ids = [ingest_speech(ws, text, account_id=f"acct-q{i % accounts}") for i in range(n)]
    allow(ws, *{f"acct-q{i % accounts}" for i in range(n)})
    sample_all(ws, seed=seed)
    results = ws.process_pending()
    assert all(r.outcome == "general" for r in results), results
    return ids


def wake_clips(
    ws: Workspace, n: int, *, account: str = "acct-w", wake_scores: list[float] | None = None, **fields: Any
) -> list[str]:
    """`n` clips without speech (faint noise) of one consenting account, sampled and sent by the
    pipeline to the wake-word queue (`no_speech_route = "wakeword"`)."""
    ws.settings.no_speech_route = "wakeword"
    ids = []
    for i in range(n):
        noise = np.random.default_rng(i).normal(0, 0.001, 16_000 * 2).astype(np.float32)
        m = meta(
            account_id=account,
            device_asr=None,
            device_nlu=None,
            wake_score=wake_scores[i] if wake_scores else None,
            **fields,
        )
        ids.append(ws.ingest(actor=Actor.cli(), meta=m, audio=encode_wav(noise, 16_000), via="test").clip_id)
    allow(ws, account)
    sample_all(ws)
    results = ws.process_pending()
    assert [r.outcome for r in results] == ["wakeword"] * n, results
    return ids


def review_all(
    ws: Workspace,
    *users: User,
    transcript: Callable[[int, User], str] = lambda clip_id, user: "play shake it off by taylor swift",
    queue: str = "general",
) -> None:
    """Each user submits every clip it can lease from `queue` (intent PlayMusic)."""
    from earmark.queues import lease_next
    from earmark.review import submit_annotation

    for u in users:
        while True:
            with ws.transaction() as s:
                a = lease_next(s, actor=u, queue=queue)
                if a is None:
                    break
                submit_annotation(
                    s,
                    actor=u,
                    assignment_id=a.id,
                    transcript=transcript(a.clip_id, u),
                    intent="PlayMusic",
                    probation_extra_passes=0,
                )


def answer_gold(ws: Workspace, u: User, transcript: str) -> int | None:
    """`u` is served a gold clip and answers it with `transcript`; returns the clip id, or None
    when no gold clip is served to `u`."""
    from earmark.quality import serve_gold
    from earmark.queues import lease_next
    from earmark.review import submit_annotation

    with ws.transaction() as s:
        item = serve_gold(s, user=u)
        if item is None:
            return None
        a = lease_next(s, actor=u, queue="gold", only_item=item.id)
        assert a is not None
        submit_annotation(
            s, actor=u, assignment_id=a.id, transcript=transcript, intent="PlayMusic", probation_extra_passes=0
        )
        return item.clip_id


def wait_for_lock_wait(ws: Workspace, threads: list[threading.Thread]) -> None:
    """Until a session of the workspace's PostgreSQL database waits on a lock, or `threads` are done:
    how a concurrency test knows the other transaction reached the point it must wait at."""
    with ws.engine.connect() as conn:
        for _ in range(600):
            waiting = conn.execute(
                sql(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.rollback()
            if waiting or not any(t.is_alive() for t in threads):
                return
            time.sleep(0.05)
    raise AssertionError("no session ever waited on a lock")


class Racer(threading.Thread):
    """The other transaction of a race test: runs `target` and keeps what it returned (`result`)
    or raised (`error`)."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._run_target = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._run_target()
        except BaseException as exc:
            self.error = exc


@contextmanager
def racing(ws: Workspace, other: threading.Thread) -> Iterator[Session]:
    """A transaction that `other` races: once the body's changes are flushed, `other` starts, and
    this transaction commits when `other` waits on one of its locks; `other` is then joined."""
    with ws.transaction() as s:
        yield s
        s.flush()
        other.start()
        wait_for_lock_wait(ws, [other])
    other.join()


def at_the_audit_head(ws: Workspace, other: threading.Thread) -> contextlib.AbstractContextManager[None]:
    """While inside, this thread's first audit append starts `other` and waits until it blocks."""
    return at_statement(ws, other, "audit_head")


@contextmanager
def at_statement(ws: Workspace, other: threading.Thread, marker: str) -> Iterator[None]:
    """While inside, this thread's first SQL statement containing `marker` starts `other` (just
    before the statement runs) and waits until `other` blocks on a lock or ends."""
    me = threading.current_thread()
    started: list[bool] = []

    def hook(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if threading.current_thread() is me and marker in statement and not started:
            started.append(True)
            other.start()
            wait_for_lock_wait(ws, [other])

    event.listen(ws.engine, "before_cursor_execute", hook)
    try:
        yield
    finally:
        event.remove(ws.engine, "before_cursor_execute", hook)


# Row-lock races: only PostgreSQL has them (SQLite's single writer serializes transactions).
postgres_only = pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(os.environ.get("EARMARK_TEST_PG") == "skip", reason="EARMARK_TEST_PG=skip"),
        )
    ],
    indirect=True,
)
