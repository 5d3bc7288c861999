"""The reviewer's work on one assignment: open it, hear its audio, submit an annotation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.crypto import Keyring, decrypt_blob
from earmark.errors import InvalidInput, LeaseExpired, NotFound, Withdrawn
from earmark.keys import data_key
from earmark.models import Annotation, Assignment, Clip, QueueItem, User, utcnow
from earmark.queues import user_actor
from earmark.storage import LocalBlobStore
from earmark.types import AssignmentState, ClipStatus, QueueState

INTENT_MAX = 64


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


def get_assignment(session: Session, *, user: User, assignment_id: str) -> Assignment:
    """The assignment, if it belongs to `user`. Someone else's id is reported as not found."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.user_id != user.id:
        raise NotFound("no such assignment")
    return assignment


def require_active(assignment: Assignment) -> None:
    now = utcnow()
    if assignment.state == AssignmentState.withdrawn:
        raise Withdrawn(
            "this clip was withdrawn from review (the customer withdrew consent or asked for erasure); "
            "nothing was saved"
        )
    if assignment.state == AssignmentState.expired or (
        assignment.state == AssignmentState.active and assignment.expires_at <= now
    ):
        raise LeaseExpired("your lease on this clip expired and it went back to the queue; nothing was saved")
    if assignment.state != AssignmentState.active:
        raise LeaseExpired("this assignment is closed")


def view_assignment(session: Session, *, user: User, assignment_id: str) -> ReviewView:
    assignment = get_assignment(session, user=user, assignment_id=assignment_id)
    require_active(assignment)
    clip = _protected(session, assignment)
    nlu = clip.device_nlu or {}
    left = int((assignment.expires_at - utcnow()).total_seconds())
    assert clip.protected_num_samples is not None and clip.protected_sample_rate
    return ReviewView(
        assignment_id=assignment.id,
        expires_at_iso=assignment.expires_at.isoformat(timespec="seconds"),
        seconds_left=max(left, 0),
        duration_seconds=round(clip.protected_num_samples / clip.protected_sample_rate, 2),
        language=clip.locale.split("-")[0],
        transcript=clip.redacted_text or "",
        intent=str(nlu.get("intent", "")),
    )


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


def submit_annotation(
    session: Session,
    *,
    actor: User,
    assignment_id: str,
    transcript: str,
    intent: str,
    max_transcript_chars: int = 2000,
) -> Annotation:
    """Store the reviewer's annotation and close the assignment. Audited; caller commits.

    A second submit of the same assignment returns the first annotation unchanged (double clicks,
    retried requests), so nothing is ever stored twice.
    """
    assignment = get_assignment(session, user=actor, assignment_id=assignment_id)
    if assignment.state == AssignmentState.submitted:
        existing = session.execute(select(Annotation).where(Annotation.assignment_id == assignment.id)).scalar_one()
        return existing
    require_active(assignment)
    text = clean_transcript(transcript, max_chars=max_transcript_chars)
    intent = " ".join(intent.split())
    if len(intent) > INTENT_MAX:
        raise InvalidInput(f"intent is longer than {INTENT_MAX} characters", field="intent")
    clip = session.get(Clip, assignment.clip_id)
    item = session.get(QueueItem, assignment.queue_item_id)
    assert clip is not None and item is not None
    if item.assignment_id != assignment.id or item.state != QueueState.leased:
        raise LeaseExpired("this clip was handed to someone else after your lease expired; nothing was saved")
    now = utcnow()
    annotation = Annotation(
        clip_id=clip.id,
        assignment_id=assignment.id,
        user_id=actor.id,
        transcript=text,
        intent=intent or None,
        created_at=now,
    )
    session.add(annotation)
    assignment.state = AssignmentState.submitted
    assignment.closed_at = now
    item.state = QueueState.done
    item.lease_expires_at = None
    clip.status = ClipStatus.reviewed
    session.flush()
    prior_intent = str((clip.device_nlu or {}).get("intent", ""))
    audit.record(
        session,
        actor=user_actor(actor),
        action="review.submit",
        object_type="assignment",
        object_id=assignment.id,
        details={"words": len(text.split()), "intent_changed": (intent or "") != prior_intent},
    )
    return annotation
