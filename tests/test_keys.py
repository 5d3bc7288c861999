from __future__ import annotations

import pytest
from sqlalchemy import select

from earmark import keys
from earmark.crypto import decrypt_blob, read_keyring, unwrap_key
from earmark.errors import KeyUnavailable
from earmark.models import AccountKey, Clip
from earmark.types import Actor
from earmark.workspace import Workspace, open_workspace
from tests import factories as f


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
