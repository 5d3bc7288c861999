"""Speech check: where in a clip someone speaks. Positions in samples.

`SileroVAD` runs the silero-vad ONNX model that ships inside the `silero-vad` package with
onnxruntime alone: the wheel declares a hard dependency on torch and its `__init__` imports torch,
so it is installed with `--no-deps` (scripts/setup) and its data folder is found with
`importlib.util.find_spec`, which locates a package without executing it.
`EnergyVAD` is a dependency-free detector on frame energy, used when the model is unavailable
and in tests that need a fast, predictable speech check.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from earmark.types import Span

TARGET_RATE = 16_000


def check_audio(x: np.ndarray, sample_rate: int) -> None:
    """Raise ValueError naming the fix unless `x` is a 1-D float32 array at 16 kHz."""
    if sample_rate != TARGET_RATE:
        raise ValueError(f"sample_rate must be {TARGET_RATE}, got {sample_rate}: resample first")
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 1:
        raise ValueError("x must be a 1-D float32 numpy array (mono, in [-1, 1])")


class SpeechDetector(Protocol):
    name: str

    def detect(self, x: np.ndarray, sample_rate: int) -> list[Span]:
        """Speech regions of a float32 mono clip, in samples, sorted and non-overlapping."""
        ...


def spans_from_mask(mask: np.ndarray, hop: int, *, min_frames: int, merge_frames: int, n: int) -> list[Span]:
    """Turn a per-frame boolean mask into sample spans, dropping short bursts, closing short gaps."""
    spans: list[list[int]] = []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if spans and s - spans[-1][1] <= merge_frames:
            spans[-1][1] = int(e)
        else:
            spans.append([int(s), int(e)])
    out = []
    for s, e in spans:
        if e - s >= min_frames:
            start, end = s * hop, min(n, e * hop)
            if end > start:
                out.append(Span(start, end))
    return out


class EnergyVAD:
    """Speech where 20 ms frames rise well above the clip's noise floor."""

    name = "energy"

    def __init__(self, margin_db: float = 12.0, floor_db: float = -50.0) -> None:
        self.margin_db = margin_db
        self.floor_db = floor_db

    def detect(self, x: np.ndarray, sample_rate: int) -> list[Span]:
        hop = sample_rate // 50
        if x.size < hop:
            return []
        n = x.size // hop
        frames = x[: n * hop].reshape(n, hop).astype(np.float64)
        db = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
        noise = np.percentile(db, 10)
        threshold = max(noise + self.margin_db, self.floor_db)
        return spans_from_mask(db > threshold, hop, min_frames=5, merge_frames=10, n=x.size)


WINDOW = 512  # samples per model step at 16 kHz (32 ms)
CONTEXT = 64  # trailing samples of the previous window the model expects in front of each window

# Pinned to silero-vad==6.2.3; a different file means a different model, so refuse to guess.
MODEL_SHA256 = {
    "silero_vad.onnx": "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
    "silero_vad_16k_sequence.onnx": "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85",
}


def speech_ratio(spans: list[Span], n_samples: int) -> float:
    """Fraction of the clip inside speech spans.

    >>> speech_ratio([Span(0, 8_000)], 16_000)
    0.5
    """
    return sum(s.end - s.start for s in spans) / n_samples if n_samples else 0.0


