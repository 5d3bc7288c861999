"""Voice anonymization: make a clip's speaker hard to recognize while keeping the words clear.

Each method draws its parameters per clip from an explicit Generator, so two clips of the same
speaker do not share a voice. Pure: float32 mono in, float32 mono of the same length out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from scipy.linalg import solve_toeplitz
from scipy.signal import lfilter

from earmark.audio import load_pyworld


class Anonymizer(Protocol):
    name: str

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """Parameters for one clip (stored with the clip, so a re-run reproduces the voice)."""
        ...

    def apply(self, x: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray: ...


def _lpc(frame: np.ndarray, order: int) -> np.ndarray:
    """LPC polynomial [1, a1..ap] by the autocorrelation method."""
    r = np.correlate(frame, frame, mode="full")[frame.size - 1 : frame.size + order]
    if r[0] <= 1e-12:
        return np.concatenate([[1.0], np.zeros(order)])
    r = r.copy()
    r[0] *= 1.0 + 1e-9  # white-noise correction keeps the system well conditioned
    try:
        a = solve_toeplitz((r[:-1], r[:-1]), -r[1:])
    except np.linalg.LinAlgError:
        return np.concatenate([[1.0], np.zeros(order)])
    return np.concatenate([[1.0], a])


def mcadams(x: np.ndarray, sample_rate: int, alpha: float, *, order: int = 20) -> np.ndarray:
    """McAdams-coefficient anonymization: pole angles of each frame's LPC filter raised to `alpha`.

    The classic CPU baseline of the VoicePrivacy Challenge (Patino et al., 2021).
    """
    if x.size == 0:
        return x.astype(np.float32, copy=True)
    win = int(0.02 * sample_rate)
    hop = win // 2
    xd = x.astype(np.float64)
    n_frames = max(1, 1 + (xd.size - win + hop - 1) // hop) if xd.size >= win else 1
    padded = np.pad(xd, (0, n_frames * hop + win - xd.size))
    window = np.hanning(win)
    out = np.zeros_like(padded)
    for i in range(n_frames):
        frame = padded[i * hop : i * hop + win] * window
        if not np.any(frame):
            continue
        a = _lpc(frame, order)
        residual = lfilter(a, [1.0], frame)
        poles = np.roots(a)
        upper = poles[np.imag(poles) > 0]
        real = poles[np.imag(poles) == 0]
        warped = np.abs(upper) * np.exp(1j * np.clip(np.power(np.angle(upper), alpha), 0.0, np.pi))
        # Conjugate twins keep the filter real.
        a_new = np.real(np.poly(np.concatenate([warped, np.conj(warped), real])))
        out[i * hop : i * hop + win] += lfilter([1.0], a_new, residual) * window
    y = out[: xd.size]
    peak_in, peak_out = np.max(np.abs(xd)), np.max(np.abs(y))
    if peak_out > 0 and np.isfinite(peak_out):
        y = y * (peak_in / peak_out)
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


class McAdams:
    """McAdams baseline with alpha drawn per clip in [low, high]."""

    name = "mcadams"

    def __init__(self, low: float = 0.7, high: float = 0.9) -> None:
        self.low, self.high = low, high

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"alpha": float(rng.uniform(self.low, self.high))}

    def apply(self, x: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray:
        return mcadams(x, sample_rate, float(params["alpha"]))


# -- WORLD vocoder resynthesis ---------------------------------------------------------------------

SEMITONE = np.log(2.0) / 12.0


@dataclass(frozen=True)
class WorldRange:
    """Where per-clip parameters are drawn from. The defaults were chosen with
    `earmark eval anonymization` (docs/privacy.md): a wide pitch target and a formant shift that
    is never near 1, so no clip keeps its speaker's pitch or vocal-tract length."""

    f0_low: float = 95.0  # Hz, target median pitch, drawn log-uniform
    f0_high: float = 240.0
    spread_low: float = 1.0  # semitones, target standard deviation of the pitch contour
    spread_high: float = 2.5
    warp_low: float = 1.10  # formant shift factor, drawn in [low, high] or its inverse
    warp_high: float = 1.20
    tilt_low: float = -3.0  # dB per octave added to the normalized envelope
    tilt_high: float = 3.0
    shape_db_low: float = 6.0  # depth of a random smooth spectral shape (a new timbre per clip)
    shape_db_high: float = 10.0


