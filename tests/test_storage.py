from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from earmark.errors import NotFound
from earmark.storage import LocalBlobStore, collect_orphans, new_blob_key


def test_put_get_delete(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, fsync=True)
    key = new_blob_key()
    store.put(key, b"abc")
    assert store.get(key) == b"abc" and store.exists(key)
    assert list(store.iter_keys()) == [key]
    store.delete(key)
    with pytest.raises(NotFound):
        store.get(key)


def test_keys_are_validated(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(ValueError):
        store.put("../../etc/passwd", b"x")


def test_orphans_of_a_dead_writer_are_collected_at_once(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, fsync=False)
    # A child process announces and writes a blob, then dies without settling it.
    code = (
        "import sys; from pathlib import Path; from earmark.storage import LocalBlobStore\n"
        f"s = LocalBlobStore(Path({str(tmp_path)!r}), fsync=False)\n"
        "j = s.journal(); j.add('ab' * 16); s.put('ab' * 16, b'orphan')\n"
        "import os; os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    kept = new_blob_key()
    store.put(kept, b"referenced")
    fresh = new_blob_key()
    store.put(fresh, b"unreferenced but young")

    def referenced(keys: Iterable[str]) -> set[str]:
        return {k for k in keys if k == kept}

    assert collect_orphans(store, referenced, grace_seconds=3600) == 1
    assert not store.exists("ab" * 16)
    assert store.exists(kept) and store.exists(fresh)
    assert not any(store.inflight.iterdir())
    old = os.path.getmtime(store._path(fresh)) - 7200
    os.utime(store._path(fresh), (old, old))
    assert collect_orphans(store, referenced, grace_seconds=3600) == 1
    assert not store.exists(fresh) and store.exists(kept)
