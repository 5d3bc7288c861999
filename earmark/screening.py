"""Sensitive-content screening: decide, before any general reviewer hears a clip, whether it belongs
to the restricted safety team instead.

Two kinds of evidence, each scored in [0, 1] with a human-readable reason:
- the transcript: calls for help, emergencies, threats and violence, self-harm, sexual content,
  matched as phrases with fuzzy token matching so ASR errors ("call nine one won") still hit;
- the sound (on the original audio, before anonymization): screaming, crying, and a likely child
  speaker from pitch and formant cues.

Screening is a filter tuned to over-route: a false alarm costs a trained reviewer a few seconds, a
miss exposes a general reviewer to a distressing clip. Pure: arrays and strings in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz

from earmark.audio import load_pyworld

TEXT_LABELS: dict[str, tuple[str, ...]] = {
    "help_request": (
        "help me",
        "somebody help",
        "someone help",
        "please help",
        "help help",
        "get help",
        "let me go",
        "stop it please",
        "leave me alone",
        "don't touch me",
    ),
    "emergency": (
        "call nine one one",
        "call nine eleven",
        "call 911",
        "call the police",
        "call an ambulance",
        "call the ambulance",
        "call the fire department",
        "there's a fire",
        "he's not breathing",
        "she's not breathing",
        "i can't breathe",
        "having a heart attack",
        "i've been hurt",
        "i'm bleeding",
        "overdose",
    ),
    "threat_violence": (
        "i'll kill you",
        "i will kill you",
        "i'm going to kill you",
        "gonna kill you",
        "i'll hurt you",
        "i'll beat you",
        "he hit me",
        "she hit me",
        "stop hitting me",
        "he's hitting me",
        "got a gun",
        "has a gun",
        "a knife",
        "shoot you",
        "stab you",
    ),
    "self_harm": (
        "kill myself",
        "want to die",
        "end my life",
        "end it all",
        "hurt myself",
        "suicide",
        "suicidal",
        "don't want to live",
        "better off dead",
        "cut myself",
    ),
    "sexual": (
        "have sex",
        "having sex",
        "naked",
        "nude",
        "porn",
        "take off your clothes",
        "sexual",
    ),
}
# Requests that contain alarming words but are ordinary assistant use (titles, how-tos).
BENIGN_CONTEXT = re.compile(r"\b(play|song|album|movie|film|show|episode|book|read|podcast|lyrics|by|trailer)\b")
FUZZY_MIN = 86.0


@dataclass(frozen=True, slots=True)
class ScreeningThresholds:
    text: float = 0.86
    scream: float = 0.5
    cry: float = 0.6
    child: float = 0.7


@dataclass(frozen=True, slots=True)
class Screening:
    """Where a clip goes and why."""

    route: str  # "general" or "safety"
    labels: list[str]
    scores: dict[str, float]
    reasons: list[str] = field(default_factory=list)


def normalize_text(text: str) -> str:
    """Lowercase words and digits only, spaces collapsed; keeps apostrophes inside words."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(text.split())


def _phrase_score(tokens: list[str], phrase: str) -> float:
    target = phrase.split()
    n = len(target)
    best = 0.0
    for width in (n - 1, n, n + 1):
        if width <= 0 or width > len(tokens):
            continue
        for i in range(len(tokens) - width + 1):
            window = " ".join(tokens[i : i + width])
            best = max(best, fuzz.ratio(window, phrase))
            if best >= 100.0:
                return 1.0
    return best / 100.0


def screen_text(text: str) -> dict[str, tuple[float, str]]:
    """Best fuzzy phrase match per label: {label: (score, phrase)}."""
    norm = normalize_text(text)
    tokens = norm.split()
    out: dict[str, tuple[float, str]] = {}
    if not tokens:
        return out
    benign = bool(BENIGN_CONTEXT.search(norm))
    for label, phrases in TEXT_LABELS.items():
        best, which = 0.0, ""
        for phrase in phrases:
            score = _phrase_score(tokens, phrase)
            if score > best:
                best, which = score, phrase
        if best * 100 < FUZZY_MIN:
            continue
        # "play kill bill", "read a book about suicide prevention": a media request lowers the score
        # (still reported, so a very strong match can route anyway).
        if benign and label in ("threat_violence", "self_harm", "sexual"):
            best *= 0.8
        out[label] = (round(best, 3), which)
    return out


# -- acoustic cues -------------------------------------------------------------------------------


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    if x.size < size:
        x = np.pad(x, (0, size - x.size))
    n = 1 + (x.size - size) // hop
    idx = np.arange(size)[None, :] + hop * np.arange(n)[:, None]
    return x[idx]


def pitch_track(x: np.ndarray, sample_rate: int, *, fmin: float = 70.0, fmax: float = 800.0) -> np.ndarray:
    """F0 per 10 ms frame in Hz (0 where unvoiced), with WORLD's DIO + StoneMask."""
    pyworld = load_pyworld()
    if x.size < sample_rate // 20:
        return np.zeros(0)
    xd = x.astype(np.float64)
    f0, t = pyworld.dio(xd, sample_rate, f0_floor=fmin, f0_ceil=fmax, frame_period=10.0)
    return np.asarray(pyworld.stonemask(xd, f0, t, sample_rate))


