"""Ingest throughput: 5-second 16 kHz clips into encrypted local blobs + SQLite, and PostgreSQL.

Prints clips per second (one process, one core). Not a test: figures only.

    .venv/bin/python bench/ingest.py [--clips 500] [--pg postgresql+psycopg://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf
from sqlalchemy import create_engine, text

from earmark.config import load_settings
from earmark.manifest import ClipMeta
from earmark.types import Actor
from earmark.workspace import init_workspace


def clip_bytes(rng: np.random.Generator) -> bytes:
    x = (0.1 * rng.standard_normal(5 * 16000)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def run(label: str, home: Path, n: int, fsync: bool, database_url: str | None = None, batch: bool = True) -> None:
    settings = load_settings(home, blob_fsync=fsync, database_url=database_url)
    ws, _ = init_workspace(settings, admin_username="admin", admin_password="bench-password")
    rng = np.random.default_rng(0)
    audio = [clip_bytes(rng) for _ in range(n)]
    metas = [
        ClipMeta(
            clip_id=f"b-{i}",
            account_id=f"acct-{i % 50}",
            device_id="d",
            recorded_at=datetime(2026, 11, 1, tzinfo=UTC),
            locale="en-US",
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if batch:  # the manifest path: 64 clips per transaction, one savepoint each
        items = [(m, (lambda a=a: a)) for m, a in zip(metas, audio, strict=True)]
        for outcome in ws.ingest_many(items, actor=Actor.cli(), via="bench"):
            assert outcome.error is None
    else:  # the HTTP path: one transaction per clip
        for m, a in zip(metas, audio, strict=True):
            ws.ingest(actor=Actor.cli(), meta=m, audio=a, via="bench")
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    ws.close()
    print(f"{label:<34} {n / wall:8.0f} clips/s wall   {n / cpu:8.0f} clips/s per CPU-second")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=500)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    print(f"{args.clips} clips of 5 s, 16 kHz mono PCM_16; encrypted local blob store")
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite, manifest (batched), fsync", Path(tmp) / "a", args.clips, True)
        run("SQLite, manifest, no fsync", Path(tmp) / "b", args.clips, False)
        run("SQLite, API (1 txn/clip), fsync", Path(tmp) / "c", args.clips, True, batch=False)
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        for label, batch in (
            ("PostgreSQL, manifest (batched), fsync", True),
            ("PostgreSQL, API (1 txn/clip), fsync", False),
        ):
            name = f"earmark_bench_{uuid.uuid4().hex[:8]}"
            try:
                with admin.connect() as c:
                    c.execute(text(f'CREATE DATABASE "{name}"'))
            except Exception as exc:
                print(f"PostgreSQL skipped: {exc}")
                return
            url = args.pg.rsplit("/", 1)[0] + "/" + name
            try:
                run(label, Path(tmp) / name, args.clips, True, url, batch=batch)
            finally:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