def silero_model_path(name: str = "silero_vad.onnx") -> Path:
    """Path of a model file inside the installed `silero-vad` package, hash-checked."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("silero-vad is not installed: pip install --no-deps silero-vad==6.2.3")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256[name]:
        raise RuntimeError(f"{path} has SHA-256 {digest}; expected the silero-vad 6.2.3 model")
    return path


class SileroVAD:
    """Silero VAD v6 on CPU, one thread.

    `mode="streaming"` runs the stock `silero_vad.onnx` one 512-sample window per call, carrying the
    LSTM state (2, 1, 128) and 64 samples of context; `mode="sequence"` runs
    `silero_vad_16k_sequence.onnx`, which computes the same per-window probabilities for up to 512
    windows per call and is several times faster from Python.
    """

    name = "silero"

    def __init__(
        self,
        *,
        mode: Literal["streaming", "sequence"] = "sequence",
        threshold: float = 0.5,
        min_speech_ms: int = 250,
        min_silence_ms: int = 100,
        pad_ms: int = 30,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the sequence model logs harmless "unused initializer" warnings
        name = "silero_vad.onnx" if mode == "streaming" else "silero_vad_16k_sequence.onnx"
        self._session = ort.InferenceSession(
            str(silero_model_path(name)), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.mode = mode
        self.threshold = threshold
        self.min_speech_ms = min_speech_ms
        self.min_silence_ms = min_silence_ms
        self.pad_ms = pad_ms

    def frame_probabilities(self, x: np.ndarray) -> np.ndarray:
        """Speech probability of each 512-sample window (the last one zero-padded)."""
        n_windows = -(-len(x) // WINDOW)
        if n_windows == 0:
            return np.zeros(0, dtype=np.float32)
        padded = np.zeros(n_windows * WINDOW, dtype=np.float32)
        padded[: len(x)] = x
        windows = padded.reshape(n_windows, WINDOW)
        # Each model input is [64 samples of the previous window | this window] (zeros before the first).
        context = np.zeros((n_windows, CONTEXT), dtype=np.float32)
        context[1:] = windows[:-1, -CONTEXT:]
        inputs = np.concatenate([context, windows], axis=1)
        if self.mode == "sequence":
            return self._run_sequence(inputs)
        return self._run_streaming(inputs)

    def _run_streaming(self, inputs: np.ndarray) -> np.ndarray:
        state = np.zeros((2, 1, 128), dtype=np.float32)
        sr = np.array(TARGET_RATE, dtype=np.int64)
        probs = np.empty(len(inputs), dtype=np.float32)
        for i, row in enumerate(inputs):
            out, state = self._session.run(None, {"input": row[None, :], "state": state, "sr": sr})
            probs[i] = out[0, 0]
        return probs

    def _run_sequence(self, inputs: np.ndarray, block: int = 512) -> np.ndarray:
        h = np.zeros((1, 1, 128), dtype=np.float32)
        c = np.zeros((1, 1, 128), dtype=np.float32)
        parts = []
        for i in range(0, len(inputs), block):
            probs, h, c = self._session.run(
                ["speech_probs", "hn", "cn"], {"input": inputs[i : i + block], "h": h, "c": c}
            )
            parts.append(probs)
        return np.concatenate(parts).astype(np.float32)

    def detect(self, x: np.ndarray, sample_rate: int) -> list[Span]:
        check_audio(x, sample_rate)
        return spans_from_probabilities(
            self.frame_probabilities(x),
            n_samples=len(x),
            threshold=self.threshold,
            min_speech=self.min_speech_ms * TARGET_RATE // 1000,
            min_silence=self.min_silence_ms * TARGET_RATE // 1000,
            pad=self.pad_ms * TARGET_RATE // 1000,
        )


def spans_from_probabilities(
    probs: np.ndarray,
    *,
    n_samples: int,
    threshold: float = 0.5,
    min_speech: int = 4_000,
    min_silence: int = 1_600,
    pad: int = 480,
) -> list[Span]:
    """Hysteresis over window probabilities, as upstream `get_speech_timestamps` (no max length).

    Speech starts at a window >= threshold and ends after `min_silence` samples below
    threshold - 0.15; spans shorter than `min_speech` are dropped, the rest padded by `pad`.
    """
    neg_threshold = max(threshold - 0.15, 0.01)
    raw: list[list[int]] = []
    start: int | None = None
    silence_from = 0
    for i, p in enumerate(probs.tolist()):
        pos = i * WINDOW
        if p >= threshold:
            silence_from = 0
            if start is None:
                start = pos
            continue
        if start is not None and p < neg_threshold:
            if not silence_from:
                silence_from = pos
            if pos - silence_from >= min_silence:
                if silence_from - start > min_speech:
                    raw.append([start, silence_from])
                start, silence_from = None, 0
    if start is not None and n_samples - start > min_speech:
        raw.append([start, n_samples])
    for i, span in enumerate(raw):  # pad, splitting short gaps between neighbours
        if i == 0:
            span[0] = max(0, span[0] - pad)
        if i + 1 < len(raw):
            gap = raw[i + 1][0] - span[1]
            if gap < 2 * pad:
                span[1] += gap // 2
                raw[i + 1][0] = max(0, raw[i + 1][0] - gap // 2)
            else:
                span[1] = min(n_samples, span[1] + pad)
                raw[i + 1][0] = max(0, raw[i + 1][0] - pad)
        else:
            span[1] = min(n_samples, span[1] + pad)
    return [Span(s, e) for s, e in raw if e > s]
