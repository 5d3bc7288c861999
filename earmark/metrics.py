"""Where the assistant's ASR and NLU are wrong, what the review program costs, and what it exposes.

Error figures compare the device's hypotheses with the final reviewed label of each reviewed clip,
weighting every clip by 1 / its inclusion probability so that priority sampling (which over-samples
hard clips) does not bias them; unweighted figures are reported next to them. The device transcript
is compared in its redacted form, so personal data is a placeholder on both sides and never shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from rapidfuzz.distance import Levenshtein
from sqlalchemy import Float, Integer, Text, case, cast, delete, distinct, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.db import one_at_a_time
from earmark.escalation import SAFETY
from earmark.export import final_label_ids
from earmark.models import Account, Annotation, Assignment, Clip, ClipError, ClipProtection, QueueItem
from earmark.pii import PII_SLOT_TYPES
from earmark.textnorm import normalize
from earmark.types import Actor, ClipStatus, Consent
from earmark.wakeword import KIND as WAKE_KIND
from earmark.wakeword import figures as wake_figures

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


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(float(a) / float(b), 4) if a is not None and b else None


def _f1(tp: float | None, fp: float | None, fn: float | None) -> float | None:
    tp, fp, fn = float(tp or 0), float(fp or 0), float(fn or 0)
    if tp + fp + fn == 0:
        return None  # no slot on either side
    return round(2 * tp / (2 * tp + fp + fn), 4)  # = 2PR / (P + R); 0 when nothing matched


def _slots(slots: list[dict[str, Any]] | None) -> set[tuple[str, str]]:
    return {(str(s.get("type")), normalize(str(s.get("value", "")))) for s in slots or []}


def _seen_slots(device: set[tuple[str, str]], shown: str | None, heard: str | None = None) -> set[tuple[str, str]]:
    """The device's slots a reviewer could judge: of a type that is not personal data, and not
    masked out of the transcript they were shown. A masked name or number ("call [PERSON]", slot
    contact = daniel) cannot be tagged, so it is not a device error. A value the device's own
    recognizer never heard ("parents" heard, city = paris understood) was not masked: the reviewer
    judges it like any other. `heard`: the device's transcript before masking (None once
    retention took it: then only values in `shown` count)."""
    words = f" {_tokens(shown or '')} "
    before = f" {_tokens(heard)} " if heard is not None else None

    def judged(value: str) -> bool:
        return f" {value} " in words or (before is not None and f" {value} " not in before)

    return {(t, v) for t, v in device if t.lower() not in PII_SLOT_TYPES and v and judged(v)}


@dataclass(slots=True)
class Metrics:
    overall: dict[str, Any] = field(default_factory=dict)
    by: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    intent_confusion: list[dict[str, Any]] = field(default_factory=list)
    worst: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, Any] = field(default_factory=dict)
    wake_word: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall,
            "by": self.by,
            "intent_confusion": self.intent_confusion,
            "worst_examples": self.worst,
            "cost": self.cost,
            "privacy": self.privacy,
            "wake_word": self.wake_word,
        }


def _errors_of(row: Any) -> dict[str, Any]:
    """The clip_errors row of one reviewed clip (numbers and enums, no text)."""
    out: dict[str, Any] = {
        "clip_id": row.id,
        "annotation_id": row.ann_id,
        "labelled_at": row.created_at,
        "locale": row.locale,
        "intent": row.intent or "(none)",
        "device_type": row.device_type or "(unknown)",
        "device_intent": None,
        "weight": 1.0 / row.inclusion_probability if row.inclusion_probability else 1.0,
        "asr_errors": None,
        "asr_words": None,
        "intent_right": None,
        "slot_tp": 0,
        "slot_fp": 0,
        "slot_fn": 0,
        "corrected": 0,
    }
    if row.transcript_source == "device" and row.redacted_text is not None:
        ref, hyp = _tokens(row.transcript).split(), _tokens(row.redacted_text).split()
        if ref:
            # Word-level edit distance = substitutions + deletions + insertions, as jiwer counts
            # them (jiwer runs on rapidfuzz too); called directly, it is fast enough for 100k clips.
            out["asr_errors"] = Levenshtein.distance(ref, hyp)
            out["asr_words"] = len(ref)
            out["corrected"] = int(out["asr_errors"] > 0)
    nlu = row.device_nlu or {}
    out["device_intent"] = (nlu.get("intent") or None) and str(nlu["intent"])[:64]
    if nlu.get("intent") and row.intent:
        # Both sides judged alike: slots of personal-data types count on neither.
        gold = {(t, v) for t, v in _slots(row.slots) if t.lower() not in PII_SLOT_TYPES}
        pred = _seen_slots(_slots(nlu.get("slots")), row.redacted_text, row.device_asr_text)
        out["intent_right"] = int(nlu["intent"] == row.intent)
        out["slot_tp"], out["slot_fp"], out["slot_fn"] = len(gold & pred), len(pred - gold), len(gold - pred)
        out["corrected"] = int(out["corrected"] or not out["intent_right"] or gold != pred)
    return out


def refresh_errors(session: Session, *, chunk: int = 2000) -> int:
    """Compute clip_errors rows for reviewed clips that have none or whose final label changed.
    Returns how many were (re)computed. Caller commits. One refresh at a time: the page's and the
    worker's at once each inserted the same rows, and one failed on the primary key."""
    one_at_a_time(session, "metrics.refresh")
    final = final_label_ids()
    stale = list(
        session.execute(
            select(final.c.clip_id)
            .join(Clip, Clip.id == final.c.clip_id)
            .outerjoin(ClipError, ClipError.clip_id == final.c.clip_id)
            .where(
                Clip.status == ClipStatus.reviewed,
                Clip.erased_at.is_(None),
                or_(ClipError.clip_id.is_(None), ClipError.annotation_id != final.c.ann_id),
            )
        ).scalars()
    )
    for start in range(0, len(stale), chunk):
        ids = stale[start : start + chunk]
        # Key-share-locked, in id order, and re-checked (PostgreSQL re-evaluates the WHERE on a row
        # changed meanwhile): an erasure or withdrawal waits for this transaction and then deletes
        # the rows written here, or has committed and its clips are skipped. Read unlocked, the
        # figures of a clip erased meanwhile were inserted after the erasure deleted them.
        ids = list(
            session.execute(
                select(Clip.id)
                .where(Clip.id.in_(ids), Clip.status == ClipStatus.reviewed, Clip.erased_at.is_(None))
                .order_by(Clip.id)
                .with_for_update(read=True, key_share=True)
            ).scalars()
        )
        rows = session.execute(
            select(
                Clip.id,
                Clip.locale,
                Clip.device_type,
                Clip.inclusion_probability,
                Clip.redacted_text,
                Clip.device_asr_text,
                Clip.device_nlu,
                ClipProtection.transcript_source,
                Annotation.id.label("ann_id"),
                Annotation.created_at,
                Annotation.transcript,
                Annotation.intent,
                Annotation.slots,
            )
            .join(final, final.c.clip_id == Clip.id)
            .join(Annotation, Annotation.id == final.c.ann_id)
            .outerjoin(ClipProtection, ClipProtection.clip_id == Clip.id)
            .where(Clip.id.in_(ids))
        ).all()
        session.execute(delete(ClipError).where(ClipError.clip_id.in_(ids)))
        if rows:
            session.execute(insert(ClipError), [_errors_of(r) for r in rows])
    return len(stale)


