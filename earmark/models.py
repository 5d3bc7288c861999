"""SQLAlchemy 2 models. The schema itself is owned by Alembic (earmark/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Account(Base):
    """A customer household as the assistant knows it. `external_id` never reaches reviewers."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    human_review: Mapped[str | None] = mapped_column(String(8))  # Consent, or None: the default
    training_use: Mapped[str | None] = mapped_column(String(8))  # Consent to original audio in training sets
    consent_updated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # After erasure `external_id` holds "erased:<keyed hash>:<row id>", so a repeated request is
    # recognized without keeping the customer's id (the row id: an id erased twice, once per
    # account it named).
    erased_at: Mapped[datetime | None]


class AccountKey(Base):
    """An account's data key, wrapped by the workspace key. Deleting it crypto-shreds the account."""

    __tablename__ = "account_keys"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    wrapping_key_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None]


class KeyState(Base):
    """The workspace key that wraps new account keys, as the database knows it: one row (id 1),
    set by each rotation in its transaction. A process about to wrap a new account key
    share-locks it and wraps under no other key, since its own keyring may be older than the
    rotation (the key file rewritten under it, or a key from the environment)."""

    __tablename__ = "key_state"
    id: Mapped[int] = mapped_column(primary_key=True)
    active_key_id: Mapped[str | None] = mapped_column(String(32))  # None: never rotated
    changed_at: Mapped[datetime | None]


class Clip(Base):
    """One recording. Audio lives encrypted in the blob store under `blob_key`."""

    __tablename__ = "clips"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime]
    locale: Mapped[str] = mapped_column(String(16))
    audio_format: Mapped[str] = mapped_column(String(16))
    audio_subtype: Mapped[str] = mapped_column(String(32))
    sample_rate: Mapped[int]
    channels: Mapped[int]
    num_samples: Mapped[int]  # frames per channel
    size_bytes: Mapped[int]
    # HMAC of the original bytes under the account's data key: detects a re-sent clip without a
    # plain hash that could confirm a known recording, and becomes meaningless once the key is shredded.
    content_mac: Mapped[str | None] = mapped_column(String(64))
    blob_key: Mapped[str | None] = mapped_column(String(64), unique=True)  # None once purged or erased
    device_asr_text: Mapped[str | None] = mapped_column(Text)
    device_asr_confidence: Mapped[float | None] = mapped_column(Float)
    device_asr_alternatives: Mapped[list[Any] | None] = mapped_column(JSON)  # the device's n-best after the top
    device_type: Mapped[str | None] = mapped_column(String(32))
    child_profile: Mapped[bool] = mapped_column(default=False)
    device_nlu: Mapped[dict[str, Any] | None]
    wake_score: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="stored", index=True)
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
    sampled_at: Mapped[datetime | None]
    inclusion_probability: Mapped[float | None] = mapped_column(Float)
    sample_reason: Mapped[str | None] = mapped_column(String(32))
    sample_policy: Mapped[str | None] = mapped_column(String(64))  # digest of the policy that drew it
    # Set by the safe-to-hear pipeline. Reviewers only ever get the protected derivative.
    protected_blob_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    protected_sample_rate: Mapped[int | None]
    protected_num_samples: Mapped[int | None]
    redacted_text: Mapped[str | None] = mapped_column(Text)
    hold_reason: Mapped[str | None] = mapped_column(String(64))
    processed_at: Mapped[datetime | None]
    original_purged_at: Mapped[datetime | None]
    derivative_purged_at: Mapped[datetime | None]
    text_purged_at: Mapped[datetime | None]
    erased_at: Mapped[datetime | None]
    # Spans a reviewer reported as missed personal data: [[start, end], ...] samples of the derivative.
    extra_redactions: Mapped[list[Any] | None] = mapped_column(JSON)


# Every column of `clips` that holds what the customer said: erasure and transcript retention null
# them all (a new text column belongs here).
CLIP_TEXT: dict[str, None] = {
    "device_asr_text": None,
    "device_asr_alternatives": None,
    "device_nlu": None,
    "redacted_text": None,
}


