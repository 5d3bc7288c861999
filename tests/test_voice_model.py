"""The trained anonymizer (`anonymizer = "trained"`): every voice converted to one target voice."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from earmark.audio import load_pyworld, resample
from earmark.cli import app
from earmark.config import load_settings
from earmark.errors import ConfigError
from earmark.pipeline import build_components
from earmark.synth import synthesize
from earmark.voice_model import BUNDLED, Trained, VoiceModel, WhisperEncoder, train

RATE = 16_000
runner = CliRunner()
SENTENCES = [
    "set a timer for ten minutes please",
    "what is the weather like in the mountains tomorrow morning",
    "play some quiet music in the kitchen",
    "remind me to water the plants on saturday",
    "turn off the lights in the living room and lock the door",
    "how many teaspoons are there in a tablespoon",
    "add milk eggs and bread to my shopping list",
    "call the nearest pharmacy and ask when they close",
    "read me the news headlines from this morning",
    "wake me up at half past six on weekdays",
]


def _speech(text: str, variant: str, pitch: int) -> np.ndarray:
    s = synthesize(text, variant=variant, pitch=pitch)
    return resample(s.samples, s.sample_rate, RATE)


def _f0(x: np.ndarray) -> np.ndarray:
    return load_pyworld().dio(x.astype(np.float64), RATE, f0_floor=60.0, f0_ceil=500.0)[0]


def _median_f0(x: np.ndarray) -> float:
    f0 = _f0(x)
    return float(np.median(f0[f0 > 0]))


def _timbre(x: np.ndarray) -> np.ndarray:
    """Long-term log spectrum, level removed: a crude speaker embedding."""
    frames = np.lib.stride_tricks.sliding_window_view(x, 512)[::256] * np.hanning(512)
    spec = np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-6).mean(axis=0)
    return spec - spec.mean()


def _shift(anonymizer: Trained, semitones: float) -> dict[str, object]:
    return {**anonymizer.draw(np.random.default_rng(0)), "f0_shift": semitones}


@pytest.fixture(scope="module")
def encoder() -> WhisperEncoder:
    return WhisperEncoder()


@pytest.fixture(scope="module")
def trained(encoder: WhisperEncoder) -> Trained:
    return Trained(encoder=encoder)


def test_every_voice_gets_the_target_voices_pitch_and_timbre(trained: Trained) -> None:
    low = _speech(SENTENCES[0], "m3", 20)
    high = _speech(SENTENCES[0], "f2", 90)
    assert _median_f0(high) / _median_f0(low) > 1.5  # two clearly different voices
    target = trained.model.f0_median
    a = trained.apply(low, RATE, _shift(trained, 0.0))
    b = trained.apply(high, RATE, _shift(trained, 0.0))
    for x, y in ((low, a), (high, b)):
        assert y.dtype == np.float32 and y.shape == x.shape and np.all(np.isfinite(y))
        assert abs(_median_f0(y) - target) / target < 0.12
        # As loud as the original, or as loud as it can be without a peak above full scale.
        assert np.max(np.abs(y)) <= 0.99 + 1e-6
        assert 0.7 < np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x**2)) <= 1.0 + 1e-6
    # converted, the two voices are closer in timbre than they were
    before = np.linalg.norm(_timbre(low) - _timbre(high))
    after = np.linalg.norm(_timbre(a) - _timbre(b))
    assert after < 0.6 * before


def test_the_drawn_pitch_offset_is_applied_and_repeatable(trained: Trained) -> None:
    x = _speech(SENTENCES[1], "m3", 50)
    up = trained.apply(x, RATE, _shift(trained, 2.0))
    down = trained.apply(x, RATE, _shift(trained, -2.0))
    assert _median_f0(up) / _median_f0(down) == pytest.approx(2 ** (4 / 12), rel=0.06)
    assert np.array_equal(up, trained.apply(x, RATE, _shift(trained, 2.0)))
    assert trained.draw(np.random.default_rng(0))["voice"] == trained.voice
    draws = [trained.draw(np.random.default_rng(s))["f0_shift"] for s in range(20)]
    assert len(set(draws)) == 20 and all(-2.0 <= d <= 2.0 for d in draws)
    grid = trained.parameter_grid()
    assert {p["f0_shift"] for p in grid} == {-2.0, 0.0, 2.0} and all({"f0", "warp"} <= set(p) for p in grid)


def test_a_word_or_two_goes_to_world_and_longer_speech_is_converted(trained: Trained) -> None:
    """On one word the mapping lost words and protected less than `world` (docs/privacy.md)."""
    from earmark.anonymize import World

    params = trained.draw(np.random.default_rng(3))
    word = _speech("yes", "m3", 50)
    assert np.count_nonzero(_f0(word)) * 0.005 < 0.5
    assert np.array_equal(trained.apply(word, RATE, params), World().apply(word, RATE, params))
    assert trained.route(word) == "world"
    sentence = _speech(SENTENCES[4], "m3", 50)
    assert trained.route(sentence) == "converted" and trained.route(np.zeros(RATE, np.float32)) == "silent"
    converted = trained.apply(sentence, RATE, params)
    assert not np.allclose(converted, World().apply(sentence, RATE, params), atol=0.05)
    expected = trained.model.f0_median * 2 ** (params["f0_shift"] / 12)
    assert abs(_median_f0(converted) - expected) / expected < 0.12


def test_the_encoder_runs_once_per_converted_clip_and_never_for_a_word(encoder: WhisperEncoder) -> None:
    """The encoder is the costly part; a clip that goes to `world` does not need it, and an
    attacker's grid converts one clip many times."""

    class Counting(WhisperEncoder):
        calls = 0

        def content(self, x: np.ndarray, layer: int) -> np.ndarray:
            Counting.calls += 1
            return encoder.content(x, layer)

    counting = Counting.__new__(Counting)
    counting.__dict__.update(encoder.__dict__)
    anonymizer = Trained(encoder=counting)
    word, sentence = _speech("yes", "m3", 50), _speech(SENTENCES[0], "m3", 50)
    for seed in range(3):
        anonymizer.apply(word, RATE, anonymizer.draw(np.random.default_rng(seed)))
    assert anonymizer.route(word) == "world" and Counting.calls == 0
    outs = [anonymizer.apply(sentence, RATE, _shift(anonymizer, s)) for s in (-2.0, 0.0, 2.0)]
    assert anonymizer.route(sentence) == "converted" and Counting.calls == 1
    assert np.array_equal(outs[1], Trained(encoder=encoder).apply(sentence, RATE, _shift(anonymizer, 0.0)))