def _formants(frame: np.ndarray, sample_rate: int, order: int = 12) -> list[float]:
    """Formant frequencies of one frame from LPC roots (Hz, ascending, 90 Hz..5 kHz)."""
    w = frame * np.hamming(frame.size)
    r = np.correlate(w, w, mode="full")[frame.size - 1 : frame.size + order]
    if r[0] <= 1e-10:
        return []
    from scipy.linalg import solve_toeplitz

    try:
        a = solve_toeplitz((r[:-1], r[:-1]), -r[1:])
    except np.linalg.LinAlgError:
        return []
    roots = np.roots(np.concatenate([[1.0], a]))
    roots = roots[np.imag(roots) > 0.01]
    freqs = np.angle(roots) * sample_rate / (2 * np.pi)
    bw = -0.5 * sample_rate / np.pi * np.log(np.abs(roots) + 1e-12)
    return sorted(float(f) for f, b in zip(freqs, bw, strict=True) if 90 < f < 5000 and b < 400)


@dataclass(frozen=True, slots=True)
class AcousticCues:
    voiced_seconds: float
    f0_median: float
    scream: float
    cry: float
    child: float
    f2_median: float


def acoustic_cues(x: np.ndarray, sample_rate: int) -> AcousticCues:
    """Screaming, crying and child-speaker scores from pitch, loudness and formants."""
    f0 = pitch_track(x, sample_rate)
    voiced = f0 > 0
    voiced_s = float(voiced.sum()) * 0.01
    if voiced_s < 0.25:
        return AcousticCues(voiced_s, 0.0, 0.0, 0.0, 0.0, 0.0)
    hop = sample_rate // 100
    frames = _frames(x.astype(np.float64), hop * 3, hop)[: f0.size]
    rms_db = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)
    v = voiced[: rms_db.size]
    f0v = f0[: rms_db.size][v]
    loud = rms_db[v]
    f0_med = float(np.median(f0v))
    # Screaming: long stretches of very high, loud, voiced sound.
    scream_frames = (f0v > 500) & (loud > -22)
    scream = float(np.clip(scream_frames.sum() * 0.01 / 0.6, 0, 1))
    # Crying: high-pitched voicing in short bursts separated by pauses (sobbing rhythm).
    bursts = np.diff(np.concatenate([[0], v.astype(int), [0]]))
    starts, ends = np.flatnonzero(bursts == 1), np.flatnonzero(bursts == -1)
    lengths = (ends - starts) * 0.01
    burst_f0 = [float(np.median(f0[s:e])) for s, e in zip(starts, ends, strict=True) if e > s]
    sob = sum(1 for ln, bf in zip(lengths, burst_f0, strict=True) if 0.15 <= ln <= 1.2 and bf > 380)
    cry = float(np.clip((sob - 2) / 4, 0, 1))
    # A child speaker: high median pitch and high second formant on voiced frames.
    voiced_idx = np.flatnonzero(v)
    step = max(1, voiced_idx.size // 40)
    f2s = []
    win = int(0.03 * sample_rate)
    for i in voiced_idx[::step]:
        seg = x[i * hop : i * hop + win].astype(np.float64)
        if seg.size == win:
            fm = _formants(seg, sample_rate)
            if len(fm) >= 2:
                f2s.append(fm[1])
    f2_med = float(np.median(f2s)) if f2s else 0.0
    pitch_part = 1 / (1 + np.exp(-(f0_med - 290) / 18))
    formant_part = 1 / (1 + np.exp(-(f2_med - 2300) / 150)) if f2s else 0.5
    child = float(pitch_part * (0.5 + 0.5 * formant_part))
    return AcousticCues(voiced_s, f0_med, round(scream, 3), round(cry, 3), round(child, 3), f2_med)


def screen(
    x: np.ndarray,
    sample_rate: int,
    transcript: str,
    thresholds: ScreeningThresholds | None = None,
) -> Screening:
    """Route a clip: `safety` if any cue passes its threshold, else `general`."""
    th = thresholds or ScreeningThresholds()
    scores: dict[str, float] = {}
    reasons: list[str] = []
    labels: list[str] = []
    for label, (score, phrase) in screen_text(transcript).items():
        scores[label] = score
        if score >= th.text:
            labels.append(label)
            reasons.append(f"transcript matches '{phrase}' ({label}, {score:.2f})")
    cues = acoustic_cues(x, sample_rate)
    acoustic: Mapping[str, tuple[float, float]] = {
        "screaming": (cues.scream, th.scream),
        "crying": (cues.cry, th.cry),
        "child_speaker": (cues.child, th.child),
    }
    for label, (score, threshold) in acoustic.items():
        scores[label] = score
        if score >= threshold:
            labels.append(label)
            reasons.append(f"{label.replace('_', ' ')}: score {score:.2f} (median pitch {cues.f0_median:.0f} Hz)")
    return Screening("safety" if labels else "general", labels, scores, reasons)
