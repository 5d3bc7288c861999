from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select

from earmark import auth, keys
from earmark.crypto import Keyring, decrypt_blob, read_keyring, unwrap_key
from earmark.erasure import erase_account
from earmark.errors import KeyRotated, KeyUnavailable
from earmark.models import AccountKey, Clip
from earmark.types import Actor, Role
from earmark.workspace import Workspace, open_workspace
from tests import factories as f
from tests.web.helpers import client


def test_rotation_rewraps_account_keys_and_leaves_blobs_untouched(ws: Workspace) -> None:
    f.ingest(ws, 2, account_id="a1")
    f.ingest(ws, 1, account_id="a2")
    before = {k: ws.blobs.get(k) for k in ws.blobs.iter_keys()}
    old_ring = read_keyring(ws.settings.key_file)
    old_id, old_key = old_ring.active()
    with ws.transaction() as s:
        new_id, new, n = keys.rotate_workspace_key(
            s, actor=Actor.cli(), keyring=ws.keyring, key_file=ws.settings.key_file
        )
    keys.finish_rotation(ws.settings.key_file, new_id, new)
    assert n == 2 and new_id != old_id
    assert {k: ws.blobs.get(k) for k in ws.blobs.iter_keys()} == before
    ring = read_keyring(ws.settings.key_file)
    assert list(ring.keys) == [new_id]
    reopened = open_workspace(ws.settings)
    try:
        with reopened.sessions() as s:
            for clip in s.execute(select(Clip)).scalars():
                dk = keys.data_key(s, reopened.keyring, clip.account_id)
                assert decrypt_blob(dk, reopened.blobs.get(clip.blob_key), blob_key=clip.blob_key)[:4] == b"RIFF"
            for row in s.execute(select(AccountKey)).scalars():
                assert row.wrapping_key_id == new_id and row.rotated_at is not None
                with pytest.raises(KeyUnavailable):
                    unwrap_key(old_key, row.wrapped_key, account_ref=f"account:{row.account_id}")
    finally:
        reopened.close()


def test_crash_between_rewrap_and_file_cleanup_stays_readable(ws: Workspace) -> None:
    f.ingest(ws, 1, account_id="a1")
    with ws.transaction() as s:
        keys.rotate_workspace_key(s, actor=Actor.cli(), keyring=ws.keyring, key_file=ws.settings.key_file)
    # finish_rotation never ran: the key file holds both keys and every row opens.
    reopened = open_workspace(ws.settings)
    try:
        assert len(reopened.keyring.keys) == 2
        with reopened.sessions() as s:
            clip = s.execute(select(Clip)).scalar_one()
            assert keys.data_key(s, reopened.keyring, clip.account_id)
    finally:
        reopened.close()


def _assert_every_clip_opens(w: Workspace, *, skip_erased: bool = False) -> None:
    with w.sessions() as s:
        for clip in s.execute(select(Clip)).scalars():
            if skip_erased and clip.erased_at is not None:
                continue
            dk = keys.data_key(s, w.keyring, clip.account_id)
            assert decrypt_blob(dk, w.blobs.get(clip.blob_key), blob_key=clip.blob_key)[:4] == b"RIFF"


def _assert_every_clip_opens_after_a_restart(ws: Workspace, *, skip_erased: bool = False) -> None:
    restarted = open_workspace(ws.settings)
    try:
        _assert_every_clip_opens(restarted, skip_erased=skip_erased)
    finally:
        restarted.close()


def _rotate_elsewhere(ws: Workspace) -> None:
    """`earmark keys rotate` run by another process while `ws` (a server, say) keeps running."""
    other = open_workspace(ws.settings)
    try:
        with other.transaction() as s:
            new_id, new, _ = keys.rotate_workspace_key(
                s, actor=Actor.cli(), keyring=other.keyring, key_file=ws.settings.key_file
            )
        keys.finish_rotation(ws.settings.key_file, new_id, new)
    finally:
        other.close()


def test_a_running_process_follows_a_rotation_made_by_another(ws: Workspace) -> None:
    """The server kept its keyring from start-up. After a rotation by the CLI it could not open any
    re-wrapped account key, and it wrapped a new account's key under the retired workspace key,
    which the rotation had just deleted from the key file: that account's audio was lost at the
    server's next restart."""
    f.ingest(ws, 1, account_id="before")
    _rotate_elsewhere(ws)
    f.ingest(ws, 1, account_id="after")  # a new account key, made by the running process
    _assert_every_clip_opens(ws)
    _assert_every_clip_opens_after_a_restart(ws)


def test_a_process_with_a_key_it_cannot_reload_refuses_to_wrap_under_a_retired_key(ws: Workspace) -> None:
    """A key from the environment cannot be re-read: after a rotation elsewhere the process must
    stop making account keys (nothing stored, a clear message) rather than wrap them under the
    retired key, until it is restarted with the new one."""
    ws.keyring = Keyring(ws.keyring.active_id, dict(ws.keyring.keys))  # as EARMARK_WORKSPACE_KEY gives it
    _rotate_elsewhere(ws)
    with pytest.raises(KeyRotated, match="restart it with the new key"):
        f.ingest(ws, 1, account_id="after")
    with ws.transaction() as s:
        _, token = auth.create_token(s, actor=Actor.cli(), role=Role.service)
    meta = {"clip_id": "api-after", "account_id": "after-api", "device_id": "d1",
            "recorded_at": "2026-11-25T18:00:00Z", "locale": "en-US"}  # fmt: skip
    resp = client(ws).post(
        "/api/v1/clips", headers={"Authorization": f"Bearer {token}"},
        files={"audio": ("c.wav", f.audio_bytes(), "audio/wav")}, data={"metadata": json.dumps(meta)},
    )  # fmt: skip
    assert resp.status_code == 503 and "restart it with the new key" in resp.json()["error"]["message"]
    with ws.sessions() as s:
        assert s.execute(select(Clip)).first() is None and s.execute(select(AccountKey)).first() is None


@f.postgres_only
def test_a_rotation_waits_for_an_account_key_being_made_and_rewraps_it(ws: Workspace) -> None:
    """The new account key was wrapped under the old workspace key while the rotation ran; the
    rotation did not see it, and the key file then dropped the old key."""
    rotation = threading.Thread(target=_rotate_elsewhere, args=(ws,))
    with f.at_the_audit_head(ws, rotation):
        f.ingest(ws, 1, account_id="racing")
    rotation.join()
    _assert_every_clip_opens_after_a_restart(ws)


@f.postgres_only
def test_a_rotation_during_an_erasure_skips_the_shredded_key(ws: Workspace) -> None:
    """The re-wrap read the key the erasure was deleting, then updated a row that was gone:
    the rotation failed with a stale-data error."""
    f.ingest(ws, 1, account_id="leaving")
    f.ingest(ws, 1, account_id="staying")
    rotation = f.Racer(lambda: _rotate_elsewhere(ws))
    with f.racing(ws, rotation) as s:
        erase_account(s, actor=Actor.cli(), account_id="leaving", secret=ws.secret)
    assert rotation.error is None, rotation.error
    with ws.sessions() as s:
        assert len(s.execute(select(AccountKey)).all()) == 1
    _assert_every_clip_opens_after_a_restart(ws, skip_erased=True)
