"""The real speech models: silero VAD, Whisper tiny.en, pocketsphinx transcription and alignment.

Loaded once per module (they take a second each). Recordings from ../shared/data are used where
present (EARMARK_SHARED_DATA points elsewhere); synthesized speech everywhere else.
"""

from __future__ import annotations

import csv
import itertools
import math
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from earmark.align import PocketsphinxAligner, ipa_to_arpabet
from earmark.audio import resample
from earmark.redaction import Word
from earmark.synth import Synthesis, synthesize
from earmark.transcribe import PocketsphinxTranscriber, WhisperTranscriber, asr_style, number_words
from earmark.types import Span
from earmark.vad import SileroVAD
from tests.conftest import SHARED_DATA

SR = 16_000


def speech(text: str, *, variant: str = "m3", pitch: int = 45, lead: float = 0.4) -> tuple[np.ndarray, list[int]]:
    """Synthesized speech at 16 kHz and the true sample where each word starts."""
    syn = synthesize(text, variant=variant, pitch=pitch)
    return _padded(syn, lead)


def _padded(syn: Synthesis, lead: float) -> tuple[np.ndarray, list[int]]:
    x = resample(syn.samples, syn.sample_rate, SR)
    pad = int(lead * SR)
    starts = [pad + round(s * SR / syn.sample_rate) for _, _, s in syn.words]
    return np.concatenate([np.zeros(pad, np.float32), 0.6 * x, np.zeros(pad, np.float32)]), starts


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


@pytest.fixture(scope="module")
def whisper() -> WhisperTranscriber:
    return WhisperTranscriber()


@pytest.fixture(scope="module")
def aligner() -> PocketsphinxAligner:
    return PocketsphinxAligner()


def test_vad_finds_the_speech_and_not_the_silence(vad: SileroVAD) -> None:
    x, _ = speech("set a timer for ten minutes")
    spans = vad.detect(x, SR)
    assert spans
    assert spans[0].start >= int(0.2 * SR) and spans[-1].end <= x.size - int(0.2 * SR)
    assert vad.detect(np.zeros(SR * 2, np.float32), SR) == []
    noise = np.random.default_rng(0).normal(0, 0.01, SR * 2).astype(np.float32)
    assert vad.detect(noise, SR) == []


def test_vad_refuses_the_wrong_rate(vad: SileroVAD) -> None:
    with pytest.raises(ValueError, match="resample first"):
        vad.detect(np.zeros(8000, np.float32), 8000)


def test_whisper_transcribes_real_speech(whisper: WhisperTranscriber) -> None:
    folder = SHARED_DATA / "ljspeech-subset"
    if not folder.exists():
        pytest.skip(f"{folder} not present")
    with open(folder / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))[:3]
    refs, hyps = [], []
    for row in rows:
        x, sr = sf.read(folder / row["path"], dtype="float32")
        result = whisper.transcribe(resample(x, sr, SR), SR)
        refs.append(
            " ".join(asr_style([Word(t, 0, 0, Span(0, 1)) for t in row["normalized_transcript"].split()])[0].split())
        )
        hyps.append(result.text)
        assert result.words and all(w.span.end <= x.size * SR / sr + SR for w in result.words)
    assert jiwer.wer(refs, hyps) < 0.15


def test_whisper_words_are_asr_style_with_offsets(whisper: WhisperTranscriber) -> None:
    x, _ = speech("call me at five five five one two three four")
    result = whisper.transcribe(x, SR)
    assert result.text == result.text.lower() and not any(ch.isdigit() for ch in result.text)
    for w in result.words:
        assert result.text[w.char_start : w.char_end] == w.text
    assert whisper.transcribe(np.zeros(0, np.float32), SR).text == ""