GENTLE_KNEE = 1000.0  # Hz: below it formants are not warped
GENTLE_PRIOR = 0.5  # s of loud speech that halve the timbre normalization
AUTO_SHORT = 1.0  # s of loud voiced speech: shorter clips get the gentle steps in `world-auto`
NATURAL_HIGH_BAND = 4000.0  # Hz: in `world-natural`, above it only each frame's level is kept


def _smooth(v: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return v
    kernel = np.ones(width) / width
    padded = np.pad(v, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def world(
    x: np.ndarray,
    sample_rate: int,
    *,
    f0_target: float,
    spread: float,
    warp: float,
    tilt: float,
    shape: int = 0,
    shape_db: float = 0.0,
    frame_period: float = 5.0,
    warp_knee: float = 0.0,
    prior_seconds: float = 0.0,
    gentle_below_seconds: float = 0.0,
    natural: bool = False,
) -> np.ndarray:
    """Resynthesize `x` with the WORLD vocoder (pyworld) and a different voice:

    - pitch: the contour is normalized to median `f0_target` Hz and `spread` semitones of
      variation, so the speaker's own pitch level and range are gone while intonation stays;
    - timbre: the speaker's long-term average spectral envelope is divided out (it is much of
      what a speaker encoder recognizes) and replaced by a smooth generic shape with `tilt` dB
      per octave; with `prior_seconds` > 0, the less speech the average rests on, the less of it
      is divided out (on one word it is that word's vowels, not the speaker: that many seconds of
      loud speech halve it); then every frame's envelope above `warp_knee` Hz (0: all of it) is
      warped along frequency by `warp` (formants move as if the vocal tract were shorter or
      longer; a knee near 1 kHz keeps the first formant, which carries most of the vowel);
      a clip with less loud voiced speech than `gentle_below_seconds` gets both gentler steps
      (knee 1 kHz, prior 0.5 s): short commands are where the words suffer;
    - `natural`: the generic curve falls at -6 dB/octave of power and is levelled at 0.1-4 kHz
      (a speech-like tilt, not the bright default), and above NATURAL_HIGH_BAND each frame keeps
      only its level while the speaker's spectral detail there is replaced by the generic curve;
    - aperiodicity (breathiness, noise) is kept, so consonants stay intelligible.
    """
    pyworld = load_pyworld()
    if x.size < int(0.05 * sample_rate) or not np.any(x):
        return x.astype(np.float32, copy=True)
    xd = x.astype(np.float64)
    f0, t = pyworld.dio(xd, sample_rate, frame_period=frame_period, f0_floor=60.0, f0_ceil=500.0)
    f0 = pyworld.stonemask(xd, f0, t, sample_rate)
    sp = pyworld.cheaptrick(xd, f0, t, sample_rate)
    ap = pyworld.d4c(xd, f0, t, sample_rate)

    voiced = f0 > 0
    new_f0 = np.zeros_like(f0)
    if np.any(voiced):
        lf = np.log(f0[voiced])
        mid, sd = np.median(lf), np.std(lf)
        z = (lf - mid) / sd if sd > 1e-6 else np.zeros_like(lf)
        new_f0[voiced] = np.exp(np.log(f0_target) + np.clip(z, -3, 3) * spread * SEMITONE)

    bins = sp.shape[1]
    freqs = np.linspace(0.0, sample_rate / 2, bins)
    log_sp = np.log(np.maximum(sp, 1e-16))
    frames = voiced if np.count_nonzero(voiced) >= 5 else np.ones_like(voiced)
    energy = log_sp[frames].mean(axis=1)
    loud = frames.copy()
    loud[frames] = energy > np.percentile(energy, 30)  # skip near-silent frames
    if not np.any(loud):
        loud = frames
    average = _smooth(log_sp[loud].mean(axis=0), max(3, bins // 24))
    if np.count_nonzero(loud) * frame_period / 1000.0 < gentle_below_seconds:
        warp_knee, prior_seconds = max(warp_knee, GENTLE_KNEE), max(prior_seconds, GENTLE_PRIOR)
    octaves = np.log2(np.maximum(freqs, 100.0) / 100.0)
    # The default generic curve, as measured and tuned: (-6 + tilt) "dB" per octave in amplitude units on a
    # log-power envelope, i.e. -3 dB/octave of power (plus tilt / 2), much flatter than speech
    # (about -6 to -9), levelled at the mean over all bins (linear in frequency, so mostly above
    # 4 kHz). In the long-term spectrum this lifts 4-8 kHz by about 16 dB and lowers the band under
    # 500 Hz by about 12 dB: a bright voice, and part of the measured protection comes from that
    # coloration (the equalizing attacker in docs/privacy.md). Changing it moves every figure there.
    if natural:
        generic = (-6.0 + tilt) * octaves * np.log(10) / 10.0
        speech_band = (freqs >= 100.0) & (freqs <= NATURAL_HIGH_BAND)
        generic += average[speech_band].mean() - generic[speech_band].mean()
    else:
        generic = average.mean() + (-6.0 + tilt) * octaves * np.log(10) / 20.0
        generic += average.mean() - generic.mean()
    # Shrink the speaker estimate toward the generic curve by how much speech it averages: a long
    # clip's average is the speaker, a single word's is mostly its own phones (measured: dividing
    # it out fully cost ~8 points of one-word accuracy).
    frames_averaged = float(np.count_nonzero(loud))
    prior = prior_seconds * 1000.0 / frame_period
    weight = frames_averaged / (frames_averaged + prior) if frames_averaged + prior > 0 else 1.0
    log_sp = log_sp + weight * (generic - average)
    if shape_db > 0:
        # A smooth random curve over log frequency (four cosines, seeded by `shape`), peak `shape_db`.
        g = np.random.default_rng(shape)
        pos = np.log2(np.maximum(freqs, 50.0) / 50.0) / np.log2(sample_rate / 2 / 50.0)
        curve = sum(g.normal() * np.cos(np.pi * (k + 1) * pos + g.uniform(0, 2 * np.pi)) for k in range(4))
        curve = curve / max(np.max(np.abs(curve)), 1e-9) * shape_db
        log_sp = log_sp + curve * np.log(10) / 20.0
    # Formant shift: above the knee, the new envelope at f is the old one at knee + (f - knee) / warp.
    src = np.clip(np.where(freqs <= warp_knee, freqs, warp_knee + (freqs - warp_knee) / warp), 0.0, freqs[-1])
    idx = src / freqs[-1] * (bins - 1)
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, bins - 1)
    frac = idx - lo
    log_sp = log_sp[:, lo] * (1 - frac) + log_sp[:, hi] * frac
    high = freqs > NATURAL_HIGH_BAND
    if natural and np.any(high):
        level = log_sp[:, high].mean(axis=1, keepdims=True)
        log_sp[:, high] = generic[high] - generic[high].mean() + level
    new_sp = np.exp(log_sp)

    y = pyworld.synthesize(new_f0, np.ascontiguousarray(new_sp), ap, sample_rate, frame_period=frame_period)
    y = y[: x.size] if y.size >= x.size else np.pad(y, (0, x.size - y.size))
    return level_as(xd, y)


class World:
    """WORLD-vocoder resynthesis with pitch normalization, timbre normalization and a formant
    shift, parameters drawn per clip from `WorldRange`.

    `mode`: "full" (`anonymizer = "world"`), "gentle" (`world-gentle`: the timbre normalization is
    scaled down on little speech and the first formant is not warped; short commands stay more
    intelligible, speakers more linkable), "auto" (`world-auto`: the gentle steps only for clips
    with less than AUTO_SHORT seconds of loud voiced speech) or "natural" (`world-natural`: a
    speech-like tilt instead of the bright default, the high band's detail replaced; as robust
    against an equalizing attacker, a little costlier in words). Figures in docs/privacy.md."""

    MODES: ClassVar[Mapping[str, str]] = {
        "full": "world",
        "gentle": "world-gentle",
        "auto": "world-auto",
        "natural": "world-natural",
    }

    @classmethod
    def named(cls, name: str) -> World:
        """The WORLD variant an `anonymizer` setting names ("world", "world-gentle", ...)."""
        modes = {setting: mode for mode, setting in cls.MODES.items()}
        if name not in modes:
            raise ValueError(f"unknown WORLD anonymizer {name!r}")
        return cls(mode=modes[name])

    def __init__(self, ranges: WorldRange | None = None, *, frame_period: float = 5.0, mode: str = "full") -> None:
        if mode not in self.MODES:
            raise ValueError(f"unknown WORLD mode {mode!r}")
        self.ranges = ranges or WorldRange()
        self.frame_period = frame_period
        self.mode = mode
        self.name = self.MODES[mode]

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        r = self.ranges
        warp = float(rng.uniform(r.warp_low, r.warp_high))
        return {
            "f0": float(np.exp(rng.uniform(np.log(r.f0_low), np.log(r.f0_high)))),
            "spread": float(rng.uniform(r.spread_low, r.spread_high)),
            "warp": warp if rng.random() < 0.5 else 1.0 / warp,
            "tilt": float(rng.uniform(r.tilt_low, r.tilt_high)),
            "shape": int(rng.integers(0, 2**31)),
            "shape_db": float(rng.uniform(r.shape_db_low, r.shape_db_high)),
        }

    def apply(self, x: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray:
        return world(
            x,
            sample_rate,
            f0_target=float(params["f0"]),
            spread=float(params["spread"]),
            warp=float(params["warp"]),
            tilt=float(params.get("tilt", 0.0)),
            shape=int(params.get("shape", 0)),
            shape_db=float(params.get("shape_db", 0.0)),
            frame_period=self.frame_period,
            warp_knee=GENTLE_KNEE if self.mode == "gentle" else 0.0,
            prior_seconds=GENTLE_PRIOR if self.mode == "gentle" else 0.0,
            gentle_below_seconds=AUTO_SHORT if self.mode == "auto" else 0.0,
            natural=self.mode == "natural",
        )


NAMES = (*World.MODES.values(), "trained", "mcadams", "mcadams-wide")
PEAK = 0.99  # resynthesized speech is never louder than this: no hard clipping


def level_as(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`y` at `x`'s loudness (RMS), lowered if that would put a peak above PEAK: a resynthesized
    voice has other peaks than the original, and a loud clip would otherwise be hard-clipped."""
    y = np.nan_to_num(np.asarray(y, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    rms_in, rms_out = np.sqrt(np.mean(np.square(x, dtype=np.float64))), np.sqrt(np.mean(y**2))
    if rms_out > 0:
        y = y * (rms_in / rms_out)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > PEAK:
        y = y * (PEAK / peak)
    return y.astype(np.float32)


def by_name(name: str, *, voice: Path | None = None) -> Anonymizer:
    """The method a name stands for: an `anonymizer` setting, or `mcadams-wide` (alpha 0.5-0.9,
    for evaluations). `voice` is the voice model file of `trained` (default: the bundled one)."""
    if name in World.MODES.values():
        return World.named(name)
    if name == "trained":
        from earmark.voice_model import Trained  # loads Whisper's encoder weights

        return Trained(voice)
    if name == "mcadams":
        return McAdams()
    if name == "mcadams-wide":
        return McAdams(0.5, 0.9)
    raise ValueError(f"unknown anonymizer {name!r} ({', '.join(NAMES)})")
