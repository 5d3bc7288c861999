"""PPG-style any-to-one voice conversion (Sun et al. 2016) with Whisper tiny.en encoder features.

A regression (ridge or a small torch MLP) is trained on ONE target voice's own audio: Whisper
tiny.en encoder layer-L features (20 ms, +-C frames of context) -> that voice's WORLD coded
spectral envelope (4 WORLD frames of 5 ms per encoder frame), coded aperiodicity. At conversion
the source clip's features go through the regression and WORLD resynthesizes with the predicted
envelope/aperiodicity and the source F0 contour moved to the target's median (+-2 semitones drawn).

    .venv/bin/python -W ignore evals/anonymization/ppg_vc.py --target ls:0,1 --layer 2 --context 2 \
        --model ridge [--pitch flat] [--quick]

The experiment behind "A trained conversion" in docs/privacy.md; measured as `knn_vc.py` measures
(the same 8 test speakers x 6 utterances, the 2 held-out donors as the target voice). Not an
`anonymizer` setting. Needs the `eval` extra (and torch for `--model mlp`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from knn_vc import FRAME_MS, SUB, WhisperEncoder, _read

from earmark.anon_eval import RATE, evaluate, read_manifest
from earmark.audio import load_pyworld
from earmark.transcribe import whisper_model_dir
from earmark.voice_model import FFT, _analyse, _pitch, move_pitch

DATA = Path(os.environ.get("EARMARK_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def stack(c: np.ndarray, ctx: int) -> np.ndarray:
    if ctx == 0:
        return c
    p = np.pad(c, ((ctx, ctx), (0, 0)), mode="edge")
    return np.concatenate([p[i : i + c.shape[0]] for i in range(2 * ctx + 1)], axis=1)


class PpgVC:
    name = "ppg-vc"

    def __init__(
        self,
        target: list[np.ndarray],
        layer: int = 1,
        ctx: int = 2,
        model: str = "ridge",
        dims: int = 40,
        alpha: float | None = None,
        pitch: str = "contour",
        level: str = "model",
        utt_norm: bool = True,
        hidden: int = 512,
        epochs: int = 60,
        seed: int = 0,
    ) -> None:
        self.encoder = WhisperEncoder(whisper_model_dir())
        self.layer, self.ctx, self.dims, self.pitch, self.level, self.utt_norm = (
            layer,
            ctx,
            dims,
            pitch,
            level,
            utt_norm,
        )
        self._cache: dict[bytes, Any] = {}
        pw = load_pyworld()
        X, Y, groups, f0s = [], [], [], []
        for gi, x in enumerate(target):
            c = self.encoder.content(x, layer)
            f0, sp, ap = _analyse(x)
            mc = pw.code_spectral_envelope(sp, RATE, dims)
            cap = pw.code_aperiodicity(ap, RATE)
            n = sp.shape[0]
            m = min(c.shape[0], int(np.ceil(n / SUB)))
            idx = np.minimum(np.arange(m * SUB), n - 1)
            y = np.concatenate([mc[idx].reshape(m, SUB * dims), cap[idx].reshape(m, -1)], axis=1)
            X.append(self._feat(c)[:m])
            Y.append(y)
            groups.append(np.full(m, gi))
            f0s.append(f0[f0 > 0])
        self.cap_dim = Y[0].shape[1] - SUB * dims
        X, Y, g = np.concatenate(X), np.concatenate(Y), np.concatenate(groups)
        lf = np.log(np.concatenate(f0s))
        self.f0_median, self.f0_sd = float(np.exp(np.median(lf))), float(np.std(lf))
        self.xm, self.xs = X.mean(0), X.std(0) + 1e-6
        self.ym, self.ys = Y.mean(0), Y.std(0) + 1e-6
        Xn, Yn = (X - self.xm) / self.xs, (Y - self.ym) / self.ys
        self.model = model
        t0 = time.time()
        if model == "ridge":
            # held-out-clip CV over alpha (last ~20% of clips), then refit on all
            hold = g >= int(np.ceil(0.8 * (g.max() + 1)))
            alphas = [alpha] if alpha else [300.0, 1000.0, 3000.0, 10000.0, 30000.0, 100000.0]
            best = None
            for a in alphas:
                W = self._ridge(Xn[~hold], Yn[~hold], a)
                err = float(np.mean((Xn[hold] @ W - Yn[hold]) ** 2))
                print(f"ridge alpha {a}: held-out mse {err:.3f}", file=sys.stderr)
                if best is None or err < best[0]:
                    best = (err, a)
            self.alpha = best[1]
            self.W = self._ridge(Xn, Yn, self.alpha)
            self.cv_mse = best[0]
        else:
            import torch

            torch.manual_seed(seed)
            torch.set_num_threads(1)
            d_in, d_out = Xn.shape[1], Yn.shape[1]
            net = torch.nn.Sequential(
                torch.nn.Dropout(0.2),
                torch.nn.Linear(d_in, hidden),
                torch.nn.GELU(),
                torch.nn.Dropout(0.2),
                torch.nn.Linear(hidden, hidden),
                torch.nn.GELU(),
                torch.nn.Dropout(0.2),
                torch.nn.Linear(hidden, d_out),
            )
            hold = g >= int(np.ceil(0.8 * (g.max() + 1)))
            xt, yt = torch.tensor(Xn, dtype=torch.float32), torch.tensor(Yn, dtype=torch.float32)
            ht = torch.tensor(hold)
            opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
            rng = np.random.default_rng(seed)
            tr = np.flatnonzero(~hold)
            for ep in range(epochs):
                net.train()
                for b in np.array_split(rng.permutation(tr), max(1, len(tr) // 128)):
                    opt.zero_grad()
                    loss = ((net(xt[b]) - yt[b]) ** 2).mean()
                    loss.backward()
                    opt.step()
                if ep % 10 == 9 or ep == epochs - 1:
                    net.eval()
                    with torch.no_grad():
                        err = float(((net(xt[ht]) - yt[ht]) ** 2).mean())
                    print(f"mlp epoch {ep + 1}: train {float(loss):.3f} held-out mse {err:.3f}", file=sys.stderr)
            self.cv_mse = err
            # refit on all for the same number of epochs would double the cost; keep held-out-trained net,
            # then a few epochs on everything
            for _ep in range(max(5, epochs // 4)):
                net.train()
                for b in np.array_split(rng.permutation(len(Xn)), max(1, len(Xn) // 128)):
                    opt.zero_grad()
                    ((net(xt[b]) - yt[b]) ** 2).mean().backward()
                    opt.step()
            net.eval()
            self.net, self.torch = net, torch
        self.train_seconds = time.time() - t0
        self.train_frames = len(Xn)
        print(
            f"trained {model} on {len(Xn)} frames ({len(Xn) * 0.02:.0f} s) in {self.train_seconds:.1f} s; "
            f"target median F0 {self.f0_median:.0f} Hz",
            file=sys.stderr,
        )

    @staticmethod
    def _ridge(X: np.ndarray, Y: np.ndarray, a: float) -> np.ndarray:
        A = X.T @ X + a * np.eye(X.shape[1])
        return np.linalg.solve(A, X.T @ Y)

    def _feat(self, c: np.ndarray) -> np.ndarray:
        if self.utt_norm:
            c = c - c.mean(0)
        return stack(c, self.ctx)

    def predict(self, X: np.ndarray) -> np.ndarray:
        Xn = ((X - self.xm) / self.xs).astype(np.float32)
        if self.model == "ridge":
            Yn = Xn @ self.W
        else:
            with self.torch.no_grad():
                Yn = self.net(self.torch.tensor(Xn)).numpy()
        return Yn * self.ys + self.ym

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"f0_shift": float(rng.uniform(-2.0, 2.0))}

    def parameter_grid(self) -> list[dict[str, Any]]:
        return [{"f0_shift": s} for s in (-2.0, 0.0, 2.0)]

    def _analysis(self, x: np.ndarray):
        key = hashlib.sha1(x.tobytes()).digest()
        if key not in self._cache:
            c = self.encoder.content(x, self.layer)
            f0 = _pitch(x)[0]
            self._cache[key] = (c, f0)
        return self._cache[key]

    def apply(self, x: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray:
        if x.size < RATE // 20 or not np.any(x):
            return x.astype(np.float32, copy=True)
        pw = load_pyworld()
        c, f0 = self._analysis(x)
        n = f0.size
        Y = self.predict(self._feat(c))
        D = self.dims
        mc = Y[:, : SUB * D].reshape(-1, D)
        cap = Y[:, SUB * D :].reshape(-1, self.cap_dim // SUB)
        if mc.shape[0] < n:
            mc = np.pad(mc, ((0, n - mc.shape[0]), (0, 0)), mode="edge")
            cap = np.pad(cap, ((0, n - cap.shape[0]), (0, 0)), mode="edge")
        mc, cap = mc[:n], cap[:n]
        sp = pw.decode_spectral_envelope(np.ascontiguousarray(mc), RATE, FFT)
        ap = np.clip(pw.decode_aperiodicity(np.ascontiguousarray(np.minimum(cap, 0.0)), RATE, FFT), 1e-6, 1 - 1e-6)
        new_f0 = move_pitch(f0, self.f0_median, self.f0_sd, float(params["f0_shift"]), contour=self.pitch == "contour")
        y = pw.synthesize(new_f0, np.ascontiguousarray(sp), np.ascontiguousarray(ap), RATE, FRAME_MS)
        y = y[: x.size] if y.size >= x.size else np.pad(y, (0, x.size - y.size))
        rms_in, rms_out = np.sqrt(np.mean(x.astype(np.float64) ** 2)), np.sqrt(np.mean(y**2))
        if rms_out > 0:
            y = y * (rms_in / rms_out)
        return np.clip(np.nan_to_num(y), -1, 1).astype(np.float32)


def target_audio(spec: str, utterances, speakers) -> tuple[list[np.ndarray], set[str]]:
    """ls:0,1 -> LibriSpeech speakers 0 and 1 (donors, always both held out); lj -> ljspeech-subset."""
    donors = set(speakers[:2])
    if spec.startswith("dir:"):
        return [_read(p) for p in sorted(Path(spec[4:]).glob("*.wav"))], donors
    if spec == "lj":
        wavs = sorted((DATA / "ljspeech-subset" / "wavs").glob("*.wav"))
        return [_read(p) for p in wavs], donors
    which = {speakers[int(i)] for i in spec.split(":")[1].split(",")}
    return [_read(u.path) for u in utterances if u.speaker in which], donors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="ls:0,1")
    ap.add_argument("--layer", type=int, default=1)
    ap.add_argument("--context", type=int, default=2)
    ap.add_argument("--model", choices=["ridge", "mlp"], default="ridge")
    ap.add_argument("--dims", type=int, default=40)
    ap.add_argument("--alpha", type=float)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--pitch", choices=["contour", "flat"], default="contour")
    ap.add_argument("--no-utt-norm", action="store_true")
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="no equalizing attackers")
    ap.add_argument("--save", help="write anonymized wavs of the first few test clips here")
    args = ap.parse_args()
    folder = DATA / "librispeech-test-other-10spk"
    utterances = read_manifest(folder)
    speakers = list(dict.fromkeys(u.speaker for u in utterances))
    tgt, donors = target_audio(args.target, utterances, speakers)
    print(f"target: {args.target}, {sum(x.size for x in tgt) / RATE:.0f} s in {len(tgt)} files", file=sys.stderr)
    anon = PpgVC(
        tgt,
        args.layer,
        args.context,
        args.model,
        args.dims,
        args.alpha,
        args.pitch,
        utt_norm=not args.no_utt_norm,
        hidden=args.hidden,
        epochs=args.epochs,
    )
    if args.save:
        import soundfile as sf

        os.makedirs(args.save, exist_ok=True)
        for u in [u for u in utterances if u.speaker not in donors][::12][:4]:
            sf.write(f"{args.save}/{u.path.stem}.wav", anon.apply(_read(u.path), RATE, {"f0_shift": 0.0}), RATE)
    with tempfile.TemporaryDirectory() as tmp:
        with (Path(tmp) / "manifest.csv").open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["path", "speaker_id"])
            out.writerows([u.path.resolve(), u.speaker] for u in utterances if u.speaker not in donors)
        report = evaluate(
            Path(tmp),
            limit=args.limit,
            anonymizer=anon,
            equalizing=not args.quick,
            on_step=lambda m: print(time.strftime("%H:%M:%S"), m, file=sys.stderr),
        )
    print(
        json.dumps(
            {
                **report.as_dict(),
                "cv_mse": round(anon.cv_mse, 4),
                "train_s": round(anon.train_seconds, 1),
                **vars(args),
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
