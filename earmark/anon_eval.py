"""How well an anonymizer hides the speaker and keeps the words: `earmark eval anonymization DIR`.

Speaker linkability is measured with the resemblyzer speaker encoder (weights inside its wheel;
it needs torch, so it is the optional `eval` extra). Per speaker, the first half of the utterances
enrol (mean embedding) and the rest are tested against every enrolled speaker; the equal error
rate (EER) is where false accepts equal false rejects. 50% is chance. Attackers:

- baseline: enrol on originals, test originals (how recognizable the speakers are at all);
- ignorant: enrol on originals, test anonymized clips;
- lazy-informed: enrol on clips anonymized by the same method (fresh parameters), test anonymized;
- parameter-aware: enrol on every enrolment clip anonymized over a grid spanning the method's
  parameter range (the attacker knows the range, not the draw), test anonymized;
- equalizing: the three attackers again, but every clip (enrolment and test) is first equalized
  to a fixed speech-like long-term spectrum (`equalize`). A cheap step any attacker can take; it
  undoes a fixed coloration (tilt, a random spectral shape), so figures that do not survive it
  came from coloration, not from a changed voice.

Intelligibility is measured with Whisper tiny.en: word disagreement between its transcripts of the
anonymized and the original audio, WER against the reference where the manifest has `transcript`,
and, for one-word clips, the share recognized exactly.

DIR holds audio files and `manifest.csv` with at least `path,speaker_id` (optional `transcript`).
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import istft, stft

from earmark.anonymize import Anonymizer, McAdams, World, by_name
from earmark.audio import decode_mono, resample
from earmark.errors import InvalidInput
from earmark.transcribe import number_words

RATE = 16_000


@dataclass(frozen=True)
class Utterance:
    path: Path
    speaker: str
    transcript: str | None


@dataclass
class AnonReport:
    anonymizer: str
    utterances: int
    speakers: int
    seconds: float
    eer: dict[str, float] = field(default_factory=dict)
    disagreement: float | None = None
    wer_original: float | None = None
    wer_anonymized: float | None = None
    one_word_original: float | None = None
    one_word_anonymized: float | None = None
    x_real_time: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_manifest(folder: Path) -> list[Utterance]:
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise InvalidInput(f"{folder} has no manifest.csv (columns path,speaker_id[,transcript])")
    out: list[Utterance] = []
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "speaker_id"} - set(reader.fieldnames or [])
        if missing:
            raise InvalidInput(f"{manifest}: missing column(s) {', '.join(sorted(missing))}")
        for lineno, row in enumerate(reader, start=2):
            path = folder / row["path"]
            if not path.is_file():
                raise InvalidInput(f"{manifest} line {lineno}: no audio file at {row['path']}")
            out.append(Utterance(path, row["speaker_id"], (row.get("transcript") or None)))
    if len({u.speaker for u in out}) < 2:
        raise InvalidInput(f"{manifest}: speaker verification needs at least two speakers")
    return out


def normalize(text: str) -> str:
    """Reference text in the ASR style Whisper's output is put in: lowercase, no punctuation, numbers as words."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"\d+", lambda m: " ".join(number_words(m.group(0))), text)
    text = re.sub(r"[^a-z' ]+", " ", text)
    return " ".join(text.split())


def equal_error_rate(scores: np.ndarray, same: np.ndarray) -> float:
    """EER of scores (higher = same speaker) for trials labelled `same`."""
    order = np.argsort(-scores, kind="stable")
    labels = same[order].astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        raise InvalidInput("EER needs both same-speaker and different-speaker trials")
    # Accept the top k: false rejects = positives below k, false accepts = negatives in the top k.
    tp = np.concatenate([[0], np.cumsum(labels)])
    fp = np.concatenate([[0], np.cumsum(~labels)])
    frr = 1 - tp / n_pos
    far = fp / n_neg
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2)


def verification_eer(enrol: dict[str, np.ndarray], tests: list[tuple[str, np.ndarray]]) -> float:
    speakers = sorted(enrol)
    models = np.stack([enrol[s] / np.linalg.norm(enrol[s]) for s in speakers])
    scores, same = [], []
    for speaker, emb in tests:
        sims = models @ (emb / np.linalg.norm(emb))
        scores.extend(sims.tolist())
        same.extend(s == speaker for s in speakers)
    return equal_error_rate(np.asarray(scores), np.asarray(same))


def parameter_grid(anonymizer: Anonymizer) -> list[dict[str, Any]]:
    """What an attacker who knows the parameter range would enrol with. An anonymizer of your
    own states its grid with a `parameter_grid()` method."""
    own = getattr(anonymizer, "parameter_grid", None)
    if callable(own):
        return list(own())
    if isinstance(anonymizer, World):
        r = anonymizer.ranges
        f0s = np.exp(np.linspace(np.log(r.f0_low), np.log(r.f0_high), 3))
        mid_warp = (r.warp_low + r.warp_high) / 2
        spread = (r.spread_low + r.spread_high) / 2
        return [
            {"f0": float(f0), "spread": spread, "warp": w, "tilt": 0.0} for f0 in f0s for w in (mid_warp, 1 / mid_warp)
        ]
    if isinstance(anonymizer, McAdams):
        return [{"alpha": float(a)} for a in np.linspace(anonymizer.low, anonymizer.high, 3)]
    raise InvalidInput(f"no parameter grid for the {anonymizer.name} anonymizer")


