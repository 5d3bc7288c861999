"""Erasure: an account's data disappears for real.

1. Its clips leave every queue at once (a reviewer holding one is told it was withdrawn).
2. Its data key is destroyed (crypto-shredding): every blob of the account becomes unreadable,
   including any copy that escaped deletion (a backup, a file not yet collected).
3. Transcripts, redacted text, word timings and annotations are deleted; clip rows stay as
   tombstones with ids, dates and statuses only, so counts and the audit chain stay whole.
4. Its blobs are deleted from the store once the transaction has committed (`blob_keys`).

The account's own id is replaced by a keyed hash, so a repeated request is recognized
("already erased") without keeping the id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from earmark import audit
from earmark.errors import NotFound
from earmark.export import mark_exports
from earmark.ingest import erased_id
from earmark.manifest import ERASED_PREFIX
from earmark.models import (
    CLIP_TEXT,
    Account,
    AccountKey,
    Annotation,
    Clip,
    ClipError,
    ClipProtection,
    GoldAnswer,
    HelpRequest,
    SafetyOutcome,
    WakeAnswer,
    utcnow,
)
from earmark.queues import lock_account_clips, record_events, withdraw_clips
from earmark.types import Actor, ClipStatus


@dataclass
class ErasureResult:
    account_id: str
    already_erased: bool
    clips: int = 0
    withdrawn: int = 0
    annotations: int = 0
    exports: int = 0  # exports holding its clips, now marked for `earmark export prune`
    blob_keys: list[str] = field(default_factory=list)


def delete_review_text(session: Session, clip_ids: list[int], *, annotations: bool) -> int:
    """Delete the text that human review of these clips produced: the pipeline's transcripts,
    help questions and answers, gold answers, safety notes and (if `annotations`) the annotations.
    Returns how many annotations went. Caller audits and commits."""
    deleted = 0
    for start in range(0, len(clip_ids), 500):
        ids = clip_ids[start : start + 500]
        session.execute(delete(ClipProtection).where(ClipProtection.clip_id.in_(ids)))
        session.execute(delete(HelpRequest).where(HelpRequest.clip_id.in_(ids)))
        session.execute(delete(GoldAnswer).where(GoldAnswer.clip_id.in_(ids)))
        session.execute(delete(ClipError).where(ClipError.clip_id.in_(ids)))
        session.execute(delete(WakeAnswer).where(WakeAnswer.clip_id.in_(ids)))
        session.execute(
            update(SafetyOutcome)
            .where(SafetyOutcome.clip_id.in_(ids), SafetyOutcome.note.is_not(None))
            .values(note=None)
            .execution_options(synchronize_session=False)
        )
        if annotations:
            deleted += session.execute(delete(Annotation).where(Annotation.clip_id.in_(ids))).rowcount or 0
    return deleted


def find_account(session: Session, *, secret: bytes, account_id: str) -> tuple[Account | None, bool]:
    """(account, erased?) for a customer's account id, whether or not it was erased. An erased
    account's own tombstone id names nobody."""
    if account_id.startswith(ERASED_PREFIX):
        return None, False
    account = session.execute(select(Account).where(Account.external_id == account_id)).scalar_one_or_none()
    if account is not None:
        return account, False
    base = erased_id(secret, account_id)
    gone = session.execute(
        select(Account)
        .where(or_(Account.external_id == base, Account.external_id.startswith(base + ":", autoescape=True)))
        .order_by(Account.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return gone, gone is not None


def erased_accounts(session: Session, *, secret: bytes, account_id: str) -> list[Account]:
    """The tombstones of every erasure of `account_id`, oldest first (the customer may have
    recorded again after an erasure, and been erased again)."""
    if account_id.startswith(ERASED_PREFIX):
        return []
    base = erased_id(secret, account_id)
    return list(
        session.execute(
            select(Account)
            .where(or_(Account.external_id == base, Account.external_id.startswith(base + ":", autoescape=True)))
            .order_by(Account.id)
        ).scalars()
    )


def erase_account(session: Session, *, actor: Actor, account_id: str, secret: bytes) -> ErasureResult:
    """Erase everything earmark holds about `account_id`. Audited; caller commits, then deletes
    `result.blob_keys` from the blob store. Erasing an erased account is a no-op; an unknown one
    is an error."""
    account, erased = find_account(session, secret=secret, account_id=account_id)
    if account is None:
        raise NotFound(f"unknown account {account_id!r}: earmark holds no data for it")
    if erased:
        return ErasureResult(account_id, already_erased=True)
    now = utcnow()
    # Rows in the order every writer takes them (docs/architecture.md): account, clips, then items
    # (withdraw_clips) and the audit head. A sampling draw share-locks the account.
    session.execute(
        select(Account).where(Account.id == account.id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    if account.erased_at is not None:  # a concurrent erasure of the same account committed first
        return ErasureResult(account_id, already_erased=True)
    lock_account_clips(session, account.id)
    clips = list(session.execute(select(Clip).where(Clip.account_id == account.id)).scalars())
    clip_ids = [c.id for c in clips]
    # Crypto-shredding: without this key no copy of the account's audio can be decrypted. Before
    # the first audit event: a key rotation holds the key rows while it waits for the chain head.
    session.execute(delete(AccountKey).where(AccountKey.account_id == account.id))
    # After the clips' locks (an export registering them holds them too, so it has committed and
    # is found here) and before the first audit event (a prune holds the export rows while it
    # waits for the chain head).
    exports = mark_exports(session, clip_ids)
    events: list[dict[str, Any]] = []  # recorded after the last row change (docs/architecture.md)
    withdrawn = withdraw_clips(session, actor=actor, clip_ids=clip_ids, reason="erased", events=events)
    result = ErasureResult(account_id, already_erased=False, clips=len(clips), withdrawn=withdrawn)
    result.exports = exports
    result.annotations = delete_review_text(session, clip_ids, annotations=True)
    for clip in clips:
        result.blob_keys += [k for k in (clip.blob_key, clip.protected_blob_key) if k]
    session.execute(
        update(Clip)
        .where(Clip.account_id == account.id)
        .values(
            status=ClipStatus.erased,
            blob_key=None,
            protected_blob_key=None,
            content_mac=None,
            device_id="erased",
            device_asr_confidence=None,
            **CLIP_TEXT,
            erased_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    # The row id makes each erasure's tombstone unique: the customer may go on recording, which
    # starts a new account under the same id, and that one must be erasable in turn.
    account.external_id = f"{erased_id(secret, account_id)}:{account.id}"
    account.erased_at = now
    account.human_review = "deny"
    session.flush()
    record_events(session, events)
    audit.record(
        session,
        actor=actor,
        action="account.erase",
        object_type="account",
        object_id=account.id,
        details={
            "clips": result.clips,
            "withdrawn": result.withdrawn,
            "annotations": result.annotations,
            "blobs": len(result.blob_keys),
            "exports_to_prune": result.exports,
        },
    )
    return result