@pytest.mark.parametrize(
    "x",
    [
        np.zeros(0, np.float32),
        np.full(400, 0.3, np.float32),  # 25 ms: too short to convert
        np.zeros(RATE, np.float32),
    ],
)
def test_clips_too_short_or_silent_come_out_silent(trained: Trained, x: np.ndarray) -> None:
    y = trained.apply(x, RATE, _shift(trained, 0.0))
    assert y.shape == x.shape and y.dtype == np.float32 and not np.any(y)


def test_a_pure_tone_and_clipped_noise_convert_without_error(trained: Trained) -> None:
    t = np.arange(RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    clipped = np.clip(np.random.default_rng(0).normal(0, 2, RATE), -1, 1).astype(np.float32)
    for x in (tone, clipped):
        y = trained.apply(x, RATE, _shift(trained, 1.0))
        assert y.shape == x.shape and np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0


def test_other_sample_rates_are_refused(trained: Trained) -> None:
    with pytest.raises(ValueError, match="16000 Hz"):
        trained.apply(np.zeros(8000, np.float32), 8000, {"f0_shift": 0.0})


def test_the_bundled_voice_says_where_it_comes_from() -> None:
    model = VoiceModel.load(BUNDLED)
    assert "LibriSpeech" in model.about and "CC BY 4.0" in model.about
    assert model.layer == 2 and model.seconds > 100


@pytest.fixture(scope="module")
def voice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 35 s of one synthetic voice, as WAV files at 22.05 kHz (training resamples)."""
    folder = tmp_path_factory.mktemp("voice")
    for i, text in enumerate(SENTENCES * 2):
        s = synthesize(text, variant="f2", pitch=70, rate=140)
        sf.write(folder / f"{i:02d}.wav", s.samples, s.sample_rate)
    return folder


def test_training_learns_the_target_voice(voice_dir: Path, encoder: WhisperEncoder) -> None:
    from earmark.cli import _read_clip

    clips = [_read_clip(p)[0] for p in sorted(voice_dir.glob("*.wav"))]
    calls = []
    model = train(clips, about="espeak-ng f2, synthetic", encoder=encoder, on_clip=lambda: calls.append(1))
    assert len(calls) == len(clips) and model.seconds >= 30
    assert model.f0_median == pytest.approx(_median_f0(np.concatenate(clips)), rel=0.1)
    # a male voice converted to this target gets the target's timbre, not its own
    source = _speech(SENTENCES[3], "m3", 20)
    converter = Trained(model, encoder=encoder)
    y = converter.apply(source, RATE, _shift(converter, 0.0))
    target = _timbre(_speech(SENTENCES[3], "f2", 70))
    assert np.linalg.norm(_timbre(y) - target) < 0.6 * np.linalg.norm(_timbre(source) - target)


def test_training_needs_enough_speech(encoder: WhisperEncoder) -> None:
    short = [_speech(SENTENCES[0], "m3", 50), _speech(SENTENCES[1], "m3", 50)]
    with pytest.raises(ValueError, match="at least 30 s"):
        train(short, about="x", encoder=encoder)
    with pytest.raises(ValueError, match="at least 2 clips"):
        train(short[:1], about="x", encoder=encoder)
    noise = [np.random.default_rng(i).standard_normal(16 * RATE).astype(np.float32) * 0.1 for i in range(2)]
    with pytest.raises(ValueError, match=r"s of voiced speech of 32.0 s; .* at least 10 s \(are they speech\?\)"):
        train(noise, about="x", encoder=encoder)


def test_voice_model_files_round_trip_and_bad_files_are_refused(tmp_path: Path, encoder: WhisperEncoder) -> None:
    model = VoiceModel.load(BUNDLED)
    path = tmp_path / "copy.npz"
    model.save(path)
    again = VoiceModel.load(path)
    assert again.about == model.about and np.array_equal(again.weights, model.weights)
    assert not list(tmp_path.glob("*.partial"))

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a voice model file"):
        VoiceModel.load(garbage)
    bare = tmp_path / "bare.npy"
    np.save(bare, model.weights)
    with pytest.raises(ValueError, match="not a voice model file"):
        VoiceModel.load(bare)
    for change in ({"layer": 7}, {"f0_spread": float("nan")}, {"f0_median": 5000.0}, {"x_mean": model.x_mean[:10]}):
        odd = tmp_path / "odd.npz"
        replace(model, **change).save(odd)
        with pytest.raises(ValueError, match="inconsistent"):
            VoiceModel.load(odd)
    lacking = tmp_path / "lacking.npz"
    np.savez(lacking, format=np.int64(1), weights=model.weights)
    with pytest.raises(ValueError, match="lacks"):
        VoiceModel.load(lacking)
    other_format = tmp_path / "other.npz"
    np.savez(other_format, format=np.int64(99))
    with pytest.raises(ValueError, match="format 1"):
        VoiceModel.load(other_format)
    with pytest.raises(ValueError, match="not a voice model file"):
        VoiceModel.load(tmp_path / "missing.npz")

    for name, value in (("layer", np.array("two")), ("f0_median", np.array(1 + 2j))):
        handmade = tmp_path / f"handmade-{name}.npz"
        arrays = {k: v for k, v in np.load(BUNDLED, allow_pickle=False).items()}
        np.savez(handmade, **{**arrays, name: value})
        with pytest.raises(ValueError, match=rf"{handmade}: voice model file is inconsistent"):
            VoiceModel.load(handmade)

    foreign = tmp_path / "foreign.npz"
    replace(model, encoder_sha256="0" * 64).save(foreign)
    with pytest.raises(ValueError, match="other Whisper encoder weights"):
        Trained(foreign, encoder=encoder)


def test_truncated_and_corrupted_voice_model_files_are_refused(tmp_path: Path) -> None:
    # A copy cut short or with damaged bytes is a zip archive gone wrong: zipfile and zlib raise
    # their own errors, which must become the same "not a voice model file" as any other bad file.
    data = BUNDLED.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x01  # inside the compressed weights: a bad CRC or a bad deflate stream
    corrupted = tmp_path / "corrupted.npz"
    corrupted.write_bytes(bytes(flipped))
    for path in (truncated, corrupted):
        with pytest.raises(ValueError, match="not a voice model file"):
            VoiceModel.load(path)
        shown = runner.invoke(app, ["voice", "show", str(path)])
        assert shown.exit_code == 1 and "not a voice model file" in shown.output, shown.output
    home = tmp_path / "ws"
    home.mkdir()
    (home / "settings.toml").write_text(f'anonymizer = "trained"\nvoice_model = "{truncated}"\n')
    with pytest.raises(ConfigError, match=r"voice_model: .*not a voice model file"):
        load_settings(home)


def test_voice_train_and_show_commands(tmp_path: Path, voice_dir: Path) -> None:
    out = tmp_path / "voice.npz"
    args = ["voice", "train", str(voice_dir), "-o", str(out), "--about", "espeak-ng f2 (GPL-3.0 voice data)"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "set voice_model" in result.stdout
    shown = runner.invoke(app, ["voice", "show", str(out)])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["about"] == "espeak-ng f2 (GPL-3.0 voice data)" and info["seconds"] >= 30

    before = out.read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "exists (--force replaces it)" in again.output
    assert out.read_bytes() == before
    blank = runner.invoke(app, [*args[:-1], "  ", "--force"])
    assert blank.exit_code == 1 and "--about must say" in blank.output
    no_manifest = runner.invoke(app, [*args, "--force", "--speaker", "a"])
    assert no_manifest.exit_code == 1 and "--speaker needs a manifest.csv" in no_manifest.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(app, ["voice", "train", str(empty), "-o", str(tmp_path / "n.npz"), "--about", "x"])
    assert nothing.exit_code == 1 and "no audio files" in nothing.output
    assert not (tmp_path / "n.npz").exists()


def test_voice_train_takes_one_speaker_of_a_manifest(tmp_path: Path, voice_dir: Path) -> None:
    rows = ["path,speaker_id"] + [
        f"{p.name},{'a' if i % 3 else 'b'}" for i, p in enumerate(sorted(voice_dir.iterdir()))
    ]
    (voice_dir / "manifest.csv").write_text("\n".join(rows) + "\n")
    try:
        unknown = runner.invoke(
            app, ["voice", "train", str(voice_dir), "-o", str(tmp_path / "v.npz"), "--about", "x", "--speaker", "z"]
        )
        assert unknown.exit_code == 1 and "no speaker z" in unknown.output
        pooled = runner.invoke(app, ["voice", "train", str(voice_dir), "-o", str(tmp_path / "v.npz"), "--about", "x"])
        assert pooled.exit_code == 1 and "holds 2 speakers (a, b): choose the target voice with --speaker" in (
            pooled.output
        )
        few = runner.invoke(
            app, ["voice", "train", str(voice_dir), "-o", str(tmp_path / "v.npz"), "--about", "x", "--speaker", "b"]
        )
        assert few.exit_code == 1 and "at least 30 s" in few.output  # speaker b has 7 clips, about 15 s
        assert not (tmp_path / "v.npz").exists()
    finally:
        (voice_dir / "manifest.csv").unlink()


def test_the_trained_setting_reaches_the_pipeline_and_the_cli(tmp_path: Path, voice_dir: Path) -> None:
    home = tmp_path / "ws"
    home.mkdir()
    (home / "settings.toml").write_text('anonymizer = "trained"\nvoice_model = "voices/mine.npz"\n')
    with pytest.raises(ConfigError, match="voice_model: no such file"):
        load_settings(home)
    (home / "settings.toml").write_text('anonymizer = "trained"\nvoice_model = ""\n')
    with pytest.raises(ConfigError, match=r"voice_model: .* is a folder; name a voice model file, or leave"):
        load_settings(home)
    (home / "settings.toml").write_text('anonymizer = "trained"\nvoice_model = "voices/mine.npz"\n')
    (home / "voices").mkdir()
    VoiceModel.load(BUNDLED).save(home / "voices" / "mine.npz")
    settings = load_settings(home)
    assert settings.voice_model == home / "voices" / "mine.npz"
    assert build_components(settings).anonymizer.name == "trained"

    clip = tmp_path / "clip.wav"
    sf.write(clip, _speech(SENTENCES[2], "m3", 30), RATE)
    out = tmp_path / "anon.wav"
    result = runner.invoke(app, ["--home", str(home), "anonymize", str(clip), "-o", str(out), "--seed", "4"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == "trained" and {"f0_shift", "voice", "f0", "warp"} <= set(report["params"])
    assert report["route"] == "converted"  # the parameters of both ways are drawn; this says which was taken
    assert report["params"]["voice"] == Trained(home / "voices" / "mine.npz").voice
    assert sf.info(out).frames == sf.info(clip).frames

    (home / "voices" / "mine.npz").write_bytes(b"damaged")
    with pytest.raises(ConfigError, match=r"voice_model: .*not a voice model file"):
        load_settings(home)  # at startup, not clip by clip
    damaged = runner.invoke(app, ["--home", str(home), "anonymize", str(clip), "-o", str(out)])
    assert damaged.exit_code == 1 and "not a voice model file" in damaged.output


def test_tools_that_do_not_anonymize_work_whatever_the_voice(tmp_path: Path) -> None:
    """`earmark screen` and `earmark redact` need no anonymizer: a voice for other encoder weights
    stops `anonymize` with the reason, not them."""
    home = tmp_path / "ws"
    home.mkdir()
    (home / "settings.toml").write_text('anonymizer = "trained"\nvoice_model = "foreign.npz"\n')
    replace(VoiceModel.load(BUNDLED), encoder_sha256="0" * 64).save(home / "foreign.npz")
    clip = tmp_path / "clip.wav"
    sf.write(clip, _speech("call jennifer on her mobile", "m3", 30), RATE)
    out = tmp_path / "out.wav"
    refused = runner.invoke(app, ["--home", str(home), "anonymize", str(clip), "-o", str(out)])
    assert refused.exit_code == 1 and "other Whisper encoder weights" in refused.output and not out.exists()
    screened = runner.invoke(app, ["--home", str(home), "screen", str(clip)])
    assert screened.exit_code == 0, screened.output
    assert json.loads(screened.stdout)["route"] in ("general", "safety")
    said = ["--transcript", "call jennifer on her mobile"]
    redacted = runner.invoke(app, ["--home", str(home), "redact", str(clip), "-o", str(out), *said])
    assert redacted.exit_code == 0, redacted.output
    assert [p["type"] for p in json.loads(redacted.stdout)["pii"]] == ["PERSON"] and sf.info(out).frames > 0


def test_serve_refuses_a_voice_trained_on_other_encoder_weights(sqlite_ws, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The file reads back fine, so settings accept it; only the encoder can tell. The server must
    # stop at startup, not start and hold every sampled clip with "error:ConfigError".
    from earmark.web import server

    foreign = tmp_path / "foreign.npz"
    replace(VoiceModel.load(BUNDLED), encoder_sha256="0" * 64).save(foreign)
    started: list[object] = []
    monkeypatch.setattr(server.uvicorn, "run", lambda *a, **k: started.append(a))
    settings = sqlite_ws.settings.model_copy(update={"anonymizer": "trained", "voice_model": foreign})
    with pytest.raises(ConfigError, match="other Whisper encoder weights"):
        server.run(settings, host="127.0.0.1", port=0)
    assert not started


def test_a_workspace_set_to_trained_queues_clips_in_the_target_voice(ws) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from earmark.audio import decode_mono
    from earmark.crypto import decrypt_blob
    from earmark.keys import data_key
    from earmark.models import Clip, ClipProtection, ClipStage
    from tests import factories as f

    ws.parts = build_components(ws.settings.model_copy(update={"anonymizer": "trained"}))
    cid = f.ingest_speech(ws, "call jennifer about the garden party on sunday", account_id="p1")
    f.allow(ws, "p1")
    f.sample_all(ws)
    [result] = ws.process_pending()
    assert result.outcome == "general"
    with ws.sessions() as s:
        clip = s.execute(select(Clip).where(Clip.external_id == cid)).scalar_one()
        prot = s.get(ClipProtection, clip.id)
        stage = s.execute(
            select(ClipStage).where(ClipStage.clip_id == clip.id, ClipStage.stage == "anonymize")
        ).scalar_one()
        wav = decrypt_blob(
            data_key(s, ws.keyring, clip.account_id),
            ws.blobs.get(clip.protected_blob_key),
            blob_key=clip.protected_blob_key,
        )
    assert clip.status == "queued" and clip.redacted_text.startswith("call [PERSON]")
    assert stage.outcome == "ok" and stage.details == {"name": "trained", "route": "converted"}
    assert (
        prot is not None
        and prot.anonymizer["name"] == "trained"
        and {"name", "f0_shift", "voice", "f0", "warp"} <= set(prot.anonymizer)
    )
    y, sr = decode_mono(wav)
    expected = ws.parts.anonymizer.model.f0_median * 2 ** (prot.anonymizer["f0_shift"] / 12)
    assert sr == RATE and abs(_median_f0(y) - expected) / expected < 0.12


def test_the_numpy_encoder_matches_ctranslate2(encoder: WhisperEncoder) -> None:
    """The conversion's features are Whisper's: all four layers here agree with CTranslate2's encoder."""
    import ctranslate2

    from earmark.transcribe import whisper_model_dir
    from earmark.voice_model import _norm

    x = np.random.default_rng(0).normal(0, 0.1, 30 * RATE).astype(np.float32)
    mel = encoder.mels(x)
    ours = encoder.layer(mel, 4)
    ours = _norm(ours, encoder.w["encoder/layer_norm/gamma"], encoder.w["encoder/layer_norm/beta"])
    model = ctranslate2.models.Whisper(str(whisper_model_dir()), device="cpu", compute_type="float32")
    reference = np.array(model.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))[0]
    assert ours.shape == reference.shape == (1500, 384)
    assert np.abs(ours - reference).max() < 0.01


