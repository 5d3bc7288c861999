from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from earmark.crypto import (
    Keyring,
    decrypt_blob,
    encrypt_blob,
    new_key,
    parse_env_key,
    read_keyring,
    unwrap_key,
    wrap_key,
    write_keyring,
)
from earmark.errors import BlobDamaged, ConfigError, KeyUnavailable


def test_blob_roundtrip_and_no_plaintext_in_ciphertext() -> None:
    dk = new_key()
    plain = b"RIFF" + b"secret voice samples" * 100
    ct = encrypt_blob(dk, plain, blob_key="a" * 32)
    assert b"secret voice" not in ct and b"RIFF" not in ct
    assert decrypt_blob(dk, ct, blob_key="a" * 32) == plain


def test_blob_bound_to_its_key_name_and_data_key() -> None:
    dk = new_key()
    ct = encrypt_blob(dk, b"x" * 100, blob_key="a" * 32)
    with pytest.raises(KeyUnavailable):
        decrypt_blob(dk, ct, blob_key="b" * 32)
    with pytest.raises(KeyUnavailable):
        decrypt_blob(new_key(), ct, blob_key="a" * 32)
    tampered = ct[:-1] + bytes([ct[-1] ^ 1])
    with pytest.raises(BlobDamaged, match="changed or damaged"):  # a held clip's reason says so
        decrypt_blob(dk, tampered, blob_key="a" * 32)
    with pytest.raises(BlobDamaged, match="not an earmark encrypted blob"):
        decrypt_blob(dk, b"RIFF....WAVE", blob_key="a" * 32)


def test_wrapped_key_opens_only_for_its_account() -> None:
    wk, dk = new_key(), new_key()
    wrapped = wrap_key(wk, dk, account_ref="account:1")
    assert unwrap_key(wk, wrapped, account_ref="account:1") == dk
    with pytest.raises(KeyUnavailable):
        unwrap_key(wk, wrapped, account_ref="account:2")


def test_key_file_is_created_0600_and_refused_when_readable(tmp_path: Path) -> None:
    path = tmp_path / "workspace.key"
    ring = Keyring.single(new_key())
    write_keyring(path, ring)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_keyring(path).active() == ring.active()
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_keyring(path)


def test_damaged_key_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "workspace.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"{not json")
    os.close(fd)
    with pytest.raises(ConfigError, match="not a valid earmark key file"):
        read_keyring(path)


def test_env_key_must_be_32_bytes_base64() -> None:
    with pytest.raises(ConfigError, match="base64"):
        parse_env_key("***")
    with pytest.raises(ConfigError, match="32 bytes"):
        parse_env_key("YWJj")
