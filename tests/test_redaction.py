from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from earmark.redaction import TextSpan, Word, bleep, mask_text, merge_spans, pii_audio_spans, reported_text_spans
from earmark.types import Span

SR = 16_000


def test_mask_text_uses_typed_placeholders() -> None:
    text = "call jennifer on five five five one two"
    spans = [TextSpan(5, 13, "PERSON"), TextSpan(17, 39, "PHONE")]
    assert mask_text(text, spans) == "call [PERSON] on [PHONE]"


def test_reported_audio_spans_mask_the_words_spoken_there() -> None:
    text = "text anna at five five five"
    words = [Word(w, text.index(w), text.index(w) + len(w), Span(i * 1000, i * 1000 + 900)) for i, w in
             enumerate(["text", "anna", "at"])]  # fmt: skip
    spans = reported_text_spans(text, words, [Span(1500, 1800)])
    assert mask_text(text, spans) == "text [REDACTED] at five five five"
    assert reported_text_spans(text, words, [Span(950, 990)]) == []  # between words: nothing was said
    # Untimed words: we cannot tell which were reported, so none is shown.
    assert mask_text(text, reported_text_spans(text, [], [Span(1500, 2100)])) == "[REDACTED]"


def test_bleep_removes_the_original_inside_the_span_and_fades_at_the_edges() -> None:
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(SR)).astype(np.float32)
    y = bleep(x, SR, [Span(4000, 8000)], mode="silence", fade_ms=10)
    fade = int(SR * 0.010)
    assert np.all(y[4000 + fade : 8000 - fade] == 0.0)
    assert np.array_equal(y[:4000], x[:4000]) and np.array_equal(y[8000:], x[8000:])
    # The crossfade is smooth: no jump larger than the signal's own sample-to-sample changes.
    assert np.max(np.abs(np.diff(y[3990:4010]))) <= np.max(np.abs(np.diff(x))) + 1e-6


def test_tone_replaces_speech_with_a_steady_tone() -> None:
    x = np.zeros(SR, dtype=np.float32)
    x[:] = 0.2
    y = bleep(x, SR, [Span(2000, 10000)], mode="tone", tone_hz=1000)
    middle = y[4000:8000]
    spectrum = np.abs(np.fft.rfft(middle))
    assert abs(np.argmax(spectrum) * SR / middle.size - 1000) < 5


def test_pii_spans_are_padded_and_unplaced_pii_is_reported() -> None:
    text = "call jennifer now"
    words = [
        Word("call", 0, 4, Span(0, 3000)),
        Word("jennifer", 5, 13, Span(3000, 8000)),
        Word("now", 14, 17, Span(8000, 9000)),
    ]
    spans, unplaced = pii_audio_spans(text, words, [TextSpan(5, 13, "PERSON")], pad=1600, num_samples=12000)
    assert spans == [Span(1400, 9600)] and unplaced == []
    # The aligner could not place "jennifer": the PII cannot be located, so it is reported.
    spans, unplaced = pii_audio_spans(
        text, [words[0], words[2]], [TextSpan(5, 13, "PERSON")], pad=1600, num_samples=12000
    )
    assert spans == [] and unplaced == [TextSpan(5, 13, "PERSON")]


def test_multiword_pii_needs_every_word_placed() -> None:
    text = "dial five five five"
    words = [Word("dial", 0, 4, Span(0, 100)), Word("five", 5, 9, Span(100, 200)), Word("five", 15, 19, Span(300, 400))]
    _, unplaced = pii_audio_spans(text, words, [TextSpan(5, 19, "PHONE")], pad=0, num_samples=500)
    assert unplaced == [TextSpan(5, 19, "PHONE")]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 15_999), st.integers(1, 4000)), max_size=6), st.sampled_from(["tone", "silence"])
)
def test_bleep_keeps_length_and_bounds(raw: list[tuple[int, int]], mode: str) -> None:
    x = np.random.default_rng(1).uniform(-1, 1, SR).astype(np.float32)
    spans = merge_spans([Span(s, min(SR, s + n)) for s, n in raw if s + 1 <= SR and min(SR, s + n) > s])
    y = bleep(x, SR, spans, mode=mode)  # type: ignore[arg-type]
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.abs(y) <= 1.0)
