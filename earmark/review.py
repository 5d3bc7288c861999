"""The reviewer's work on one assignment: open it, hear its audio, submit an annotation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from earmark import audit
from earmark.audio import decode_mono, peaks
from earmark.catalog import load_inventory
from earmark.crypto import Keyring, decrypt_blob
from earmark.errors import Conflict, InvalidInput, LeaseExpired, NotFound, Withdrawn
from earmark.keys import data_key
from earmark.models import (
    Annotation,
    Assignment,
    Clip,
    ClipProtection,
    Entity,
    GoldAnswer,
    QueueItem,
    User,
    WakeAnswer,
    utcnow,
)
from earmark.quality import after_submit
from earmark.queues import SAFETY, SINGLE_JUDGEMENT, enqueue, lock_clip, record_events, user_actor, withdraw_clips
from earmark.storage import LocalBlobStore
from earmark.types import AssignmentState, ClipStatus, QueueState

INTENT_MAX = 64
MIN_REPORTED_SECONDS = 0.05  # the shortest range a missed-PII report may mark
SUPERSEDED = "superseded"  # an annotation kind: a pass made before a missed-PII report, its text gone


@dataclass(frozen=True, slots=True)
class ReviewView:
    """Everything a reviewer's page may show about a clip, and nothing else.

    No account id, device id, clip id, recording time or region: only the assignment's own random id.
    """

    assignment_id: str
    expires_at_iso: str
    seconds_left: int
    duration_seconds: float
    language: str
    transcript: str
    intent: str
    queue: str = "general"
    slots: list[dict[str, Any]] = field(default_factory=list)  # pre-filled from the device hypothesis
    passes: list[dict[str, Any]] = field(default_factory=list)  # adjudication: what the passes said
    labels: list[str] = field(default_factory=list)  # safety: why screening routed it
    reasons: list[str] = field(default_factory=list)


def prefill_slots(text: str, device_slots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Device slots whose value still appears in the (redacted) transcript, with offsets.

    >>> prefill_slots("play halo by beyonce", [{"type": "song", "value": "halo"}])
    [{'type': 'song', 'start': 5, 'end': 9, 'value': 'halo', 'entity_id': None}]
    """
    out = []
    for slot in device_slots or []:
        value = " ".join(str(slot.get("value", "")).split())
        m = re.search(rf"\b{re.escape(value)}\b", text) if value else None
        if m:
            out.append(
                {"type": str(slot.get("type")), "start": m.start(), "end": m.end(), "value": value, "entity_id": None}
            )
    return out


def get_assignment(session: Session, *, user: User, assignment_id: str, lock: bool = False) -> Assignment:
    """The assignment, if it belongs to `user`. Someone else's id is reported as not found.

    `lock` takes its row lock (PostgreSQL; SQLite transactions are serialized anyway) and reads it
    afresh: a concurrent change to the same pass waits, then sees what the first one stored.
    """
    assignment = session.get(Assignment, assignment_id, with_for_update=lock or None, populate_existing=lock)
    if assignment is None or assignment.user_id != user.id:
        raise NotFound("no such assignment")
    return assignment


def lock_pass(session: Session, *, user: User, assignment_id: str) -> tuple[Assignment, Clip | None, QueueItem | None]:
    """The caller's assignment with its clip and queue item, all three row-locked and read afresh
    (PostgreSQL), for a change to the pass. The order is account (key share), clip, queue item,
    assignment (then the audit head), the order a consent withdrawal or an erasure takes them in: a
    pass that held its assignment and item while a withdrawal held the clip deadlocked."""
    assignment = get_assignment(session, user=user, assignment_id=assignment_id)
    clip = lock_clip(session, assignment.clip_id)
    item = session.get(QueueItem, assignment.queue_item_id, with_for_update={"key_share": True}, populate_existing=True)
    return get_assignment(session, user=user, assignment_id=assignment_id, lock=True), clip, item


def queue_of(session: Session, *, user: User, assignment_id: str) -> str:
    """Which queue the caller's assignment came from."""
    assignment = get_assignment(session, user=user, assignment_id=assignment_id)
    item = session.get(QueueItem, assignment.queue_item_id)
    return item.queue if item else "general"


