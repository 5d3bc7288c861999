"""Where the assistant's ASR and NLU are wrong, what the review program costs, and what it exposes.

Error figures compare the device's hypotheses with the final reviewed label of each reviewed clip,
weighting every clip by 1 / its inclusion probability so that priority sampling (which over-samples
hard clips) does not bias them; unweighted figures are reported next to them. The device transcript
is compared in its redacted form, so personal data is a placeholder on both sides and never shown.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rapidfuzz.distance import Levenshtein
from sqlalchemy import Text, cast, distinct, func, select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.escalation import SAFETY
from earmark.export import final_label_ids
from earmark.models import Account, Annotation, Assignment, Clip, ClipProtection, QueueItem
from earmark.sampling_policy import period_of
from earmark.textnorm import normalize
from earmark.types import Actor, ClipStatus

WORST = 10


def _tokens(text: str) -> str:
    """Lowercase words; redaction placeholders stay one token ([PHONE] -> phone_)."""
    words = []
    for w in text.split():
        if w.startswith("[") and w.endswith("]"):
            words.append(w.strip("[]").lower() + "_")
        else:
            words.append(normalize(w))
    return " ".join(w for w in words if w)


@dataclass(slots=True)
class _Acc:
    """Weighted and unweighted sums for one group."""

    clips: int = 0
    weight: float = 0.0
    errors: float = 0.0
    words: float = 0.0
    raw_errors: int = 0
    raw_words: int = 0
    intent_n: int = 0
    intent_w: float = 0.0
    intent_right_w: float = 0.0
    intent_right: int = 0
    slot_tp: float = 0.0
    slot_fp: float = 0.0
    slot_fn: float = 0.0

    def _f1(self, p: float | None, r: float | None) -> float | None:
        if p and r:
            return round(2 * p * r / (p + r), 4)
        return 0.0 if self.slot_tp + self.slot_fp + self.slot_fn else None  # slots, none right: 0

    def row(self) -> dict[str, Any]:
        def ratio(a: float, b: float) -> float | None:
            return round(a / b, 4) if b else None

        p = ratio(self.slot_tp, self.slot_tp + self.slot_fp)
        r = ratio(self.slot_tp, self.slot_tp + self.slot_fn)
        return {
            "clips": self.clips,
            "asr_wer": ratio(self.errors, self.words),
            "asr_wer_unweighted": ratio(self.raw_errors, self.raw_words),
            "intent_accuracy": ratio(self.intent_right_w, self.intent_w),
            "intent_accuracy_unweighted": ratio(self.intent_right, self.intent_n),
            "slot_f1": round(2 * p * r / (p + r), 4)
            if p and r
            else (0.0 if self.slot_tp + self.slot_fp + self.slot_fn else None),
        }


def _slots(slots: list[dict[str, Any]] | None) -> set[tuple[str, str]]:
    return {(str(s.get("type")), normalize(str(s.get("value", "")))) for s in slots or []}


@dataclass(slots=True)
class Metrics:
    overall: dict[str, Any] = field(default_factory=dict)
    by: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    intent_confusion: list[dict[str, Any]] = field(default_factory=list)
    worst: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall,
            "by": self.by,
            "intent_confusion": self.intent_confusion,
            "worst_examples": self.worst,
            "cost": self.cost,
            "privacy": self.privacy,
        }


def _final_labels(session: Session, since: datetime | None) -> list[Any]:
    newest = final_label_ids()
    q = (
        select(
            Clip.id,
            Clip.locale,
            Clip.device_type,
            Clip.inclusion_probability,
            Clip.redacted_text,
            Clip.device_nlu,
            Clip.device_asr_text.is_not(None).label("has_device_asr"),
            ClipProtection.transcript_source,
            Annotation.transcript,
            Annotation.intent,
            Annotation.slots,
        )
        .join(newest, newest.c.clip_id == Clip.id)
        .join(Annotation, Annotation.id == newest.c.ann_id)
        .outerjoin(ClipProtection, ClipProtection.clip_id == Clip.id)
        .where(Clip.status == ClipStatus.reviewed, Clip.erased_at.is_(None))
    )
    if since is not None:
        q = q.where(Annotation.created_at >= since)
    return list(session.execute(q))


def compute_metrics(
    session: Session, *, actor: Actor | None = None, since: datetime | None = None, period_days: int = 30
) -> Metrics:
    """Every figure of the metrics dashboard and `earmark metrics`. Audited when `actor` is given."""
    m = Metrics()
    total = _Acc()
    groups: dict[str, dict[str, _Acc]] = {
        "locale": defaultdict(_Acc),
        "intent": defaultdict(_Acc),
        "device_type": defaultdict(_Acc),
    }
    confusion: Counter[tuple[str, str]] = Counter()
    worst: list[tuple[float, dict[str, Any]]] = []
    useful = 0
    rows = _final_labels(session, since)
    for row in rows:
        w = 1.0 / row.inclusion_probability if row.inclusion_probability else 1.0
        keys = {"locale": row.locale, "intent": row.intent or "(none)", "device_type": row.device_type or "(unknown)"}
        accs = [total, *(groups[g][k] for g, k in keys.items())]
        corrected = False
        wer = None
        if row.transcript_source == "device" and row.redacted_text is not None:
            ref, hyp = _tokens(row.transcript).split(), _tokens(row.redacted_text).split()
            if ref:
                # Word-level edit distance = substitutions + deletions + insertions, as jiwer counts
                # them (jiwer runs on rapidfuzz too); called directly, it is fast enough for 100k clips.
                errs = Levenshtein.distance(ref, hyp)
                n = len(ref)
                wer = errs / n
                corrected = corrected or errs > 0
                for a in accs:
                    a.errors += w * errs
                    a.words += w * n
                    a.raw_errors += errs
                    a.raw_words += n
        nlu = row.device_nlu or {}
        if nlu.get("intent") and row.intent:
            right = nlu["intent"] == row.intent
            corrected = corrected or not right
            confusion[(nlu["intent"], row.intent)] += 1
            gold, pred = _slots(row.slots), _slots(nlu.get("slots"))
            corrected = corrected or gold != pred
            for a in accs:
                a.intent_n += 1
                a.intent_w += w
                a.intent_right_w += w * right
                a.intent_right += right
                a.slot_tp += w * len(gold & pred)
                a.slot_fp += w * len(pred - gold)
                a.slot_fn += w * len(gold - pred)
        for a in accs:
            a.clips += 1
            a.weight += w
        useful += corrected
        if wer is not None and wer > 0:
            worst.append(
                (
                    wer,
                    {
                        "wer": round(wer, 3),
                        "device": row.redacted_text,
                        "reviewed": row.transcript,
                        "device_intent": nlu.get("intent"),
                        "reviewed_intent": row.intent,
                    },
                )
            )
    m.overall = total.row()
    m.by = {g: {k: acc.row() for k, acc in sorted(v.items())} for g, v in groups.items()}
    m.intent_confusion = [{"device": d, "reviewed": r, "clips": n} for (d, r), n in confusion.most_common() if d != r][
        :20
    ]
    worst.sort(key=lambda x: -x[0])
    m.worst = [x for _, x in worst[:WORST]]
    m.cost = _cost(session, reviewed=len(rows), useful=useful, since=since)
    m.privacy = _privacy(session, period_days=period_days)
    if actor is not None:
        audit.record(session, actor=actor, action="metrics.view", details={"clips": len(rows)})
    return m


def _cost(session: Session, *, reviewed: int, useful: int, since: datetime | None) -> dict[str, Any]:
    q = select(func.count(), func.coalesce(func.sum(Annotation.ms), 0))
    if since is not None:
        q = q.where(Annotation.created_at >= since)
    passes, ms = session.execute(q).one()
    hours = float(ms) / 3_600_000
    return {
        "passes": int(passes),
        "review_hours": round(hours, 3),
        "reviewed_clips": reviewed,
        "useful_labels": useful,  # the final label corrected the device's transcript, intent or slots
        "seconds_per_reviewed_clip": round(hours * 3600 / reviewed, 2) if reviewed else None,
        "seconds_per_useful_label": round(hours * 3600 / useful, 2) if useful else None,
    }


def _privacy(session: Session, *, period_days: int) -> dict[str, Any]:
    total = session.execute(select(func.count()).select_from(Clip)).scalar_one()
    sampled = session.execute(select(func.count()).select_from(Clip).where(Clip.sampled_at.is_not(None))).scalar_one()
    heard_ids = select(Assignment.clip_id).distinct()
    heard = session.execute(select(func.count(distinct(Assignment.clip_id)))).scalar_one()
    processed = session.execute(select(func.count()).select_from(ClipProtection)).scalar_one()
    with_pii = session.execute(
        select(func.count()).select_from(ClipProtection).where(func.length(cast(ClipProtection.pii, Text)) > 2)
    ).scalar_one()
    safety = session.execute(
        select(func.count(distinct(QueueItem.clip_id))).where(QueueItem.queue == SAFETY)
    ).scalar_one()
    per_account: Counter[tuple[int, int]] = Counter()
    for account_id, recorded_at in session.execute(
        select(Clip.account_id, Clip.recorded_at).where(Clip.id.in_(heard_ids))
    ):
        per_account[(account_id, period_of(recorded_at, period_days))] += 1
    accounts = session.execute(select(func.count()).select_from(Account)).scalar_one()
    return {
        "recordings": int(total),
        "sampled": int(sampled),
        "heard_by_a_person": int(heard),
        "share_heard": round(heard / total, 6) if total else None,
        "accounts": int(accounts),
        "most_clips_heard_per_account_per_period": max(per_account.values(), default=0),
        "period_days": period_days,
        "share_of_processed_with_pii": round(with_pii / processed, 4) if processed else None,
        "clips_routed_to_safety": int(safety),
    }
