"""Retention: each class of data is kept for its configured number of days, then purged.

| class        | clock starts at          | what goes                                             |
|--------------|--------------------------|-------------------------------------------------------|
| original     | ingest                   | the original audio blob                               |
| derivative   | pipeline run             | the protected audio blob; the clip leaves its queue    |
| transcript   | ingest                   | device hypotheses, pipeline transcripts, redacted text |
| annotation   | submission               | reviewers' annotations                                |
| audit        | never                    | ids only; deleting rows would break the chain: refused |

Rows stay as tombstones (ids, dates, statuses) so counts and reports remain true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from earmark import audit
from earmark.errors import InvalidInput
from earmark.models import (
    CLIP_TEXT,
    Account,
    Annotation,
    Clip,
    ClipProtection,
    GoldAnswer,
    HelpRequest,
    SafetyOutcome,
    utcnow,
)
from earmark.queues import record_events, withdraw_clips
from earmark.types import Actor, ClipStatus


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days to keep each data class; None keeps it until erasure."""

    original_days: int | None = 90
    derivative_days: int | None = 30
    transcript_days: int | None = 90
    annotation_days: int | None = 365
    audit_days: int | None = None

    def check(self) -> None:
        if self.audit_days is not None:
            raise InvalidInput(
                "retention_audit_days must be unset: audit rows hold ids and counts only, and deleting "
                "any would break the hash chain that proves nothing was changed; export and archive them "
                "with `earmark audit export` instead",
                field="retention_audit_days",
            )
        for name in ("original_days", "derivative_days", "transcript_days", "annotation_days"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidInput("must be zero or more days", field=f"retention_{name}")


@dataclass
class RetentionResult:
    originals: int = 0
    derivatives: int = 0
    transcripts: int = 0
    annotations: int = 0
    withdrawn: int = 0
    blob_keys: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "originals": self.originals,
            "derivatives": self.derivatives,
            "transcripts": self.transcripts,
            "annotations": self.annotations,
            "withdrawn": self.withdrawn,
        }


def _before(days: int | None, now: datetime) -> datetime | None:
    return None if days is None else now - timedelta(days=days)