def test_converted_speech_keeps_its_words(trained: Trained) -> None:
    """Whisper still hears the sentence in the target voice (loose bound: espeak's speech is far
    from what the mapping was trained on; broken features give word salad)."""
    import jiwer

    from earmark.transcribe import WhisperTranscriber

    whisper = WhisperTranscriber()
    refs = [SENTENCES[1], SENTENCES[4]]
    heard = [
        whisper.transcribe(trained.apply(_speech(t, "m3", 40), RATE, _shift(trained, 0.0)), RATE).text for t in refs
    ]
    assert jiwer.wer(refs, heard) < 0.35, heard


def test_a_clip_longer_than_whispers_window_is_converted_whole(trained: Trained) -> None:
    x = np.concatenate([_speech(t, "m3", 40) for t in SENTENCES * 2])
    assert x.size > 31 * RATE
    y = trained.apply(x, RATE, _shift(trained, 0.0))
    assert y.shape == x.shape and np.all(np.isfinite(y))
    tail = y[30 * RATE :]  # past the first 30 s window: still the target's voice, not silence
    expected = trained.model.f0_median
    assert np.sqrt(np.mean(tail**2)) > 0.01 and abs(_median_f0(tail) - expected) / expected < 0.15


def test_two_long_clips_are_enough_to_train(encoder: WhisperEncoder) -> None:
    """The penalty is chosen on a held-out clip even when there are only two."""
    clips = [np.concatenate([_speech(t, "f2", 70) for t in SENTENCES[i::2] * 2]) for i in (0, 1)]
    assert sum(c.size for c in clips) / RATE >= 30
    # a penalty so large that the mapping predicts the voice's mean frame loses to a usable one
    # on the held-out clip (with no clip held out, every error is NaN and the first one won)
    model = train(clips, about="x", encoder=encoder, penalties=(1e12, 3000.0))
    assert model.penalty == 3000.0
    assert np.isfinite(model.weights).all()


