"""Redaction: personal data out of the transcript (typed placeholders) and out of the audio (tone
or silence over each word span, padded, with crossfades so no click marks the boundary).

Pure: float32 mono arrays, integer sample positions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from earmark.types import Span

RedactionMode = Literal["tone", "silence"]


@dataclass(frozen=True, slots=True)
class Word:
    """One transcript word: its characters in the transcript and its samples in the audio.

    >>> Word("call", 0, 4, Span(1600, 4800)).span.seconds(16000)
    (0.1, 0.3)
    """

    text: str
    char_start: int
    char_end: int
    span: Span
    score: float | None = None  # the engine's confidence in [0, 1], where it gives one


@dataclass(frozen=True, slots=True)
class TextSpan:
    """A typed character range of a transcript, e.g. a phone number."""

    start: int
    end: int
    type: str


def mask_text(text: str, spans: Sequence[TextSpan]) -> str:
    """Replace each span by its type in brackets: "call [PHONE]".

    >>> mask_text("call five five five", [TextSpan(5, 19, "PHONE")])
    'call [PHONE]'
    """
    out: list[str] = []
    pos = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < pos:  # overlapping spans: the earlier one already covers this
            pos = max(pos, span.end)
            continue
        out.append(text[pos : span.start])
        out.append(f"[{span.type}]")
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


REPORTED = "REDACTED"


def reported_text_spans(text: str, words: Sequence[Word], reported: Sequence[Span]) -> list[TextSpan]:
    """The transcript ranges spoken inside sample spans a reviewer reported as personal data left
    audible: the timed words there, adjacent ones joined. Without word timing we cannot tell which
    words they are, so the whole transcript is masked (fail closed).

    >>> w = [Word("call", 0, 4, Span(0, 100)), Word("anna", 5, 9, Span(100, 200))]
    >>> reported_text_spans("call anna", w, [Span(150, 160)])
    [TextSpan(start=5, end=9, type='REDACTED')]
    >>> reported_text_spans("call anna", [], [Span(150, 160)])
    [TextSpan(start=0, end=9, type='REDACTED')]
    """
    if not reported or not text.strip():
        return []
    if not words:
        return [TextSpan(0, len(text), REPORTED)]
    hit = sorted(
        {(w.char_start, w.char_end) for w in words for r in reported if w.span.start < r.end and w.span.end > r.start}
    )
    out: list[TextSpan] = []
    for start, end in hit:
        if out and not text[out[-1].end : start].strip():
            out[-1] = TextSpan(out[-1].start, max(end, out[-1].end), REPORTED)
        else:
            out.append(TextSpan(start, end, REPORTED))
    return out


def merge_spans(spans: Sequence[Span], *, gap: int = 0) -> list[Span]:
    """Union of spans, joining those closer than `gap` samples."""
    merged: list[Span] = []
    for s in sorted(spans, key=lambda s: s.start):
        if merged and s.start <= merged[-1].end + gap:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, s.end))
        else:
            merged.append(s)
    return merged


def pii_audio_spans(
    text: str, words: Sequence[Word], pii: Sequence[TextSpan], *, pad: int, num_samples: int
) -> tuple[list[Span], list[TextSpan]]:
    """Sample spans covering every word that overlaps a PII span, padded by `pad` each side.

    Returns (spans, unplaced): PII spans that no timed word covers are returned as unplaced, so the
    caller can redact wholesale instead of leaving them audible.
    """
    spans: list[Span] = []
    unplaced: list[TextSpan] = []
    for p in pii:
        hit = [w for w in words if w.char_start < p.end and w.char_end > p.start]
        covered = set()
        for w in hit:
            covered.update(range(max(w.char_start, p.start), min(w.char_end, p.end)))
        # Every non-space character of the PII must sit in a timed word; a gap (a word the aligner
        # could not place) means we do not know where that part is spoken.
        needed = {i for i in range(p.start, min(p.end, len(text))) if not text[i].isspace()}
        if not hit or not needed <= covered:
            unplaced.append(p)
            continue
        start = max(0, min(w.span.start for w in hit) - pad)
        end = min(num_samples, max(w.span.end for w in hit) + pad)
        if end > start:
            spans.append(Span(start, end))
    return merge_spans(spans), unplaced


def bleep(
    x: np.ndarray,
    sample_rate: int,
    spans: Sequence[Span],
    *,
    mode: RedactionMode = "tone",
    fade_ms: float = 15.0,
    tone_hz: float = 1000.0,
) -> np.ndarray:
    """Replace each span by a steady tone (or silence), crossfading at both edges.

    Inside the span the original is fully gone: the fades sit in the padding that surrounds the
    PII words, so only padding is ever partly audible.
    """
    y = x.astype(np.float32, copy=True)
    if not spans:
        return y
    fade = max(1, int(sample_rate * fade_ms / 1000))
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0
    level = min(0.25, max(0.02, 2.0 * rms))
    for span in spans:
        s, e = max(0, span.start), min(len(y), span.end)
        n = e - s
        if n <= 0:
            continue
        if mode == "tone":
            t = np.arange(n, dtype=np.float64) / sample_rate
            fill = (level * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
        else:
            fill = np.zeros(n, dtype=np.float32)
        f = min(fade, n // 2)
        gain = np.ones(n, dtype=np.float32)  # weight of the fill; 1 - gain for the original
        if f > 0:
            ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, f, dtype=np.float64))).astype(np.float32)
            gain[:f] = ramp
            gain[n - f :] = ramp[::-1]
        y[s:e] = gain * fill + (1.0 - gain) * y[s:e]
    return y


def speech_regions_holding(speech: Sequence[Span], *, pad: int, num_samples: int) -> list[Span]:
    """Fallback when PII cannot be placed in time: every speech region, padded."""
    return merge_spans([Span(max(0, s.start - pad), min(num_samples, s.end + pad)) for s in speech if s.end > s.start])
