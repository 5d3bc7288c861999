from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select, update

from earmark import review
from earmark.errors import Conflict, InvalidInput, LeaseExpired, NotFound
from earmark.models import Annotation, Assignment, AuditEvent, Clip, QueueItem
from earmark.queues import lease_next
from earmark.workspace import Workspace
from tests import factories as f


def _lease(ws: Workspace, user):  # type: ignore[no-untyped-def]
    with ws.transaction() as s:
        a = lease_next(s, actor=user)
        assert a is not None
        return a


def test_view_shows_no_account_device_or_time(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    with ws.sessions() as s:
        view = review.view_assignment(s, user=r, assignment_id=a.id)
        clip = s.get(Clip, a.clip_id)
    assert clip is not None
    shown = repr(view)
    for secret in (clip.external_id, "acct-q0", clip.device_id, clip.recorded_at.isoformat()[:16], "en-US"):
        assert secret not in shown
    assert view.language == "en" and view.transcript.startswith("play")


def test_audio_is_served_as_plain_wav_and_audited(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    with ws.transaction() as s:
        wav = review.assignment_audio(s, user=r, assignment_id=a.id, blobs=ws.blobs, keyring=ws.keyring)
    data, sr = sf.read(io.BytesIO(wav))
    with ws.sessions() as s:
        clip = s.get(Clip, a.clip_id)
        assert clip is not None
        audited = s.execute(select(AuditEvent).where(AuditEvent.action == "review.audio")).scalars().all()
    assert sr == 16000 and len(data) == clip.protected_num_samples
    original, _ = sf.read(io.BytesIO(f.speech_bytes()))
    assert not np.allclose(data[: len(original)], original[: len(data)], atol=0.05)  # never the original
    assert [e.object_id for e in audited] == [a.id]


def test_someone_elses_assignment_is_not_found(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    r1, r2 = f.user(ws, "r1"), f.user(ws, "r2")
    a = _lease(ws, r1)
    with pytest.raises(NotFound), ws.sessions() as s:
        review.view_assignment(s, user=r2, assignment_id=a.id)


def test_submit_stores_once_even_when_sent_twice(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    for _ in range(2):
        with ws.transaction() as s:
            review.submit_annotation(
                s, actor=r, assignment_id=a.id, transcript="  play  shake it off ", intent="PlayMusic"
            )
    with ws.sessions() as s:
        rows = s.execute(select(Annotation)).scalars().all()
        assert len(rows) == 1 and rows[0].transcript == "play shake it off"
        assert s.get(Clip, a.clip_id).status == "reviewed"  # type: ignore[union-attr]
        assert s.get(QueueItem, a.queue_item_id).state == "done"  # type: ignore[union-attr]
    nxt = _lease(ws, r)
    assert nxt.clip_id != a.clip_id


def test_a_second_tab_submitting_other_content_is_told_it_was_not_saved(ws: Workspace) -> None:
    """Two tabs on one pass: the second tab's edits were dropped in silence, and it moved on."""
    f.queue_clips(ws, 1)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    with ws.transaction() as s:
        review.submit_annotation(s, actor=r, assignment_id=a.id, transcript="play it tabone", intent="PlayMusic")
    with pytest.raises(Conflict, match="already submitted"), ws.transaction() as s:
        review.submit_annotation(s, actor=r, assignment_id=a.id, transcript="play it tabtwo", intent="PlayMusic")
    with pytest.raises(Conflict), ws.transaction() as s:
        review.submit_annotation(s, actor=r, assignment_id=a.id, transcript="play it tabone", intent="GetWeather")
    with ws.sessions() as s:
        assert [x.transcript for x in s.execute(select(Annotation)).scalars()] == ["play it tabone"]
    # Only the slots differ: a second tab's tagging is not dropped in silence either.
    with pytest.raises(Conflict), ws.transaction() as s:
        review.submit_annotation(
            s,
            actor=r,
            assignment_id=a.id,
            transcript="play it tabone",
            intent="PlayMusic",
            slots=[review.SlotIn(type="song", start=5, end=7)],
        )


def test_submit_after_lease_expired_is_refused_and_stores_nothing(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    with ws.transaction() as s:
        past = a.expires_at - timedelta(hours=1)
        s.execute(update(Assignment).values(expires_at=past))
        s.execute(update(QueueItem).values(lease_expires_at=past))
    with pytest.raises(LeaseExpired, match="expired"), ws.transaction() as s:
        review.submit_annotation(s, actor=r, assignment_id=a.id, transcript="late", intent="")
    with ws.sessions() as s:
        assert s.execute(select(func.count()).select_from(Annotation)).scalar_one() == 0


def test_overlong_transcript_is_refused_with_its_limit(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    r = f.user(ws, "r1")
    a = _lease(ws, r)
    with pytest.raises(InvalidInput, match="limit is 50"), ws.transaction() as s:
        review.submit_annotation(
            s, actor=r, assignment_id=a.id, transcript="x" * 51, intent="", max_transcript_chars=50
        )


def test_control_characters_are_dropped() -> None:
    assert review.clean_transcript("call\x00 mom\u202e now", max_chars=100) == "call mom now"