def build(name: str, *, voice: Path | None = None) -> Anonymizer:
    try:
        return by_name(name, voice=voice)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


class Encoder:
    """resemblyzer's speaker encoder, loaded from its wheel."""

    def __init__(self) -> None:
        try:
            from resemblyzer import VoiceEncoder
        except ImportError as exc:
            raise InvalidInput(
                "speaker linkability needs resemblyzer and torch: "
                "`.venv/bin/pip install torch==2.13.0 resemblyzer` (the `eval` extra)"
            ) from exc
        self._encoder = VoiceEncoder(device="cpu", verbose=False)

    def embed(self, x: np.ndarray) -> np.ndarray:
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(x.astype(np.float32), source_sr=RATE)
        if wav.size < RATE // 4:  # resemblyzer trims silence; keep very short clips usable
            wav = x.astype(np.float32)
        return np.asarray(self._encoder.embed_utterance(wav), dtype=np.float64)


EQ_SLOPE_DB = -9.0  # dB per octave above 500 Hz: roughly the long-term spectrum of speech


def equalize(x: np.ndarray, sample_rate: int = RATE) -> np.ndarray:
    """`x` filtered so its own long-term average spectrum (loud frames, smoothed) becomes a fixed
    speech-like slope: the equalizing attacker's preprocessing. Same length and loudness."""
    nperseg, noverlap, nfft = 512, 384, 1024
    if x.size < nperseg or not np.any(x):
        return x.astype(np.float32, copy=True)
    xd = x.astype(np.float64)
    freqs, _, z = stft(xd, fs=sample_rate, nperseg=nperseg, noverlap=noverlap, nfft=nfft)
    log_power = np.log(np.abs(z) ** 2 + 1e-12)
    energy = log_power.mean(axis=0)
    loud = energy > np.percentile(energy, 30)
    average = uniform_filter1d(log_power[:, loud if np.any(loud) else slice(None)].mean(axis=1), 21, mode="nearest")
    target = EQ_SLOPE_DB * np.log2(np.maximum(freqs, 500.0) / 500.0) * np.log(10) / 10
    gain = 0.5 * (target - average)  # log power -> log amplitude
    gain -= gain.mean()
    _, y = istft(z * np.exp(gain)[:, None], fs=sample_rate, nperseg=nperseg, noverlap=noverlap, nfft=nfft)
    y = y[: xd.size] if y.size >= xd.size else np.pad(y, (0, xd.size - y.size))
    rms_in, rms_out = np.sqrt(np.mean(xd**2)), np.sqrt(np.mean(y**2))
    if rms_out > 0:
        y = y * (rms_in / rms_out)
    return np.nan_to_num(y).astype(np.float32)


def _load(u: Utterance) -> np.ndarray:
    x, sr = decode_mono(u.path.read_bytes())
    return resample(x, sr, RATE) if sr != RATE else x


