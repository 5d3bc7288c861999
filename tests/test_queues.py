from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select, update

from earmark.models import Assignment, QueueItem
from earmark.queues import lease_next, queue_depths
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
