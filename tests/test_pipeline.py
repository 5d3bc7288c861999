"""The safe-to-hear pipeline end to end on a workspace (fast stand-in models; the real ones have
their own tests). Every outcome is stored and explained; nothing unprotected reaches a queue."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select
from sqlalchemy import text as sql

from earmark.audio import encode_wav
from earmark.consent import set_consent
from earmark.erasure import erase_account
from earmark.models import Clip, ClipProtection, ClipStage, QueueItem, utcnow
from earmark.pipeline import PipelineConfig, ProcessResult, load_pending, protect, store_protection
from earmark.queues import lease_next, lock_clip
from earmark.retention import RetentionPolicy, run_retention
from earmark.types import Actor, Consent
from earmark.workspace import Workspace
from tests import factories as f
from tests.fakes import Crashing, FailingAligner, fast_components

SR = 16_000


def _clip(ws: Workspace, external_id: str) -> Clip:
    with ws.sessions() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == external_id)).scalar_one()
        return clip


def _ingest_audio(ws: Workspace, audio: np.ndarray, text: str | None = "play music", account: str = "p1") -> str:
    asr = {"text": text, "confidence": 0.9} if text is not None else None
    m = f.meta(account_id=account, device_asr=asr)
    cid = ws.ingest(actor=Actor.cli(), meta=m, audio=encode_wav(audio, SR), via="test").clip_id
    f.allow(ws, account)
    f.sample_all(ws)
    return cid


def _process_with_midway(ws: Workspace, midway: Callable[[], None]) -> list[ProcessResult]:
    """Process the pending clips with `midway` run while the models run (after the clip was read,
    before its result is stored)."""
    import earmark.workspace as wsmod

    def protect_after(*args, **kwargs):  # type: ignore[no-untyped-def]
        midway()
        return protect(*args, **kwargs)

    original = wsmod.protect
    wsmod.protect = protect_after  # type: ignore[assignment]
    try:
        return ws.process_pending()
    finally:
        wsmod.protect = original


def test_pii_is_masked_in_text_and_bleeped_in_audio(ws: Workspace) -> None:
    text = "call jennifer on five five five one two three four"
    cid = f.ingest_speech(ws, text, account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)
    [result] = ws.process_pending()
    assert result.outcome == "general"
    clip = _clip(ws, cid)
    assert clip.redacted_text == "call [PERSON] on [PHONE]" and clip.status == "queued"
    with ws.sessions() as s:
        prot = s.get(ClipProtection, clip.id)
        stages = {
            st.stage: st.outcome for st in s.execute(select(ClipStage).where(ClipStage.clip_id == clip.id)).scalars()
        }
    assert prot is not None and prot.aligned and not prot.wholesale
    assert [p["type"] for p in prot.pii] == ["PERSON", "PHONE"]
    assert "jennifer" not in str(prot.pii)  # offsets and types only
    assert stages == {
        "decode": "ok",
        "speech": "ok",
        "transcript": "ok",
        "pii": "found",
        "screening": "general",
        "redaction": "bleeped",
        "anonymize": "ok",
    }
    # Every PII word's samples lie inside a redacted span.
    words = {w[0]: (w[3], w[4]) for w in prot.words}
    for name in ("jennifer", "five", "four"):
        start, end = words[name]
        assert any(s <= start and end <= e for s, e in prot.audio_spans)


def test_values_the_device_tagged_as_personal_are_masked_where_the_rules_miss_them(ws: Workspace) -> None:
    """A weak device recognizer wrote "hall" for "call": no rule cues the name, but the device's
    own slot says contact = nadia. An artist slot stays as it is."""
    spoken = "call nadia and play halo by beyonce"
    heard = "hall nadia and play halo by beyonce"
    nlu = {
        "intent": "MakeCall",
        "slots": [{"type": "contact", "value": "Nadia"}, {"type": "artist", "value": "beyonce"}],
        "confidence": 0.8,
    }
    m = f.meta(account_id="p1", device_asr={"text": heard, "confidence": 0.9}, device_nlu=nlu)
    cid = ws.ingest(actor=Actor.cli(), meta=m, audio=f.speech_bytes(spoken), via="test").clip_id
    f.allow(ws, "p1")
    f.sample_all(ws)
    [result] = ws.process_pending()
    assert result.outcome == "general"
    clip = _clip(ws, cid)
    assert clip.redacted_text == "hall [PERSON] and play halo by beyonce"
    with ws.sessions() as s:
        prot = s.get(ClipProtection, clip.id)
        stage = s.execute(select(ClipStage).where(ClipStage.clip_id == clip.id, ClipStage.stage == "pii")).scalar_one()
    assert prot is not None and [p["type"] for p in prot.pii] == ["PERSON"]
    assert stage.details["from_slots"] == 1
    start, end = {w[0]: (w[3], w[4]) for w in prot.words}["nadia"]
    assert any(s <= start and end <= e for s, e in prot.audio_spans)  # bleeped in the audio too


def test_redacted_audio_holds_none_of_the_original_pii_speech() -> None:
    from tests.fakes import KeywordPii, ProportionalAligner

    text = "call jennifer now please"
    x, _ = sf.read(io.BytesIO(f.speech_bytes(text)), dtype="float32")
    parts = fast_components(aligner=ProportionalAligner(), pii=KeywordPii())
    parts.anonymizer = _Identity()
    result = protect(
        x,
        SR,
        device_text=text,
        parts=parts,
        config=PipelineConfig(redaction_mode="silence"),
        rng=np.random.default_rng(0),
    )
    assert result.audio is not None and result.audio_spans
    fade = int(SR * 0.015)
    for span in result.audio_spans:
        inner = result.audio[span.start + fade : span.end - fade]
        assert np.max(np.abs(inner)) < 0.01  # silence where the name was
    outside = result.audio[: result.audio_spans[0].start]
    assert np.allclose(outside, x[: outside.size] - np.mean(x), atol=1e-3)


class _Identity:
    name = "identity"

    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        return {}

    def apply(self, x: np.ndarray, sample_rate: int, params: dict[str, float]) -> np.ndarray:
        return x


def test_unaligned_pii_is_redacted_wholesale(ws: Workspace) -> None:
    ws.parts = fast_components(aligner=FailingAligner())
    cid = f.ingest_speech(ws, "call jennifer please", account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)
    [result] = ws.process_pending()
    assert result.outcome == "general"
    with ws.sessions() as s:
        prot = s.get(ClipProtection, _clip(ws, cid).id)
    assert prot is not None and prot.wholesale and not prot.aligned and prot.audio_spans


def test_no_speech_is_excluded_or_goes_to_the_wakeword_queue(ws: Workspace) -> None:
    noise = np.random.default_rng(0).normal(0, 0.001, SR * 2).astype(np.float32)
    cid = _ingest_audio(ws, noise, text=None)
    [result] = ws.process_pending()
    assert (result.outcome, result.reason) == ("excluded", "no_speech")
    assert _clip(ws, cid).status == "excluded"
    ws.settings.no_speech_route = "wakeword"
    cid2 = _ingest_audio(ws, noise * 1.1, text=None, account="p2")
    [result] = ws.process_pending()
    assert result.outcome == "wakeword"
    with ws.sessions() as s:
        item = s.execute(select(QueueItem).where(QueueItem.clip_id == _clip(ws, cid2).id)).scalar_one()
    assert item.queue == "wakeword"


def test_a_100ms_clip_is_held_with_its_reason(ws: Workspace) -> None:
    cid = _ingest_audio(ws, np.full(SR // 10, 0.1, dtype=np.float32))
    [result] = ws.process_pending()
    assert (result.outcome, result.reason) == ("held", "too_short")
    clip = _clip(ws, cid)
    assert clip.status == "held" and clip.hold_reason == "too_short" and clip.protected_blob_key is None


def test_a_crashing_stage_holds_the_clip_and_leaves_no_blob(ws: Workspace) -> None:
    ws.parts = fast_components(anonymizer=Crashing())
    cid = f.ingest_speech(ws, "play music", account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)
    blobs_before = set(ws.blobs.iter_keys())
    [result] = ws.process_pending()
    assert (result.outcome, result.reason) == ("held", "error:RuntimeError")
    assert _clip(ws, cid).status == "held"
    assert set(ws.blobs.iter_keys()) == blobs_before
    with ws.sessions() as s:
        assert s.execute(select(QueueItem)).first() is None


def test_clips_held_by_an_error_can_be_sent_back_once_fixed_but_not_after_a_no(ws: Workspace) -> None:
    """A held clip stayed held for good: a missing blob put back, a model setting fixed, nothing
    could retry it. A withdrawal leaves held clips as they are, so a retry must check consent."""
    from earmark.pipeline import retry_held

    ws.parts = fast_components(anonymizer=Crashing())
    mine = f.ingest_speech(ws, "play music", account_id="p1")
    theirs = f.ingest_speech(ws, "play music", account_id="p2")
    f.allow(ws, "p1", "p2")
    f.sample_all(ws)
    assert {r.outcome for r in ws.process_pending()} == {"held"}
    ws.set_consent(actor=Actor.cli(), account_id="p2", human_review=Consent.deny)
    assert _clip(ws, theirs).status == "held"  # a withdrawal does not touch a held clip
    ws.parts = fast_components()  # the cause fixed
    with ws.transaction() as s:
        assert retry_held(s, actor=Actor.cli(), consent_default=ws.settings.consent_default) == 1
    [result] = ws.process_pending()
    assert result.outcome == "general"
    assert (_clip(ws, mine).status, _clip(ws, theirs).status) == ("queued", "held")


def test_sensitive_clips_go_to_safety_and_never_to_general_reviewers(ws: Workspace) -> None:
    cid = f.ingest_speech(ws, "somebody help me call the police", account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)
    [result] = ws.process_pending()
    assert result.outcome == "safety"
    with ws.sessions() as s:
        prot = s.get(ClipProtection, _clip(ws, cid).id)
        item = s.execute(select(QueueItem)).scalar_one()
    assert prot is not None and {"help_request", "emergency"} <= set(prot.labels) and prot.reasons
    assert item.queue == "safety"
    reviewer = f.user(ws, "rev1")
    with ws.transaction() as s:
        assert lease_next(s, actor=reviewer) is None


def test_consent_withdrawn_during_processing_stores_nothing(ws: Workspace) -> None:
    cid = f.ingest_speech(ws, "play music", account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)

    def withdraw() -> None:
        with ws.transaction() as s:
            set_consent(s, actor=Actor.cli(), account_id="p1", human_review=Consent.deny)

    [result] = _process_with_midway(ws, withdraw)
    assert result.outcome == "skipped"
    clip = _clip(ws, cid)
    assert clip.status == "withdrawn" and clip.protected_blob_key is None


def test_a_span_reported_while_the_models_run_is_not_stored_unbleeped(ws: Workspace) -> None:
    """The store re-checked the clip's status but not its reported spans: a span added while the
    models ran (the clip still pending) was stored without its bleep. Now the clip stays pending
    and the next round bleeps it."""
    from sqlalchemy import update

    cid = f.ingest_speech(ws, "play music", account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)

    def report() -> None:
        with ws.transaction() as s:  # as a second missed-PII report would add its span
            s.execute(update(Clip).where(Clip.external_id == cid).values(extra_redactions=[[1600, 8000]]))

    [result] = _process_with_midway(ws, report)
    assert (result.outcome, result.reason) == ("skipped", "redactions_changed")
    assert _clip(ws, cid).status == "pending" and _clip(ws, cid).protected_blob_key is None
    [again] = ws.process_pending()
    assert again.outcome == "general"
    with ws.sessions() as s:
        prot = s.execute(select(ClipProtection).join(Clip).where(Clip.external_id == cid)).scalar_one()
    assert any(a <= 1600 and b >= 8000 for a, b in prot.audio_spans)  # bleeped (padded)


def _assert_withdrawn_everywhere(ws: Workspace, cid: str, *, derivative_gone: bool = True) -> None:
    clip = _clip(ws, cid)
    with ws.sessions() as s:
        states = s.execute(select(QueueItem.state).where(QueueItem.clip_id == clip.id)).scalars().all()
    assert clip.status == "withdrawn"
    assert (clip.protected_blob_key is None) == derivative_gone
    assert all(st == "withdrawn" for st in states), states


@f.postgres_only
def test_consent_withdrawn_while_the_pipeline_stores_is_never_overwritten(ws: Workspace) -> None:
    """Withdrawal commits while the store waits: the store must see it and queue nothing (it did
    queue the withdrawn clip on PostgreSQL, which read the clip before the withdrawal committed)."""
    cid = f.ingest_speech(ws, "play music", account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)
    worker = f.Racer(ws.process_pending)
    with f.racing(ws, worker) as s:
        set_consent(s, actor=Actor.cli(), account_id="p1", human_review=Consent.deny)
    assert [r.outcome for r in worker.result] == ["skipped"]
    _assert_withdrawn_everywhere(ws, cid)


@f.postgres_only
@pytest.mark.parametrize("change", ["consent", "erasure", "retention"])
def test_withdrawal_and_a_pipeline_store_in_flight_do_not_deadlock(ws: Workspace, change: str) -> None:
    """The store holds the clip when a consent withdrawal, an erasure or a retention sweep starts:
    that waits, then pulls the clip the store queued. It deadlocked: it took the audit chain head
    first."""
    cid = f.ingest_speech(ws, "play music", account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)
    clip_id = _clip(ws, cid).id
    with ws.sessions() as s:
        pending = load_pending(s, clip_id=clip_id, blobs=ws.blobs, keyring=ws.keyring)
    assert pending is not None
    result = protect(
        pending.samples, pending.sample_rate, device_text=pending.device_text, parts=ws.components(),
        config=ws.pipeline_config, rng=np.random.default_rng(0),
    )  # fmt: skip
    transcripts_only = RetentionPolicy(original_days=None, derivative_days=None)

    def withdraw() -> None:
        with ws.transaction() as s:
            if change == "consent":
                set_consent(s, actor=Actor.cli(), account_id="p1", human_review=Consent.deny)
            elif change == "erasure":
                erase_account(s, actor=Actor.cli(), account_id="p1", secret=ws.secret)
            else:
                run_retention(s, actor=Actor.cli(), policy=transcripts_only, now=utcnow() + timedelta(days=400))

    other = f.Racer(withdraw)
    journal = ws.blobs.journal()
    with ws.transaction() as s:
        lock_clip(s, clip_id)  # the store's first step: the store is in flight
        other.start()
        f.wait_for_lock_wait(ws, [other])
        stored = store_protection(
            s, actor=Actor.system(), clip_id=clip_id, result=result, blobs=ws.blobs, keyring=ws.keyring,
            journal=journal,
        )  # fmt: skip
    journal.close()
    other.join()
    assert other.error is None, other.error
    assert stored.outcome == "general"
    if change != "erasure":  # transcript retention takes the clip out; the derivative has its own limit
        _assert_withdrawn_everywhere(ws, cid, derivative_gone=change == "consent")
    else:
        with ws.sessions() as s:
            clip = s.get(Clip, clip_id)
            states = s.execute(select(QueueItem.state).where(QueueItem.clip_id == clip_id)).scalars().all()
        assert clip is not None and clip.status == "erased" and clip.protected_blob_key is None
        assert states and all(st == "withdrawn" for st in states), states


def test_odd_inputs_get_an_explained_outcome(ws: Workspace) -> None:
    t = np.arange(SR * 2) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    clipped = np.clip(tone * 4, -1, 1).astype(np.float32)
    for i, (audio, text) in enumerate([(tone, "🎵🎵 play \x07music"), (clipped, "play music"), (tone, "")]):
        _ingest_audio(ws, audio, text=text, account=f"odd{i}")
    results = ws.process_pending()
    assert len(results) == 3
    assert all(r.outcome in {"general", "safety", "held", "excluded"} for r in results)
    with ws.sessions() as s:
        for clip in s.execute(select(Clip)).scalars():
            assert clip.status in {"queued", "held", "excluded"}
            if clip.status == "queued":
                assert clip.protected_blob_key and clip.redacted_text is not None


@f.postgres_only
def test_a_database_conflict_while_storing_leaves_the_clip_pending(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient conflict (here a lock timeout on the audit chain's head) held the clip for good
    as if its audio were bad; it is retried instead, and nothing of the failed try is kept."""
    cid = f.ingest_speech(ws, "play music", account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=300")
    ws.engine.dispose()
    with ws.engine.connect() as holder:
        holder.execute(sql("SELECT 1 FROM audit_head FOR UPDATE"))
        [busy] = ws.process_pending()
    assert (busy.outcome, busy.reason) == ("skipped", "database_busy")
    assert _clip(ws, cid).status == "pending" and sorted(ws.blobs.iter_keys()) == [_clip(ws, cid).blob_key]
    [done] = ws.process_pending()
    assert done.outcome == "general"
