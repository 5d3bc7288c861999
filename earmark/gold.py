"""The gold set: reviewed clips whose trusted answer is mixed into reviewers' queues to measure
their accuracy (`quality.serve_gold`, `quality.after_submit`).

A gold answer is taken from review, never typed blind: the final label of a clip whose passes
agreed (two or more) or that a senior adjudicated. A gold clip is heard by many reviewers, one
pass each, so the set is chosen to expose as little as it can: at most `per_account` clips of
one household, none near-sensitive, none flagged (no speech, unintelligible, not English), none
the safety team keeps, and only while the account still allows review. Every change is audited
with ids only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, and_, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from earmark import audit
from earmark.consent import allows_review, share_lock_accounts
from earmark.db import one_at_a_time
from earmark.errors import InvalidInput, NotFound
from earmark.export import final_label_ids
from earmark.models import Account, Annotation, Assignment, Clip, ClipProtection, GoldAnswer, QueueItem
from earmark.quality import GOLD, servable
from earmark.queues import GENERAL, lock_clip, record_events
from earmark.types import Actor, ClipStatus, Consent, QueueState

# Clips above this sensitivity are never gold: a gold clip is heard by many people.
MAX_GOLD_SENSITIVITY = 0.3
ADJUDICATED, AGREED = "adjudicated", "agreed"


@dataclass(frozen=True, slots=True)
class GoldPick:
    clip_id: int
    source: str  # ADJUDICATED or AGREED


@dataclass(frozen=True, slots=True)
class GoldClip:
    clip_id: int
    answered: int  # gold passes reviewers submitted for it
    correct: int
    waiting: bool  # served and not yet answered
    servable: bool  # can still be served (not withdrawn, erased, without audio or the safety team's)


def _general_labels() -> Any:
    return (
        select(Annotation.clip_id, func.count().label("n"))
        .join(Assignment, Assignment.id == Annotation.assignment_id)
        .join(QueueItem, QueueItem.id == Assignment.queue_item_id)
        .where(Annotation.kind == "label", QueueItem.queue == GENERAL)
        .group_by(Annotation.clip_id)
        .subquery()
    )


def _eligible(consent_default: Consent | str) -> Select[Any]:
    """(clip id, account id, final annotation id, source) of every clip that may become gold now."""
    final, labels = final_label_ids(), _general_labels()
    return (
        select(Clip.id, Clip.account_id, Annotation.id, Annotation.kind, Annotation.transcript, Annotation.intent)
        .join(final, final.c.clip_id == Clip.id)
        .join(Annotation, Annotation.id == final.c.ann_id)
        .outerjoin(labels, labels.c.clip_id == Clip.id)
        .join(Account, Account.id == Clip.account_id)
        .outerjoin(ClipProtection, ClipProtection.clip_id == Clip.id)
        .where(
            *servable(),
            Clip.status == ClipStatus.reviewed,
            Clip.erased_at.is_(None),
            Clip.id.not_in(select(GoldAnswer.clip_id)),
            allows_review(consent_default),
            or_(ClipProtection.sensitivity.is_(None), ClipProtection.sensitivity <= MAX_GOLD_SENSITIVITY),
            Clip.id.not_in(select(Annotation.clip_id).where(Annotation.kind == "flag")),  # no pass flagged it
            func.length(func.trim(Annotation.transcript)) > 0,
            or_(Annotation.kind == "adjudication", and_(labels.c.n.is_not(None), labels.c.n >= 2)),
        )
        .order_by(Clip.id)
    )


def _accounts_with_gold() -> Select[Any]:
    """The household of each gold clip that can still be served (one that cannot, say its audio
    reached its retention limit, no longer takes a household's place)."""
    return select(Clip.account_id).join(GoldAnswer, GoldAnswer.clip_id == Clip.id).where(*servable())


def _make_gold(session: Session, actor: Actor, clip_ids: list[int], consent_default: Consent | str) -> list[GoldPick]:
    """Make these clips gold, those still eligible under the locks. The order of
    docs/architecture.md: their accounts share-locked (a consent change or erasure waits), then
    the clips, each in id order, re-checked in one query, the answers stored, and the audit events
    last (an event locks the chain head until commit; locking a clip after it deadlocked with a
    withdrawal that held the clip and waited for the head)."""
    accounts = {c: a for c, a in session.execute(select(Clip.id, Clip.account_id).where(Clip.id.in_(clip_ids)))}
    allowed = share_lock_accounts(session, accounts.values(), allows_review(consent_default))
    locked = [c for c in sorted(accounts) if accounts[c] in allowed and lock_clip(session, c) is not None]
    rows = session.execute(_eligible(consent_default).where(Clip.id.in_(locked))).all() if locked else []
    picks, events = [], []
    # The answer comes in the re-check's own row: annotation retention deletes without the clip's
    # lock, so a second read could find it gone.
    for clip_id, _account, annotation_id, kind, transcript, intent in rows:
        source = ADJUDICATED if kind == "adjudication" else AGREED
        session.add(GoldAnswer(clip_id=clip_id, transcript=" ".join(transcript.split()), intent=intent))
        picks.append(GoldPick(clip_id, source))
        events.append(
            {
                "actor": actor,
                "action": "gold.add",
                "object_type": "clip",
                "object_id": clip_id,
                "details": {"source": source, "annotation": annotation_id},
            }
        )
    session.flush()
    record_events(session, events)
    return picks


@dataclass(frozen=True, slots=True)
class Candidates:
    clips: int  # reviewed clips that may become gold now
    new_households: int  # of their households, those with no gold clip that can be served


def candidates(session: Session, consent_default: Consent | str) -> Candidates:
    """What a pick could draw from now (a read, no locks)."""
    rows = session.execute(_eligible(consent_default)).all()
    have = set(session.execute(_accounts_with_gold()).scalars())
    return Candidates(len(rows), len({account for _clip, account, *_ in rows} - have))


def pick_gold(
    session: Session, *, actor: Actor, n: int, consent_default: Consent | str, per_account: int = 1, seed: int | None
) -> list[GoldPick]:
    """Make up to `n` eligible clips gold, chosen at random, at most `per_account` per household
    (counting gold clips it already has). A clip withdrawn while this runs is left out, so fewer
    than `n` may come back. Caller commits."""
    if n < 1:
        raise InvalidInput("pick at least one clip", field="n")
    if per_account < 1:
        raise InvalidInput("per_account must be at least 1", field="per_account")
    # Two picks counting at once would each add a clip to the same household, past `per_account`.
    one_at_a_time(session, "gold.pick")
    have: dict[int, int] = {}
    for account_id in session.execute(_accounts_with_gold()).scalars():
        have[account_id] = have.get(account_id, 0) + 1
    rows = session.execute(_eligible(consent_default)).all()
    random.Random(seed).shuffle(rows)
    chosen: list[int] = []
    for clip_id, account_id, *_answer in rows:
        if len(chosen) == n:
            break
        if have.get(account_id, 0) < per_account:
            chosen.append(clip_id)
            have[account_id] = have.get(account_id, 0) + 1
    return _make_gold(session, actor, chosen, consent_default) if chosen else []


def add_gold(session: Session, *, actor: Actor, clip_id: int, consent_default: Consent | str) -> GoldPick:
    """Make one clip gold from its final answer, or say why it cannot be. Caller commits."""
    clip = session.get(Clip, clip_id)
    if clip is None or clip.erased_at is not None:
        raise NotFound(f"no clip {clip_id}")
    if session.get(GoldAnswer, clip_id) is not None:
        raise InvalidInput(f"clip {clip_id} is gold already", field="clip")
    picks = _make_gold(session, actor, [clip_id], consent_default)
    if not picks:
        raise InvalidInput(
            f"clip {clip_id} cannot be gold: it must be reviewed, with an answer that two passes agreed on "
            f"or a senior adjudicated, no flag, not near-sensitive (≤ {MAX_GOLD_SENSITIVITY}), not kept by the "
            "safety team, and its account must allow review",
            field="clip",
        )
    return picks[0]


def remove_gold(session: Session, *, actor: Actor, clip_id: int) -> int:
    """Take a clip out of the gold set; gold items served and not yet leased are withdrawn (a
    reviewer holding one finishes it, unscored). Returns how many items were withdrawn. Caller commits."""
    if lock_clip(session, clip_id) is None or session.get(GoldAnswer, clip_id) is None:
        raise NotFound(f"clip {clip_id} is not a gold clip")
    withdrawn = session.execute(
        update(QueueItem)
        .where(QueueItem.clip_id == clip_id, QueueItem.queue == GOLD, QueueItem.state == QueueState.queued)
        .values(state=QueueState.withdrawn)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.execute(delete(GoldAnswer).where(GoldAnswer.clip_id == clip_id))
    audit.record(
        session,
        actor=actor,
        action="gold.remove",
        object_type="clip",
        object_id=clip_id,
        details={"withdrawn_items": withdrawn},
    )
    return int(withdrawn)


def list_gold(session: Session) -> list[GoldClip]:
    """The gold set with how reviewers did on each clip (counts only, no answers)."""
    scored = (
        select(
            Annotation.clip_id,
            func.count().label("answered"),
            func.sum(cast(Annotation.gold_correct, Integer)).label("correct"),
        )
        .where(Annotation.gold_correct.is_not(None))
        .group_by(Annotation.clip_id)
        .subquery()
    )
    waiting = select(QueueItem.clip_id).where(
        QueueItem.queue == GOLD, QueueItem.state.in_([QueueState.queued, QueueState.leased])
    )
    servable_ids = select(Clip.id).where(*servable())
    rows = session.execute(
        select(
            GoldAnswer.clip_id,
            scored.c.answered,
            scored.c.correct,
            GoldAnswer.clip_id.in_(waiting),
            GoldAnswer.clip_id.in_(servable_ids),
        )
        .outerjoin(scored, scored.c.clip_id == GoldAnswer.clip_id)
        .order_by(GoldAnswer.clip_id)
    ).all()
    return [GoldClip(cid, int(n or 0), int(ok or 0), bool(w), bool(live)) for cid, n, ok, w, live in rows]
