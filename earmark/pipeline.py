"""The safe-to-hear pipeline: every sampled clip passes it before any person can hear it.

    decode + normalize ─▶ speech check ─▶ transcript with word timing ─▶ PII ─▶ redaction
        ─▶ screening (on the original) ─▶ voice anonymization ─▶ protected derivative ─▶ queue

`protect` is the pure core (arrays and strings in, a `Protection` out). `process_clip` is the
domain function around it: it decrypts the original, stores the encrypted derivative and the stage
records, and routes the clip; any failure leaves the clip held with its reason (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from earmark import audit
from earmark.anonymize import Anonymizer, by_name
from earmark.audio import decode_mono, encode_wav, resample
from earmark.crypto import Keyring, decrypt_blob, encrypt_blob
from earmark.errors import ConfigError
from earmark.keys import data_key
from earmark.models import Clip, ClipProtection, ClipStage, utcnow
from earmark.pii import with_slot_hints
from earmark.queues import enqueue, lock_clip
from earmark.redaction import (
    RedactionMode,
    TextSpan,
    Word,
    bleep,
    mask_text,
    merge_spans,
    pii_audio_spans,
    reported_text_spans,
    speech_regions_holding,
)
from earmark.sampling_policy import WAKE_WORD_REASON
from earmark.screening import Screening, ScreeningThresholds, screen
from earmark.storage import InflightJournal, LocalBlobStore, new_blob_key
from earmark.transcribe import Aligner, Transcriber
from earmark.types import Actor, ClipStatus, Span
from earmark.vad import SpeechDetector

TARGET_RATE = 16_000
Outcome = Literal["general", "safety", "wakeword", "held", "excluded"]
NO_SPEECH_PROB = 0.6  # a transcriber this sure that nothing was said: its words are not used
QUEUE_FOR: dict[str, str] = {"general": "general", "safety": "safety", "wakeword": "wakeword"}
SENSITIVE_LABELS = ("help_request", "emergency", "threat_violence", "self_harm", "sexual", "screaming", "crying")


class PiiDetector(Protocol):
    def detect(self, text: str) -> list[TextSpan]: ...


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    min_seconds: float = 0.3
    min_speech_seconds: float = 0.25
    no_speech: Literal["exclude", "wakeword"] = "exclude"
    redaction_mode: RedactionMode = "tone"
    pad_ms: int = 100
    max_clipped_share: float = 0.2
    thresholds: ScreeningThresholds = field(default_factory=ScreeningThresholds)
    passes: int = 1  # independent reviews per clip in the general queue


@dataclass
class StageRecord:
    stage: str
    outcome: str
    details: dict[str, Any]
    ms: int


@dataclass
class Protection:
    """Everything the pipeline decided for one clip."""

    outcome: Outcome
    reason: str | None
    stages: list[StageRecord]
    audio: np.ndarray | None = None  # the protected derivative, TARGET_RATE mono
    transcript: str = ""
    transcript_source: str = ""
    words: list[Word] = field(default_factory=list)
    aligned: bool = False
    pii: list[TextSpan] = field(default_factory=list)
    audio_spans: list[Span] = field(default_factory=list)
    wholesale: bool = False
    redacted_text: str = ""
    anonymizer: dict[str, Any] = field(default_factory=dict)
    screening: Screening | None = None


@dataclass
class Components:
    vad: SpeechDetector
    transcriber: Transcriber
    aligner: Aligner
    pii: PiiDetector
    anonymizer: Anonymizer


def normalize(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, dict[str, Any]]:
    """To TARGET_RATE mono float32 without DC offset; reports clipping and level."""
    clipped = float(np.mean(np.abs(x) >= 0.999)) if x.size else 0.0
    y = resample(x, sample_rate, TARGET_RATE) if sample_rate != TARGET_RATE else x.astype(np.float32, copy=True)
    dc = float(np.mean(y)) if y.size else 0.0
    y = (y - dc).astype(np.float32)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return y, {"clipped_share": round(clipped, 4), "dc_offset": round(dc, 5), "peak": round(peak, 4)}


def _timed(stages: list[StageRecord], name: str) -> Callable[[str, dict[str, Any]], None]:
    t0 = time.perf_counter()

    def done(outcome: str, details: dict[str, Any]) -> None:
        stages.append(StageRecord(name, outcome, details, int((time.perf_counter() - t0) * 1000)))

    return done


def _words_and_pii(
    y: np.ndarray,
    device_text: str | None,
    device_slots: list[Any] | None,
    parts: Components,
    stages: list[StageRecord],
    *,
    no_speech: bool = False,
) -> tuple[str, str, list[Word], bool, list[TextSpan]]:
    """The transcript and personal-data stages of a clip: its text, where the text came from, its
    words placed on the audio (if the aligner could), and the personal data in it. For a clip the
    speech detector found `no_speech` in, the transcriber's text is dropped if it agrees there was
    no speech (Whisper makes up words for silence)."""
    done = _timed(stages, "transcript")
    words: list[Word] = []
    aligned = False
    if device_text and device_text.strip():
        text, source = " ".join(device_text.split()), "device"
        placed = parts.aligner.align(y, TARGET_RATE, text)
        if placed is not None:
            words, aligned = placed, True
    else:
        result = parts.transcriber.transcribe(y, TARGET_RATE)
        text, source, words = result.text, result.source, result.words
        if no_speech and result.no_speech is not None and result.no_speech >= NO_SPEECH_PROB:
            text, words = "", []
        # The transcriber's own word times are rough (Whisper: ~120 ms median error); the aligner
        # places its words to ~10 ms. If that fails, the timing is not trusted for redaction.
        placed = parts.aligner.align(y, TARGET_RATE, text) if text else None
        if placed is not None:
            words, aligned = placed, True
    done(
        "ok" if aligned or not text else "unaligned", {"source": source, "words": len(text.split()), "aligned": aligned}
    )

    done = _timed(stages, "pii")
    found = parts.pii.detect(text)
    pii = with_slot_hints(text, found, device_slots)
    counts: dict[str, int] = {}
    for p in pii:
        counts[p.type] = counts.get(p.type, 0) + 1
    by_slot = {"from_slots": len(pii) - len(found)} if len(pii) != len(found) else {}
    done(
        "found" if pii else "none",
        {"spans": len(pii), **by_slot, **{f"type_{k}": v for k, v in sorted(counts.items())}},
    )
    return text, source, words, aligned, pii


def protect(
    x: np.ndarray,
    sample_rate: int,
    *,
    device_text: str | None,
    parts: Components,
    config: PipelineConfig,
    rng: np.random.Generator,
    extra_spans: list[Span] | None = None,
    device_slots: list[Any] | None = None,
    for_wake_word: bool = False,
) -> Protection:
    """Run every stage on one clip. Never returns unprotected audio for a queue. `device_slots`,
    the device's language-understanding slots, add the values it tagged as personal data
    (`earmark.pii.PII_SLOT_TYPES`) to what the detector finds. A clip drawn `for_wake_word` (an
    accidental activation) goes to the wake-word queue, speech or not, or out if there is none."""
    stages: list[StageRecord] = []

    done = _timed(stages, "decode")
    y, info = normalize(x, sample_rate)
    seconds = y.size / TARGET_RATE
    info["seconds"] = round(seconds, 3)
    if seconds < config.min_seconds:
        done("held", info)
        return Protection("held", "too_short", stages)
    if not np.isfinite(y).all():
        done("held", info)
        return Protection("held", "non_finite_audio", stages)
    done("ok", info)

    done = _timed(stages, "speech")
    speech = parts.vad.detect(y, TARGET_RATE)
    speech_s = sum(s.length for s in speech) / TARGET_RATE
    details = {"speech_seconds": round(speech_s, 3), "ratio": round(speech_s / seconds, 3), "regions": len(speech)}
    no_speech = speech_s < config.min_speech_seconds
    if no_speech and config.no_speech == "exclude":
        done("no_speech", details)
        return Protection("excluded", "no_speech", stages)
    if for_wake_word and config.no_speech == "exclude":
        # Drawn for a wake-word team this workspace does not have: never general review.
        done("no_speech" if no_speech else "ok", details)
        return Protection("excluded", "wake_word_sample", stages)
    # No speech, for the restricted wake-word queue: nobody spoke to the device, but people may talk
    # nearby, too little for the detector. Such a clip goes through every stage all the same: what
    # the device or the transcriber heard in it is screened and searched for personal data (what
    # cannot be placed in time bleeps the whole clip), and it is anonymized. The wake-word team is
    # shown no words (earmark.review.view_assignment).
    done("no_speech" if no_speech else "ok", details)
    text, source, words, aligned, pii = _words_and_pii(y, device_text, device_slots, parts, stages, no_speech=no_speech)

    done = _timed(stages, "screening")
    decision = screen(y, TARGET_RATE, text, config.thresholds)
    done(decision.route, {"labels": decision.labels, **{k: round(v, 3) for k, v in decision.scores.items()}})

    done = _timed(stages, "redaction")
    pad = int(config.pad_ms * TARGET_RATE / 1000)
    spans, unplaced = pii_audio_spans(text, words if aligned else [], pii, pad=pad, num_samples=y.size)
    # In a clip without speech, words placed on faint audio are not trusted to say where personal
    # data is: any found bleeps the whole clip.
    wholesale = bool(unplaced) or (no_speech and bool(pii))
    if wholesale and no_speech:
        spans = [Span(0, y.size)]
    elif wholesale:
        # We cannot tell where (some of) the PII is spoken: silence every speech region instead, or
        # the whole clip where the detector found no speech region.
        spans = speech_regions_holding(speech, pad=pad, num_samples=y.size) or [Span(0, y.size)]
    # Spans a reviewer reported as missed personal data, padded like the detected ones: bleeped
    # in the audio and masked in the transcript (the words spoken there).
    reported = [Span(max(0, e.start - pad), min(y.size, e.end + pad)) for e in extra_spans or [] if e.start < y.size]
    spans = merge_spans([*spans, *reported]) if reported else spans
    redacted = bleep(y, TARGET_RATE, spans, mode=config.redaction_mode)
    redacted_text = mask_text(text, [*pii, *reported_text_spans(text, words if aligned else [], reported)])
    done(
        "wholesale" if wholesale else ("bleeped" if spans else "none"), {"spans": len(spans), "unplaced": len(unplaced)}
    )

    done = _timed(stages, "anonymize")
    params = parts.anonymizer.draw(rng)
    audio = parts.anonymizer.apply(redacted, TARGET_RATE, params)
    if audio.shape != redacted.shape or not np.isfinite(audio).all():
        done("failed", {"name": parts.anonymizer.name})
        return Protection("held", "anonymizer_failed", stages)
    # Which way a method with two paths took this clip (the trained conversion sends a word or two
    # to `world`), so an audit can tell.
    route = getattr(parts.anonymizer, "route", None)
    done("ok", {"name": parts.anonymizer.name, **({"route": route(redacted)} if callable(route) else {})})

    return Protection(
        outcome="safety" if decision.route == "safety" else ("wakeword" if no_speech or for_wake_word else "general"),
        reason="no_speech" if no_speech else None,
        stages=stages,
        audio=audio,
        transcript=text,
        transcript_source=source,
        words=words,
        aligned=aligned,
        pii=pii,
        audio_spans=spans,
        wholesale=wholesale,
        redacted_text=redacted_text,
        anonymizer={"name": parts.anonymizer.name, **params},
        screening=decision,
    )


def clip_rng(secret: bytes, clip_external_id: str) -> np.random.Generator:
    """Per-clip randomness that reviewers cannot predict and a re-run reproduces."""
    digest = hmac.new(secret, f"anonymize:{clip_external_id}".encode(), hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


@dataclass(frozen=True, slots=True)
class ProcessResult:
    clip_id: int
    outcome: str
    reason: str | None
    replaced_blob: str | None = None  # an earlier derivative to delete once this is committed


@dataclass(frozen=True, slots=True)
class PendingClip:
    """What the pipeline needs of a pending clip, read in a short transaction of its own."""

    clip_id: int
    external_id: str
    samples: np.ndarray
    sample_rate: int
    device_text: str | None
    extra_spans: list[Span]
    device_slots: list[Any] = field(default_factory=list)
    for_wake_word: bool = False  # drawn for the wake-word team only (sampling reason `wake_word`)


def load_pending(session: Session, *, clip_id: int, blobs: LocalBlobStore, keyring: Keyring) -> PendingClip | None:
    """Decrypt and decode a pending clip's original; None if it is no longer pending."""
    clip = session.get(Clip, clip_id)
    if clip is None or clip.status != ClipStatus.pending:
        return None
    dk = data_key(session, keyring, clip.account_id)
    original = decrypt_blob(dk, blobs.get(clip.blob_key), blob_key=clip.blob_key)
    x, sr = decode_mono(original)
    extra = [Span(int(a), int(b)) for a, b in (clip.extra_redactions or []) if int(b) > int(a) >= 0]
    slots = (clip.device_nlu or {}).get("slots") if isinstance(clip.device_nlu, dict) else None
    return PendingClip(
        clip.id,
        clip.external_id,
        x,
        sr,
        clip.device_asr_text,
        extra,
        list(slots or []),
        for_wake_word=clip.sample_reason == WAKE_WORD_REASON,
    )


