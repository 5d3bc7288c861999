"""Forced alignment: place the words of a given transcript (the device's hypothesis) on the audio.

pocketsphinx 5: `Decoder.set_align_text(text)` builds a left-to-right grammar of the words (with
optional silences and noise between them) and activates it; decoding then yields one segment
per word. Every word must be in the dictionary: words that are not (names, mostly) get a
pronunciation from espeak-ng (`espeak_pronounce`), added with `Decoder.add_word`.

Alignment always finds *some* path if one fits in the frames, so it cannot say by itself that the
text is wrong. We reject when no path fits, and when a word or pause matches the audio badly:
pocketsphinx normalizes acoustic scores by the best senone of each frame, so a segment's
log score per frame is near 0 for a good match and strongly negative for a bad one.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from earmark.redaction import Word
from earmark.transcribe import word_offsets
from earmark.types import Span
from earmark.vad import TARGET_RATE, check_audio

FRAME = TARGET_RATE // 100  # pocketsphinx frames are 10 ms

# espeak-ng en-us IPA -> CMU/ARPABET phones of the pocketsphinx en-us model (longest match first).
# A table reads better in rows than one pair per line:
# fmt: off
IPA_TO_ARPABET = {
    "aɪɚ": "AY ER", "aɪə": "AY ER", "aʊɚ": "AW ER", "ɑːɹ": "AA R", "ɔːɹ": "AO R", "oːɹ": "AO R",
    "ɛɹ": "EH R", "ɪɹ": "IH R", "ʊɹ": "UH R", "ɪə": "IY AH", "ɛə": "EH R", "ʊə": "UH R",
    "eɪ": "EY", "aɪ": "AY", "ɔɪ": "OY", "aʊ": "AW", "oʊ": "OW", "əʊ": "OW",
    "tʃ": "CH", "dʒ": "JH", "iː": "IY", "uː": "UW", "ɑː": "AA", "ɔː": "AO", "ɜː": "ER", "ɜ": "ER",
    "əl": "AH L", "n̩": "AH N", "l̩": "AH L", "m̩": "AH M",
    "i": "IY", "ɪ": "IH", "ᵻ": "IH", "e": "EH", "ɛ": "EH", "æ": "AE", "a": "AE", "ʌ": "AH",
    "ə": "AH", "ɐ": "AH", "ɚ": "ER", "ɑ": "AA", "ɒ": "AA", "ɔ": "AO", "o": "OW", "ʊ": "UH",
    "u": "UW", "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G",
    "f": "F", "v": "V", "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH",
    "h": "HH", "m": "M", "n": "N", "ŋ": "NG", "l": "L", "ɹ": "R", "r": "R", "w": "W",
    "j": "Y", "ɾ": "T", "ʔ": "T", "x": "K", "ç": "HH", "ɬ": "L",
}
# fmt: on
_IPA_KEYS = sorted(IPA_TO_ARPABET, key=len, reverse=True)


def ipa_to_arpabet(ipa: str) -> str:
    """Map espeak's IPA for one word to ARPABET; stress and length marks it does not know are dropped.

    >>> ipa_to_arpabet("dʒˈɛnɪfɚ")
    'JH EH N IH F ER'
    """
    ipa = ipa.replace("ˈ", "").replace("ˌ", "").replace("_", "").replace(" ", "")
    out: list[str] = []
    i = 0
    while i < len(ipa):
        for key in _IPA_KEYS:
            if ipa.startswith(key, i):
                out.append(IPA_TO_ARPABET[key])
                i += len(key)
                break
        else:
            i += 1  # a diacritic or a phone we have no mapping for
    phones = " ".join(out).split()
    # espeak writes linking r's ("ɚɹ", "ɹɹ") that CMUdict folds into ER or a single R.
    merged = [p for i, p in enumerate(phones) if not (p == "R" and i and phones[i - 1] in ("R", "ER"))]
    return " ".join(merged)


def espeak_pronounce(word: str) -> str | None:
    """ARPABET pronunciation of `word` from espeak-ng's en-us rules, or None."""
    from earmark.synth import phonemize

    ipa = phonemize(word, voice="en-us")
    phones = ipa_to_arpabet(ipa)
    return phones or None


def normalize_token(token: str) -> str:
    """Dictionary form of a transcript token: lowercase, outer punctuation stripped.

    >>> normalize_token("Jennifer's,")
    "jennifer's"
    """
    return re.sub(r"^[^\w']+|[^\w']+$", "", token.lower()).strip("'")


