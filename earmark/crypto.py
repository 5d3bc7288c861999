"""Envelope encryption: AES-256-GCM data keys per account, wrapped by the workspace key.

    workspace key (file 0600 or EARMARK_WORKSPACE_KEY)
        └─ wraps ─> account data key (account_keys row)
                        └─ encrypts ─> blobs of that account (blob store)

Destroying an account's wrapped data key makes all its blobs unreadable (crypto-shredding).
Rotating the workspace key re-wraps the data keys; blobs stay as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from earmark.errors import BlobDamaged, ConfigError, KeyUnavailable

KEY_BYTES = 32
NONCE_BYTES = 12
BLOB_MAGIC = b"EMK1"


def key_id(key: bytes) -> str:
    """Short public fingerprint of a key (never the key itself)."""
    return hashlib.sha256(b"earmark-key-id:" + key).hexdigest()[:16]


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _aad(kind: str, ident: str) -> bytes:
    return f"earmark:{kind}:{ident}".encode()


def wrap_key(wrapping_key: bytes, data_key: bytes, *, account_ref: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(wrapping_key).encrypt(nonce, data_key, _aad("dk", account_ref))


def unwrap_key(wrapping_key: bytes, wrapped: bytes, *, account_ref: str) -> bytes:
    try:
        return AESGCM(wrapping_key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad("dk", account_ref))
    except InvalidTag as exc:
        raise KeyUnavailable("account data key does not open with the workspace key") from exc


def encrypt_blob(data_key: bytes, plaintext: bytes, *, blob_key: str) -> bytes:
    """Encrypt `plaintext` bound to `blob_key` (a blob moved under another name will not open)."""
    nonce = os.urandom(NONCE_BYTES)
    return BLOB_MAGIC + nonce + AESGCM(data_key).encrypt(nonce, plaintext, _aad("blob", blob_key))


def decrypt_blob(data_key: bytes, ciphertext: bytes, *, blob_key: str) -> bytes:
    if not ciphertext.startswith(BLOB_MAGIC):
        raise BlobDamaged(f"blob {blob_key} is not an earmark encrypted blob")
    body = ciphertext[len(BLOB_MAGIC) :]
    try:
        return AESGCM(data_key).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], _aad("blob", blob_key))
    except InvalidTag as exc:
        raise BlobDamaged(f"blob {blob_key} does not open with its account key (changed or damaged?)") from exc


def content_mac(data_key: bytes, data: bytes) -> str:
    """Keyed digest of content: equal for equal bytes of one account, useless without the key."""
    return hmac.new(data_key, data, hashlib.sha256).hexdigest()


class KeyStore(Protocol):
    """Where the workspace key lives."""

    def active(self) -> tuple[str, bytes]:
        """(key id, key) that wraps new data keys."""
        ...

    def get(self, kid: str) -> bytes:
        """The key with id `kid`, or KeyUnavailable."""
        ...


@dataclass
class Keyring:
    """Workspace keys by id plus which one is active. Serialized as JSON in the key file."""

    active_id: str
    keys: dict[str, bytes] = field(default_factory=dict, repr=False)
    # The key file it was read from, if any: a rotation by another process rewrites that file,
    # and a long-running process re-reads it (`reload`) instead of failing on the new key's id.
    path: Path | None = field(default=None, repr=False, compare=False)

    def active(self) -> tuple[str, bytes]:
        return self.active_id, self.keys[self.active_id]

    def get(self, kid: str) -> bytes:
        if kid not in self.keys:
            self.reload()
        try:
            return self.keys[kid]
        except KeyError:
            raise KeyUnavailable(f"workspace key {kid} is not in the keyring; was the key file replaced?") from None

    def reload(self) -> None:
        """Re-read the key file in place (nothing to do for a key from the environment)."""
        if self.path is not None:
            fresh = read_keyring(self.path)
            self.active_id, self.keys = fresh.active_id, fresh.keys

    @classmethod
    def single(cls, key: bytes) -> Keyring:
        kid = key_id(key)
        return cls(kid, {kid: key})

    def to_json(self) -> str:
        return json.dumps(
            {
                "active": self.active_id,
                "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, *, source: str) -> Keyring:
        try:
            raw = json.loads(text)
            keys = {k: base64.b64decode(v, validate=True) for k, v in raw["keys"].items()}
            ring = cls(raw["active"], keys)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ConfigError(f"{source}: not a valid earmark key file ({exc})") from exc
        for kid, key in ring.keys.items():
            if len(key) != KEY_BYTES or key_id(key) != kid:
                raise ConfigError(f"{source}: key {kid} is damaged")
        if ring.active_id not in ring.keys:
            raise ConfigError(f"{source}: active key {ring.active_id} missing")
        return ring


def parse_env_key(value: str) -> Keyring:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except binascii.Error as exc:
        raise ConfigError("EARMARK_WORKSPACE_KEY: not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise ConfigError(f"EARMARK_WORKSPACE_KEY: must decode to {KEY_BYTES} bytes, got {len(key)}")
    return Keyring.single(key)


def write_keyring(path: Path, ring: Keyring) -> None:
    """Atomically replace the key file, created with mode 0600 from the start."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(ring.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_keyring(path: Path) -> Keyring:
    if not path.exists():
        raise ConfigError(
            f"no workspace key at {path} and EARMARK_WORKSPACE_KEY is not set; "
            "run `earmark init` or restore the key file"
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")
    ring = Keyring.from_json(path.read_text(encoding="utf-8"), source=str(path))
    ring.path = path
    return ring
