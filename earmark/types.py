"""Small value types shared across modules."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    admin = "admin"
    reviewer = "reviewer"
    senior = "senior"
    safety = "safety"
    wakeword = "wakeword"  # the wake-word team: only the restricted no-speech queue
    auditor = "auditor"
    service = "service"


class Consent(enum.StrEnum):
    allow = "allow"
    deny = "deny"


class ClipStatus(enum.StrEnum):
    stored = "stored"  # kept for the assistant's own use; not in any human queue
    pending = "pending"  # sampled; waiting for the safe-to-hear pipeline
    queued = "queued"  # protected derivative ready, waiting in (or leased from) a review queue
    reviewed = "reviewed"
    held = "held"  # a pipeline stage failed or refused it; never queued unprotected
    excluded = "excluded"  # no speech (accidental activation) and the policy excludes such clips
    withdrawn = "withdrawn"  # pulled from review (consent withdrawn)
    erased = "erased"  # the account asked for erasure: key shredded, audio and text gone


class QueueState(enum.StrEnum):
    queued = "queued"
    leased = "leased"
    done = "done"
    withdrawn = "withdrawn"


class AssignmentState(enum.StrEnum):
    active = "active"
    submitted = "submitted"
    expired = "expired"
    withdrawn = "withdrawn"
    skipped = "skipped"
    released = "released"  # given back unheard-to-the-end when its holder opened another queue


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open interval [start, end) in samples of one clip.

    >>> Span(8_000, 12_000).seconds(16_000)
    (0.5, 0.75)
    """

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"invalid span [{self.start}, {self.end})")

    def seconds(self, sample_rate: int) -> tuple[float, float]:
        return (self.start / sample_rate, self.end / sample_rate)

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs a change, as the audit log records it: ids and role, never names.

    >>> Actor.cli().label
    'cli'
    """

    kind: str  # "user", "token", "cli", "system"
    id: int | None = None
    role: str | None = None

    @property
    def label(self) -> str:
        return self.kind if self.id is None else f"{self.kind}:{self.id}"

    @classmethod
    def cli(cls) -> Actor:
        return cls("cli", None, "admin")

    @classmethod
    def system(cls) -> Actor:
        return cls("system", None, None)