def reset_stream(decoder: Any) -> None:
    """Forget what earlier clips taught the decoder's feature normalization.

    Without this, a clip's alignment (and its scores) depends on the clips decoded before it.
    pocketsphinx 5.1 marks start_stream() deprecated, but it is the call that resets this state.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        decoder.start_stream()


@dataclass(frozen=True, slots=True)
class Segment:
    """One aligned word or pause; `score` is its acoustic log score per 10 ms frame (0 is perfect)."""

    label: str
    span: Span
    score: float
    n_phones: int


@dataclass(frozen=True, slots=True)
class AlignmentResult:
    """Outcome of one alignment: words on success, else a reason; segments whenever decoding ran."""

    words: list[Word] | None
    reason: str | None
    segments: list[Segment]

    @property
    def worst(self) -> float:
        return min((s.score for s in self.segments), default=-math.inf)


class PocketsphinxAligner:
    """Word alignment with pocketsphinx 5 and the en-us model inside its wheel."""

    name = "pocketsphinx-align"

    def __init__(
        self,
        *,
        pronounce: Callable[[str], str | None] | None = espeak_pronounce,
        min_segment_score: float = -5.0,
    ) -> None:
        import pocketsphinx

        # lm=None: no 27 MB language model; set_align_text installs the only search we use.
        self._decoder: Any = pocketsphinx.Decoder(lm=None, loglevel="FATAL")
        self._pronounce = pronounce
        self.min_segment_score = min_segment_score

    def align(self, x: np.ndarray, sample_rate: int, text: str) -> list[Word] | None:
        return self.align_detailed(x, sample_rate, text).words

    def _ensure_word(self, word: str) -> bool:
        d = self._decoder
        if d.lookup_word(word) is not None:
            return True
        phones = self._pronounce(word) if self._pronounce else None
        if not phones:
            return False
        d.add_word(word, phones, True)
        return True

    def align_detailed(self, x: np.ndarray, sample_rate: int, text: str) -> AlignmentResult:
        check_audio(x, sample_rate)
        tokens = [(normalize_token(t), s, e) for t, s, e in word_offsets(text)]
        tokens = [t for t in tokens if t[0]]  # bare punctuation has no sound to place
        if not tokens:
            return AlignmentResult(None, "empty transcript", [])
        missing = [w for w, _, _ in tokens if not self._ensure_word(w)]
        if missing:
            return AlignmentResult(None, f"no pronunciation for {missing}", [])
        segments = self._decode(x, [w for w, _, _ in tokens])
        if segments is None:
            return AlignmentResult(None, "words do not fit the audio", [])
        spans = [seg.span for seg in segments if not seg.label.startswith(("<", "["))]
        if len(spans) != len(tokens):
            return AlignmentResult(None, "decoder lost words", segments)
        reason = self._judge(segments)
        if reason:
            return AlignmentResult(None, reason, segments)
        words = [Word(text[s:e], s, e, span) for (_, s, e), span in zip(tokens, spans, strict=True)]
        return AlignmentResult(words, None, segments)

    def _decode(self, x: np.ndarray, words: list[str]) -> list[Segment] | None:
        d = self._decoder
        d.set_align_text(" ".join(words))
        reset_stream(d)
        d.start_utt()
        d.process_raw((np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        # No hypothesis, or a partial one, means no path through all the words fits the frames.
        if hyp is None or [w.split("(")[0] for w in hyp.hypstr.split()] != words:
            return None
        segments = []
        for seg in d.seg():
            if seg.word in ("<s>", "</s>"):  # zero-length sentence markers with meaningless scores
                continue
            n_frames = seg.end_frame - seg.start_frame + 1  # end_frame is inclusive
            # ascore is a linear likelihood; it underflows to 0 only for long, very bad matches.
            score = math.log(seg.ascore) / n_frames if seg.ascore > 0 else -math.inf
            start = seg.start_frame * FRAME
            span = Span(start, max(min((seg.end_frame + 1) * FRAME, len(x)), start + 1))
            phones = d.lookup_word(seg.word) if not seg.word.startswith(("<", "[")) else None
            segments.append(Segment(seg.word.split("(")[0], span, score, len(phones.split()) if phones else 1))
        return segments

    def _judge(self, segments: list[Segment]) -> str | None:
        return judge_segments(segments, min_score=self.min_segment_score)


def judge_segments(segments: list[Segment], *, min_score: float = -5.0, min_frames: int = 10) -> str | None:
    """Why an alignment should be rejected, or None.

    Segments shorter than `min_frames` are not judged: per-frame scores of very short words and
    of the first frames of a clip swing widely even when the text is right. On real speech the
    worst segment of a correct transcript scored -1.2 to -3.5 per frame (one -5.6); espeak-ng
    speech scores lower (REPORT.md).
    """
    judged = [s for s in segments if s.span.end - s.span.start >= min_frames * FRAME]
    if judged and min(s.score for s in judged) < min_score:
        return "a word or pause does not match the audio"
    return None