class ClipProtection(Base):
    """What the pipeline found and did for one clip: transcript with word timing, PII spans,
    redacted audio spans, anonymizer parameters, screening decision."""

    __tablename__ = "clip_protection"
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), primary_key=True)
    transcript_source: Mapped[str] = mapped_column(String(32))
    transcript: Mapped[str] = mapped_column(Text)
    words: Mapped[list[Any]] = mapped_column(JSON)  # [[text, char_start, char_end, start, end], ...]
    aligned: Mapped[bool]
    pii: Mapped[list[Any]] = mapped_column(JSON)  # [{"start", "end", "type"}] char offsets, no values
    audio_spans: Mapped[list[Any]] = mapped_column(JSON)  # [[start, end], ...] samples of the derivative
    wholesale: Mapped[bool]
    anonymizer: Mapped[dict[str, Any]]
    route: Mapped[str] = mapped_column(String(16))
    labels: Mapped[list[Any]] = mapped_column(JSON)
    scores: Mapped[dict[str, Any]]
    reasons: Mapped[list[Any]] = mapped_column(JSON)
    sensitivity: Mapped[float] = mapped_column(Float, default=0.0)  # highest sensitive-content score
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClipStage(Base):
    """One pipeline stage's outcome for one clip (numbers and reasons, never content)."""

    __tablename__ = "clip_stages"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]]
    ms: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QueueItem(Base):
    """A clip's place in one review queue."""

    __tablename__ = "queue_items"
    __table_args__ = (
        UniqueConstraint("clip_id", "queue", "pass_no", name="uq_queue_items_clip_queue_pass"),
        Index("ix_queue_items_pick", "queue", "state", "enqueued_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"))
    queue: Mapped[str] = mapped_column(String(32))
    pass_no: Mapped[int] = mapped_column(Integer, default=1)  # K passes of one clip: K items
    state: Mapped[str] = mapped_column(String(16), default="queued")
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime | None]
    assignment_id: Mapped[str | None] = mapped_column(String(32))


class Assignment(Base):
    """One reviewer's lease on one queue item. Its random id is all the reviewer's browser sees."""

    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_state_closed", "state", "closed_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    queue_item_id: Mapped[int] = mapped_column(ForeignKey("queue_items.id"), index=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    leased_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="active")
    closed_at: Mapped[datetime | None]


class Annotation(Base):
    """What a reviewer submitted for a clip."""

    __tablename__ = "annotations"
    __table_args__ = (
        Index("ix_annotations_user_created", "user_id", "created_at", "ms"),  # covers a reviewer's day
        Index("ix_annotations_kind_clip", "kind", "clip_id"),  # multi-pass clips for agreement
        Index("ix_annotations_gold", "gold_correct", "user_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    transcript: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), default="label")  # label | flag | adjudication | superseded
    slots: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{"type","value","start","end","entity_id"}]
    flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str | None] = mapped_column(String(8))  # verify | edit
    ms: Mapped[int | None]  # time from page shown to submit
    gold_correct: Mapped[bool | None]  # set when the clip is a gold clip


class Entity(Base):
    """An entry of the entity catalog that slot values are linked to (artists, songs, places...)."""

    __tablename__ = "entities"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(64), index=True)
    aliases: Mapped[list[Any]] = mapped_column(JSON, default=list)
    keys: Mapped[list[Any]] = mapped_column(JSON, default=list)  # normalized and phonetic forms


class InventoryItem(Base):
    """The project's intents and slot types (imported from a file)."""

    __tablename__ = "inventory"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_inventory_kind_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # intent | slot
    name: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str | None] = mapped_column(String(64))  # slot types: catalog type to link to


class HelpRequest(Base):
    """A reviewer's question about a time range of a clip, answered by a senior in the tool."""

    __tablename__ = "help_requests"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"))
    asker_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    start: Mapped[int]
    end: Mapped[int]
    question: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | answered | applied | closed
    answer: Mapped[str | None] = mapped_column(Text)
    answerer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]


class GoldAnswer(Base):
    """The known answer of a gold clip, mixed into queues to measure reviewer accuracy."""

    __tablename__ = "gold_answers"
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), primary_key=True)
    transcript: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(64))