def _current(since: datetime | None) -> list[Any]:
    """Conditions for clip_errors rows of clips that are reviewed now. refresh_errors keeps each
    row on its clip's final label; erasure and consent withdrawal delete the rows; annotation
    retention leaves them (numbers only), so the figures outlive the text they came from."""
    conds: list[Any] = [Clip.status == ClipStatus.reviewed, Clip.erased_at.is_(None)]
    if since is not None:
        conds.append(ClipError.labelled_at >= since)
    return conds


def _aggregate(session: Session, conds: list[Any], dim: Any | None) -> dict[str, dict[str, Any]]:
    e = ClipError
    known = e.intent_right.is_not(None)
    cols = [
        func.count(),
        func.sum(e.weight * e.asr_errors),
        func.sum(e.weight * e.asr_words),
        func.sum(e.asr_errors),
        func.sum(e.asr_words),
        func.sum(case((known, e.weight))),
        func.sum(e.weight * e.intent_right),
        func.count(e.intent_right),
        func.sum(e.intent_right),
        func.sum(e.weight * e.slot_tp),
        func.sum(e.weight * e.slot_fp),
        func.sum(e.weight * e.slot_fn),
        func.sum(e.slot_tp),
        func.sum(e.slot_fp),
        func.sum(e.slot_fn),
        func.sum(e.weight),
        func.sum(e.weight * e.weight),
        func.max(e.weight),
    ]
    q = select(dim if dim is not None else literal("all"), *cols).join(Clip, Clip.id == e.clip_id).where(*conds)
    if dim is not None:
        q = q.group_by(dim)
    out = {}
    for key, n, we, ww, re_, rw, iw, iwr, inn, ir, tp, fp, fn, rtp, rfp, rfn, w, w2, wmax in session.execute(q):
        out[str(key)] = {
            "clips": int(n),
            "asr_wer": _ratio(we, ww),
            "asr_wer_unweighted": _ratio(re_, rw),
            "intent_accuracy": _ratio(iwr, iw),
            "intent_accuracy_unweighted": _ratio(ir, inn),
            "slot_f1": _f1(tp, fp, fn),
            "slot_f1_unweighted": _f1(rtp, rfp, rfn),
            # How far the weights let a few clips decide: Kish's effective sample size, (sum w)^2 /
            # sum w^2 (n when all weights are equal), and the largest single clip's share.
            "effective_clips": round(float(w) ** 2 / float(w2), 1) if w2 else 0.0,
            "largest_weight_share": round(float(wmax) / float(w), 4) if w else None,
        }
    return out


