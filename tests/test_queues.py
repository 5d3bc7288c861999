from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from earmark.errors import LeaseExpired
from earmark.models import Assignment, AuditEvent, Clip, QueueItem
from earmark.quality import ADJUDICATION, GOLD
from earmark.queues import GENERAL, enqueue, lease_next, queue_depths
from earmark.review import submit_annotation
from earmark.types import Role
from earmark.workspace import Workspace
from tests import factories as f


def test_lease_gives_each_reviewer_a_different_clip_and_resumes_a_held_one(ws: Workspace) -> None:
    f.queue_clips(ws, 3)
    r1, r2 = f.user(ws, "r1"), f.user(ws, "r2")
    with ws.transaction() as s:
        a1 = lease_next(s, actor=r1)
    with ws.transaction() as s:
        a2 = lease_next(s, actor=r2)
    with ws.transaction() as s:
        again = lease_next(s, actor=r1)
    assert a1 and a2 and again
    assert a1.clip_id != a2.clip_id
    assert again.id == a1.id


def test_concurrent_leases_never_share_a_clip(ws: Workspace) -> None:
    f.queue_clips(ws, 6, accounts=3)
    users = [f.user(ws, f"c{i}") for i in range(8)]
    results: dict[int, int | None] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(users))

    def worker(u):  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            with ws.transaction() as s:
                a = lease_next(s, actor=u)
                results[u.id] = a.queue_item_id if a else None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    won = [v for v in results.values() if v is not None]
    assert len(won) == 6 and len(set(won)) == 6
    assert list(results.values()).count(None) == 2
    with ws.sessions() as s:
        active = s.execute(select(Assignment).where(Assignment.state == "active")).scalars().all()
    assert len(active) == 6