class SafetyOutcome(Base):
    """What the safety team decided about a flagged clip."""

    __tablename__ = "safety_outcomes"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # false_alarm | handled | escalated
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An escalation's follow-up by the program owner (an admin): what was done, by whom, when.
    resolution: Mapped[str | None] = mapped_column(String(32))
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None]


class ClipError(Base):
    """How the device did on one reviewed clip, against its final label: numbers only, no text.
    Filled by the metrics on first use and when the final label changes; aggregated in SQL."""

    __tablename__ = "clip_errors"
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), primary_key=True)
    annotation_id: Mapped[int] = mapped_column(Integer)  # the final label these figures come from
    labelled_at: Mapped[datetime]
    locale: Mapped[str] = mapped_column(String(16))
    intent: Mapped[str] = mapped_column(String(64))  # reviewed intent, "(none)" if none
    device_type: Mapped[str] = mapped_column(String(32))
    device_intent: Mapped[str | None] = mapped_column(String(64))
    weight: Mapped[float] = mapped_column(Float)  # 1 / inclusion probability
    asr_errors: Mapped[int | None]
    asr_words: Mapped[int | None]
    intent_right: Mapped[int | None]  # 1 right, 0 wrong, None not comparable
    slot_tp: Mapped[int] = mapped_column(Integer, default=0)
    slot_fp: Mapped[int] = mapped_column(Integer, default=0)
    slot_fn: Mapped[int] = mapped_column(Integer, default=0)
    corrected: Mapped[int] = mapped_column(Integer, default=0)  # 1: the label changed something


class WakeAnswer(Base):
    """What woke the device, per answered wake-word clip: the newest answer and numbers only. Kept
    past annotation retention, as `clip_errors` is, so the wake figures outlive the passes they
    came from; erasure and consent withdrawal delete the rows. Written with each answer."""

    __tablename__ = "wake_answers"
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), primary_key=True)
    annotation_id: Mapped[int] = mapped_column(Integer)  # the answer these figures come from
    answered_at: Mapped[datetime] = mapped_column(index=True)
    label: Mapped[str] = mapped_column(String(32))
    device_type: Mapped[str] = mapped_column(String(32))  # "(unknown)" if the device sent none
    wake_score: Mapped[float | None] = mapped_column(Float)
    weight: Mapped[float] = mapped_column(Float)  # 1 / inclusion probability


class Export(Base):
    """One version of a training-data export: where it was written, what it holds, its content hash."""

    __tablename__ = "exports"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)  # versions of one export share a name
    version: Mapped[int] = mapped_column(Integer, default=1)
    format: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    audio: Mapped[str | None] = mapped_column(String(16))  # protected | original | None (text only)
    clips: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    policy: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default="current")  # current | needs_prune | superseded | gone
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    pruned_at: Mapped[datetime | None]
    forgotten_at: Mapped[datetime | None]  # `export forget`: its folder was deleted outside earmark


class ExportClip(Base):
    """A clip an export version contains, so erasure can find and prune every export that holds it.
    A prune that takes the clip out keeps the row with `removed_at`: the customer's transparency
    report still says their recording was in that dataset (copies made before may exist)."""

    __tablename__ = "export_clips"
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id"), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), primary_key=True, index=True)
    removed_at: Mapped[datetime | None]


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    probation: Mapped[bool] = mapped_column(default=False)
    sensitive_blocked_on: Mapped[str | None] = mapped_column(String(10))  # ISO date: no sensitive clip that day


class WebSession(Base):
    """A browser login. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ApiToken(Base):
    """A service credential; the plaintext is shown once at creation, only its SHA-256 is kept."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class AuditEvent(Base):
    """One row of the hash-chained audit log. Ids, counts and enums only; never content."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64), index=True)
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """Single row holding the chain's tip; locking it serializes appends on every backend."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class SettingsSnapshot(Base):
    """The last effective settings seen (secrets left out), so changes can be audited."""

    __tablename__ = "settings_snapshot"
    id: Mapped[int] = mapped_column(primary_key=True)
    values: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
