"""Quality control: K independent passes per clip, disagreement to adjudication, gold clips with
known answers, and agreement figures (transcript WER between passes, Cohen's kappa on intents,
slot F1)."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import jiwer
from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.models import Annotation, Assignment, Clip, ClipProtection, GoldAnswer, QueueItem, User
from earmark.queues import GENERAL, enqueue, lock_clip, restricted_clips
from earmark.types import Actor, ClipStatus, QueueState

ADJUDICATION = "adjudication"
GOLD = "gold"


def transcript_wer(reference: str, hypothesis: str) -> float:
    """WER of `hypothesis` against `reference` (0 when both are empty).

    >>> transcript_wer("play some jazz", "play sum jazz")
    0.3333333333333333
    """
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(" ".join(ref), " ".join(hyp) or "<empty>"))


def slot_set(slots: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(str(s.get("type")), " ".join(str(s.get("value", "")).split())) for s in slots or []}


@dataclass(frozen=True, slots=True)
class Comparison:
    wer: float
    intent_differs: bool
    slots_differ: bool

    def disagrees(self, threshold: float) -> bool:
        return self.wer > threshold or self.intent_differs or self.slots_differ


def compare(a: Annotation, b: Annotation) -> Comparison:
    wer = max(transcript_wer(a.transcript, b.transcript), transcript_wer(b.transcript, a.transcript))
    return Comparison(round(wer, 4), (a.intent or "") != (b.intent or ""), slot_set(a.slots) != slot_set(b.slots))


def is_gold_lease(user_id: int, lease_count: int, rate: float) -> bool:
    """Deterministic per (reviewer, lease number): about `rate` of leases serve a gold clip."""
    digest = hashlib.sha256(f"gold:{user_id}:{lease_count}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def add_gold(session: Session, *, actor: Actor, clip: Clip, transcript: str, intent: str | None) -> GoldAnswer:
    """Make `clip` a gold clip with this answer, unchecked. Audited; caller commits. Tests use it;
    the program's gold set comes from review through `earmark.gold` (picked, checked, locked)."""
    gold = session.get(GoldAnswer, clip.id) or GoldAnswer(clip_id=clip.id, transcript="", intent=None)
    gold.transcript = " ".join(transcript.split())
    gold.intent = intent
    session.add(gold)
    audit.record(session, actor=actor, action="gold.add", object_type="clip", object_id=clip.id)
    return gold


def servable() -> list[Any]:
    """Conditions on a clip any reviewer may hear right now: protected, in review or reviewed (not
    withdrawn, erased, or back in the pipeline after a missed-PII report), not the safety team's."""
    return [
        Clip.status.in_([ClipStatus.queued, ClipStatus.reviewed]),
        Clip.protected_blob_key.is_not(None),
        Clip.redacted_text.is_not(None),
        Clip.id.not_in(restricted_clips()),
    ]


def serve_gold(session: Session, *, user: User, max_sensitivity: float | None = None) -> QueueItem | None:
    """A fresh queue item for a gold clip `user` has not seen, or None.

    Only a clip any reviewer may hear right now: protected, in review or reviewed (not withdrawn,
    erased or back in the pipeline after a missed-PII report), not the safety team's, and no more
    sensitive than `max_sensitivity` (a reviewer who met distressing content today).
    """
    seen = select(Assignment.clip_id).where(Assignment.user_id == user.id)
    hearable = [Clip.id.not_in(seen), *servable()]
    if max_sensitivity is not None:
        hearable.append(
            Clip.id.not_in(select(ClipProtection.clip_id).where(ClipProtection.sensitivity > max_sensitivity))
        )
    gold_clip = session.execute(
        select(Clip).join(GoldAnswer, GoldAnswer.clip_id == Clip.id).where(*hearable).order_by(func.random()).limit(1)
    ).scalar_one_or_none()
    if gold_clip is None:
        return None
    # Chosen without a lock: a consent withdrawal or erasure committing meanwhile saw no gold item
    # to withdraw, so the clip is locked and checked again before one is made.
    gold_clip = lock_clip(session, gold_clip.id)
    still_gold = Clip.id.in_(select(GoldAnswer.clip_id))  # `earmark gold remove` may have run meanwhile
    if (
        gold_clip is None
        or session.execute(select(Clip.id).where(Clip.id == gold_clip.id, still_gold, *hearable)).first() is None
    ):
        return None
    waiting = session.execute(
        select(QueueItem)
        .where(QueueItem.clip_id == gold_clip.id, QueueItem.queue == GOLD, QueueItem.state == QueueState.queued)
        .limit(1)
    ).scalar_one_or_none()
    if waiting is not None:  # one served earlier and never leased: no pile of gold items
        return waiting
    status = gold_clip.status
    [item] = enqueue(session, clip=gold_clip, queue=GOLD)
    gold_clip.status = status  # a gold clip is a reference clip: serving it changes nothing about it
    session.flush()
    return item