def _spans_of(extra: Any) -> list[tuple[int, int]]:
    """Reported spans as sorted pairs, from the column (pairs) or from `Span`s."""
    pairs = [(x.start, x.end) if isinstance(x, Span) else tuple(x) for x in extra or []]
    return sorted((int(a), int(b)) for a, b in pairs if int(b) > int(a) >= 0)


def store_protection(
    session: Session,
    *,
    actor: Actor,
    clip_id: int,
    result: Protection,
    blobs: LocalBlobStore,
    keyring: Keyring,
    journal: InflightJournal,
    passes_for: dict[str, int] | None = None,
    redactions: list[Span] | None = None,
) -> ProcessResult:
    """Record a clip's pipeline result and route it. Audited; caller commits. `redactions`: the
    reported spans the result was made with; if the clip's changed since, nothing is stored.

    The models run outside any transaction (they take seconds; SQLite has one writer), so the
    clip is re-checked here: if consent was withdrawn meanwhile, nothing is stored.
    The derivative blob is written before the rows that point at it (its key goes into `journal`).
    """
    # Locked first, before anything appends to the audit chain (every transaction takes its rows
    # before the chain head, or two of them can wait on each other), and re-read: a consent
    # withdrawal committed while the models ran must be seen here, not overwritten.
    clip = lock_clip(session, clip_id)
    if clip is None or clip.status != ClipStatus.pending:
        return ProcessResult(clip_id, "skipped", "no_longer_pending")
    if redactions is not None and _spans_of(clip.extra_redactions) != _spans_of(redactions):
        # A reviewer reported more audible personal data while the models ran: this result does
        # not bleep it. Nothing is stored; the clip stays pending and the next round redoes it.
        return ProcessResult(clip_id, "skipped", "redactions_changed")
    passes_for = passes_for or {}
    replaced: str | None = None
    now = utcnow()
    for st in result.stages:
        session.add(
            ClipStage(clip_id=clip.id, stage=st.stage, outcome=st.outcome, details=st.details, ms=st.ms, created_at=now)
        )
    clip.processed_at = now
    if result.outcome in ("held", "excluded"):
        clip.status = ClipStatus.held if result.outcome == "held" else ClipStatus.excluded
        clip.hold_reason = result.reason
    else:
        assert result.audio is not None
        dk = data_key(session, keyring, clip.account_id)
        wav = encode_wav(result.audio, TARGET_RATE)
        key = new_blob_key()
        journal.add(key)
        blobs.put(key, encrypt_blob(dk, wav, blob_key=key))
        replaced = clip.protected_blob_key
        clip.protected_blob_key = key
        clip.protected_sample_rate = TARGET_RATE
        clip.protected_num_samples = int(result.audio.size)
        # The wake-word team is shown no words, and nobody else reads a wake-word clip's: they were
        # needed to screen it and find personal data, and are not kept (often bystanders' words).
        words_kept = result.outcome != "wakeword"
        clip.redacted_text = result.redacted_text if words_kept else ""
        clip.hold_reason = None
        existing = session.get(ClipProtection, clip.id)
        if existing is not None:
            session.delete(existing)
            session.flush()
        sc = result.screening
        session.add(
            ClipProtection(
                clip_id=clip.id,
                transcript_source=result.transcript_source,
                transcript=result.transcript if words_kept else "",
                words=[[w.text, w.char_start, w.char_end, w.span.start, w.span.end] for w in result.words]
                if words_kept
                else [],
                aligned=result.aligned,
                pii=[{"start": p.start, "end": p.end, "type": p.type} for p in result.pii],
                audio_spans=[[s.start, s.end] for s in result.audio_spans],
                wholesale=result.wholesale,
                anonymizer=_jsonable(result.anonymizer),
                route=result.outcome,
                labels=sc.labels if sc else [],
                scores=sc.scores if sc else {},
                reasons=sc.reasons if sc else [],
                sensitivity=max([v for k, v in (sc.scores if sc else {}).items() if k in SENSITIVE_LABELS] or [0.0]),
            )
        )
        passes = passes_for.get(result.outcome, 1)
        enqueue(session, clip=clip, queue=QUEUE_FOR[result.outcome], passes=passes)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="pipeline.process",
        object_type="clip",
        object_id=clip.id,
        details={
            "outcome": result.outcome,
            "reason": result.reason,
            "pii_spans": len(result.pii),
            "wholesale": result.wholesale,
            "labels": result.screening.labels if result.screening else [],
        },
    )
    return ProcessResult(clip.id, result.outcome, result.reason, replaced if result.audio is not None else None)


