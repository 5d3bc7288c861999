"""Voice anonymization methods and the linkability evaluation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earmark.anon_eval import build, equal_error_rate, equalize, evaluate, normalize, read_manifest, verification_eer
from earmark.anonymize import McAdams, World
from earmark.audio import load_pyworld, resample
from earmark.errors import InvalidInput
from earmark.synth import synthesize

RATE = 16_000


def _speech(text: str = "set a timer for ten minutes please", pitch: int = 50, variant: str = "m3") -> np.ndarray:
    s = synthesize(text, variant=variant, pitch=pitch)
    return resample(s.samples, s.sample_rate, RATE)


def _median_f0(x: np.ndarray) -> float:
    f0, _ = load_pyworld().dio(x.astype(np.float64), RATE, f0_floor=60.0, f0_ceil=500.0)
    return float(np.median(f0[f0 > 0]))


@pytest.mark.parametrize("target", [160.0, 230.0])
def test_world_moves_the_pitch_to_the_drawn_target_and_keeps_length(target: float) -> None:
    x = _speech()
    y = World().apply(x, RATE, {"f0": target, "spread": 1.5, "warp": 1.1, "tilt": 0.0})
    assert y.dtype == np.float32 and y.shape == x.shape and np.all(np.isfinite(y))
    assert abs(_median_f0(y) - target) / target < 0.12
    assert abs(_median_f0(x) - target) / target > 0.15  # the speaker's own pitch was elsewhere
    # As loud as the original, or as loud as it can be without a peak above full scale.
    assert np.max(np.abs(y)) <= 0.99 + 1e-6
    assert 0.7 < np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x**2)) <= 1.0 + 1e-6
    y_quiet = World().apply(x * np.float32(0.2), RATE, {"f0": target, "spread": 1.5, "warp": 1.1, "tilt": 0.0})
    assert np.sqrt(np.mean(y_quiet**2)) == pytest.approx(np.sqrt(np.mean((x * 0.2) ** 2)), rel=1e-3)


def test_world_shifts_formants_up_or_down() -> None:
    x = _speech()

    def centroid(v: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(v))
        freqs = np.fft.rfftfreq(v.size, 1 / RATE)
        return float((spec * freqs).sum() / spec.sum())

    up = World().apply(x, RATE, {"f0": 150.0, "spread": 1.5, "warp": 1.15, "tilt": 0.0})
    down = World().apply(x, RATE, {"f0": 150.0, "spread": 1.5, "warp": 1 / 1.15, "tilt": 0.0})
    assert centroid(up) > centroid(down) * 1.04


def _band_share_db(y: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(y.size, 1 / RATE)
    return float(10 * np.log10(spec[(freqs >= lo) & (freqs < hi)].sum() / spec.sum()))


def test_world_natural_keeps_a_speech_like_tone_where_world_is_bright() -> None:
    x = _speech("set a timer for ten minutes and call my sister please")
    params = {"f0": 150.0, "spread": 1.5, "warp": 1.15, "tilt": 0.0, "shape": 7, "shape_db": 8.0}
    bright = World(mode="full").apply(x, RATE, params)
    natural = World(mode="natural").apply(x, RATE, params)
    assert natural.shape == x.shape and natural.dtype == np.float32 and np.all(np.isfinite(natural))
    # Measured on LibriSpeech (docs/privacy.md): `world` lifts 6-8 kHz by ~16 dB, `world-natural` ~5 dB.
    assert _band_share_db(bright, 6000, 8000) > _band_share_db(x, 6000, 8000) + 8
    assert _band_share_db(natural, 6000, 8000) < _band_share_db(bright, 6000, 8000) - 6
    assert _band_share_db(natural, 0, 1000) > _band_share_db(bright, 0, 1000) + 3
    assert abs(_median_f0(natural) - 150.0) / 150.0 < 0.12  # the voice change itself is the same
    assert build("world-natural").name == "world-natural"


def test_parameters_differ_per_clip_and_repeat_per_seed() -> None:
    w = World()
    a = w.draw(np.random.default_rng(1))
    b = w.draw(np.random.default_rng(2))
    assert a != b and w.draw(np.random.default_rng(1)) == a
    r = w.ranges
    for seed in range(50):
        p = w.draw(np.random.default_rng(seed))
        assert r.f0_low <= p["f0"] <= r.f0_high
        assert r.warp_low <= max(p["warp"], 1 / p["warp"]) <= r.warp_high  # never near 1


@pytest.mark.parametrize("x", [np.zeros(0, np.float32), np.zeros(400, np.float32), np.zeros(RATE, np.float32)])
def test_world_passes_empty_short_and_silent_clips_through(x: np.ndarray) -> None:
    y = World().apply(x, RATE, {"f0": 150.0, "spread": 1.5, "warp": 1.1})
    assert y.shape == x.shape and not np.any(y)


def test_world_survives_a_pure_tone_and_clipping() -> None:
    t = np.arange(RATE) / RATE
    for x in (0.5 * np.sin(2 * np.pi * 440 * t), np.clip(3 * np.sin(2 * np.pi * 150 * t), -1, 1)):
        y = World().apply(x.astype(np.float32), RATE, {"f0": 150.0, "spread": 1.5, "warp": 1.1})
        assert y.shape == x.shape and np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0


@pytest.mark.parametrize("name", ["world", "world-natural", "trained"])
def test_a_loud_clip_comes_out_at_its_loudness_without_hard_clipping(name: str) -> None:
    """A resynthesized voice has other peaks than the original: matched in loudness alone, a loud
    clip came out with about a hundred samples cut at full scale (an audible crackle)."""
    x = _speech("call mom on her mobile and tell her i will be late")
    x = (x / np.max(np.abs(x)) * 0.95).astype(np.float32)
    quiet = (x * 0.1).astype(np.float32)
    method = build(name)
    for seed in range(3):
        params = method.draw(np.random.default_rng(seed))
        y = method.apply(x, 16_000, params)
        assert np.max(np.abs(y)) <= 0.99 + 1e-6 and np.count_nonzero(np.abs(y) >= 0.99) <= 1
        rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
        assert 0.3 < rms / float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) <= 1.0 + 1e-6
        # A clip with headroom keeps its loudness exactly.
        q = method.apply(quiet, 16_000, params)
        assert np.sqrt(np.mean(q.astype(np.float64) ** 2)) == pytest.approx(np.sqrt(np.mean(quiet**2)), rel=1e-3)


def test_equal_error_rate() -> None:
    assert equal_error_rate(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0])) == 0.0
    assert equal_error_rate(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0])) == 1.0
    rng = np.random.default_rng(0)
    assert abs(equal_error_rate(rng.random(4000), rng.random(4000) < 0.2) - 0.5) < 0.05
    with pytest.raises(InvalidInput):
        equal_error_rate(np.array([0.5]), np.array([1]))
    enrol = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])}
    assert verification_eer(enrol, [("a", np.array([0.9, 0.1])), ("b", np.array([0.2, 0.8]))]) == 0.0


def test_reference_text_is_put_in_asr_style() -> None:
    assert normalize("Set it to 7, please -- now!") == "set it to seven please now"


def _dataset(folder: Path, speakers: dict[str, tuple[str, int]], texts: list[str]) -> None:
    rows = []
    for spk, (variant, pitch) in speakers.items():
        for i, text in enumerate(texts):
            path = f"{spk}_{i}.wav"
            sf.write(folder / path, _speech(text, pitch=pitch, variant=variant), RATE)
            rows.append({"path": path, "speaker_id": spk, "transcript": text})
    with (folder / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "speaker_id", "transcript"])
        w.writeheader()
        w.writerows(rows)


class SpectralEncoder:
    """A crude but real speaker embedding (long-term log spectrum), standing in for resemblyzer in
    tests so they need no torch."""

    def embed(self, x: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(x, 512)[::256] * np.hanning(512)
        spec = np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-6).mean(axis=0)
        return spec - spec.mean()


def test_evaluation_runs_every_attacker(tmp_path: Path) -> None:
    _dataset(
        tmp_path,
        {"low": ("m3", 20), "high": ("f2", 80)},
        ["turn on the lights", "what time is it", "play jazz", "stop"],
    )
    report = evaluate(tmp_path, anonymizer_name="world", transcribe=False, encoder=SpectralEncoder())
    assert (report.utterances, report.speakers) == (8, 2)
    assert set(report.eer) == {
        "baseline",
        "ignorant",
        "lazy_informed",
        "parameter_aware",
        "equalizing_baseline",
        "equalizing_ignorant",
        "equalizing_lazy_informed",
        "equalizing_parameter_aware",
    }
    assert report.eer["baseline"] == 0.0  # two very different synthetic voices: trivially told apart
    assert report.eer["equalizing_baseline"] == 0.0  # equalizing does not blind the encoder
    assert all(0.0 <= v <= 1.0 for v in report.eer.values())
    assert report.x_real_time is not None and report.x_real_time > 0


class Passthrough:
    """An anonymizer of one's own that changes nothing, with a grid it states itself."""

    name = "passthrough"

    def __init__(self) -> None:
        self.applied: list[dict[str, object]] = []

    def draw(self, rng: np.random.Generator) -> dict[str, object]:
        return {"gain": 0.0}

    def apply(self, x: np.ndarray, sample_rate: int, params: dict[str, object]) -> np.ndarray:
        self.applied.append(params)
        return x.copy()

    def parameter_grid(self) -> list[dict[str, object]]:
        return [{"gain": 0.0, "grid": True}]