def require_active(assignment: Assignment) -> None:
    now = utcnow()
    if assignment.state == AssignmentState.withdrawn:
        raise Withdrawn(
            "this clip was withdrawn from review (it was reported as distressing or as holding audible "
            "personal data, or the customer withdrew consent or asked for erasure); nothing was saved"
        )
    if assignment.state == AssignmentState.expired or (
        assignment.state == AssignmentState.active and assignment.expires_at <= now
    ):
        raise LeaseExpired("your lease on this clip expired and it went back to the queue; nothing was saved")
    if assignment.state == AssignmentState.released:
        raise LeaseExpired(
            "this clip went back to its queue (you opened another queue, or your role changed); nothing was saved"
        )
    if assignment.state != AssignmentState.active:
        raise LeaseExpired("this assignment is closed")


def view_assignment(session: Session, *, user: User, assignment_id: str) -> ReviewView:
    assignment = get_assignment(session, user=user, assignment_id=assignment_id)
    require_active(assignment)
    clip = _protected(session, assignment)
    nlu = clip.device_nlu or {}
    left = int((assignment.expires_at - utcnow()).total_seconds())
    assert clip.protected_num_samples is not None and clip.protected_sample_rate
    item = session.get(QueueItem, assignment.queue_item_id)
    queue = item.queue if item else "general"
    text = clip.redacted_text or ""
    passes: list[dict[str, Any]] = []
    if queue == "adjudication":
        for a in session.execute(
            select(Annotation).where(Annotation.clip_id == clip.id, Annotation.kind == "label").order_by(Annotation.id)
        ).scalars():
            passes.append({"transcript": a.transcript, "intent": a.intent or "", "slots": a.slots})
    prot = session.get(ClipProtection, clip.id) if queue == "safety" else None
    if queue == "wakeword":
        # The wake-word team says what woke the device from the audio alone: no words the device
        # or the transcriber heard, no guessed intent (they would bias the answer, and people
        # talking nearby never spoke to the assistant).
        text, nlu = "", {}
    return ReviewView(
        assignment_id=assignment.id,
        expires_at_iso=assignment.expires_at.isoformat(timespec="seconds"),
        seconds_left=max(left, 0),
        duration_seconds=round(clip.protected_num_samples / clip.protected_sample_rate, 2),
        language=clip.locale.split("-")[0],
        transcript=passes[0]["transcript"] if passes else text,
        intent=passes[0]["intent"] if passes else str(nlu.get("intent", "")),
        queue="general" if queue == "gold" else queue,  # a gold clip looks like any other to the reviewer
        slots=prefill_slots(text, nlu.get("slots") or []) if not passes else list(passes[0]["slots"]),
        passes=passes,
        labels=list(prot.labels) if prot else [],
        reasons=list(prot.reasons) if prot else [],
    )


def assignment_peaks(
    session: Session, *, user: User, assignment_id: str, blobs: LocalBlobStore, keyring: Keyring, buckets: int = 400
) -> list[float]:
    """Waveform peaks of the protected clip, for drawing (no audio leaves the server this way)."""
    assignment = get_assignment(session, user=user, assignment_id=assignment_id)
    # Share-locked and read afresh: a withdrawal or erasure updates the assignment, so it either
    # waits for this listen or is seen here; audio went out after an erasure had committed.
    session.refresh(assignment, with_for_update={"read": True})
    require_active(assignment)
    clip = _protected(session, assignment)
    assert clip.protected_blob_key is not None
    dk = data_key(session, keyring, clip.account_id)
    x, _ = decode_mono(decrypt_blob(dk, blobs.get(clip.protected_blob_key), blob_key=clip.protected_blob_key))
    p = peaks(x, buckets)
    top = float(p.max()) or 1.0
    return [round(float(v) / top, 3) for v in p]


def _protected(session: Session, assignment: Assignment) -> Clip:
    """The assignment's clip, which must have its protected derivative (fail closed)."""
    clip = session.get(Clip, assignment.clip_id)
    if clip is None or not clip.protected_blob_key or clip.redacted_text is None:
        raise NotFound("this clip has no protected version; it cannot be reviewed")
    return clip


def assignment_audio(
    session: Session, *, user: User, assignment_id: str, blobs: LocalBlobStore, keyring: Keyring
) -> bytes:
    """The protected derivative (redacted, anonymized, bare 16 kHz WAV) of an active assignment's
    clip. Never the original. Audited."""
    assignment = get_assignment(session, user=user, assignment_id=assignment_id)
    # Share-locked and read afresh: a withdrawal or erasure updates the assignment, so it either
    # waits for this listen or is seen here; audio went out after an erasure had committed.
    session.refresh(assignment, with_for_update={"read": True})
    require_active(assignment)
    clip = _protected(session, assignment)
    assert clip.protected_blob_key is not None
    dk = data_key(session, keyring, clip.account_id)
    wav = decrypt_blob(dk, blobs.get(clip.protected_blob_key), blob_key=clip.protected_blob_key)
    audit.record(
        session,
        actor=user_actor(user),
        action="review.audio",
        object_type="assignment",
        object_id=assignment.id,
        details={"bytes": len(wav)},
    )
    return wav