def after_submit(
    session: Session,
    *,
    actor: Actor,
    user: User,
    clip: Clip,
    item: QueueItem,
    annotation: Annotation,
    disagreement_wer: float,
    probation_extra_passes: int,
) -> str:
    """Decide what a submitted pass means for its clip: "gold", "waiting" (more passes due),
    "agreed" (reviewed), "adjudication", or "adjudicated". Audited where it routes; caller commits."""
    if item.queue == GOLD:
        gold = session.get(GoldAnswer, clip.id)
        if gold is not None:
            annotation.gold_correct = transcript_wer(gold.transcript, annotation.transcript) <= 0.1 and (
                gold.intent or ""
            ) == (annotation.intent or "")
        return "gold"
    if item.queue == ADJUDICATION:
        clip.status = ClipStatus.reviewed
        return "adjudicated"
    if item.queue != GENERAL or annotation.kind != "label":
        clip.status = ClipStatus.reviewed if _all_done(session, clip.id, item.queue) else clip.status
        return "done"
    if user.probation and probation_extra_passes:
        # A reviewer still on probation does not count alone: the clip gets another pass by someone else.
        enqueue(session, clip=clip, queue=GENERAL, passes=probation_extra_passes)
        return "waiting"
    if not _all_done(session, clip.id, GENERAL):
        return "waiting"
    labels = list(
        session.execute(
            select(Annotation)
            .join(Assignment, Assignment.id == Annotation.assignment_id)
            .join(QueueItem, QueueItem.id == Assignment.queue_item_id)
            .where(Annotation.clip_id == clip.id, Annotation.kind == "label", QueueItem.queue == GENERAL)
        ).scalars()
    )
    worst: Comparison | None = None
    for a, b in combinations(labels, 2):
        c = compare(a, b)
        if c.disagrees(disagreement_wer) and (worst is None or c.wer >= worst.wer):
            worst = c
    if worst is None:
        clip.status = ClipStatus.reviewed
        return "agreed"
    enqueue(session, clip=clip, queue=ADJUDICATION)
    audit.record(
        session,
        actor=actor,
        action="quality.disagreement",
        object_type="clip",
        object_id=clip.id,
        details={"wer": worst.wer, "intent_differs": worst.intent_differs, "slots_differ": worst.slots_differ},
    )
    return "adjudication"


def _all_done(session: Session, clip_id: int, queue: str) -> bool:
    open_items = session.execute(
        select(func.count())
        .select_from(QueueItem)
        .where(
            QueueItem.clip_id == clip_id,
            QueueItem.queue == queue,
            QueueItem.state.in_([QueueState.queued, QueueState.leased]),
        )
    ).scalar_one()
    return open_items == 0


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters over paired labels; None without pairs.

    >>> cohen_kappa([("a", "a"), ("b", "b"), ("a", "b"), ("b", "b")])
    0.5
    """
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(1 for a, b in pairs if a == b) / n
    left, right = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(left[k] * right.get(k, 0) for k in left) / (n * n)
    if expected >= 1.0:
        return 1.0
    return round((observed - expected) / (1 - expected), 4)


def slot_f1(pairs: list[tuple[set[tuple[str, str]], set[tuple[str, str]]]]) -> float | None:
    """Micro-averaged F1 of one pass's slots against the other's."""
    tp = sum(len(a & b) for a, b in pairs)
    total = sum(len(a) + len(b) for a, b in pairs)
    if total == 0:
        return None
    return round(2 * tp / total, 4)


def agreement(session: Session, *, limit: int = 2000) -> dict[str, Any]:
    """Agreement between the first two label passes of the most recent `limit` multi-pass clips."""
    clip_ids = list(
        session.execute(
            select(Annotation.clip_id)
            .where(Annotation.kind == "label")
            .group_by(Annotation.clip_id)
            .having(func.count() >= 2)
            .order_by(func.max(Annotation.created_at).desc())
            .limit(limit)
        ).scalars()
    )
    if not clip_ids:
        return {"clips": 0, "transcript_wer": None, "intent_kappa": None, "slot_f1": None}
    rows = session.execute(
        select(Annotation).where(Annotation.clip_id.in_(clip_ids), Annotation.kind == "label").order_by(Annotation.id)
    ).scalars()
    by_clip: dict[int, list[Annotation]] = {}
    for a in rows:
        by_clip.setdefault(a.clip_id, []).append(a)
    firsts = [(v[0], v[1]) for v in by_clip.values() if len(v) >= 2]
    refs = [a.transcript or "<empty>" for a, _ in firsts]
    hyps = [b.transcript or "<empty>" for _, b in firsts]
    return {
        "clips": len(firsts),
        "transcript_wer": round(float(jiwer.wer(refs, hyps)), 4),
        "intent_kappa": cohen_kappa([(a.intent or "", b.intent or "") for a, b in firsts]),
        "slot_f1": slot_f1([(slot_set(a.slots), slot_set(b.slots)) for a, b in firsts]),
    }


def gold_accuracy(session: Session, *, user_id: int | None = None) -> tuple[int, float | None]:
    """(gold answers, share correct), for one reviewer or everyone; counted in SQL."""
    q = select(func.count(), func.sum(cast(Annotation.gold_correct, Integer))).where(
        Annotation.gold_correct.is_not(None)
    )
    if user_id is not None:
        q = q.where(Annotation.user_id == user_id)
    n, correct = session.execute(q).one()
    return int(n or 0), (round(float(correct or 0) / n, 4) if n else None)