def test_evaluation_measures_an_anonymizer_of_ones_own(tmp_path: Path) -> None:
    """`evaluate(anonymizer=...)` measures any object of the protocol, with the grid it states;
    one that changes nothing leaves every attacker linking every clip (EER 0)."""
    _dataset(tmp_path, {"low": ("m3", 20), "high": ("f2", 80)}, ["turn on the lights", "what time is it"])
    own = Passthrough()
    report = evaluate(tmp_path, transcribe=False, equalizing=False, encoder=SpectralEncoder(), anonymizer=own)
    assert report.anonymizer == "passthrough"
    assert report.eer == {"baseline": 0.0, "ignorant": 0.0, "lazy_informed": 0.0, "parameter_aware": 0.0}
    assert {"gain": 0.0, "grid": True} in own.applied  # the parameter-aware attacker used its grid


def test_evaluation_refuses_a_limit_that_leaves_no_trial_before_any_work(tmp_path: Path) -> None:
    """One utterance per speaker is all enrolment and no test: refused at once, not after
    minutes of anonymizing and embedding."""
    _dataset(tmp_path, {"low": ("m3", 20), "high": ("f2", 80)}, ["turn on the lights", "what time is it"])
    own = Passthrough()
    with pytest.raises(InvalidInput, match="--limit"):
        evaluate(tmp_path, limit=1, transcribe=False, encoder=SpectralEncoder(), anonymizer=own)
    assert own.applied == []


