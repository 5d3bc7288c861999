"""Where an anonymizer puts the energy: long-term spectrum share per band, original vs anonymized.

    .venv/bin/python -W ignore evals/anonymization/spectrum.py [--anonymizer world] [--data ../shared/data]

Every 10th utterance of `librispeech-test-other-10spk` (10 clips, one per speaker); each band's
share of the clip's total power in dB, averaged over clips.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from scipy.signal import welch

from earmark.anon_eval import RATE, _load, build, read_manifest

BANDS = [(0, 500), (500, 1000), (1000, 2000), (2000, 4000), (4000, 6000), (6000, 8000)]


def shares(x: np.ndarray) -> list[float]:
    f, p = welch(x, RATE, nperseg=1024)
    return [float(10 * np.log10(p[(f >= lo) & (f < hi)].sum() / p.sum() + 1e-12)) for lo, hi in BANDS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anonymizer", default="world")
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("EARMARK_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")),
        help="The shared evaluation data (default: EARMARK_SHARED_DATA or ../shared/data).",
    )
    args = ap.parse_args()
    utterances = read_manifest(args.data / "librispeech-test-other-10spk")[::10]
    anonymizer, rng = build(args.anonymizer), np.random.default_rng(0)
    orig, anon = [], []
    for u in utterances:
        x = _load(u)
        orig.append(shares(x))
        anon.append(shares(anonymizer.apply(x, RATE, anonymizer.draw(rng))))
    print("band (Hz)      " + "  ".join(f"{lo:>4}-{hi:<4}" for lo, hi in BANDS))
    for label, rows in (("original", orig), (args.anonymizer, anon)):
        print(f"{label:<14} " + "  ".join(f"{v:9.1f}" for v in np.mean(rows, axis=0)))


if __name__ == "__main__":
    main()