def compute_metrics(
    session: Session,
    *,
    actor: Actor | None = None,
    since: datetime | None = None,
    period_days: int = 30,
    consent_default: str = Consent.deny,
) -> Metrics:
    """Every figure of the metrics dashboard and `earmark metrics`, aggregated in SQL over
    clip_errors (refreshed first for new or changed labels). Audited when `actor` is given."""
    refreshed = refresh_errors(session)
    conds = _current(since)
    m = Metrics()
    m.overall = _aggregate(session, conds, None)["all"]  # no GROUP BY: always one row, zeros on no data
    m.by = {
        "locale": _aggregate(session, conds, ClipError.locale),
        "intent": _aggregate(session, conds, ClipError.intent),
        "device_type": _aggregate(session, conds, ClipError.device_type),
    }
    m.intent_confusion = [
        {"device": d, "reviewed": r, "clips": int(n)}
        for d, r, n in session.execute(
            select(ClipError.device_intent, ClipError.intent, func.count())
            .join(Clip, Clip.id == ClipError.clip_id)
            .where(*conds, ClipError.intent_right == 0)
            .group_by(ClipError.device_intent, ClipError.intent)
            .order_by(func.count().desc(), ClipError.device_intent)
            .limit(20)
        )
    ]
    m.worst = _worst(session, conds)
    reviewed, useful = session.execute(
        select(func.count(), func.sum(ClipError.corrected)).join(Clip, Clip.id == ClipError.clip_id).where(*conds)
    ).one()
    m.cost = _cost(session, reviewed=int(reviewed), useful=int(useful or 0), since=since)
    m.privacy = _privacy(session, period_days=period_days)
    wake = wake_figures(session, since=since, consent_default=consent_default)
    m.wake_word = {
        "answered": wake.answered,
        "false_wakes": wake.false_wakes,
        "false_wake_share": wake.false_wake_share,
        "false_wake_interval": wake.false_wake_interval,
        "effective_answers": wake.effective_answers,
        "hours": wake.hours,
        "by_answer": [asdict(x) for x in wake.labels],
        "by_device": [asdict(x) for x in wake.by_device],
    }
    if actor is not None:
        audit.record(
            session, actor=actor, action="metrics.view", details={"clips": int(reviewed), "refreshed": refreshed}
        )
    return m