def test_expired_lease_returns_the_clip_to_the_queue(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    r1, r2 = f.user(ws, "r1"), f.user(ws, "r2")
    with ws.transaction() as s:
        a1 = lease_next(s, actor=r1, lease_seconds=600)
        assert a1 is not None
    with ws.transaction() as s:
        assert lease_next(s, actor=r2) is None
        past = a1.expires_at - timedelta(hours=1)
        s.execute(update(QueueItem).values(lease_expires_at=past))
        s.execute(update(Assignment).values(expires_at=past))
    assert ws.stats()["queue"]["queued"] == 1
    with ws.transaction() as s:
        a2 = lease_next(s, actor=r2)
        assert a2 is not None and a2.clip_id == a1.clip_id
    with ws.sessions() as s:
        assert s.get(Assignment, a1.id).state == "expired"  # type: ignore[union-attr]
        assert queue_depths(s)["general"]["leased"] == 1


def test_opening_another_queue_gives_back_the_held_clip(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    senior, other = f.user(ws, "sen1", Role.senior), f.user(ws, "r2")
    with ws.transaction() as s:
        held = lease_next(s, actor=senior)
        assert held is not None
        disputed = s.execute(select(Clip).where(Clip.id != held.clip_id)).scalars().first()
        enqueue(s, clip=disputed, queue=ADJUDICATION)  # type: ignore[arg-type]
    with ws.transaction() as s:
        adj = lease_next(s, actor=senior, queue=ADJUDICATION)
        assert adj is not None and adj.id != held.id
        assert s.get(QueueItem, adj.queue_item_id).queue == ADJUDICATION  # type: ignore[union-attr]
        assert s.get(Assignment, held.id).state == "released"  # type: ignore[union-attr]
        assert lease_next(s, actor=senior, queue=ADJUDICATION).id == adj.id  # type: ignore[union-attr]
    with ws.sessions() as s:
        release = s.execute(select(AuditEvent).where(AuditEvent.action == "review.release")).scalar_one()
        assert release.object_id == held.id and release.details["queue"] == "general"
    # The given-back clip is free for anyone at once, and nothing can be saved on it any more.
    with ws.transaction() as s:
        again = lease_next(s, actor=other)
        assert again is not None and again.clip_id == held.clip_id
    with ws.transaction() as s, pytest.raises(LeaseExpired, match="opened another queue"):
        submit_annotation(s, actor=senior, assignment_id=held.id, transcript="play", intent="PlayMusic")


def test_a_given_back_clip_may_come_back_to_its_holder(ws: Workspace) -> None:
    f.queue_clips(ws, 1)
    senior = f.user(ws, "sen1", Role.senior)
    with ws.transaction() as s:
        held = lease_next(s, actor=senior)
        assert held is not None
    with ws.transaction() as s:
        assert lease_next(s, actor=senior, queue=ADJUDICATION) is None  # nothing there; the clip went back
    with ws.transaction() as s:
        back = lease_next(s, actor=senior)
        assert back is not None and back.clip_id == held.clip_id and back.id != held.id


def test_resume_keeps_a_held_clip_of_a_sibling_queue(ws: Workspace) -> None:
    f.queue_clips(ws, 2)
    r1 = f.user(ws, "r1")
    with ws.transaction() as s:
        clip = s.execute(select(Clip).order_by(Clip.id)).scalars().first()
        enqueue(s, clip=clip, queue=GOLD)  # type: ignore[arg-type]
    with ws.transaction() as s:
        gold = lease_next(s, actor=r1, queue=GOLD)
        assert gold is not None
    with ws.transaction() as s:
        assert lease_next(s, actor=r1, queue=GENERAL, resume=(GENERAL, GOLD)).id == gold.id  # type: ignore[union-attr]


def test_count_leasable_is_how_many_clips_the_lease_then_hands_out(ws: Workspace) -> None:
    """The queue page's count: clips, not pass items; not one this person already did; not a
    near-sensitive one for a reviewer blocked today; not one someone else holds."""
    from earmark.models import ClipProtection
    from earmark.queues import count_leasable
    from earmark.review import skip_assignment

    f.queue_clips(ws, 5)
    r1, r2 = f.user(ws, "r1"), f.user(ws, "r2")
    with ws.transaction() as s:
        clips = s.execute(select(Clip.id).order_by(Clip.id)).scalars().all()
        for clip in clips:
            enqueue(s, clip=s.get(Clip, clip), queue=GENERAL)  # type: ignore[arg-type]  # a second pass each
        s.get(ClipProtection, clips[1]).sensitivity = 0.5  # type: ignore[union-attr]
    done = _lease_and(ws, r1, submit=True)  # r1's pass of one clip
    held = _lease_and(ws, r2)  # r2 holds a pass of another
    assert (done, held) == (clips[0], clips[1])  # the oldest items first
    with ws.sessions() as s:
        assert count_leasable(s, actor=r1, queue=GENERAL) == 4  # all but the one r1 did
        blocked = count_leasable(s, actor=r1, queue=GENERAL, max_sensitivity=0.3)
        assert blocked == 3  # nor the near-sensitive one
        assert count_leasable(s, actor=r2, queue=GENERAL) == 4  # its own held clip is not "ready"
    handed_out = []
    while True:
        with ws.transaction() as s:
            a = lease_next(s, actor=r1, max_sensitivity=0.3)
            if a is None:
                break
            handed_out.append(a.clip_id)
            skip_assignment(s, actor=r1, assignment_id=a.id, reason="too_hard")
    assert len(handed_out) == blocked and len(set(handed_out)) == blocked


def _lease_and(ws: Workspace, user, *, submit: bool = False) -> int:  # type: ignore[no-untyped-def]
    with ws.transaction() as s:
        a = lease_next(s, actor=user)
        assert a is not None
        if submit:
            submit_annotation(s, actor=user, assignment_id=a.id, transcript="play it", intent="PlayMusic")
        return a.clip_id


# -- giving back a held clip and leasing, against withdrawals (PostgreSQL row locks) -------------


def _in_transaction(ws: Workspace, target):  # type: ignore[no-untyped-def]
    def run():  # type: ignore[no-untyped-def]
        with ws.transaction() as s:
            return target(s)

    return f.Racer(run)


def _withdraw(ws: Workspace, by: str, account: str = "acct-q0"):  # type: ignore[no-untyped-def]
    from earmark.consent import set_consent
    from earmark.erasure import erase_account
    from earmark.types import Actor, Consent

    if by == "erasure":
        return _in_transaction(ws, lambda s: erase_account(s, actor=Actor.cli(), account_id=account, secret=ws.secret))
    return _in_transaction(
        ws, lambda s: set_consent(s, actor=Actor.cli(), account_id=account, human_review=Consent.deny)
    )


@f.postgres_only
@pytest.mark.parametrize("by", ["consent", "erasure"])
@pytest.mark.parametrize("at", ["FOR KEY SHARE", "UPDATE queue_items"])  # before or after the clip lock
def test_giving_back_a_held_clip_keeps_a_withdrawal_committed_meanwhile(ws: Workspace, by: str, at: str) -> None:
    """The senior's held clip was read unlocked, the withdrawal committed, and the give-back wrote
    the item back to queued: anyone could lease the withdrawn or erased customer's clip again."""
    f.queue_clips(ws, 1)
    senior = f.user(ws, "sen1", Role.senior)
    with ws.transaction() as s:
        held = lease_next(s, actor=senior)
        assert held is not None
    other = _withdraw(ws, by)
    with f.at_statement(ws, other, at), ws.transaction() as s:
        lease_next(s, actor=senior, queue=ADJUDICATION)  # opening adjudication gives the clip back
    other.join()
    assert other.error is None, other.error
    with ws.sessions() as s:
        assert s.get(QueueItem, held.queue_item_id).state == "withdrawn"  # type: ignore[union-attr]
        released = s.execute(select(AuditEvent).where(AuditEvent.action == "review.release")).first()
        if at == "FOR KEY SHARE":  # the withdrawal committed first: nothing was given back
            assert s.get(Assignment, held.id).state == "withdrawn" and released is None  # type: ignore[union-attr]
        else:  # given back first (the withdrawal waited for the clip), then withdrawn
            assert s.get(Assignment, held.id).state == "released" and released is not None  # type: ignore[union-attr]
    with ws.transaction() as s:
        assert lease_next(s, actor=f.user(ws, "r2")) is None


@f.postgres_only
@pytest.mark.parametrize("report", ["missed_pii", "sensitive"])
def test_giving_back_a_held_pass_keeps_a_report_on_the_other_pass(ws: Workspace, report: str) -> None:
    """r1 reported the clip (personal data audible / distressing) while the senior holding its
    other pass opened adjudication: the senior's item went back to the general queue, and a third
    reviewer was served the clip with the data audible, or the distressing clip."""
    from earmark.review import flag_sensitive, report_missed_pii

    ws.settings.review_passes = 2
    f.queue_clips(ws, 1)
    r1, senior = f.user(ws, "r1"), f.user(ws, "sen1", Role.senior)
    with ws.transaction() as s:
        a1 = lease_next(s, actor=r1)
    with ws.transaction() as s:
        a2 = lease_next(s, actor=senior)
    assert a1 is not None and a2 is not None and a1.clip_id == a2.clip_id
    if report == "missed_pii":
        other = _in_transaction(ws, lambda s: report_missed_pii(s, actor=r1, assignment_id=a1.id, start=0.0, end=0.3))
    else:
        other = _in_transaction(ws, lambda s: flag_sensitive(s, actor=r1, assignment_id=a1.id))
    with f.at_statement(ws, other, "UPDATE queue_items"), ws.transaction() as s:
        lease_next(s, actor=senior, queue=ADJUDICATION)
    other.join()
    assert other.error is None, other.error
    with ws.sessions() as s:
        assert s.get(QueueItem, a2.queue_item_id).state == "withdrawn"  # type: ignore[union-attr]
    with ws.transaction() as s:
        assert lease_next(s, actor=f.user(ws, "r3")) is None


@f.postgres_only
@pytest.mark.parametrize("by", ["consent", "erasure"])
def test_giving_back_then_leasing_does_not_deadlock_a_withdrawal(ws: Workspace, by: str) -> None:
    """The give-back locked the held item, then the lease key-share-locked the next candidate's
    clip (an item before a clip); a withdrawal holding both clips waited for the item: deadlock."""
    f.queue_clips(ws, 2)  # one account, two clips
    senior = f.user(ws, "sen1", Role.senior)
    with ws.transaction() as s:
        held = lease_next(s, actor=senior)
        assert held is not None
        disputed = s.execute(select(Clip).where(Clip.id != held.clip_id)).scalars().first()
        enqueue(s, clip=disputed, queue=ADJUDICATION)  # type: ignore[arg-type]
    other = _withdraw(ws, by)
    with f.at_statement(ws, other, "UPDATE queue_items"), ws.transaction() as s:
        leased = lease_next(s, actor=senior, queue=ADJUDICATION)
    other.join()
    assert other.error is None, other.error
    assert leased is not None  # the lease went first; the withdrawal then took the clip back
    with ws.sessions() as s:
        assert set(s.execute(select(QueueItem.state)).scalars()) == {"withdrawn"}


@f.postgres_only
@pytest.mark.parametrize("batch", [8, 1])
def test_a_lease_that_loses_its_first_candidate_does_not_deadlock_a_withdrawal(
    ws: Workspace, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Candidates were key-share-locked one by one in queue order, not clip-id order; a withdrawal
    locking the account's clips in id order held one and waited for the other: deadlock. With a
    batch of 1 the lost candidate is a whole lost batch: its savepoint is rolled back, freeing its
    clip, before the next batch's clip is locked."""
    from earmark import queues

    monkeypatch.setattr(queues, "LEASE_CANDIDATES", batch)
    from earmark.models import utcnow

    f.queue_clips(ws, 2)  # one account; clip ids low < high
    with ws.transaction() as s:
        low, high = s.execute(select(Clip.id).order_by(Clip.id)).scalars().all()
        later = utcnow() + timedelta(seconds=5)
        s.execute(update(QueueItem).where(QueueItem.clip_id == low).values(enqueued_at=later))  # `high` first
    r1, r2 = f.user(ws, "r1"), f.user(ws, "r2")
    withdrawal = _withdraw(ws, "consent")

    def r2_takes_the_head() -> None:
        with ws.transaction() as s:
            a = lease_next(s, actor=r2)
            assert a is not None and a.clip_id == high
        withdrawal.start()
        f.wait_for_lock_wait(ws, [withdrawal])

    other = f.Racer(r2_takes_the_head)
    with f.at_statement(ws, other, "UPDATE queue_items"), ws.transaction() as s:
        mine = lease_next(s, actor=r1)
    other.join()
    withdrawal.join()
    assert other.error is None and withdrawal.error is None, (other.error, withdrawal.error)
    if batch == 8:  # both clips in one batch, locked together: the lease takes `low`, then the withdrawal
        assert mine is not None and mine.clip_id == low
    else:  # the withdrawal went first once the lost batch freed `high`: nothing left to lease
        assert mine is None
    with ws.sessions() as s:
        assert set(s.execute(select(QueueItem.state)).scalars()) == {"withdrawn"}
