"""Blob store: opaque, already-encrypted bytes under random keys.

Blobs are written (and fsynced) before the database row that points at them is committed. A process
killed in between leaves an orphan; `collect_orphans` removes blobs no row points at. Writes are
listed in an in-flight journal named for the writer's pid, so orphans of a dead writer are collected
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
    def iter_keys(self) -> Iterator[str]: ...


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
        """Write a new blob. Keys are random and never reused, so the file is created exclusively
        and written in place: a crash mid-write leaves a partial file that no row points at (rows
        commit only after `put` returns), which orphan collection removes."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            path.parent.mkdir(exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
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
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def iter_keys(self) -> Iterator[str]:
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    if _KEY_RE.match(f.name):
                        yield f.name

    # -- in-flight journal ---------------------------------------------------------------------

    def journal(self) -> InflightJournal:
        """A journal of blob keys this process writes before their rows commit."""
        return InflightJournal(self.inflight / f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(6)}")

    def dead_writer_keys(self) -> list[tuple[Path, list[str]]]:
        """Journals left by processes of this host that no longer run, with the keys they list."""
        found: list[tuple[Path, list[str]]] = []
        host = socket.gethostname()
        for journal in self.inflight.iterdir():
            parts = journal.name.split(".")
            if len(parts) != 3 or parts[0] != host:
                continue
            try:
                pid = int(parts[1])
            except ValueError:
                continue
            if not _pid_alive(pid):
                keys = [k for k in journal.read_text().split() if _KEY_RE.match(k)]
                found.append((journal, keys))
        return found


class InflightJournal:
    """Lists blob keys written but not yet committed, so orphans of a killed writer are found at
    once. One file per batch: cheaper than a marker per blob, and appends need no fsync (after a
    power loss the grace-period collection still finds the orphans)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: list[str] = []
        self._fh: object | None = None

    def add(self, key: str) -> None:
        """Record `key` before its blob is written."""
        self.keys.append(key)
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="ascii")  # noqa: SIM115 - closed in close()
        self._fh.write(key + "\n")  # type: ignore[attr-defined]
        self._fh.flush()  # type: ignore[attr-defined]

    def close(self) -> None:
        """The rows are committed (or the blobs removed): nothing is in flight any more."""
        if self._fh is not None:
            self._fh.close()  # type: ignore[attr-defined]
            self._fh = None
        self.path.unlink(missing_ok=True)


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
    for journal, keys in store.dead_writer_keys():
        live = referenced(keys) if keys else set()
        for key in keys:
            if key not in live and store.exists(key):
                store.delete(key)
                deleted += 1
        journal.unlink(missing_ok=True)
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

    for key in store.iter_keys():
        batch.append(key)
        if len(batch) >= 500:
            deleted += flush()
    deleted += flush()
    return deleted