def _worst(session: Session, conds: list[Any]) -> list[dict[str, Any]]:
    """The clips whose device transcript was furthest off, shown masked (redacted on both sides)."""
    wer = cast(ClipError.asr_errors, Float) / ClipError.asr_words
    rows = session.execute(
        select(wer, Clip.redacted_text, Annotation.transcript, ClipError.device_intent, ClipError.intent)
        .join(Clip, Clip.id == ClipError.clip_id)
        .outerjoin(Annotation, Annotation.id == ClipError.annotation_id)  # gone after annotation retention
        .where(*conds, ClipError.asr_words > 0, ClipError.asr_errors > 0)
        .order_by(wer.desc(), ClipError.clip_id)
        .limit(WORST)
    ).all()
    return [
        {
            "wer": round(float(w), 3),
            "device": device,
            "reviewed": reviewed,
            "device_intent": device_intent,
            "reviewed_intent": None if intent == "(none)" else intent,
        }
        for w, device, reviewed, device_intent, intent in rows
    ]


def _cost(session: Session, *, reviewed: int, useful: int, since: datetime | None) -> dict[str, Any]:
    """Review time from the passes' own timings. Annotation retention deletes passes while the
    error figures stay, so the time per clip is taken over the reviewed clips whose timed passes
    are still held (every pass of them: two passes are two people's time), and is unknown, not
    zero, when none are."""
    # The wake-word team's answers are not review passes: their time is in the wake-word figures.
    window = [Annotation.kind != WAKE_KIND, *([Annotation.created_at >= since] if since is not None else [])]
    passes, ms = session.execute(select(func.count(), func.coalesce(func.sum(Annotation.ms), 0)).where(*window)).one()
    done_ms, timed_clips = session.execute(
        select(func.coalesce(func.sum(Annotation.ms), 0), func.count(distinct(Annotation.clip_id)))
        .join(Clip, Clip.id == Annotation.clip_id)
        .where(Annotation.ms.is_not(None), Clip.status == ClipStatus.reviewed, Clip.erased_at.is_(None), *window)
    ).one()
    per_clip = float(done_ms) / 1000 / timed_clips if timed_clips else None
    return {
        "passes": int(passes),
        "review_hours": round(float(ms) / 3_600_000, 3),  # in the passes still held
        "reviewed_clips": reviewed,
        "useful_labels": useful,  # the final label corrected the device's transcript, intent or slots
        "seconds_per_reviewed_clip": round(per_clip, 2) if per_clip is not None and reviewed else None,
        "seconds_per_useful_label": round(per_clip * reviewed / useful, 2) if per_clip is not None and useful else None,
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
    # The same periods as the sampling cap (earmark.sampling_policy.period_of), counted in SQL.
    period = _period_sql(session, period_days)
    most = session.execute(
        select(func.count())
        .select_from(Clip)
        .where(Clip.id.in_(heard_ids))
        .group_by(Clip.account_id, period)
        .order_by(func.count().desc())
        .limit(1)
    ).scalar_one_or_none()
    accounts = session.execute(select(func.count()).select_from(Account)).scalar_one()
    return {
        "recordings": int(total),
        "sampled": int(sampled),
        "heard_by_a_person": int(heard),
        "share_heard": round(heard / total, 6) if total else None,
        "accounts": int(accounts),
        "most_clips_heard_per_account_per_period": int(most or 0),
        "period_days": period_days,
        "share_of_processed_with_pii": round(with_pii / processed, 4) if processed else None,
        "clips_routed_to_safety": int(safety),
    }


def _period_sql(session: Session, period_days: int) -> Any:
    """SQL for period_of(Clip.recorded_at, period_days): whole days since 1970-01-01 UTC, divided
    by period_days and rounded down (recording times are stored as naive UTC on both backends)."""
    if session.get_bind().dialect.name == "sqlite":
        days = cast(func.julianday(Clip.recorded_at) - 2440587.5, Integer)
        return days // period_days  # integer division of non-negative integers: floor ("/" is real division)
    days = func.floor(func.extract("epoch", Clip.recorded_at) / 86400)
    return func.floor(days / period_days)