def test_voice_show_reads_the_settings_voice_and_refuses_a_bad_file(tmp_path: Path) -> None:
    shown = runner.invoke(app, ["--home", str(tmp_path / "none"), "voice", "show"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["path"] == str(BUNDLED)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"x")
    refused = runner.invoke(app, ["voice", "show", str(bad)])
    assert refused.exit_code == 1 and "not a voice model file" in refused.output


def test_voice_train_names_the_file_it_cannot_read(tmp_path: Path) -> None:
    folder = tmp_path / "voice"
    folder.mkdir()
    sf.write(folder / "a.wav", np.zeros(RATE, np.float32), RATE)
    (folder / "b.wav").write_bytes(b"not audio")  # a folder of hundreds: which one?
    result = runner.invoke(app, ["voice", "train", str(folder), "-o", str(tmp_path / "v.npz"), "--about", "x"])
    assert result.exit_code == 1 and str(folder / "b.wav") in result.output, result.output
    assert not (tmp_path / "v.npz").exists()
    (folder / "manifest.csv").write_text("path,speaker_id\na.wav,s\nmissing.wav,s\n")
    result = runner.invoke(app, ["voice", "train", str(folder), "-o", str(tmp_path / "v.npz"), "--about", "x"])
    assert result.exit_code == 1 and result.output.count("missing.wav") == 1, result.output  # named once


def test_voice_train_suggests_a_setting_that_finds_the_file(tmp_path: Path, voice_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # settings.toml reads a relative voice_model from the workspace folder, not from where the
    # voice was trained: the printed setting must name the file wherever it is pasted.
    import earmark.voice_model

    monkeypatch.setattr(earmark.voice_model, "train", lambda clips, **kw: VoiceModel.load(BUNDLED))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["voice", "train", str(voice_dir), "-o", "v.npz", "--about", "x"])
    assert result.exit_code == 0, result.output
    assert f"voice_model = {str(tmp_path / 'v.npz')!r}" in " ".join(result.stdout.split()), result.stdout


def test_voice_train_reads_a_spreadsheets_manifest_and_refuses_an_unreadable_one(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import earmark.voice_model

    monkeypatch.setattr(earmark.voice_model, "train", lambda clips, **kw: VoiceModel.load(BUNDLED))
    folder = tmp_path / "voice"
    folder.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(folder / name, np.zeros(RATE, np.float32), RATE)
    args = ["voice", "train", str(folder), "-o", str(tmp_path / "v.npz"), "--about", "x", "--speaker", "s1"]
    # A CSV saved by a spreadsheet starts with a byte-order mark.
    (folder / "manifest.csv").write_bytes("\ufeffpath,speaker_id\na.wav,s1\nb.wav,s1\n".encode())
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (tmp_path / "v.npz").unlink()
    (folder / "manifest.csv").write_bytes(b"path,speaker_id\n\xff\xfe.wav,s1\n")  # not UTF-8
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "UTF-8" in result.output, result.output
    assert not (tmp_path / "v.npz").exists()


def test_voice_train_checks_the_output_folder_before_training(tmp_path: Path, voice_dir: Path) -> None:
    out = tmp_path / "missing" / "v.npz"
    result = runner.invoke(app, ["voice", "train", str(voice_dir), "-o", str(out), "--about", "x"])
    assert result.exit_code == 1 and "no such folder, or not writable" in result.output
    assert "clips" not in result.output  # refused before any clip was read or trained on
