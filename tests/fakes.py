"""Small, fast stand-ins for the heavy pipeline models, for tests about the plumbing.

The real models have their own tests (tests/test_vad.py, test_transcribe.py, ...).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from earmark.anonymize import McAdams
from earmark.pipeline import Components
from earmark.redaction import TextSpan, Word
from earmark.transcribe import Transcript, word_offsets
from earmark.types import Span
from earmark.vad import EnergyVAD


class ProportionalAligner:
    """Spreads the words over the detected speech by their length (tests only: real alignment is
    pocketsphinx's job). Returns None for empty text, like a failed alignment."""

    name = "proportional"

    def align(self, x: np.ndarray, sample_rate: int, text: str) -> list[Word] | None:
        speech = EnergyVAD().detect(x, sample_rate)
        tokens = word_offsets(text)
        if not speech or not tokens:
            return None
        start, end = speech[0].start, speech[-1].end
        total = sum(len(t) + 1 for t, _, _ in tokens)
        out, pos = [], start
        for t, cs, ce in tokens:
            length = int((end - start) * (len(t) + 1) / total)
            out.append(Word(t, cs, ce, Span(pos, max(pos + 1, pos + length))))
            pos += length
        return out


class FailingAligner:
    name = "failing"

    def align(self, x: np.ndarray, sample_rate: int, text: str) -> list[Word] | None:
        return None


class FixedTranscriber:
    name = "fixed"

    def __init__(self, text: str = "what's the weather") -> None:
        self.text = text

    def transcribe(self, x: np.ndarray, sample_rate: int) -> Transcript:
        words = ProportionalAligner().align(x, sample_rate, self.text) or []
        return Transcript(self.text, "fixed", words)


class KeywordPii:
    """Flags names from a short list and runs of spoken digits."""

    name = "keyword"
    NAMES = ("jennifer", "david", "maria")
    DIGITS = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double)"

    def detect(self, text: str) -> list[TextSpan]:
        spans = [
            TextSpan(m.start(), m.end(), "PERSON") for m in re.finditer(r"\b(" + "|".join(self.NAMES) + r")\b", text)
        ]
        for m in re.finditer(rf"\b{self.DIGITS}(?:\s+{self.DIGITS}){{3,}}\b", text):
            spans.append(TextSpan(m.start(), m.end(), "PHONE"))
        return spans


class Crashing:
    """An anonymizer that fails, to prove the pipeline fails closed."""

    name = "crashing"

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        return {}

    def apply(self, x: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray:
        raise RuntimeError("boom")


def fast_components(**overrides: Any) -> Components:
    parts = {
        "vad": EnergyVAD(),
        "transcriber": FixedTranscriber(),
        "aligner": ProportionalAligner(),
        "pii": KeywordPii(),
        "anonymizer": McAdams(),
    }
    parts.update(overrides)
    return Components(**parts)