def test_equalizing_undoes_a_fixed_coloration() -> None:
    """Two copies of one noise, each through a different fixed filter, differ by many dB in their
    long-term spectrum; after `equalize` they nearly match (what the equalizing attacker relies on)."""
    from scipy.signal import butter, sosfilt

    x = np.random.default_rng(3).standard_normal(2 * RATE).astype(np.float32) * 0.1
    bright = sosfilt(butter(2, 3000, "highpass", fs=RATE, output="sos"), x) + 0.2 * x
    dark = sosfilt(butter(2, 800, "lowpass", fs=RATE, output="sos"), x) + 0.05 * x

    def spectrum(y: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(y, 512)[::256] * np.hanning(512)
        return 10 * np.log10(np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) + 1e-12)[10:240]

    def shape_difference(a: np.ndarray, b: np.ndarray) -> float:  # dB, loudness aside
        d = spectrum(a) - spectrum(b)
        return float(np.mean(np.abs(d - d.mean())))

    before = shape_difference(bright, dark)
    eq_bright, eq_dark = equalize(bright.astype(np.float32)), equalize(dark.astype(np.float32))
    after = shape_difference(eq_bright, eq_dark)
    assert before > 10.0 and after < 1.0, (before, after)
    assert eq_bright.shape == bright.shape and eq_bright.dtype == np.float32
    assert np.sqrt(np.mean(eq_bright**2)) == pytest.approx(np.sqrt(np.mean(bright**2)), rel=1e-3)
    assert equalize(np.zeros(100, np.float32)).tolist() == [0.0] * 100


