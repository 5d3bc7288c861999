"""The wake-word queue: clips the device woke for but in which nobody spoke to it.

With `no_speech_route = "wakeword"`, the pipeline sends such clips (screened, anonymized, never the
original) to a restricted queue that only the `wakeword` role leases from. The wake-word team hears
each one and says what woke the device, so the team that builds the wake-word model learns which
false wakes to train against and at what detector scores they happen. The answers are passes
(`Annotation` rows of kind `wakeword`, the answer in `reason`), so retention and erasure remove
them as they remove every other pass. The figures come from `wake_answers` (numbers and the answer
only, written with each answer), which outlives annotation retention as `clip_errors` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.consent import allows_review
from earmark.errors import Conflict, InvalidInput, NotFound
from earmark.export_formats import FALSE_WAKES
from earmark.models import Account, Annotation, Assignment, Clip, ClipStage, User, WakeAnswer, utcnow
from earmark.queues import WAKEWORD, lease_next, user_actor
from earmark.review import close_pass, kept_ms, open_pass
from earmark.sampling_policy import WAKE_WORD_REASON
from earmark.types import ClipStatus, Consent

KIND = "wakeword"  # the Annotation kind of a wake-word answer
UNKNOWN_DEVICE = "(unknown)"  # the device type of a clip whose device sent none

# The answers, in the order the page offers them (keys 1 to 6).
LABELS: dict[str, str] = {
    "wake_word": "The wake word, said to the device (then nothing)",
    "sound_alike": "A word that sounds like the wake word",
    "media": "TV, radio or music",
    "background_speech": "People talking, not to the device",
    "other_sound": "Another sound, no speech",
    "unclear": "Cannot tell",
}
# The answers a `wakeword` export carries. Not `background_speech`: the voices of people who never
# spoke to the assistant do not become training data (nor does any clip the pipeline found speech
# in, whatever the answer: `earmark.export`). Not `unclear`: it says nothing to learn from.
EXPORTED = ("wake_word", "sound_alike", "media", "other_sound")


def no_speech_clips(session: Session, clip_ids: list[int]) -> set[int]:
    """Of `clip_ids`, those the pipeline's last run found no speech in (one query)."""
    last = (
        select(func.max(ClipStage.id))
        .where(ClipStage.clip_id.in_(clip_ids), ClipStage.stage == "speech")
        .group_by(ClipStage.clip_id)
    )
    return set(
        session.execute(
            select(ClipStage.clip_id).where(ClipStage.id.in_(last), ClipStage.outcome == "no_speech")
        ).scalars()
    )


def found_no_speech(session: Session, clip_id: int) -> bool:
    """Did the pipeline's last run find no speech in the clip?"""
    return clip_id in no_speech_clips(session, [clip_id])


def for_the_team(session: Session, clip: Clip) -> bool:
    """Does the clip belong to the wake-word team, not to general review? One drawn for it (an
    accidental activation), or one the pipeline's last run found no speech in."""
    return clip.sample_reason == WAKE_WORD_REASON or found_no_speech(session, clip.id)


def lease(
    session: Session,
    *,
    actor: User,
    lease_seconds: int,
    consent_default: str,
    max_sensitivity: float | None = None,
) -> Assignment | None:
    """The next wake-word clip for `actor`, or None (`max_sensitivity`: none more sensitive, for a
    person who met distressing content today). Audited (by the lease); caller commits."""
    return lease_next(
        session,
        actor=actor,
        queue=WAKEWORD,
        lease_seconds=lease_seconds,
        consent_default=consent_default,
        max_sensitivity=max_sensitivity,
    )


def record_answer(
    session: Session, *, actor: User, assignment_id: str, label: str, ms: int | None = None
) -> Annotation:
    """Store what woke the device and close the clip. A second submit of the same answer (a double
    click) returns the first; another answer from a second tab is a Conflict. Audited; caller
    commits."""
    if label not in LABELS:
        raise InvalidInput(f"choose one of: {', '.join(LABELS)}", field="label")
    opened = open_pass(session, actor, assignment_id)
    if isinstance(opened, Annotation):
        if opened.kind != KIND:
            raise NotFound("no such wake-word clip")
        if opened.reason != label:
            raise Conflict(
                "this clip was already answered (from another tab or window) with another answer; "
                "this one was not saved"
            )
        return opened
    assignment, clip, item = opened
    if item.queue != WAKEWORD:
        raise NotFound("no such wake-word clip")
    now = utcnow()
    answer = Annotation(
        clip_id=clip.id,
        assignment_id=assignment.id,
        user_id=actor.id,
        transcript="",
        intent=None,
        created_at=now,
        kind=KIND,
        reason=label,
        ms=kept_ms(ms),
    )
    session.add(answer)
    close_pass(assignment, item, now)
    clip.status = ClipStatus.reviewed
    session.flush()
    session.merge(  # the clip's newest answer: a row of an earlier one is replaced
        WakeAnswer(
            clip_id=clip.id,
            annotation_id=answer.id,
            answered_at=now,
            label=label,
            device_type=(clip.device_type or UNKNOWN_DEVICE)[:32],
            wake_score=clip.wake_score,
            weight=1.0 / clip.inclusion_probability if clip.inclusion_probability else 1.0,
        )
    )
    session.flush()
    audit.record(
        session, actor=user_actor(actor), action="wakeword.answer", object_type="assignment", object_id=assignment.id,
        details={"label": label},
    )  # fmt: skip
    return answer


