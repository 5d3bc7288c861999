"""Voice anonymization: make a clip's speaker hard to recognize while keeping the words clear.

Each method draws its parameters per clip from an explicit Generator, so two clips of the same
speaker do not share a voice. Pure: float32 mono in, float32 mono of the same length out.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from scipy.linalg import solve_toeplitz
from scipy.signal import lfilter


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
