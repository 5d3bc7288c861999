"""Review queues: enqueue, lease (one holder per clip, also under concurrency), withdraw."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, Row, and_, distinct, func, or_, select, update
from sqlalchemy.orm import Session

from earmark import audit
from earmark.models import (
    Account,
    Assignment,
    Clip,
    ClipProtection,
    HelpRequest,
    QueueItem,
    SafetyOutcome,
    User,
    utcnow,
)
from earmark.types import Actor, AssignmentState, ClipStatus, QueueState

GENERAL = "general"
SAFETY = "safety"
WAKEWORD = "wakeword"  # clips without speech, for the wake-word team (earmark.wakeword)
# Queues where one person makes one judgement of a clip, not one of K independent passes: there
# a person whose lease on a clip ran out may take it again (a team of one would never see it
# again), but not one who judged it, flagged it or reported it.
SINGLE_JUDGEMENT = (SAFETY, WAKEWORD)
LEASE_CANDIDATES = 8


def user_actor(user: User) -> Actor:
    return Actor("user", user.id, user.role)


def enqueue(session: Session, *, clip: Clip, queue: str = GENERAL, passes: int = 1) -> list[QueueItem]:
    """Put `clip` in `queue` for `passes` independent reviews, one item per pass (no audit of its
    own: the caller's event covers it). Pass numbers continue after earlier ones (re-queues)."""
    last = session.execute(
        select(func.max(QueueItem.pass_no)).where(QueueItem.clip_id == clip.id, QueueItem.queue == queue)
    ).scalar_one()
    items = []
    for n in range(passes):
        item = QueueItem(clip_id=clip.id, queue=queue, state=QueueState.queued, pass_no=(last or 0) + n + 1)
        session.add(item)
        items.append(item)
    clip.status = ClipStatus.queued
    return items


def _available(now: datetime):  # type: ignore[no-untyped-def]
    return or_(
        QueueItem.state == QueueState.queued,
        and_(QueueItem.state == QueueState.leased, QueueItem.lease_expires_at < now),
    )


def active_assignment(session: Session, *, user: User, now: datetime | None = None) -> Assignment | None:
    """The clip `user` holds right now, if any (a reviewer holds at most one)."""
    now = now or utcnow()
    return session.execute(
        select(Assignment)
        .where(
            Assignment.user_id == user.id,
            Assignment.state == AssignmentState.active,
            Assignment.expires_at > now,
        )
        .order_by(Assignment.leased_at.desc())
        .limit(1)
    ).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Held:
    """The clip a person holds, seen from a set of queues: `resumed` if it belongs to one of them,
    else `elsewhere` (with its queue); both None if they hold nothing."""

    resumed: Assignment | None = None
    elsewhere: Assignment | None = None
    elsewhere_queue: str | None = None


def held_in(session: Session, *, user: User, queues: Collection[str], now: datetime | None = None) -> Held:
    """Where the clip `user` holds stands relative to `queues` (what `lease_next` resumes)."""
    held = active_assignment(session, user=user, now=now)
    if held is None:
        return Held()
    item = session.get(QueueItem, held.queue_item_id)
    if item is None or item.queue in queues:
        return Held(resumed=held)
    return Held(elsewhere=held, elsewhere_queue=item.queue)


def lease_next(
    session: Session,
    *,
    actor: User,
    queue: str = GENERAL,
    lease_seconds: int = 600,
    max_sensitivity: float | None = None,
    resume: Collection[str] | None = None,
    only_item: int | None = None,
    consent_default: str | None = None,
) -> Assignment | None:
    """Give `actor` the oldest clip of `queue` that nobody holds, or None. Audited; caller commits.

    A person holds one clip at a time. A held clip of `queue` (or of a queue in `resume`) is
    returned as it is; one of another queue is given back first (`_give_back`): opening a queue
    means working on it, so a senior holding a review clip who opens adjudication gets
    adjudication, not the review clip again. `only_item` restricts the lease to that queue item
    (a gold clip chosen for this person). `consent_default` (the setting; None: not checked)
    leaves out clips whose account does not allow review now: one that never answered, queued
    while the default was allow, waits while it is deny.

    The conditional UPDATE is the lock: it only matches a row that is still free, so two concurrent
    callers can never both win the same item (PostgreSQL re-checks the WHERE after a row lock wait;
    SQLite transactions are serialized by BEGIN IMMEDIATE).
    """
    now = utcnow()
    held = held_in(session, user=actor, queues=resume or (queue,), now=now)
    if held.resumed is not None:
        return held.resumed
    give_back = held.elsewhere  # held in another queue: given back under the same locks as the lease
    released, leased = False, None
    while True:
        candidates = session.execute(
            select(QueueItem.id, QueueItem.clip_id)
            .where(*_leasable(actor, queue, now, max_sensitivity, consent_default))
            .where(*([QueueItem.id == only_item] if only_item is not None else []))
            .order_by(QueueItem.enqueued_at, QueueItem.id)
            .limit(LEASE_CANDIDATES)
        ).all()
        # One savepoint per batch: should every candidate be lost to other reviewers, rolling it
        # back frees this batch's clip locks (and undoes the give-back, done again with the next
        # batch), so no transaction ever holds clips it locked out of id order.
        with session.begin_nested() as attempt:
            # The clips first, all in one statement in id order (key share), then items and
            # assignments: the order of consent, erasure and retention, which hold an account's
            # clips while they lock its items.
            _lock_clips(session, [c for _, c in candidates] + ([give_back.clip_id] if give_back is not None else []))
            released = give_back is not None and _give_back(session, give_back, now)
            leased = _claim(session, actor, queue, now, lease_seconds, candidates) if candidates else None
            if leased is None and candidates:
                attempt.rollback()
                continue
        break
    # Audited after every row this lease changes (the chain head last: docs/architecture.md).
    if released and give_back is not None:
        audit.record(
            session, actor=user_actor(actor), action="review.release", object_type="assignment",
            object_id=give_back.id, details={"queue": held.elsewhere_queue, "opened": queue},
        )  # fmt: skip
    return leased


def give_back_held(session: Session, *, user: User) -> list[tuple[str, str]]:
    """Give back unsaved every clip `user` holds (their role changed: the clip belongs to a queue
    they may no longer work in). Clips are locked first, as every change to a pass locks them;
    returns (assignment id, queue) of each given back, for the caller's audit events, which it
    records after its own rows. Caller commits."""
    now = utcnow()
    held = list(
        session.execute(
            select(Assignment)
            .where(Assignment.user_id == user.id, Assignment.state == AssignmentState.active)
            .order_by(Assignment.clip_id)
        ).scalars()
    )
    given: list[tuple[str, str]] = []
    for assignment in held:
        # Locked for a change, as a pass's own change (a flag, a report) locks it: one waits for the
        # other at the clip, instead of each holding what the other needs next.
        lock_clip(session, assignment.clip_id)
        item = session.get(QueueItem, assignment.queue_item_id)
        queue = item.queue if item is not None else GENERAL
        if _give_back(session, assignment, now):
            given.append((assignment.id, queue))
            # Their questions about it go too: the answer would reach no one holding the clip.
            session.execute(
                update(HelpRequest)
                .where(HelpRequest.assignment_id == assignment.id, HelpRequest.state == "open")
                .values(state="closed")
            )
    return given


def _lock_clips(session: Session, clip_ids: list[int]) -> None:
    """Key-share-lock these clips in id order, in one statement (PostgreSQL; SQLite: a read)."""
    if clip_ids:
        session.execute(
            select(Clip.id)
            .where(Clip.id.in_(sorted(set(clip_ids))))
            .order_by(Clip.id)
            .with_for_update(read=True, key_share=True)
        ).all()


def _give_back(session: Session, held: Assignment, now: datetime) -> bool:
    """Give back a held clip unsaved (its holder opened another queue): it returns to its queue,
    for anyone, its holder included, later. Conditional UPDATEs, under the clip's lock: a
    withdrawal, erasure or report that closed the pass meanwhile stays as it left it (an
    unconditional write put a withdrawn clip back in the queue). True if it was given back."""
    assignment_id, item_id = held.id, held.queue_item_id
    session.execute(
        update(QueueItem)
        .where(
            QueueItem.id == item_id,
            QueueItem.assignment_id == assignment_id,
            QueueItem.state == QueueState.leased,
        )
        .values(state=QueueState.queued, lease_expires_at=None, assignment_id=None)
        .execution_options(synchronize_session=False)
    )
    done = session.execute(
        update(Assignment)
        .where(Assignment.id == assignment_id, Assignment.state == AssignmentState.active)
        .values(state=AssignmentState.released, closed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    # The session's copies are stale now; the next read of either loads what the updates left.
    session.expire(held)
    item = session.get(QueueItem, item_id)  # already in the session: no query
    if item is not None:
        session.expire(item)
    return bool(done)


def _claim(
    session: Session,
    actor: User,
    queue: str,
    now: datetime,
    lease_seconds: int,
    candidates: Sequence[Row[tuple[int, int]]],
) -> Assignment | None:
    """The first of `candidates` (queue item id, clip id; clips locked) still free, leased to
    `actor`. The conditional UPDATE is the lock: it only matches a row that is still free."""
    for item_id, _clip_id in candidates:
        expires = now + timedelta(seconds=lease_seconds)
        assignment_id = secrets.token_urlsafe(18)
        won = session.execute(
            update(QueueItem)
            .where(QueueItem.id == item_id, _available(now))
            .values(state=QueueState.leased, lease_expires_at=expires, assignment_id=assignment_id)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won != 1:
            continue
        item = session.get(QueueItem, item_id, populate_existing=True)
        assert item is not None
        expired = session.execute(
            update(Assignment)
            .where(Assignment.queue_item_id == item_id, Assignment.state == AssignmentState.active)
            .values(state=AssignmentState.expired, closed_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        assignment = Assignment(
            id=assignment_id,
            queue_item_id=item_id,
            clip_id=item.clip_id,
            user_id=actor.id,
            leased_at=now,
            expires_at=expires,
            state=AssignmentState.active,
        )
        session.add(assignment)
        session.flush()
        if expired:
            audit.record(
                session, actor=Actor.system(), action="review.expire", object_type="queue_item", object_id=item_id
            )
        audit.record(
            session,
            actor=user_actor(actor),
            action="review.lease",
            object_type="assignment",
            object_id=assignment_id,
            details={"queue": queue, "queue_item": item_id, "expires_s": lease_seconds},
        )
        return assignment
    return None


def restricted_clips() -> CompoundSelect:
    """Ids of clips that belong to a restricted team: waiting in the safety or the wake-word queue,
    or judged by the safety team to be more than a false alarm. No general path (gold, help) may
    serve them."""
    waiting = select(QueueItem.clip_id).where(
        QueueItem.queue.in_(SINGLE_JUDGEMENT), QueueItem.state.in_([QueueState.queued, QueueState.leased])
    )
    return waiting.union(select(SafetyOutcome.clip_id).where(SafetyOutcome.outcome != "false_alarm"))


def _leasable(
    actor: User, queue: str, now: datetime, max_sensitivity: float | None, consent_default: str | None = None
) -> list[Any]:
    """The queue items of `queue` that `actor` may lease now."""
    # One person never reviews the same clip twice: K passes need K different people. A clip
    # given back by `release` does not count: nothing was said about it. In a single-judgement
    # queue a lease that ran out does not count either.
    said = [AssignmentState.submitted, AssignmentState.withdrawn, AssignmentState.skipped]
    seen_before = select(Assignment.clip_id).where(
        Assignment.user_id == actor.id,
        Assignment.state.in_(said) if queue in SINGLE_JUDGEMENT else Assignment.state != AssignmentState.released,
    )
    # Only a clip that is in review now: a withdrawn, erased or re-protecting clip's items are
    # closed by what changed it; this is the second lock on that door.
    in_review = select(Clip.id).where(
        Clip.id == QueueItem.clip_id, Clip.status.in_([ClipStatus.queued, ClipStatus.reviewed])
    )
    if consent_default is not None:
        from earmark.consent import allows_review  # consent -> queues at import time

        in_review = in_review.where(Clip.account_id.in_(select(Account.id).where(allows_review(consent_default))))
    return [
        QueueItem.queue == queue,
        _available(now),
        QueueItem.clip_id.not_in(seen_before),
        in_review.exists(),
        *_sensitivity_filter(max_sensitivity),
    ]


def count_leasable(
    session: Session,
    *,
    actor: User,
    queue: str,
    max_sensitivity: float | None = None,
    consent_default: str | None = None,
) -> int:
    """How many clips of `queue` `actor` could lease now, one after the other (clips, not items: a
    person takes one pass of a clip). A read for a page; the lease decides."""
    leasable = _leasable(actor, queue, utcnow(), max_sensitivity, consent_default)
    return session.execute(select(func.count(distinct(QueueItem.clip_id))).where(*leasable)).scalar_one()


def _sensitivity_filter(max_sensitivity: float | None) -> list[Any]:
    if max_sensitivity is None:
        return []
    near = select(ClipProtection.clip_id).where(ClipProtection.sensitivity > max_sensitivity)
    return [QueueItem.clip_id.not_in(near)]


def lock_clip(session: Session, clip_id: int) -> Clip | None:
    """One clip, row-locked and read afresh for a change (PostgreSQL), after a key-share lock on
    its account. The account first: an erasure locks the account and then its clips, and a
    transaction that updates a clip row twice re-checks the clip's foreign key, which takes the
    account's key-share lock; held clip first, account second, that deadlocked. SQLite: a read."""
    account_id = session.execute(select(Clip.account_id).where(Clip.id == clip_id)).scalar_one_or_none()
    if account_id is None:
        return None
    session.execute(select(Account.id).where(Account.id == account_id).with_for_update(read=True, key_share=True)).all()
    return session.get(Clip, clip_id, with_for_update={"key_share": True}, populate_existing=True)


def lock_account_clips(session: Session, account_id: int) -> list[int]:
    """Lock an account's clips (and so who may queue or change them) for this transaction, in id
    order; returns their ids. On PostgreSQL a transaction that changes many of an account's clips
    calls this before its first audit event: the pipeline holds a clip while it waits for the audit
    chain's head, so taking the head first and the clip after deadlocks. SQLite: a plain read."""
    # FOR UPDATE, not the weaker no-key lock: these transactions clear unique columns (the blob
    # keys), which needs the full lock; upgrading to it later waited for a lease's key-share lock
    # on the clip while the lease waited for an item already held here.
    return list(
        session.execute(
            select(Clip.id).where(Clip.account_id == account_id).order_by(Clip.id).with_for_update()
        ).scalars()
    )


def withdraw_clips(
    session: Session, *, actor: Actor, clip_ids: list[int], reason: str, events: list[dict[str, Any]] | None = None
) -> int:
    """Pull clips out of every queue at once; holders' assignments become `withdrawn`. Audited.

    Every row is changed before the first audit event takes the chain's head (PostgreSQL): a lease
    holding one of the items, or a senior answering a help request about one of the clips, waits
    for the head too, and taking the head first deadlocked with them (docs/architecture.md). A
    caller with more rows to change after this passes `events`: the audit events are appended
    there, for it to record (`record_events`) after its last row change."""
    if not clip_ids:
        return 0
    now = utcnow()
    withdrawn_items: list[int] = []
    withdrawn_pending: list[int] = []
    for chunk_start in range(0, len(clip_ids), 500):
        chunk = clip_ids[chunk_start : chunk_start + 500]
        items = (
            session.execute(
                select(QueueItem)
                .where(QueueItem.clip_id.in_(chunk), QueueItem.state.in_([QueueState.queued, QueueState.leased]))
                .order_by(QueueItem.id)
                .with_for_update(key_share=True)
            )
            .scalars()
            .all()
        )
        for item in items:
            item.state = QueueState.withdrawn
            item.lease_expires_at = None
            withdrawn_items.append(item.id)
        session.execute(
            update(Assignment)
            .where(Assignment.clip_id.in_(chunk), Assignment.state == AssignmentState.active)
            .values(state=AssignmentState.withdrawn, closed_at=now)
        )
        # An open help request would let a senior hear a clip that left every queue.
        session.execute(
            update(HelpRequest)
            .where(HelpRequest.clip_id.in_(chunk), HelpRequest.state == "open")
            .values(state="closed")
        )
        pending = list(
            session.execute(select(Clip.id).where(Clip.id.in_(chunk), Clip.status == ClipStatus.pending)).scalars()
        )
        session.execute(update(Clip).where(Clip.id.in_(pending)).values(status=ClipStatus.withdrawn))
        withdrawn_pending += pending  # sampled but not yet through the pipeline
        session.execute(
            update(Clip).where(Clip.id.in_(chunk), Clip.status == ClipStatus.queued).values(status=ClipStatus.withdrawn)
        )
    pending_events = [
        *(
            {"actor": actor, "action": "queue.withdraw", "object_type": "queue_item", "object_id": item_id,
             "details": {"reason": reason}}
            for item_id in withdrawn_items
        ),
        *(
            {"actor": actor, "action": "queue.withdraw", "object_type": "clip", "object_id": clip_id,
             "details": {"reason": reason, "stage": "pending"}}
            for clip_id in withdrawn_pending
        ),
    ]  # fmt: skip
    if events is None:
        record_events(session, pending_events)
    else:
        events.extend(pending_events)
    return len(withdrawn_items) + len(withdrawn_pending)


def record_events(session: Session, events: list[dict[str, Any]]) -> None:
    """Append audit events collected while rows were changed (see `withdraw_clips`)."""
    for event in events:
        audit.record(session, **event)


def queue_depths(session: Session) -> dict[str, dict[str, int]]:
    """{queue: {state: count}}, counted in SQL."""
    now = utcnow()
    out: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(QueueItem.queue, QueueItem.state, func.count()).group_by(QueueItem.queue, QueueItem.state)
    ).all()
    for queue, state, count in rows:
        out.setdefault(queue, {})[state] = count
    # Leases that ran out count as queued: that is where the clip effectively is.
    stale = session.execute(
        select(QueueItem.queue, func.count())
        .where(QueueItem.state == QueueState.leased, QueueItem.lease_expires_at < now)
        .group_by(QueueItem.queue)
    ).all()
    for queue, count in stale:
        out[queue]["leased"] -= count
        out[queue]["queued"] = out[queue].get("queued", 0) + count
    return out
