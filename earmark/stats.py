"""Counts of what a workspace holds, aggregated in SQL (for `earmark stats` and the admin page)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from earmark.models import Account, Assignment, Clip, QueueItem
from earmark.queues import queue_depths
from earmark.types import AssignmentState


def workspace_stats(session: Session, *, consent_default: str) -> dict[str, object]:
    """Accounts by effective consent, clips by status, queue items by state, reviews done."""
    by_consent: dict[str, int] = {"allow": 0, "deny": 0}
    for value, count in session.execute(
        select(Account.human_review, func.count()).group_by(Account.human_review)
    ).all():
        key = value or consent_default
        by_consent[key] = by_consent.get(key, 0) + count
    clips = dict(session.execute(select(Clip.status, func.count()).group_by(Clip.status)).all())
    depths = queue_depths(session)
    reviewed = session.execute(
        select(func.count()).select_from(Assignment).where(Assignment.state == AssignmentState.submitted)
    ).scalar_one()
    total_items = session.execute(select(func.count()).select_from(QueueItem)).scalar_one()
    return {
        "accounts": {"total": sum(by_consent.values()), "by_consent": by_consent},
        "clips": {"total": sum(clips.values()), "by_status": clips},
        "queue": {
            "items": total_items,
            "queued": sum(d.get("queued", 0) for d in depths.values()),
            "leased": sum(d.get("leased", 0) for d in depths.values()),
            "by_queue": depths,
        },
        "reviewed": reviewed,
    }