def _real_clip(name: str) -> tuple[np.ndarray, str]:
    folder = SHARED_DATA / "pocketsphinx-test-audio"
    if not folder.exists():
        pytest.skip(f"{folder} not present")
    with open(folder / "manifest.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if r["path"].endswith(name))
    path = folder / row["path"]
    if path.suffix == ".raw":
        x = np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
    else:
        x, sr = sf.read(path, dtype="float32")
        x = resample(x if x.ndim == 1 else x.mean(axis=1), sr, SR)
    return x.astype(np.float32), row["transcript"]


def test_pocketsphinx_transcribes_real_speech_with_word_times() -> None:
    x, ref = _real_clip("goforward.raw")
    result = PocketsphinxTranscriber().transcribe(x, SR)
    assert result.words and all(result.text[w.char_start : w.char_end] == w.text for w in result.words)
    assert jiwer.wer(ref, result.text) <= 0.5


def test_aligner_places_real_speech(aligner: PocketsphinxAligner) -> None:
    x, ref = _real_clip("goforward.raw")
    words = aligner.align(x, SR, ref)
    assert words is not None and [w.text for w in words] == ref.split()
    assert all(a.span.end <= b.span.start + 1 for a, b in itertools.pairwise(words))
    assert aligner.align(x, SR, "play some jazz music in the kitchen") is None


def _speech_in_a_fresh_process(text: str, tmp_path: Path) -> tuple[np.ndarray, list[int]]:
    """As `speech`, synthesized by an espeak-ng that has said nothing before: its output varies with
    what it said earlier in the process, so a test that measures it must not depend on test order."""
    out = tmp_path / "speech.npz"
    code = (
        "import sys, numpy as np; from earmark.synth import synthesize; "
        f"syn = synthesize({text!r}, variant='m3', pitch=45); "
        "np.savez(sys.argv[1], samples=syn.samples, rate=syn.sample_rate, "
        "words=np.array([w for w in syn.words], dtype=np.int64).reshape(-1, 3))"
    )
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, capture_output=True)
    with np.load(out) as z:
        syn = Synthesis(z["samples"], int(z["rate"]), [tuple(int(v) for v in w) for w in z["words"]])
    return _padded(syn, 0.4)


def test_aligner_places_words_close_to_where_they_are_spoken(tmp_path: Path) -> None:
    # espeak's voice fits pocketsphinx's acoustic model poorly: these tests check placement, not
    # the score judgement, which the real-speech test covers.
    lenient = PocketsphinxAligner(min_segment_score=-math.inf)
    text = "call jennifer on her mobile"
    x, starts = _speech_in_a_fresh_process(text, tmp_path)
    words = lenient.align(x, SR, text)
    assert words is not None and [w.text for w in words] == text.split()
    errors_ms = [abs(w.span.start - s) * 1000 / SR for w, s in zip(words, starts, strict=True)]
    assert float(np.median(errors_ms)) < 60


def test_aligner_pronounces_words_outside_its_dictionary(aligner: PocketsphinxAligner) -> None:
    # Names are mostly out of the dictionary; espeak-ng supplies their pronunciation.
    x, ref = _real_clip("goforward.raw")
    assert ref == "go forward ten meters"
    result = aligner.align_detailed(x, SR, "go forward ten meterz")
    assert result.words is not None and result.words[3].text == "meterz", result.reason


def test_aligner_refuses_a_transcript_that_is_not_in_the_audio(aligner: PocketsphinxAligner) -> None:
    x, _ = speech("play some jazz music in the kitchen")
    assert aligner.align(x, SR, "call jennifer on her mobile") is None
    assert aligner.align(x, SR, "") is None


def test_asr_style_and_numbers() -> None:
    assert number_words("7") == ["seven"] and number_words("15") == ["fifteen"] and number_words("40") == ["forty"]
    assert number_words("07") == ["zero", "seven"]
    words = [Word(t, 0, 0, Span(i, i + 1)) for i, t in enumerate(["Email", "Jane.Doe@Example.com.", "At", "5:30."])]
    text, out = asr_style(words)
    assert text == "email jane dot doe at example dot com at five thirty"
    assert all(text[w.char_start : w.char_end] == w.text for w in out)


def test_ipa_mapping() -> None:
    assert ipa_to_arpabet("dʒˈɛnɪfɚ") == "JH EH N IH F ER"
