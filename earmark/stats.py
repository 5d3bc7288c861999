"""Counts of what a workspace holds, aggregated in SQL (for `earmark stats` and the admin page)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from earmark.models import Account, Annotation, Assignment, Clip, GoldAnswer, QueueItem, User, utcnow
from earmark.quality import agreement, gold_accuracy
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
    # Passes submitted on clips still held (an erasure keeps its passes' rows as ids only).
    reviewed = session.execute(
        select(func.count())
        .select_from(Assignment)
        .join(Clip, Clip.id == Assignment.clip_id)
        .where(Assignment.state == AssignmentState.submitted, Clip.erased_at.is_(None))
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


def reviewer_stats(session: Session, *, user_id: int) -> dict[str, object]:
    """A reviewer's own day: clips done today, median seconds per clip, gold accuracy."""
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    mine = select(Annotation.ms).where(Annotation.user_id == user_id, Annotation.created_at >= today)
    done = session.execute(select(func.count()).select_from(mine.subquery())).scalar_one()
    timed = mine.where(Annotation.ms.is_not(None)).order_by(Annotation.ms)
    n_timed = session.execute(select(func.count()).select_from(timed.subquery())).scalar_one()
    median_ms = session.execute(timed.offset(n_timed // 2).limit(1)).scalar_one_or_none() if n_timed else None
    gold_n, gold_acc = gold_accuracy(session, user_id=user_id)
    return {
        "clips_today": done,
        "median_seconds": round(median_ms / 1000, 1) if median_ms is not None else None,
        "gold_answers": gold_n,
        "gold_accuracy": gold_acc,
    }


def program_stats(session: Session) -> dict[str, object]:
    """The admin dashboard: clips per hour per queue (24 h), oldest waiting clip, agreement."""
    now = utcnow()
    since = now - timedelta(hours=24)
    per_hour = session.execute(
        select(QueueItem.queue, func.count())
        .select_from(Assignment)
        .join(QueueItem, QueueItem.id == Assignment.queue_item_id)
        .where(Assignment.state == AssignmentState.submitted, Assignment.closed_at >= since)
        .group_by(QueueItem.queue)
    ).all()
    oldest = session.execute(
        select(QueueItem.queue, func.min(QueueItem.enqueued_at))
        .where(QueueItem.state.in_(["queued", "leased"]))
        .group_by(QueueItem.queue)
    ).all()
    gold_n, gold_acc = gold_accuracy(session)
    return {
        "clips_per_hour": {q: round(n / 24, 2) for q, n in per_hour},
        "oldest_waiting_minutes": {q: int((now - t).total_seconds() // 60) for q, t in oldest if t is not None},
        "agreement": agreement(session),
        "gold": {
            "answers": gold_n,
            "accuracy": gold_acc,
            "clips": session.execute(select(func.count()).select_from(GoldAnswer)).scalar_one(),
        },
    }


def reviewer_table(session: Session, *, page: int = 1, per_page: int = 50) -> tuple[list[dict[str, object]], int]:
    """One page of people who review: clips today, mean seconds per clip today, gold accuracy.
    Aggregated in SQL with a page of users at a time; returns (rows, total users)."""
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    reviewers = select(User.id).where(User.role.in_(["reviewer", "senior", "wakeword"]), User.active.is_(True))
    total = session.execute(select(func.count()).select_from(reviewers.subquery())).scalar_one()
    users = session.execute(
        select(User.id, User.username, User.role, User.probation)
        .where(User.id.in_(reviewers))
        .order_by(User.username)
        .offset(max(page - 1, 0) * per_page)
        .limit(per_page)
    ).all()
    ids = [u.id for u in users]
    day = {
        uid: (n, avg_ms)
        for uid, n, avg_ms in session.execute(
            select(Annotation.user_id, func.count(), func.avg(Annotation.ms))
            .where(Annotation.user_id.in_(ids), Annotation.created_at >= today)
            .group_by(Annotation.user_id)
        ).all()
    }
    gold = {
        uid: (n, correct)
        for uid, n, correct in session.execute(
            select(
                Annotation.user_id,
                func.count(),
                func.sum(cast(Annotation.gold_correct, Integer)),
            )
            .where(Annotation.user_id.in_(ids), Annotation.gold_correct.is_not(None))
            .group_by(Annotation.user_id)
        ).all()
    }
    rows: list[dict[str, object]] = []
    for u in users:
        n, avg_ms = day.get(u.id, (0, None))
        g_n, g_ok = gold.get(u.id, (0, 0))
        rows.append(
            {
                "username": u.username,
                "role": u.role,
                "probation": bool(u.probation),
                "clips_today": int(n),
                "mean_seconds": round(float(avg_ms) / 1000, 1) if avg_ms is not None else None,
                "gold_answers": int(g_n),
                "gold_accuracy": round(float(g_ok or 0) / g_n, 4) if g_n else None,
            }
        )
    return rows, int(total)
