"""Sampling: which consented clips a human may hear, by a policy (earmark/sampling_policy.py).

The database path decides each never-sampled clip with the same pure `decide` as the upstream
stream path, in the order a stream would see them (recording time, then clip id), so both draw the
same clips. The per-household cap also counts clips already sampled in the same period.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from earmark import audit
from earmark.consent import allows_review, share_lock_accounts
from earmark.models import Account, Clip, Entity, InventoryItem, utcnow
from earmark.sampling_policy import (
    WAKE_WORD_REASON,
    CapCounter,
    EntityCheck,
    SamplingPolicy,
    decide,
    entity_check,
    period_of,
)
from earmark.textnorm import normalize
from earmark.types import Actor, ClipStatus, Consent


@dataclass(slots=True)
class StratumCount:
    eligible: int = 0
    drawn: int = 0
    priority: int = 0
    capped: int = 0
    score_sum: float = 0.0


@dataclass(slots=True)
class SampleResult:
    considered: int
    eligible: int
    drawn: int
    capped: int
    clip_ids: list[str]
    excluded: dict[str, int] = field(default_factory=dict)
    strata: dict[str, StratumCount] = field(default_factory=dict)
    mean_score: float = 0.0  # observed in this run; the policy's priority.mean_score should match it
    wake_word: int = 0  # accidental activations drawn for the wake-word team (not in eligible or strata)

    def as_dict(self) -> dict[str, Any]:
        return {
            "considered": self.considered,
            "eligible": self.eligible,
            "drawn": self.drawn,
            "capped": self.capped,
            "excluded": self.excluded,
            "mean_score": round(self.mean_score, 4),
            "wake_word": self.wake_word,
            "strata": {
                k: {
                    "eligible": v.eligible,
                    "drawn": v.drawn,
                    "priority": v.priority,
                    "capped": v.capped,
                    "mean_score": round(v.score_sum / v.eligible, 4) if v.eligible else 0.0,
                }
                for k, v in sorted(self.strata.items())
            },
        }


# The columns a draw reads: selected as plain rows, not ORM objects, so a big backlog costs
# tuples, not identity-mapped instances (bench/sampling.py).
_DRAW_COLUMNS = (
    Clip.id,
    Clip.account_id,
    Clip.external_id,
    Clip.recorded_at,
    Clip.locale,
    Clip.device_type,
    Clip.child_profile,
    Clip.wake_score,
    Clip.device_asr_text,
    Clip.device_asr_confidence,
    Clip.device_asr_alternatives,
    Clip.device_nlu,
    Clip.inclusion_probability,
    Clip.sample_reason,
    Clip.sample_policy,
)


def clip_record(clip: Any, account_external_id: str) -> dict[str, Any]:
    """A stored clip's metadata (a Clip or a row of its columns) in the shape `decide` takes
    (what the upstream stream carries)."""
    nlu = clip.device_nlu or {}
    asr: dict[str, Any] | None = None
    if clip.device_asr_text is not None:
        asr = {
            "text": clip.device_asr_text,
            "confidence": clip.device_asr_confidence,
            "alternatives": clip.device_asr_alternatives or [],
        }
    return {
        "clip_id": clip.external_id,
        "account_id": account_external_id,
        "recorded_at": clip.recorded_at,
        "locale": clip.locale,
        "device_type": clip.device_type,
        "child_profile": bool(clip.child_profile),
        "wake_score": clip.wake_score,
        "device_asr": asr,
        "device_nlu": clip.device_nlu,
        "intent": nlu.get("intent"),
    }


def catalog_lookup(session: Session) -> EntityCheck | None:
    """The missing-entity check over the catalog and the inventory's entity-linked slot types;
    None when the catalog is empty."""
    by_type: dict[str, set[str]] = {}
    for name, aliases, etype in session.execute(select(Entity.name, Entity.aliases, Entity.type)):
        names = by_type.setdefault(etype, set())
        names.add(normalize(name))
        names.update(normalize(a) for a in aliases or [])
    if not by_type:
        return None
    slot_types = dict(
        session.execute(
            select(InventoryItem.name, InventoryItem.entity_type).where(
                InventoryItem.kind == "slot", InventoryItem.entity_type.is_not(None)
            )
        ).all()
    )
    return entity_check(by_type, slot_types)


def _still_allowed(session: Session, chosen: list[Any], default_consent: Consent) -> list[Any]:
    """The chosen clips whose account still allows review, with those accounts share-locked until
    commit (PostgreSQL). Consent was read when the draw began; a withdrawal committed since then
    did not see these clips as sampled, so it did not withdraw them, and they would have gone on
    to the pipeline and a queue. A withdrawal that comes later waits for this draw and then finds
    them pending. SQLite: a plain re-read (its single writer already orders the two)."""
    accounts = {c.account_id for c, _, _ in chosen}
    allowed = share_lock_accounts(session, accounts, allows_review(default_consent), Account.erased_at.is_(None))
    return [c for c in chosen if c[0].account_id in allowed]


def draw_sample(
    session: Session,
    *,
    actor: Actor,
    policy: SamplingPolicy,
    key: bytes,
    default_consent: Consent,
    dry_run: bool = False,
    ingested_since: datetime | None = None,
    record_empty: bool = True,
) -> SampleResult:
    """Mark the clips `policy` draws among never-sampled stored clips; they wait for the
    safe-to-hear pipeline. Stores each clip's inclusion probability and reason. Audited; caller commits."""
    now = utcnow()
    allowed = set(
        session.execute(select(Account.id).where(allows_review(default_consent), Account.erased_at.is_(None))).scalars()
    )
    rows = session.execute(
        select(*_DRAW_COLUMNS, Account.external_id.label("account_external_id"))
        .join(Account, Account.id == Clip.account_id)
        # A clip whose original retention already purged has nothing to make safe to hear.
        .where(Clip.status == ClipStatus.stored, Clip.sampled_at.is_(None), Clip.blob_key.is_not(None))
        # The worker's rounds: only clips that arrived since its last draw (the draw is keyed, so
        # a clip once left out is left out again; re-reading them all each round was wasted work).
        # A clip of an account whose consent changed since is read again too (consent may come
        # after the recordings).
        .where(
            *(
                [or_(Clip.ingested_at >= ingested_since, Account.consent_updated_at >= ingested_since)]
                if ingested_since is not None
                else []
            )
        )
        .order_by(Clip.recorded_at, Clip.external_id)
    ).all()
    # Clips already sampled count against their household's cap for their period.
    already = Counter(
        (acct, period_of(at, policy.period_days))
        for at, acct in session.execute(
            select(Clip.recorded_at, Account.external_id)
            .join(Account, Account.id == Clip.account_id)
            .where(Clip.sampled_at.is_not(None))
        )
    )
    caps = CapCounter(policy.cap_per_account, already)
    known = catalog_lookup(session) if policy.priority.missing_entities and policy.budget.priority else None
    result = SampleResult(considered=len(rows), eligible=0, drawn=0, capped=0, clip_ids=[])
    excluded: Counter[str] = Counter()
    chosen: list[tuple[Any, float, str]] = []
    for clip in rows:
        account_ext = clip.account_external_id
        rec = clip_record(clip, account_ext)
        d = decide(policy, key, rec, consent=clip.account_id in allowed, known_entity=known)
        if clip.inclusion_probability is not None and not d.reason.startswith("excluded:"):
            # Drawn upstream (`earmark sample-stream`): keep that decision; consent, exclusions
            # and the household cap still apply here.
            # An accidental activation (by this policy or upstream's) is the wake-word team's only,
            # whatever reason upstream gave: never a review candidate.
            team = d.for_wake_word or clip.sample_reason == WAKE_WORD_REASON
            reason = WAKE_WORD_REASON if team else clip.sample_reason or "uniform"
            d = replace(d, drawn=True, reason=reason, probability=clip.inclusion_probability, for_wake_word=team)
        if d.reason.startswith("excluded:"):
            excluded[d.reason.removeprefix("excluded:")] += 1
            continue
        if d.for_wake_word:
            # Not a candidate for review: outside the eligible clips, their strata and mean score.
            if d.drawn and caps.admit(account_ext, d.period):
                result.wake_word += 1
                chosen.append((clip, d.probability, d.reason))
            elif d.drawn:
                result.capped += 1
            continue
        result.eligible += 1
        st = result.strata.setdefault(d.stratum, StratumCount())
        st.eligible += 1
        st.score_sum += d.score
        result.mean_score += d.score
        if not d.drawn:
            continue
        if not caps.admit(account_ext, d.period):
            st.capped += 1
            result.capped += 1
            continue
        st.drawn += 1
        st.priority += d.reason == "priority"
        chosen.append((clip, d.probability, d.reason))
    result.mean_score = result.mean_score / result.eligible if result.eligible else 0.0
    result.excluded = dict(sorted(excluded.items()))
    if not dry_run:
        chosen = _still_allowed(session, chosen, default_consent)
    result.drawn = len(chosen)
    result.clip_ids = [c.external_id for c, _, _ in chosen]
    if dry_run or (not record_empty and not result.considered):
        return result
    digest = policy.digest()
    if chosen:
        # Not queued yet: the safe-to-hear pipeline queues the protected derivative. The status
        # condition makes a clip that changed meanwhile (erased, say) stay as it is.
        t = Clip.__table__
        session.connection().execute(
            update(t)
            .where(t.c.id == bindparam("b_id"), t.c.status == ClipStatus.stored, t.c.sampled_at.is_(None))
            .values(
                sampled_at=now,
                inclusion_probability=bindparam("b_p"),
                sample_reason=bindparam("b_reason"),
                sample_policy=bindparam("b_policy"),
                status=ClipStatus.pending,
            ),
            # In id order, the order retention locks clips in.
            [
                {"b_id": c.id, "b_p": p, "b_reason": r, "b_policy": c.sample_policy or digest}
                for c, p, r in sorted(chosen, key=lambda x: x[0].id)
            ],
        )
    audit.record(
        session,
        actor=actor,
        action="sample.draw",
        details={
            "policy": digest,
            "considered": result.considered,
            "eligible": result.eligible,
            "drawn": result.drawn,
            "priority": sum(1 for _, _, r in chosen if r == "priority"),
            **({"wake_word": result.wake_word} if result.wake_word else {}),
            "capped": result.capped,
            "cap": policy.cap_per_account,
        },
    )
    return result