def hold_clip(session: Session, *, actor: Actor, clip_id: int, reason: str) -> None:
    """Fail closed: a clip whose processing crashed is held with the reason. Audited; caller commits."""
    clip = lock_clip(session, clip_id)
    if clip is None or clip.status != ClipStatus.pending:
        return
    clip.status = ClipStatus.held
    clip.hold_reason = reason[:64]
    clip.processed_at = utcnow()
    audit.record(
        session,
        actor=actor,
        action="pipeline.hold",
        object_type="clip",
        object_id=clip.id,
        details={"reason": reason[:64]},
    )


def retry_held(session: Session, *, actor: Actor, consent_default: str) -> int:
    """Send clips held by a processing error (`error:...`: a missing blob put back, a model setting
    fixed) back to the pipeline. Only clips whose account still allows review and whose original
    is still held: a withdrawal does not touch held clips, so consent is checked here, under the
    accounts' share lock. Clips held for what they are (too short, no speech) stay. Audited with
    counts only; caller commits, then runs the pipeline."""
    from earmark.consent import allows_review, share_lock_accounts

    held = session.execute(
        select(Clip.id, Clip.account_id).where(
            Clip.status == ClipStatus.held,
            Clip.hold_reason.startswith("error:"),
            Clip.blob_key.is_not(None),
            Clip.erased_at.is_(None),
        )
    ).all()
    allowed = share_lock_accounts(session, {a for _, a in held}, allows_review(consent_default))
    ids = sorted(c for c, a in held if a in allowed)
    retried = 0
    for start in range(0, len(ids), 500):
        retried += session.execute(
            update(Clip)
            .where(Clip.id.in_(ids[start : start + 500]), Clip.status == ClipStatus.held)
            .values(status=ClipStatus.pending, hold_reason=None, processed_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    audit.record(
        session, actor=actor, action="pipeline.retry", details={"clips": retried, "skipped": len(held) - retried}
    )
    return int(retried)


def pending_clip_ids(session: Session, *, limit: int) -> list[int]:
    return list(
        session.execute(
            select(Clip.id).where(Clip.status == ClipStatus.pending).order_by(Clip.sampled_at, Clip.id).limit(limit)
        ).scalars()
    )


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float):
            v = round(v, 5)
        out[k] = v
    return out


def build_detector(settings: Any) -> SpeechDetector:
    """The speech detector named by settings."""
    from earmark import vad

    return vad.SileroVAD() if settings.vad == "silero" else vad.EnergyVAD()


def build_transcriber(settings: Any) -> Transcriber:
    """The transcriber named by settings (for tools that need only it, such as `earmark screen`)."""
    from earmark import transcribe

    if settings.transcriber == "whisper":
        bundled = settings.whisper_model == "tiny.en"
        return transcribe.WhisperTranscriber(model_dir=None if bundled else Path(settings.whisper_model))
    return transcribe.PocketsphinxTranscriber()


def build_components(settings: Any) -> Components:
    """The real models named by settings. Heavy imports happen here, once per process."""
    from earmark import align, pii

    detector, transcriber = build_detector(settings), build_transcriber(settings)
    try:
        anonymizer = by_name(settings.anonymizer, voice=settings.voice_model)
    except ValueError as exc:  # a damaged voice model file, or one trained on other encoder weights
        raise ConfigError(f"voice_model: {exc}") from exc
    return Components(
        vad=detector,
        transcriber=transcriber,
        aligner=align.PocketsphinxAligner(),
        pii=pii.SpokenPiiDetector(),
        anonymizer=anonymizer,
    )
