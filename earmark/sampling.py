"""Sampling: which consented clips a human may hear. Small, capped per account, reproducible.

A clip is drawn when a keyed hash of (seed, clip id) falls below the rate, so a draw is the same
for the same seed and database whatever order rows come back in; then each account keeps at most
`cap` clips per period, the lowest hashes first.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.consent import allows_review
from earmark.errors import InvalidInput
from earmark.models import Account, Clip, utcnow
from earmark.queues import GENERAL
from earmark.types import Actor, ClipStatus, Consent


def unit_hash(seed: int, clip_id: str) -> float:
    """A uniform number in [0, 1) from seed and clip id.

    >>> 0.0 <= unit_hash(1, "clip-a") < 1.0
    True
    """
    digest = hashlib.sha256(f"earmark-sample:{seed}:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class SampleResult:
    eligible: int
    drawn: int
    capped: int
    clip_ids: list[str]


def draw_sample(
    session: Session,
    *,
    actor: Actor,
    rate: float,
    seed: int,
    cap: int,
    period_days: int,
    default_consent: Consent,
    queue: str = GENERAL,
    dry_run: bool = False,
) -> SampleResult:
    """Mark a `rate` share of eligible clips (consented, never sampled) for review, at most `cap` per
    account per `period_days`; they wait for the safe-to-hear pipeline. Audited; caller commits."""
    if not 0.0 < rate <= 1.0:
        raise InvalidInput("rate must be in (0, 1]", field="rate")
    if cap < 0:
        raise InvalidInput("cap must be zero or more", field="cap")
    now = utcnow()
    rows = session.execute(
        select(Clip.id, Clip.external_id, Clip.account_id)
        .join(Account, Account.id == Clip.account_id)
        .where(Clip.status == ClipStatus.stored, Clip.sampled_at.is_(None), allows_review(default_consent))
    ).all()
    since = now - timedelta(days=period_days)
    recent = dict(
        session.execute(
            select(Clip.account_id, func.count())
            .where(Clip.sampled_at.is_not(None), Clip.sampled_at >= since)
            .group_by(Clip.account_id)
        ).all()
    )
    hits: dict[int, list[tuple[float, int, str]]] = defaultdict(list)
    for clip_pk, external_id, account_id in rows:
        u = unit_hash(seed, external_id)
        if u < rate:
            hits[account_id].append((u, clip_pk, external_id))
    chosen: list[tuple[float, int, str]] = []
    capped = 0
    for account_id in sorted(hits):
        room = max(cap - int(recent.get(account_id, 0)), 0)
        ordered = sorted(hits[account_id])
        chosen.extend(ordered[:room])
        capped += max(len(ordered) - room, 0)
    # Queue in hash order: a reviewer does not hear one household's clips back to back.
    chosen.sort()
    if not dry_run:
        for _, clip_pk, _ in chosen:
            clip = session.get(Clip, clip_pk)
            assert clip is not None
            clip.sampled_at = now
            clip.inclusion_probability = rate
            clip.sample_reason = "uniform"
            # Not queued yet: the safe-to-hear pipeline queues the protected derivative.
            clip.status = ClipStatus.pending
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="sample.draw",
            details={
                "rate": rate,
                "seed": seed,
                "eligible": len(rows),
                "drawn": len(chosen),
                "capped": capped,
                "cap": cap,
                "queue": queue,
            },
        )
    return SampleResult(len(rows), len(chosen), capped, [ext for _, _, ext in chosen])