@dataclass(frozen=True, slots=True)
class LabelFigures:
    label: str
    description: str
    clips: int
    median_wake_score: float | None  # of the clips whose device reported one, weighted


@dataclass(frozen=True, slots=True)
class DeviceFigures:
    device_type: str
    answered: int
    false_wakes: int
    false_wake_share: float | None  # weighted, as WakeFigures.false_wake_share
    interval: tuple[float, float] | None = None  # as WakeFigures.false_wake_interval


@dataclass(frozen=True, slots=True)
class WakeFigures:
    """What the wake-word team found: per answer, how many clips and at what detector score, and
    the time their answers took."""

    answered: int
    false_wakes: int
    labels: list[LabelFigures]
    hours: float = 0.0
    # Of the clips the answers stand for, each weighted by 1 / its inclusion probability: clips
    # without speech drawn at the review rate and accidental activations drawn at
    # `wake_word_rate` stand for as many clips as they were drawn from.
    false_wake_share: float | None = None
    by_device: list[DeviceFigures] = field(default_factory=list)
    # How sure the share is: a 95% interval, and how many answers drawn evenly the weighted ones
    # are worth (Kish's effective sample size); a few heavy clips make it small.
    false_wake_interval: tuple[float, float] | None = None
    effective_answers: float = 0.0


def weighted_median(pairs: list[tuple[float, float]]) -> float | None:
    """The median of (value, weight) pairs: the smallest value at which the weights of the values
    up to it reach half of all the weight (the mean of two values where they reach exactly half)."""
    pairs = sorted((v, w) for v, w in pairs if w > 0)
    total = sum(w for _v, w in pairs)
    if not pairs:
        return None
    seen = 0.0
    for i, (value, weight) in enumerate(pairs):
        seen += weight
        if abs(seen - total / 2) <= 1e-9 * total and i + 1 < len(pairs):
            return (value + pairs[i + 1][0]) / 2
        if seen > total / 2:
            return value
    return pairs[-1][0]


def share_interval(hit: float, total: float, squares: float, z: float = 1.96) -> tuple[float, float] | None:
    """A 95% Wilson score interval of the weighted share hit / total, with Kish's effective sample
    size total^2 / squares (the sum of the squared weights) as the number of answers: a share from
    three answers, or from one clip that outweighs the rest, gets a wide interval."""
    if total <= 0 or squares <= 0:
        return None
    n = total * total / squares
    p = min(1.0, max(0.0, hit / total))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def figures(session: Session, *, since: datetime | None = None, consent_default: str = Consent.deny) -> WakeFigures:
    """Each answered clip's newest answer (`wake_answers`), counted per answer and per device type:
    of clips not erased, whose account allows review now (an account that said no since leaves the
    figures, also when it let its reviewed clips be kept). Shares and medians are weighted by
    1 / inclusion probability. `hours`: the time of every answer in the window, from the passes
    (so it goes with annotation retention; the counts do not)."""
    answers = session.execute(
        select(WakeAnswer.label, WakeAnswer.device_type, WakeAnswer.wake_score, WakeAnswer.weight)
        .join(Clip, Clip.id == WakeAnswer.clip_id)
        .join(Account, Account.id == Clip.account_id)
        .where(
            Clip.erased_at.is_(None),
            allows_review(consent_default),
            *([WakeAnswer.answered_at >= since] if since is not None else []),
        )
    ).all()
    scores: dict[str, list[tuple[float, float]]] = {label: [] for label in LABELS}
    counts = dict.fromkeys(LABELS, 0)
    weights = dict.fromkeys(LABELS, 0.0)
    # device type -> [answered, false wakes, weight, false-wake weight, squared weight]
    devices: dict[str, list[float]] = {}
    squares = 0.0
    for label, device, wake, weight in answers:
        if label not in counts:
            continue
        false_wake = label in FALSE_WAKES
        counts[label] += 1
        weights[label] += weight
        squares += weight * weight
        d = devices.setdefault(device, [0, 0, 0.0, 0.0, 0.0])
        d[0] += 1
        d[1] += false_wake
        d[2] += weight
        d[3] += weight if false_wake else 0.0
        d[4] += weight * weight
        if wake is not None:
            scores[label].append((float(wake), weight))
    rows = []
    for label in LABELS:
        median = weighted_median(scores[label])
        rows.append(LabelFigures(label, LABELS[label], counts[label], None if median is None else round(median, 3)))
    by_device = [
        DeviceFigures(device, int(n), int(false), round(fw / w, 4) if w else None, share_interval(fw, w, w2))
        for device, (n, false, w, fw, w2) in sorted(devices.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]
    window = [Annotation.kind == KIND, *([Annotation.created_at >= since] if since is not None else [])]
    ms = session.execute(select(func.coalesce(func.sum(Annotation.ms), 0)).where(*window)).scalar_one()
    total = sum(weights.values())
    false_weight = sum(weights[x] for x in FALSE_WAKES)
    return WakeFigures(
        sum(counts.values()),
        sum(counts[x] for x in FALSE_WAKES),
        rows,
        round(float(ms) / 3_600_000, 3),
        round(false_weight / total, 4) if total else None,
        by_device,
        share_interval(false_weight, total, squares),
        round(total * total / squares, 1) if squares else 0.0,
    )
