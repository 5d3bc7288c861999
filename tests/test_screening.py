from __future__ import annotations

import numpy as np
import pytest

from earmark.audio import resample
from earmark.screening import acoustic_cues, screen, screen_text
from earmark.synth import synthesize

SR = 16_000


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("help me somebody please", "help_request"),
        ("call the police", "emergency"),
        ("call nine one won", "emergency"),  # an ASR error still matches
        ("i'm going to kill you", "threat_violence"),
        ("i want to kill myself", "self_harm"),
        ("take off your clothes", "sexual"),
    ],
)
def test_sensitive_phrases_are_found_despite_asr_errors(text: str, label: str) -> None:
    assert label in screen_text(text)


@pytest.mark.parametrize(
    "text", ["play kill bill", "set a timer for ten minutes", "call jennifer", "what's the weather in boston", ""]
)
def test_ordinary_requests_are_not_flagged(text: str) -> None:
    hits = screen_text(text)
    assert all(score < 0.86 for score, _ in hits.values())


def _voice(text: str, pitch: int, variant: str) -> np.ndarray:
    syn = synthesize(text, variant=variant, pitch=pitch)
    return resample(syn.samples, syn.sample_rate, SR)


def test_adult_voices_are_not_children() -> None:
    for variant, pitch in (("m3", 40), ("f3", 50)):
        assert acoustic_cues(_voice("add bread to my shopping list", pitch, variant), SR).child < 0.2


def test_a_very_high_voice_scores_as_a_likely_child() -> None:
    cues = acoustic_cues(_voice("can you play my favourite song please", 99, "f5"), SR)
    assert cues.f0_median > 300 and cues.child > 0.5


def test_screaming_is_detected_from_loud_high_pitched_voicing() -> None:
    t = np.arange(int(1.5 * SR)) / SR
    f0 = 750 + 60 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    scream = sum((0.5 / k) * np.sin(k * phase) for k in range(1, 6)).astype(np.float32)
    scream *= 0.8 / np.abs(scream).max()
    result = screen(scream, SR, "")
    assert "screaming" in result.labels and result.route == "safety"


def test_silence_and_tiny_clips_do_not_crash() -> None:
    for x in (np.zeros(SR, np.float32), np.zeros(100, np.float32), np.zeros(0, np.float32)):
        assert screen(x, SR, "").route == "general"
