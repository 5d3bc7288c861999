"""The safety queue: only the `safety` role sees it. Each clip comes with the written protocol;
the reviewer records an outcome. Exposure limits protect people: after `max_clips` sensitive clips
in a window, a safety reviewer's queue pauses for a break."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from markdown_it import MarkdownIt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.errors import InvalidInput, NotFound
from earmark.models import Account, Assignment, AuditEvent, Clip, ClipProtection, QueueItem, SafetyOutcome, User, utcnow
from earmark.queues import GENERAL, SAFETY, enqueue, lease_next, user_actor
from earmark.review import close_pass, lock_pass, require_active
from earmark.sampling_policy import WAKE_WORD_REASON
from earmark.types import Actor, AssignmentState, ClipStatus
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


# -- escalations: the program owner's follow-up ---------------------------------------------------
# The safety team never learns whose a clip is. When it escalates (someone may be in danger), the
# program owner (an admin) reads the note, may look up the account to act through the proper
# channel, and records what was done. Each step is audited; the lookup is the only place earmark
# shows an account id to a person for a clip.

RESOLUTIONS: dict[str, str] = {
    "referred": "Referred to emergency services or the authorities",
    "contacted": "The customer was contacted through the proper channel",
    "no_action": "Looked into: no action possible or needed",
}


@dataclass(frozen=True, slots=True)
class Escalation:
    id: int
    clip_id: int
    escalated_at: datetime
    note: str | None  # gone with annotation retention or erasure
    labels: list[str]  # what screening found, if the pipeline's record is still kept
    resolution: str | None
    resolved_at: datetime | None
    account_looked_up: bool


def escalations(session: Session, *, open_only: bool = True, limit: int = 200) -> list[Escalation]:
    """Escalated safety outcomes, oldest open first (or every one, newest first)."""
    query = select(SafetyOutcome, ClipProtection.labels).outerjoin(
        ClipProtection, ClipProtection.clip_id == SafetyOutcome.clip_id
    )
    query = query.where(SafetyOutcome.outcome == "escalated")
    if open_only:
        query = query.where(SafetyOutcome.resolved_at.is_(None)).order_by(SafetyOutcome.id)
    else:
        query = query.order_by(SafetyOutcome.id.desc())
    rows = session.execute(query.limit(limit)).all()
    looked_up = set(
        session.execute(
            select(AuditEvent.object_id).where(
                AuditEvent.action == "safety.account_lookup",
                AuditEvent.object_type == "clip",
                AuditEvent.object_id.in_([str(r.clip_id) for r, _labels in rows]),
            )
        ).scalars()
    )
    return [
        Escalation(
            r.id,
            r.clip_id,
            r.created_at,
            r.note,
            list(labels or []),
            r.resolution,
            r.resolved_at,
            str(r.clip_id) in looked_up,
        )
        for r, labels in rows
    ]


def open_escalation_count(session: Session) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(SafetyOutcome)
            .where(SafetyOutcome.outcome == "escalated", SafetyOutcome.resolved_at.is_(None))
        ).scalar_one()
    )


def _open_escalation(session: Session, outcome_id: int) -> SafetyOutcome:
    row = session.execute(
        select(SafetyOutcome).where(SafetyOutcome.id == outcome_id).with_for_update()
    ).scalar_one_or_none()
    if row is None or row.outcome != "escalated":
        raise NotFound("no such escalation")
    if row.resolved_at is not None:
        raise InvalidInput("this escalation was closed already", field="escalation")
    return row


def look_up_account(session: Session, *, actor: Actor, outcome_id: int) -> str:
    """The account id of an open escalation's clip, for the program owner to act on. Audited
    (`safety.account_lookup`, by clip); caller commits. An erased account's id is gone: says so."""
    row = _open_escalation(session, outcome_id)
    external = session.execute(
        select(Account.external_id, Account.erased_at)
        .join(Clip, Clip.account_id == Account.id)
        .where(Clip.id == row.clip_id)
    ).one()
    audit.record(
        session, actor=actor, action="safety.account_lookup", object_type="clip", object_id=row.clip_id,
        details={"escalation": row.id},
    )  # fmt: skip
    if external.erased_at is not None:
        return "(erased: the customer asked for their data to be deleted)"
    return str(external.external_id)


def resolve_escalation(
    session: Session, *, actor: Actor, user_id: int | None, outcome_id: int, resolution: str
) -> None:
    """Close an escalation with what was done. Audited; caller commits."""
    if resolution not in RESOLUTIONS:
        raise InvalidInput(f"resolution must be one of {', '.join(RESOLUTIONS)}", field="resolution")
    row = _open_escalation(session, outcome_id)
    row.resolution = resolution
    row.resolved_by = user_id
    row.resolved_at = utcnow()
    audit.record(
        session, actor=actor, action="safety.resolve", object_type="clip", object_id=row.clip_id,
        details={"escalation": row.id, "resolution": resolution},
    )  # fmt: skip


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