def clean_transcript(text: str, *, max_chars: int) -> str:
    """Normalize whitespace and drop control characters; refuse overlong text."""
    cleaned = "".join(ch if ch.isprintable() or ch == " " else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > max_chars:
        raise InvalidInput(f"transcript is {len(cleaned)} characters; the limit is {max_chars}", field="transcript")
    return cleaned


class SlotIn(BaseModel):
    """A slot the reviewer tagged: a character range of the submitted transcript, its type, and
    optionally the catalog entity it refers to."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=64)
    start: int = Field(ge=0)
    end: int = Field(gt=0)
    entity_id: str | None = Field(None, max_length=128)


FLAGS = ("accidental_activation", "unintelligible", "not_english")
SKIP_REASONS = ("cannot_hear", "too_hard", "conflict_of_interest", "technical_problem", "other")


def _check_nlu(session: Session, text: str, intent: str, slots: list[SlotIn]) -> list[dict[str, Any]]:
    """Validate intent and slots against the project inventory; return slots as stored."""
    inventory = load_inventory(session)
    if intent and not inventory.empty and intent not in inventory.intents:
        raise InvalidInput(f"unknown intent {intent!r}; choose one of the project's intents", field="intent")
    out = []
    for slot in slots:
        if slot.end > len(text) or slot.start >= slot.end:
            raise InvalidInput(f"slot {slot.type!r} does not lie inside the transcript", field="slots")
        if inventory.slots and slot.type not in inventory.slots:
            raise InvalidInput(f"unknown slot type {slot.type!r}", field="slots")
        value = text[slot.start : slot.end]
        if "[" in value or "]" in value:
            raise InvalidInput("a slot cannot cover a redacted placeholder", field="slots")
        if slot.entity_id is not None:
            entity = session.get(Entity, slot.entity_id)
            if entity is None:
                raise InvalidInput(f"unknown catalog entity {slot.entity_id!r}", field="slots")
            if inventory.slots and inventory.slots.get(slot.type) != entity.type:
                # "bananas" (item) linked to artist:beyonce reached the NLU exports this way.
                raise InvalidInput(
                    f"a {slot.type!r} slot cannot link to a {entity.type!r} entity"
                    + ("" if inventory.slots.get(slot.type) else f"; {slot.type!r} slots link to no entity"),
                    field="slots",
                )
        out.append(
            {"type": slot.type, "start": slot.start, "end": slot.end, "value": value, "entity_id": slot.entity_id}
        )
    return out


def _placeholders(text: str) -> list[str]:
    return re.findall(r"\[[A-Z_]+\]", text)


def open_pass(session: Session, actor: User, assignment_id: str) -> tuple[Assignment, Clip, QueueItem] | Annotation:
    # Locked: two submits of one pass at once (a double click, a retried request) must not both
    # store an annotation; the second waits and then returns the first's.
    assignment, clip, item = lock_pass(session, user=actor, assignment_id=assignment_id)
    if assignment.state == AssignmentState.submitted:
        done = session.execute(select(Annotation).where(Annotation.assignment_id == assignment.id)).scalar_one_or_none()
        if done is None:  # closed by a safety outcome, which is not an annotation
            raise NotFound("no such review clip")
        return done
    require_active(assignment)
    assert clip is not None and item is not None
    if item.assignment_id != assignment.id or item.state != QueueState.leased:
        raise LeaseExpired("this clip was handed to someone else after your lease expired; nothing was saved")
    return assignment, clip, item


def kept_ms(ms: int | None) -> int | None:
    """A page's own timing of a pass, kept if it is plausible (under a day), else dropped."""
    return ms if ms is None or 0 <= ms < 86_400_000 else None


def close_pass(assignment: Assignment, item: QueueItem, now: datetime) -> None:
    """The pass is done: its assignment submitted, its queue item done (the caller stores what
    was said, under the locks `lock_pass` took)."""
    assignment.state = AssignmentState.submitted
    assignment.closed_at = now
    item.state = QueueState.done
    item.lease_expires_at = None


def submit_annotation(
    session: Session,
    *,
    actor: User,
    assignment_id: str,
    transcript: str,
    intent: str,
    slots: list[SlotIn] | None = None,
    flag: str | None = None,
    mode: str | None = None,
    ms: int | None = None,
    max_transcript_chars: int = 2000,
    disagreement_wer: float = 0.2,
    probation_extra_passes: int = 1,
) -> Annotation:
    """Store the reviewer's annotation (or flag) and close the assignment. Audited; caller commits.

    A second submit of the same assignment with the same content returns the first annotation
    unchanged (double clicks, retried requests), so nothing is ever stored twice; with other content
    (a second tab) it is a Conflict. Redacted placeholders ([PHONE]...) must
    survive editing: personal data cannot be typed back into a transcript.
    """
    opened = open_pass(session, actor, assignment_id)
    text = clean_transcript(transcript, max_chars=max_transcript_chars)
    intent = " ".join(intent.split())
    if isinstance(opened, Annotation) and opened.kind == "wakeword":
        raise NotFound("no such review clip")
    if isinstance(opened, Annotation):
        sent_slots = sorted((sl.type, sl.start, sl.end, sl.entity_id or None) for sl in slots or [])
        kept_slots = sorted(
            (str(x.get("type")), int(x.get("start", 0)), int(x.get("end", 0)), x.get("entity_id") or None)
            for x in opened.slots or []
        )
        if not opened.transcript and opened.transcript != text:
            # The pass was superseded since (a missed-PII report emptied its text): say that.
            raise Withdrawn("this clip was withdrawn from review after this pass; nothing was saved")
        sent = (text, intent, [flag] if flag else [], sent_slots if flag is None else [])
        if (opened.transcript, opened.intent or "", opened.flags or [], kept_slots) != sent:
            # The same pass submitted from a second tab or window with other content: say so,
            # rather than drop these changes in silence.
            raise Conflict(
                "this clip was already submitted (from another tab or window) with other content; "
                "what you changed here was not saved"
            )
        return opened
    assignment, clip, item = opened
    if item.queue in SINGLE_JUDGEMENT:  # the safety team and the wake-word team record their own way
        raise NotFound("no such review clip")
    if len(intent) > INTENT_MAX:
        raise InvalidInput(f"intent is longer than {INTENT_MAX} characters", field="intent")
    if flag is not None and flag not in FLAGS:
        raise InvalidInput(f"unknown flag {flag!r}; one of {', '.join(FLAGS)}", field="flag")
    if mode not in (None, "verify", "edit"):
        raise InvalidInput("mode must be verify or edit", field="mode")
    # Adjudication too: a senior cannot type personal data back in either.
    if sorted(_placeholders(text)) != sorted(_placeholders(clip.redacted_text or "")):
        raise InvalidInput("the redacted placeholders ([PERSON], [PHONE]...) must stay as they are", field="transcript")
    stored_slots = _check_nlu(session, text, intent, slots or []) if flag is None else []
    now = utcnow()
    kind = "adjudication" if item.queue == "adjudication" else ("flag" if flag else "label")
    annotation = Annotation(
        clip_id=clip.id,
        assignment_id=assignment.id,
        user_id=actor.id,
        transcript=text,
        intent=intent or None,
        created_at=now,
        kind=kind,
        slots=stored_slots,
        flags=[flag] if flag else [],
        mode=mode,
        ms=kept_ms(ms),
    )
    session.add(annotation)
    close_pass(assignment, item, now)
    session.flush()
    prior_intent = str((clip.device_nlu or {}).get("intent", ""))
    audit.record(
        session,
        actor=user_actor(actor),
        action="review.flag" if flag else ("review.adjudicate" if kind == "adjudication" else "review.submit"),
        object_type="assignment",
        object_id=assignment.id,
        details={"flag": flag} if flag else {
            "words": len(text.split()), "intent_changed": (intent or "") != prior_intent,
            "slots": len(stored_slots), "mode": mode,
        },
    )  # fmt: skip
    after_submit(
        session,
        actor=user_actor(actor),
        user=actor,
        clip=clip,
        item=item,
        annotation=annotation,
        disagreement_wer=disagreement_wer,
        probation_extra_passes=probation_extra_passes,
    )
    return annotation


def skip_assignment(session: Session, *, actor: User, assignment_id: str, reason: str) -> None:
    """Give a clip back: it returns to the queue for someone else, never to this reviewer. Audited."""
    if reason not in SKIP_REASONS:
        raise InvalidInput(f"unknown reason {reason!r}; one of {', '.join(SKIP_REASONS)}", field="reason")
    opened = open_pass(session, actor, assignment_id)
    if isinstance(opened, Annotation):
        return
    assignment, _clip, item = opened
    now = utcnow()
    assignment.state = AssignmentState.skipped
    assignment.closed_at = now
    item.state = QueueState.queued
    item.lease_expires_at = None
    item.assignment_id = None
    audit.record(
        session, actor=user_actor(actor), action="review.skip", object_type="assignment", object_id=assignment.id,
        details={"reason": reason},
    )  # fmt: skip


def report_missed_pii(session: Session, *, actor: User, assignment_id: str, start: float, end: float) -> None:
    """The reviewer heard personal data the pipeline left audible (seconds of the clip): the clip is
    withdrawn at once from every queue, the span added to its redactions, and it goes back through
    the pipeline, which re-queues the re-protected clip. Audited; caller commits."""
    opened = open_pass(session, actor, assignment_id)
    if isinstance(opened, Annotation):
        raise InvalidInput("this clip was already submitted", field="assignment")
    _assignment, clip, _item = opened
    rate = clip.protected_sample_rate or 16_000
    total = clip.protected_num_samples or 0
    if not 0 <= start < end or end * rate > total + rate // 10:
        raise InvalidInput(f"the span must lie inside the clip (0 to {total / rate:.2f} s)", field="span")
    span = [int(start * rate), min(total, int(end * rate))]
    if span[1] - span[0] < MIN_REPORTED_SECONDS * rate:
        # Marked at the very end of the clip, or start and end at one moment: nothing would be
        # bleeped, and the clip would come back as it was.
        raise InvalidInput(
            "the range is empty or too short: mark where the personal data is heard "
            f"(at least {MIN_REPORTED_SECONDS} s, Alt+[ at its start and Alt+] at its end)",
            field="span",
        )
    events: list[dict[str, Any]] = []  # recorded after the rows below (docs/architecture.md)
    withdraw_clips(session, actor=user_actor(actor), clip_ids=[clip.id], reason="pii_missed", events=events)
    # Earlier passes were typed while the personal data was audible: their text goes, and they no
    # longer count as labels (the re-protected clip gets fresh passes, compared among themselves).
    superseded = session.execute(
        update(Annotation)
        .where(Annotation.clip_id == clip.id, Annotation.kind != SUPERSEDED)
        .values(kind=SUPERSEDED, transcript="", slots=[])
    ).rowcount
    # A gold answer taken from those passes goes too: its text was typed with the data audible,
    # and it no longer matches the re-protected clip.
    gold = session.execute(delete(GoldAnswer).where(GoldAnswer.clip_id == clip.id)).rowcount
    session.execute(delete(WakeAnswer).where(WakeAnswer.clip_id == clip.id))  # a superseded answer counts no more
    clip.extra_redactions = [*(clip.extra_redactions or []), span]
    clip.status = ClipStatus.pending  # back through the pipeline before anyone hears it again
    record_events(session, events)
    audit.record(
        session, actor=user_actor(actor), action="review.pii_missed", object_type="clip", object_id=clip.id,
        details={"spans": len(clip.extra_redactions), "passes_superseded": superseded, "gold_removed": gold},
    )  # fmt: skip


def flag_sensitive(session: Session, *, actor: User, assignment_id: str) -> None:
    """The reviewer met distressing content: the clip leaves their screen and every general queue
    at once for the safety queue, and the reviewer gets no near-sensitive clip for the rest of the
    day. Audited; caller commits."""
    opened = open_pass(session, actor, assignment_id)
    if isinstance(opened, Annotation):
        raise InvalidInput("this clip was already submitted", field="assignment")
    _assignment, clip, _item = opened
    events: list[dict[str, Any]] = []  # recorded after the user row below: a login locks it, then the head
    withdraw_clips(session, actor=user_actor(actor), clip_ids=[clip.id], reason="sensitive", events=events)
    enqueue(session, clip=clip, queue=SAFETY)
    # Distressing content is never a gold clip (gold clips are heard by every reviewer).
    gold = session.execute(delete(GoldAnswer).where(GoldAnswer.clip_id == clip.id)).rowcount
    actor.sensitive_blocked_on = utcnow().date().isoformat()
    record_events(session, events)
    audit.record(
        session, actor=user_actor(actor), action="review.sensitive", object_type="clip", object_id=clip.id,
        details={"gold_removed": gold},
    )  # fmt: skip