def evaluate(
    folder: Path,
    *,
    anonymizer_name: str = "world",
    seed: int = 0,
    limit: int | None = None,
    transcribe: bool = True,
    equalizing: bool = True,
    on_step: Callable[[str], None] | None = None,
    encoder: Any = None,
    anonymizer: Anonymizer | None = None,
) -> AnonReport:
    """Anonymize every utterance of DIR once (parameters drawn per clip) and measure; `encoder`
    (anything with `embed(x) -> vector`) defaults to resemblyzer's; `anonymizer`, an object of
    the `Anonymizer` protocol, is measured instead of the one `anonymizer_name` names."""
    step = on_step or (lambda _msg: None)
    utterances = read_manifest(folder)
    if limit:
        per: dict[str, int] = {}
        kept = []
        for u in utterances:
            if per.get(u.speaker, 0) < limit:
                per[u.speaker] = per.get(u.speaker, 0) + 1
                kept.append(u)
        utterances = kept
    per_speaker = [sum(u.speaker == s for u in utterances) for s in {u.speaker for u in utterances}]
    if len(per_speaker) < 2 or max(per_speaker) < 2:  # refused before minutes of work, not after
        raise InvalidInput(
            "the evaluation needs at least 2 speakers and a speaker with 2 utterances (one enrols, one is tested)"
            + (f"; --limit {limit} leaves too few, use 2 or more" if limit else ""),
            field="limit" if limit else "folder",
        )
    if anonymizer is None:
        anonymizer = build(anonymizer_name)
    else:
        anonymizer_name = anonymizer.name
    rng = np.random.default_rng(seed)
    originals = [_load(u) for u in utterances]
    seconds = sum(x.size for x in originals) / RATE

    step("anonymizing")
    cpu = time.process_time()
    anonymized = [anonymizer.apply(x, RATE, anonymizer.draw(rng)) for x in originals]
    cpu = time.process_time() - cpu
    report = AnonReport(
        anonymizer=anonymizer_name,
        utterances=len(utterances),
        speakers=len({u.speaker for u in utterances}),
        seconds=round(seconds, 1),
        x_real_time=round(seconds / max(cpu, 1e-9), 1),
    )

    by_speaker: dict[str, list[int]] = {}
    for i, u in enumerate(utterances):
        by_speaker.setdefault(u.speaker, []).append(i)
    enrol_idx = {s: idx[: max(1, len(idx) // 2)] for s, idx in by_speaker.items()}
    test_idx = [(s, i) for s, idx in by_speaker.items() for i in idx[max(1, len(idx) // 2) :]]

    step("speaker embeddings")
    encoder = encoder or Encoder()
    emb_orig = [encoder.embed(x) for x in originals]
    emb_anon = [encoder.embed(x) for x in anonymized]

    def enrol_mean(embs: Iterator[np.ndarray] | list[np.ndarray]) -> np.ndarray:
        return np.mean(list(embs), axis=0)

    orig_models = {s: enrol_mean(emb_orig[i] for i in idx) for s, idx in enrol_idx.items()}
    report.eer["baseline"] = verification_eer(orig_models, [(s, emb_orig[i]) for s, i in test_idx])
    anon_tests = [(s, emb_anon[i]) for s, i in test_idx]
    report.eer["ignorant"] = verification_eer(orig_models, anon_tests)
    step("lazy-informed attacker")
    lazy_audio = {
        s: [anonymizer.apply(originals[i], RATE, anonymizer.draw(rng)) for i in idx] for s, idx in enrol_idx.items()
    }
    lazy_models = {s: enrol_mean(encoder.embed(y) for y in ys) for s, ys in lazy_audio.items()}
    report.eer["lazy_informed"] = verification_eer(lazy_models, anon_tests)
    step("parameter-aware attacker")
    grid = parameter_grid(anonymizer)
    aware_audio = {
        s: [anonymizer.apply(originals[i], RATE, p) for i in idx for p in grid] for s, idx in enrol_idx.items()
    }
    aware_models = {s: enrol_mean(encoder.embed(y) for y in ys) for s, ys in aware_audio.items()}
    report.eer["parameter_aware"] = verification_eer(aware_models, anon_tests)
    if equalizing:
        step("equalizing attackers")

        def eq_embed(x: np.ndarray) -> np.ndarray:
            return np.asarray(encoder.embed(equalize(x)))

        eq_orig = {i: eq_embed(originals[i]) for idx in enrol_idx.values() for i in idx}
        eq_tests = [(s, eq_embed(anonymized[i])) for s, i in test_idx]
        eq_models = {s: enrol_mean(eq_orig[i] for i in idx) for s, idx in enrol_idx.items()}
        # Equalizing must not blind the encoder itself: originals against originals, both equalized.
        report.eer["equalizing_baseline"] = verification_eer(
            eq_models, [(s, eq_embed(originals[i])) for s, i in test_idx]
        )
        report.eer["equalizing_ignorant"] = verification_eer(eq_models, eq_tests)
        for name, audio in (("lazy_informed", lazy_audio), ("parameter_aware", aware_audio)):
            models = {s: enrol_mean(eq_embed(y) for y in ys) for s, ys in audio.items()}
            report.eer[f"equalizing_{name}"] = verification_eer(models, eq_tests)
    report.eer = {k: round(v, 4) for k, v in report.eer.items()}

    if transcribe:
        step("transcribing (Whisper tiny.en)")
        from earmark.transcribe import WhisperTranscriber

        whisper = WhisperTranscriber(cpu_threads=2)
        text_orig = [whisper.transcribe(x, RATE).text or "<empty>" for x in originals]
        text_anon = [whisper.transcribe(x, RATE).text or "<empty>" for x in anonymized]
        report.disagreement = round(float(jiwer.wer(text_orig, text_anon)), 4)
        refs = [(i, normalize(u.transcript)) for i, u in enumerate(utterances) if u.transcript]
        refs = [(i, r) for i, r in refs if r]
        if refs:
            report.wer_original = round(float(jiwer.wer([r for _, r in refs], [text_orig[i] for i, _ in refs])), 4)
            report.wer_anonymized = round(float(jiwer.wer([r for _, r in refs], [text_anon[i] for i, _ in refs])), 4)
            one = [(i, r) for i, r in refs if " " not in r]
            if one:
                report.one_word_original = round(sum(text_orig[i] == r for i, r in one) / len(one), 4)
                report.one_word_anonymized = round(sum(text_anon[i] == r for i, r in one) / len(one), 4)
    return report