def test_evaluation_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"manifest\.csv"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("file,speaker\nx.wav,a\n")
    with pytest.raises(InvalidInput, match="missing column"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("path,speaker_id\nx.wav,a\n")
    with pytest.raises(InvalidInput, match="line 2"):
        read_manifest(tmp_path)
    sf.write(tmp_path / "x.wav", np.zeros(RATE, np.float32), RATE)
    with pytest.raises(InvalidInput, match="two speakers"):
        read_manifest(tmp_path)
    with pytest.raises(InvalidInput, match="unknown anonymizer"):
        build("nope")


def test_mcadams_baseline_still_available() -> None:
    x = _speech()
    y = McAdams().apply(x, RATE, {"alpha": 0.8})
    assert y.shape == x.shape and not np.allclose(x, y)


def test_gentle_world_keeps_a_short_words_low_band_and_still_changes_the_voice() -> None:
    from scipy.signal import welch

    x = _speech("seven", pitch=40)
    params = {"f0": 200.0, "spread": 1.5, "warp": 1.18, "tilt": 2.0, "shape": 3, "shape_db": 8.0}
    default, gentle = World().apply(x, RATE, params), World(mode="gentle").apply(x, RATE, params)

    def band_db(v: np.ndarray, low: float, high: float) -> np.ndarray:
        freqs, power = welch(v, RATE, nperseg=512)
        keep = (freqs >= low) & (freqs < high)
        return 10 * np.log10(power[keep] + 1e-12)

    def distance(v: np.ndarray) -> float:
        return float(np.mean(np.abs(band_db(v, 200, 1000) - band_db(x, 200, 1000))))

    assert distance(gentle) < distance(default)  # the first formant region (the vowel) stays closer
    assert abs(_median_f0(gentle) - 200.0) / 200.0 < 0.12  # the pitch is still the drawn one
    assert World(mode="gentle").name == "world-gentle"


def test_auto_world_is_gentle_on_a_word_and_full_on_long_speech() -> None:
    params = {"f0": 200.0, "spread": 1.5, "warp": 1.18, "tilt": 2.0, "shape": 3, "shape_db": 8.0}
    word = _speech("seven", pitch=40)
    long = _speech("set a timer for ten minutes and then play some music in the kitchen please", pitch=40)
    auto = World(mode="auto")
    assert auto.name == "world-auto"
    assert np.array_equal(auto.apply(word, RATE, params), World(mode="gentle").apply(word, RATE, params))
    assert np.array_equal(auto.apply(long, RATE, params), World().apply(long, RATE, params))
    with pytest.raises(ValueError, match="unknown WORLD mode"):
        World(mode="soft")


def test_every_anonymizer_setting_builds_the_method_it_names() -> None:
    from typing import get_args

    from earmark.anonymize import by_name
    from earmark.config import Settings

    names = get_args(Settings.model_fields["anonymizer"].annotation)
    assert "world-natural" in names
    assert [by_name(n).name for n in names] == list(names)