def run_retention(
    session: Session, *, actor: Actor, policy: RetentionPolicy, now: datetime | None = None
) -> RetentionResult:
    """Purge what is past its time. Audited (counts only); caller commits, then deletes
    `result.blob_keys` from the blob store."""
    policy.check()
    now = now or utcnow()
    result = RetentionResult()
    _lock_candidates(session, policy, now)
    events: list[dict[str, Any]] = []  # recorded after the last sweep's row changes

    cutoff = _before(policy.original_days, now)
    if cutoff is not None:
        rows = session.execute(
            select(Clip.id, Clip.blob_key).where(Clip.blob_key.is_not(None), Clip.ingested_at < cutoff)
        ).all()
        ids = [r.id for r in rows]
        result.blob_keys += [r.blob_key for r in rows]
        result.originals = len(ids)
        for chunk in _chunks(ids):
            session.execute(
                update(Clip)
                .where(Clip.id.in_(chunk))
                .values(blob_key=None, content_mac=None, original_purged_at=now)
                .execution_options(synchronize_session=False)
            )
        # A clip still waiting for the pipeline can no longer be protected: it leaves review.
        pending = (
            list(session.execute(select(Clip.id).where(Clip.id.in_(ids), Clip.status == ClipStatus.pending)).scalars())
            if ids
            else []
        )
        result.withdrawn += withdraw_clips(session, actor=actor, clip_ids=pending, reason="retention", events=events)

    cutoff = _before(policy.derivative_days, now)
    if cutoff is not None:
        rows = session.execute(
            select(Clip.id, Clip.protected_blob_key).where(
                Clip.protected_blob_key.is_not(None), Clip.processed_at < cutoff
            )
        ).all()
        ids = [r.id for r in rows]
        result.blob_keys += [r.protected_blob_key for r in rows]
        result.derivatives = len(ids)
        result.withdrawn += withdraw_clips(session, actor=actor, clip_ids=ids, reason="retention", events=events)
        for chunk in _chunks(ids):
            session.execute(
                update(Clip)
                .where(Clip.id.in_(chunk))
                .values(protected_blob_key=None, derivative_purged_at=now)
                .execution_options(synchronize_session=False)
            )

    cutoff = _before(policy.transcript_days, now)
    if cutoff is not None:
        ids = list(
            # Not an erased clip's: erasure took its text already.
            session.execute(
                select(Clip.id).where(
                    Clip.text_purged_at.is_(None), Clip.erased_at.is_(None), Clip.ingested_at < cutoff
                )
            ).scalars()
        )
        result.transcripts = len(ids)
        # Without its text a clip cannot be reviewed: queued ones leave their queue first.
        queued = [
            cid
            for chunk in _chunks(ids)
            for cid in session.execute(
                select(Clip.id).where(Clip.id.in_(chunk), Clip.status.in_([ClipStatus.queued, ClipStatus.pending]))
            ).scalars()
        ]
        result.withdrawn += withdraw_clips(session, actor=actor, clip_ids=queued, reason="retention", events=events)
        for chunk in _chunks(ids):
            session.execute(
                update(Clip)
                .where(Clip.id.in_(chunk))
                .values(**CLIP_TEXT, text_purged_at=now)
                .execution_options(synchronize_session=False)
            )
            session.execute(delete(ClipProtection).where(ClipProtection.clip_id.in_(chunk)))
            # A gold answer is the clip's transcript, typed by an admin: it goes with the transcript.
            session.execute(delete(GoldAnswer).where(GoldAnswer.clip_id.in_(chunk)))

    cutoff = _before(policy.annotation_days, now)
    if cutoff is not None:
        result.annotations = session.execute(delete(Annotation).where(Annotation.created_at < cutoff)).rowcount or 0
        # Help questions and answers are reviewers' words about a clip: they go with the annotations.
        result.annotations += session.execute(delete(HelpRequest).where(HelpRequest.created_at < cutoff)).rowcount or 0
        # So are the safety team's notes; the outcome itself (an enum) stays for the exposure figures.
        result.annotations += (
            session.execute(
                update(SafetyOutcome)
                .where(SafetyOutcome.created_at < cutoff, SafetyOutcome.note.is_not(None))
                .values(note=None)
                .execution_options(synchronize_session=False)
            ).rowcount
            or 0
        )

    record_events(session, events)
    audit.record(session, actor=actor, action="retention.run", details=result.counts())
    return result


def _lock_candidates(session: Session, policy: RetentionPolicy, now: datetime) -> None:
    """Lock, in id order, every clip a sweep below may change, before the first audit event takes
    the chain's head (PostgreSQL): the pipeline holds a clip while it waits for the head, so the
    other order deadlocks (docs/architecture.md). SQLite: a plain read."""
    due = []
    if (cutoff := _before(policy.original_days, now)) is not None:
        due.append(and_(Clip.blob_key.is_not(None), Clip.ingested_at < cutoff))
    if (cutoff := _before(policy.derivative_days, now)) is not None:
        due.append(and_(Clip.protected_blob_key.is_not(None), Clip.processed_at < cutoff))
    if (cutoff := _before(policy.transcript_days, now)) is not None:
        due.append(and_(Clip.text_purged_at.is_(None), Clip.ingested_at < cutoff))
    if due:  # accounts first (key share), as queues.lock_clip takes them
        accounts = select(Clip.account_id).where(or_(*due))
        session.execute(
            select(Account.id)
            .where(Account.id.in_(accounts))
            .order_by(Account.id)
            .with_for_update(read=True, key_share=True)
        ).all()
        # FOR UPDATE: the sweeps clear unique columns (blob keys); see queues.lock_account_clips.
        session.execute(select(Clip.id).where(or_(*due)).order_by(Clip.id).with_for_update()).all()


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
