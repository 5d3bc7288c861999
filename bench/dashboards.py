"""Dashboards on a big workspace: render times of /admin, /admin/metrics and /me with 100,000 clips.

Fills a fresh SQLite workspace with N clips (bulk SQL inserts: rows only, no audio), a queue item per
clip, and reviews by 60 reviewers over the last day (two passes for a tenth of them), then times the
pages through the app. Figures only; run with
    .venv/bin/python bench/dashboards.py [--clips 100000]
Issue 4 asks that these pages render fast on 100,000 clips (aggregates in SQL, pages of rows).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from _rows import WAV_2S  # bench/ is on sys.path when a bench runs as a script
from sqlalchemy import insert

from earmark import auth
from earmark.config import load_settings
from earmark.models import Account, Annotation, Assignment, Clip, ClipProtection, QueueItem, User, utcnow
from earmark.workspace import init_workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.web.helpers import CSRF_RE, client

PASSWORD = "bench-password-1"


def fill(ws, n_clips: int, n_reviewers: int = 60) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    now = utcnow()
    pw = auth.hash_password(PASSWORD)
    with ws.transaction() as s:
        s.execute(
            insert(User),
            [{"username": f"rev{i:03d}", "password_hash": pw, "role": "reviewer"} for i in range(n_reviewers)],
        )
        s.execute(insert(Account), [{"external_id": f"acct-{i}"} for i in range(n_clips // 5)])
    user_ids = list(range(2, n_reviewers + 2))  # the admin is user 1
    chunk = 10_000
    for lo in range(0, n_clips, chunk):
        hi = min(n_clips, lo + chunk)
        with ws.transaction() as s:
            s.execute(
                insert(Clip),
                [
                    {
                        "external_id": f"clip-{i}",
                        "account_id": 1 + i % (n_clips // 5),
                        "device_id": "d",
                        "recorded_at": now,
                        "locale": "en-US",
                        **WAV_2S,
                        "status": "reviewed" if i % 3 else "queued",
                        "device_asr_text": "play something" if i % 7 else "play some thing",
                        "device_nlu": {"intent": "PlayMusic" if i % 11 else "GetWeather", "slots": []},
                        "redacted_text": "play something" if i % 7 else "play some thing",
                        "inclusion_probability": 0.01 if i % 4 else 0.05,
                    }
                    for i in range(lo, hi)
                ],
            )
            s.execute(
                insert(QueueItem),
                [
                    {
                        "clip_id": i + 1,
                        "queue": "general",
                        "pass_no": 1,
                        "state": "done" if i % 3 else "queued",
                        "enqueued_at": now - timedelta(hours=int(rng.integers(0, 48))),
                    }
                    for i in range(lo, hi)
                ],
            )
            s.execute(
                insert(ClipProtection),
                [
                    {
                        "clip_id": i + 1,
                        "transcript_source": "device",
                        "transcript": "play something",
                        "words": [],
                        "aligned": True,
                        "pii": [],
                        "audio_spans": [],
                        "wholesale": False,
                        "anonymizer": {},
                        "route": "general",
                        "labels": [],
                        "scores": {},
                        "reasons": [],
                    }
                    for i in range(lo, hi)
                ],
            )
            done = [i for i in range(lo, hi) if i % 3]
            ids = {i: secrets.token_urlsafe(18) for i in done}
            s.execute(
                insert(Assignment),
                [
                    {
                        "id": ids[i],
                        "queue_item_id": i + 1,
                        "clip_id": i + 1,
                        "user_id": user_ids[i % n_reviewers],
                        "expires_at": now,
                        "state": "submitted",
                        "closed_at": now - timedelta(minutes=int(rng.integers(0, 2880))),
                    }
                    for i in done
                ],
            )
            s.execute(
                insert(Annotation),
                [
                    {
                        "clip_id": i + 1,
                        "assignment_id": ids[i],
                        "user_id": user_ids[i % n_reviewers],
                        "transcript": "play something",
                        "intent": "PlayMusic",
                        "kind": "label",
                        "slots": [],
                        "ms": int(rng.integers(8000, 60000)),
                        "created_at": now - timedelta(minutes=int(rng.integers(0, 2880))),
                    }
                    for i in done
                ],
            )


def login(c, username: str) -> None:  # type: ignore[no-untyped-def]
    token = CSRF_RE.search(c.get("/login").text).group(1)  # type: ignore[union-attr]
    resp = c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 303, resp.status_code


def timed(c, path: str, n: int = 3) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = c.get(path)
        assert r.status_code == 200, r.status_code
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
        settings = load_settings(Path(tmp) / "home", blob_fsync=False)
        ws, _ = init_workspace(settings, admin_username="admin", admin_password=PASSWORD)
        t = time.perf_counter()
        fill(ws, args.clips)
        print(f"filled {args.clips} clips in {time.perf_counter() - t:.0f} s")
        admin, rev = client(ws), client(ws)
        login(admin, "admin")
        login(rev, "rev000")
        for label, c, path in (
            ("admin overview", admin, "/admin"),
            ("admin page 2", admin, "/admin?page=2"),
            ("admin metrics", admin, "/admin/metrics"),
            ("metrics, 7 days", admin, "/admin/metrics?days=7"),
            ("reviewer: my day", rev, "/me"),
        ):
            median, worst = timed(c, path)
            print(f"{label:<18} median {median:6.1f} ms   max {worst:6.1f} ms")
        ws.close()


if __name__ == "__main__":
    main()
