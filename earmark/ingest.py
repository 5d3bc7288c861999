"""Ingest: a recording arrives (manifest line or HTTP upload) and is stored, encrypted, once.

Both entry points build a `ClipMeta` (earmark.manifest) and call `ingest_clip`. Re-sending a clip
is idempotent by `clip_id`: the same bytes and metadata are a no-op; different bytes, or the same
bytes with other metadata (a correction sent as a retry), are a `Conflict` that changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.audio import AudioInfo, AudioLimits, probe_audio
from earmark.crypto import Keyring, content_mac, encrypt_blob
from earmark.errors import Conflict, InvalidInput
from earmark.keys import ensure_data_key
from earmark.manifest import ERASED_PREFIX, ClipMeta
from earmark.models import Account, Clip, KeyState
from earmark.storage import InflightJournal, LocalBlobStore, new_blob_key
from earmark.types import Actor, ClipStatus


def check_account_id(account_id: str) -> str:
    """Refuse the prefix of erased accounts: such an id would reach an erased account's tombstone."""
    if account_id.startswith(ERASED_PREFIX):
        raise InvalidInput(f"account ids may not start with {ERASED_PREFIX!r}", field="account_id")
    return account_id


def erased_id(secret: bytes, account_id: str) -> str:
    """What replaces an erased account's id: a keyed hash, useless without the workspace secret."""
    return ERASED_PREFIX + hmac.new(secret, f"account:{account_id}".encode(), hashlib.sha256).hexdigest()[:40]


def _erased_account_of(session: Session, clip: Clip, *, secret: bytes, account_id: str) -> bool:
    """Whether `clip` belonged to `account_id` and went with its erasure (tombstone id, possibly
    with the erased row's ":<id>" suffix)."""
    owner = session.get(Account, clip.account_id)
    if owner is None or owner.erased_at is None:
        return False
    base = erased_id(secret, account_id)
    return owner.external_id == base or owner.external_id.startswith(base + ":")


def derive_clip_id(meta: ClipMeta, mac: str) -> str:
    """A stable id for clips sent without one, so re-sending the same line stays idempotent."""
    ns = uuid.UUID("6f1c3a8e-8f7b-4c1e-9a55-2b1d0c7e5a10")
    return "clip-" + uuid.uuid5(ns, f"{meta.account_id}|{meta.recorded_at.isoformat()}|{mac}").hex


@dataclass(frozen=True, slots=True)
class IngestResult:
    clip_id: str
    created: bool
    info: AudioInfo | None = None


def lock_batch_accounts(session: Session, external_ids: list[str]) -> None:
    """Before a batch's first audit event: key-share lock the accounts it adds clips to (those
    that exist, in id order) and the key state (PostgreSQL). The batch holds the audit chain's head
    from its first clip on; an erasure holding an account, or a rotation holding the key state,
    while it waits for the head deadlocked with a later clip of the batch."""
    ids = sorted(set(external_ids))
    for i in range(0, len(ids), 500):
        session.execute(
            select(Account.id)
            .where(Account.external_id.in_(ids[i : i + 500]))
            .order_by(Account.id)
            .with_for_update(read=True, key_share=True)
        ).all()
    session.execute(select(KeyState.id).where(KeyState.id == 1).with_for_update(read=True)).all()


def get_or_create_account(session: Session, external_id: str) -> Account:
    # A batch looks each account up once: session.info holds strong references for the session's
    # life (the identity map alone is weak and would let the objects go between clips).
    cache: dict[str, Account] = session.info.setdefault("earmark.accounts", {})
    if external_id in cache:
        return cache[external_id]
    check_account_id(external_id)
    # Key-share locked (PostgreSQL): an erasure of this account in progress is waited for, and then
    # the account no longer matches (its id became a tombstone), so the clip starts a new account
    # instead of joining the erased one, whose erasure could not be repeated.
    find = select(Account).where(Account.external_id == external_id).with_for_update(read=True, key_share=True)
    account = session.execute(find).scalar_one_or_none()
    if account is None:
        # Two first clips of a new account at once: the second breaks the unique id, and
        # Workspace.ingest runs its transaction again, which finds the account.
        account = Account(external_id=external_id)
        session.add(account)
        session.flush()
    cache[external_id] = account
    return account


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo is not None else at


