"""Blob store: opaque, already-encrypted bytes under random keys.

Blobs are written (and fsynced) before the database row that points at them is committed. A process
killed in between leaves an orphan; `collect_orphans` removes blobs no row points at. Each write is
announced by an in-flight marker naming the writer's pid, so orphans of a dead writer are collected
at once while a live writer's fresh blobs are left alone.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from earmark.errors import NotFound

_KEY_RE = re.compile(r"^[0-9a-f]{32}$")


def new_blob_key() -> str:
    return secrets.token_hex(16)


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def keys(self) -> Iterator[str]: ...


class LocalBlobStore:
    """Blobs as files under `root/ab/<key>`, written atomically (temp file, fsync, rename)."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self.inflight = root / ".inflight"
        self.inflight.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise ValueError(f"invalid blob key {key!r}")
        return self.root / key[:2] / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{key}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if self.fsync:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {key} is missing from the store") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        path.with_name(f".{key}.tmp").unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def keys(self) -> Iterator[str]:
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    if _KEY_RE.match(f.name):
                        yield f.name

    # -- in-flight markers -------------------------------------------------------------------

    def _marker(self, key: str) -> Path:
        return self.inflight / f"{socket.gethostname()}.{os.getpid()}.{key}"

    def announce(self, key: str) -> None:
        """Record that this process is about to write `key` and has not committed its row yet."""
        self._marker(key).touch()

    def settle(self, key: str) -> None:
        """The row for `key` is committed, or the blob was removed: the write is no longer in flight."""
        self._marker(key).unlink(missing_ok=True)

    def dead_writer_keys(self) -> list[tuple[Path, str]]:
        """Markers left by processes of this host that no longer run."""
        found: list[tuple[Path, str]] = []
        host = socket.gethostname()
        for marker in self.inflight.iterdir():
            parts = marker.name.rsplit(".", 2)
            if len(parts) != 3 or parts[0] != host:
                continue
            try:
                pid = int(parts[1])
            except ValueError:
                continue
            if not _pid_alive(pid):
                found.append((marker, parts[2]))
        return found


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collect_orphans(
    store: LocalBlobStore,
    referenced: Callable[[Iterable[str]], set[str]],
    *,
    grace_seconds: float = 3600.0,
) -> int:
    """Delete blobs no row points at. Returns how many were deleted.

    `referenced(keys)` returns the subset of `keys` that some database row points at. Blobs of dead
    writers go at once; other unreferenced blobs only once older than `grace_seconds` (a live writer
    on another host may be about to commit).
    """
    deleted = 0
    dead = store.dead_writer_keys()
    if dead:
        live = referenced([k for _, k in dead])
        for marker, key in dead:
            if key not in live:
                store.delete(key)
                deleted += 1
            marker.unlink(missing_ok=True)
    now = time.time()
    batch: list[str] = []

    def flush() -> int:
        if not batch:
            return 0
        live = referenced(batch)
        n = 0
        for key in batch:
            if key not in live:
                path = store._path(key)
                try:
                    if now - path.stat().st_mtime >= grace_seconds:
                        store.delete(key)
                        n += 1
                except FileNotFoundError:
                    pass
        batch.clear()
        return n

    for key in store.keys():
        batch.append(key)
        if len(batch) >= 500:
            deleted += flush()
    deleted += flush()
    # Temp files from a write that died before its rename.
    for tmp in store.root.glob("*/.*.tmp"):
        if now - tmp.stat().st_mtime >= min(grace_seconds, 60.0):
            tmp.unlink(missing_ok=True)
    return deleted
