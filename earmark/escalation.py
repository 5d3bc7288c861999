"""The safety queue: only the `safety` role sees it. Each clip comes with the written protocol;
the reviewer records an outcome. Exposure limits protect people: after `max_clips` sensitive clips
in a window, a safety reviewer's queue pauses for a break."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path

from markdown_it import MarkdownIt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.errors import InvalidInput, NotFound
from earmark.models import Assignment, ClipProtection, QueueItem, SafetyOutcome, User, utcnow
from earmark.queues import GENERAL, SAFETY, enqueue, lease_next, user_actor
from earmark.review import close_pass, lock_pass, require_active
from earmark.sampling_policy import WAKE_WORD_REASON
from earmark.types import AssignmentState, ClipStatus
from earmark.wakeword import WAKEWORD, for_the_team

OUTCOMES = ("false_alarm", "handled", "escalated")


@dataclass(frozen=True, slots=True)
class SafetyLease:
    assignment: Assignment | None
    paused: bool
    heard_in_window: int


def heard_recently(session: Session, *, user: User, minutes: int) -> int:
    since = utcnow() - timedelta(minutes=minutes)
    return int(
        session.execute(
            select(func.count())
            .select_from(Assignment)
            .join(QueueItem, QueueItem.id == Assignment.queue_item_id)
            .where(Assignment.user_id == user.id, QueueItem.queue == SAFETY, Assignment.leased_at >= since)
        ).scalar_one()
    )


def pause_if_due(session: Session, *, actor: User, max_clips: int, window_minutes: int) -> int | None:
    """If `actor` heard `max_clips` safety clips in the window, record the pause and return how many
    they heard; else None. Audited; caller commits. Called when an outcome reaches the limit and
    when a lease is asked for during the pause (the queue's page only shows it)."""
    heard = heard_recently(session, user=actor, minutes=window_minutes)
    if heard < max_clips:
        return None
    audit.record(
        session, actor=user_actor(actor), action="safety.pause", object_type="user", object_id=actor.id,
        details={"clips": heard, "window": window_minutes},
    )  # fmt: skip
    return heard


def lease_safety(
    session: Session, *, actor: User, max_clips: int, window_minutes: int, lease_seconds: int
) -> SafetyLease:
    """The next safety clip, unless the exposure limit says it is time for a break. Audited."""
    heard = pause_if_due(session, actor=actor, max_clips=max_clips, window_minutes=window_minutes)
    if heard is not None:
        return SafetyLease(None, True, heard)
    assignment = lease_next(session, actor=actor, queue=SAFETY, lease_seconds=lease_seconds)
    if assignment is not None:
        audit.record(
            session, actor=user_actor(actor), action="safety.lease", object_type="assignment", object_id=assignment.id
        )
    return SafetyLease(assignment, False, heard)


def record_outcome(
    session: Session,
    *,
    actor: User,
    assignment_id: str,
    outcome: str,
    note: str,
    no_speech_route: str = "exclude",
) -> SafetyOutcome:
    """Close a safety clip: a false alarm goes back where the pipeline would have sent it (general
    review; a clip of the wake-word team's, `wakeword.for_the_team`, to its queue, or out of review
    if `no_speech_route` is `exclude` now); handled and escalated end here. A note is required for `handled` and
    `escalated`. Audited; caller commits."""
    if outcome not in OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    text = " ".join(note.split())
    if outcome != "false_alarm" and not text:
        raise InvalidInput("say what was done (the protocol asks for a note)", field="note")
    if len(text) > 2000:
        raise InvalidInput("the note is longer than 2000 characters", field="note")
    # Locked: a second submit of the same outcome (a double click) waits, then returns the first's.
    assignment, clip, item = lock_pass(session, user=actor, assignment_id=assignment_id)
    if assignment.state == AssignmentState.submitted:
        done = session.execute(
            select(SafetyOutcome)
            .where(SafetyOutcome.clip_id == assignment.clip_id, SafetyOutcome.user_id == actor.id)
            .order_by(SafetyOutcome.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if done is not None:
            return done
    require_active(assignment)
    if item is None or clip is None or item.queue != SAFETY:
        raise NotFound("no such safety clip")
    now = utcnow()
    row = SafetyOutcome(clip_id=clip.id, user_id=actor.id, outcome=outcome, note=text or None)
    session.add(row)
    close_pass(assignment, item, now)
    if outcome == "false_alarm":
        prot = session.get(ClipProtection, clip.id)
        if prot is not None:
            prot.sensitivity = 0.0
        if not for_the_team(session, clip):
            enqueue(session, clip=clip, queue=GENERAL)
        elif no_speech_route == "wakeword":
            enqueue(session, clip=clip, queue=WAKEWORD)
        else:
            clip.status = ClipStatus.excluded
            clip.hold_reason = "wake_word_sample" if clip.sample_reason == WAKE_WORD_REASON else "no_speech"
    else:
        clip.status = ClipStatus.reviewed
        # Kept by the safety team: never training data; an export that already holds it (its
        # earlier passes were labelled) is marked for `earmark export prune`.
        from earmark.export import mark_exports  # export -> quality -> queues; imported late

        mark_exports(session, [clip.id])
    audit.record(
        session, actor=user_actor(actor), action="safety.outcome", object_type="clip", object_id=clip.id,
        details={"outcome": outcome},
    )  # fmt: skip
    return row


DEFAULT_PROTOCOL = "safety_protocol.md"


def protocol_html(setting: str) -> str:
    """The written protocol as HTML: the setting's file, its text, or the built-in one."""
    if not setting:
        text = (resources.files("earmark") / "data" / DEFAULT_PROTOCOL).read_text(encoding="utf-8")
    elif setting.endswith(".md") and Path(setting).exists():
        text = Path(setting).read_text(encoding="utf-8")
    else:
        text = setting
    return MarkdownIt("commonmark", {"html": False}).render(text)