def _metadata_changes(clip: Clip, meta: ClipMeta) -> list[str]:
    """The fields of `meta` that differ from what `clip` was stored with (names only)."""
    asr = meta.device_asr
    sent = {
        "device_id": meta.device_id,
        "recorded_at": _utc(meta.recorded_at),
        "locale": meta.locale,
        "device_type": meta.device_type,
        "child_profile": meta.child_profile,
        "device_asr": asr.text if asr else None,
        "device_nlu": meta.device_nlu.model_dump() if meta.device_nlu else None,
        "wake_score": meta.wake_score,
    }
    stored = {
        "device_id": clip.device_id,
        "recorded_at": _utc(clip.recorded_at),
        "locale": clip.locale,
        "device_type": clip.device_type,
        "child_profile": clip.child_profile,
        "device_asr": clip.device_asr_text,
        "device_nlu": clip.device_nlu,
        "wake_score": clip.wake_score,
    }
    # Transcript retention clears the device's text and NLU: a cleared field is not a difference.
    purged = {k for k in ("device_asr", "device_nlu") if stored[k] is None}
    return [k for k in sent if k not in purged and sent[k] != stored[k]]


def ingest_clip(
    session: Session,
    *,
    actor: Actor,
    meta: ClipMeta,
    audio: bytes,
    blobs: LocalBlobStore,
    keyring: Keyring,
    limits: AudioLimits,
    journal: InflightJournal,
    via: str,
    secret: bytes,
) -> IngestResult:
    """Store one clip: validate audio, encrypt it under the account's key, write blob then row.

    The blob key goes into `journal` before the blob is written, so the boundary can delete it if
    the transaction fails and a later run can if the process dies. `secret` is the workspace's,
    to recognise the caller's account among erased ones. Audited; caller commits.
    """
    info = probe_audio(audio, limits)
    account = get_or_create_account(session, meta.account_id)
    dk = ensure_data_key(session, keyring, account)
    mac = content_mac(dk, audio)
    clip_id = meta.clip_id or derive_clip_id(meta, mac)
    existing = session.execute(select(Clip).where(Clip.external_id == clip_id)).scalar_one_or_none()
    if existing is not None:
        if existing.account_id == account.id and existing.content_mac == mac:
            changed = _metadata_changes(existing, meta)
            if changed:
                # A retry must be the same request: a correction sent this way ("child_profile":
                # true) would otherwise be dropped in silence while the clip stays as it was.
                raise Conflict(
                    f"clip_id {clip_id} already exists with this audio but other metadata "
                    f"({', '.join(changed)}); nothing was changed",
                    field="clip_id",
                )
            return IngestResult(clip_id, created=False, info=info)
        if _erased_account_of(session, existing, secret=secret, account_id=meta.account_id):
            # Said only when the caller names the erased account: of another account's clip it
            # tells nothing more than that the id is taken.
            raise Conflict(
                f"clip_id {clip_id} was erased with account {meta.account_id} at its owner's request "
                "and is not taken again; send new recordings under a new clip_id",
                field="clip_id",
            )
        raise Conflict(
            f"clip_id {clip_id} already exists with different audio or account; "
            "send new recordings under a new clip_id",
            field="clip_id",
        )
    key = new_blob_key()
    journal.add(key)
    blobs.put(key, encrypt_blob(dk, audio, blob_key=key))
    clip = Clip(
        external_id=clip_id,
        account_id=account.id,
        device_id=meta.device_id,
        recorded_at=meta.recorded_at,
        locale=meta.locale,
        audio_format=info.format,
        audio_subtype=info.subtype,
        sample_rate=info.sample_rate,
        channels=info.channels,
        num_samples=info.num_samples,
        size_bytes=len(audio),
        content_mac=mac,
        blob_key=key,
        device_asr_text=meta.device_asr.text if meta.device_asr else None,
        device_asr_confidence=meta.device_asr.confidence if meta.device_asr else None,
        device_asr_alternatives=meta.device_asr.alternatives if meta.device_asr else None,
        device_type=meta.device_type,
        child_profile=meta.child_profile,
        # Drawn upstream by `earmark sample-stream`: `earmark sample` keeps that decision.
        inclusion_probability=meta.sampling.probability if meta.sampling else None,
        sample_reason=meta.sampling.reason if meta.sampling else None,
        sample_policy=meta.sampling.policy if meta.sampling else None,
        device_nlu=meta.device_nlu.model_dump() if meta.device_nlu else None,
        wake_score=meta.wake_score,
        status=ClipStatus.stored,
    )
    session.add(clip)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="clip.ingest",
        object_type="clip",
        object_id=clip.id,
        details={
            "format": info.format,
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "num_samples": info.num_samples,
            "via": via,
        },
    )
    return IngestResult(clip_id, created=True, info=info)
