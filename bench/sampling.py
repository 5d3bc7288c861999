"""`earmark sample` over a big backlog: seconds to draw from N stored, never-sampled clips (SQLite).

Fills a fresh workspace with N stored clips (bulk SQL inserts: rows only, no audio) of N/5
households that all allow review, then times a dry run and a real draw with a policy of rate 0.02,
cap 5, a priority share and two strata. Figures only; run with
    .venv/bin/python bench/sampling.py [--clips 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from _rows import WAV_2S  # bench/ is on sys.path when a bench runs as a script
from sqlalchemy import insert

from earmark.config import load_settings
from earmark.models import Account, Clip, utcnow
from earmark.sampling import draw_sample
from earmark.sampling_policy import parse_policy
from earmark.types import Actor
from earmark.workspace import init_workspace, sampling_key

POLICY = {
    "rate": 0.02,
    "cap_per_account": 5,
    "budget": {"uniform": 0.7, "priority": 0.3},
    "strata": {"device_type": {"car": 0.05}},
    "priority": {"mean_score": 0.2},
}


def fill(ws, n_clips: int) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    households = max(1, n_clips // 5)
    with ws.transaction() as s:
        s.execute(insert(Account), [{"external_id": f"acct-{i}", "human_review": "allow"} for i in range(households)])
    for lo in range(0, n_clips, 10_000):
        with ws.transaction() as s:
            s.execute(
                insert(Clip),
                [
                    {
                        "external_id": f"clip-{i}",
                        "account_id": 1 + i % households,
                        "device_id": "d",
                        "recorded_at": now - timedelta(minutes=i),
                        "locale": "en-US",
                        "device_type": "car" if i % 10 == 0 else "speaker",
                        **WAV_2S,
                        "status": "stored",
                        "device_asr_text": "play something",
                        "device_asr_confidence": 0.4 if i % 9 == 0 else 0.95,
                        "device_nlu": {"intent": "PlayMusic" if i % 11 else "GetWeather", "slots": []},
                    }
                    for i in range(lo, min(n_clips, lo + 10_000))
                ],
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clips", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = init_workspace(load_settings(home=Path(tmp)), admin_username="admin", admin_password="bench-pass-1")
        t = time.perf_counter()
        fill(ws, args.clips)
        print(f"filled {args.clips:,} stored clips in {time.perf_counter() - t:.1f} s")
        policy = parse_policy(POLICY)
        key = sampling_key(ws.settings)
        actor = Actor.cli()
        for dry in (True, False):
            with ws.transaction() as s:
                t = time.perf_counter()
                r = draw_sample(s, actor=actor, policy=policy, key=key, default_consent="deny", dry_run=dry)
                took = time.perf_counter() - t
            print(
                f"{'dry run' if dry else 'draw   '}: {took:.1f} s for {r.considered:,} considered, "
                f"{r.eligible:,} eligible, {r.drawn:,} drawn ({r.considered / took:,.0f} clips/s)"
            )
        with ws.transaction() as s:
            t = time.perf_counter()
            r = draw_sample(s, actor=actor, policy=policy, key=key, default_consent="deny")
            print(f"second run over the undrawn rest: {time.perf_counter() - t:.1f} s, {r.drawn} drawn")


if __name__ == "__main__":
    main()
