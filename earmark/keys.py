"""Account data keys (create, open) and workspace key rotation. Database side of crypto.py."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from earmark import audit
from earmark.crypto import Keyring, key_id, new_key, unwrap_key, wrap_key, write_keyring
from earmark.errors import KeyRotated, KeyUnavailable
from earmark.models import Account, AccountKey, KeyState, utcnow
from earmark.types import Actor


def _ref(account_id: int) -> str:
    return f"account:{account_id}"


def data_key(session: Session, keyring: Keyring, account_id: int) -> bytes:
    """The account's data key, or KeyUnavailable if it was shredded."""
    row = session.get(AccountKey, account_id)
    if row is None:
        raise KeyUnavailable(f"account {account_id} has no data key (erased?)")
    return unwrap_key(keyring.get(row.wrapping_key_id), row.wrapped_key, account_ref=_ref(account_id))


def ensure_data_key(session: Session, keyring: Keyring, account: Account) -> bytes:
    """Return the account's data key, creating and wrapping a new one on first use.

    Unwrapped keys are cached for the session's life only (a batch of one account's clips).
    """
    cache: dict[int, bytes] = session.info.setdefault("earmark.data_keys", {})
    if account.id in cache:
        return cache[account.id]
    row = session.get(AccountKey, account.id)
    if row is not None:
        dk = unwrap_key(keyring.get(row.wrapping_key_id), row.wrapped_key, account_ref=_ref(account.id))
        cache[account.id] = dk
        return dk
    # The key this wrap uses must be the one the database says is current: a rotation by another
    # process since this one read its keyring has re-wrapped every key and retired the old one.
    state = session.get(KeyState, 1, with_for_update={"read": True}, populate_existing=True)
    current = state.active_key_id if state is not None else None  # None: never rotated
    if current is not None and current != keyring.active_id:
        keyring.reload()
        if current != keyring.active_id:
            raise KeyRotated(
                f"the workspace key was rotated to {current} and this process still holds "
                f"{keyring.active_id}; restart it with the new key (EARMARK_WORKSPACE_KEY or the key file)"
            )
    dk = new_key()
    kid, wk = keyring.active()
    session.add(
        AccountKey(
            account_id=account.id,
            wrapped_key=wrap_key(wk, dk, account_ref=_ref(account.id)),
            wrapping_key_id=kid,
        )
    )
    session.flush()
    cache[account.id] = dk
    return dk


def rewrap_all(session: Session, *, actor: Actor, old: Keyring, new_id: str, new: bytes) -> int:
    """Re-wrap every account data key under the workspace key `new`. Blobs are untouched."""
    n = 0
    now = utcnow()
    # First: a process wrapping a new account key holds this row shared until it commits, so
    # the select below sees that key, and a process that comes later sees the new key id.
    state = session.execute(select(KeyState).where(KeyState.id == 1).with_for_update()).scalar_one()  # 0008 made it
    state.active_key_id = new_id
    state.changed_at = now
    session.flush()
    # Locked: an erasure deleting a key meanwhile either waits for the rotation or is seen (its
    # row is skipped); unlocked, the re-wrap's update of a deleted row failed the whole rotation.
    keys = select(AccountKey).order_by(AccountKey.account_id).with_for_update()
    for row in session.execute(keys).scalars():
        if row.wrapping_key_id == new_id:
            continue
        dk = unwrap_key(old.get(row.wrapping_key_id), row.wrapped_key, account_ref=_ref(row.account_id))
        row.wrapped_key = wrap_key(new, dk, account_ref=_ref(row.account_id))
        row.wrapping_key_id = new_id
        row.rotated_at = now
        n += 1
    audit.record(
        session,
        actor=actor,
        action="keys.rotate",
        details={"old_key_id": old.active_id, "new_key_id": new_id, "accounts": n},
    )
    return n


def rotate_workspace_key(
    session: Session, *, actor: Actor, keyring: Keyring, key_file: Path | None
) -> tuple[str, bytes, int]:
    """Rotate to a fresh workspace key. Caller commits, then calls `finish_rotation`.

    With a key file, the new key is first added to the file (so a crash at any point leaves every
    row openable by some key in the ring); `finish_rotation` drops the old key after the commit.
    """
    new = new_key()
    new_id = key_id(new)
    if key_file is not None:
        ring = Keyring(keyring.active_id, {**keyring.keys, new_id: new})
        write_keyring(key_file, ring)
        keyring.keys[new_id] = new
    n = rewrap_all(session, actor=actor, old=keyring, new_id=new_id, new=new)
    return new_id, new, n


def finish_rotation(key_file: Path, new_id: str, new: bytes) -> Keyring:
    """After the re-wrap is committed: the new key becomes the only key in the file."""
    ring = Keyring(new_id, {new_id: new})
    write_keyring(key_file, ring)
    return ring
