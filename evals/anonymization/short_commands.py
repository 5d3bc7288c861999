"""Whisper tiny.en WER on short 16 kHz commands, original vs anonymized (several draws per clip).

The multi-word commands of `pocketsphinx-test-audio` (1-3.5 s, 16 kHz): the clip length where the
`world-auto` threshold (1 s of loud voiced speech) matters. No speaker labels, so no EER here.

    .venv/bin/python -W ignore evals/anonymization/short_commands.py [--draws 8] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import jiwer
import numpy as np

from earmark.anon_eval import RATE, build, normalize
from earmark.audio import decode_mono, resample
from earmark.transcribe import WhisperTranscriber


def load(root: Path) -> list[tuple[np.ndarray, str]]:
    clips = []
    with (root / "manifest.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if "librivox" in row["path"]:  # long read speech, not commands
                continue
            path = root / row["path"]
            if path.suffix == ".raw":  # s16le 16 kHz mono, no header
                x = np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.float32) / 32768
            else:
                x, sr = decode_mono(path.read_bytes())
                x = resample(x, sr, RATE) if sr != RATE else x
            clips.append((x, normalize(row["transcript"])))
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("EARMARK_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")),
        help="The shared evaluation data (default: EARMARK_SHARED_DATA or ../shared/data).",
    )
    ap.add_argument("anonymizers", nargs="*", default=["world", "world-auto", "world-gentle", "mcadams"])
    args = ap.parse_args()
    clips = load(args.data / "pocketsphinx-test-audio")
    whisper = WhisperTranscriber(cpu_threads=2)
    refs = [t for _, t in clips]
    hyps = [normalize(whisper.transcribe(x, RATE).text or "") for x, _ in clips]
    print(f"{len(clips)} clips, {', '.join(f'{x.size / RATE:.1f}' for x, _ in clips)} s")
    print(
        f"{'original':<14} WER {jiwer.wer(refs, hyps):6.1%}   exact {np.mean([r == h for r, h in zip(refs, hyps, strict=True)]):6.1%}"
    )
    for name in args.anonymizers:
        anonymizer, rng = build(name), np.random.default_rng(0)
        r_all, h_all = [], []
        for _ in range(args.draws):
            for x, text in clips:
                y = anonymizer.apply(x, RATE, anonymizer.draw(rng))
                r_all.append(text)
                h_all.append(normalize(whisper.transcribe(y, RATE).text or ""))
        exact = np.mean([r == h for r, h in zip(r_all, h_all, strict=True)])
        print(f"{name:<14} WER {jiwer.wer(r_all, h_all):6.1%}   exact {exact:6.1%}   ({args.draws} draws per clip)")


if __name__ == "__main__":
    main()
