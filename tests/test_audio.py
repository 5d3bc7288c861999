from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from earmark.audio import AudioLimits, decode_mono, encode_wav, peaks, probe_audio, resample
from earmark.errors import InvalidAudio
from tests.factories import audio_bytes

LIMITS = AudioLimits(max_seconds=30, min_sample_rate=8000, max_channels=2)


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate"),
    [
        ("WAV", "PCM_16", 16000),
        ("WAV", "FLOAT", 22050),
        ("FLAC", "PCM_16", 16000),
        ("OGG", "VORBIS", 16000),
        ("OGG", "OPUS", 48000),
    ],
)
def test_probe_reads_common_formats_as_integers(fmt: str, subtype: str, rate: int) -> None:
    data = audio_bytes(2.0, rate, fmt=fmt, subtype=subtype)
    info = probe_audio(data, LIMITS)
    assert info.sample_rate == rate
    assert info.channels == 1
    assert isinstance(info.num_samples, int)
    assert abs(info.num_samples - 2 * rate) <= rate // 50  # codecs may pad a few ms


def test_non_audio_bytes_named_wav_are_refused() -> None:
    with pytest.raises(InvalidAudio, match="not a readable audio file"):
        probe_audio(b"<html>this is not audio</html>" * 20, LIMITS)


def test_zero_length_file_is_refused() -> None:
    with pytest.raises(InvalidAudio, match="empty"):
        probe_audio(b"", LIMITS)


def test_truncated_wav_is_refused_not_silently_shortened() -> None:
    data = audio_bytes(1.0)
    with pytest.raises(InvalidAudio, match="truncated"):
        probe_audio(data[: len(data) // 2], LIMITS)


def test_truncated_flac_is_refused() -> None:
    data = audio_bytes(1.0, fmt="FLAC")
    with pytest.raises(InvalidAudio):
        probe_audio(data[: len(data) // 2], LIMITS)


def test_streamed_wav_with_unknown_length_is_accepted() -> None:
    data = bytearray(audio_bytes(1.0))
    pos = data.index(b"data")
    data[pos + 4 : pos + 8] = b"\xff\xff\xff\xff"
    assert probe_audio(bytes(data), LIMITS).num_samples == 16000


def test_an_hour_long_file_is_refused_by_the_length_limit() -> None:
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=8000, channels=1, format="WAV", subtype="PCM_U8") as f:
        block = np.zeros(8000 * 60, dtype=np.float32)
        for _ in range(60):
            f.write(block)
    with pytest.raises(InvalidAudio, match=r"3600\.0 s long; the limit is 30 s"):
        probe_audio(buf.getvalue(), LIMITS)


def test_sample_rate_below_8k_is_refused() -> None:
    with pytest.raises(InvalidAudio, match="below the minimum of 8000 Hz"):
        probe_audio(audio_bytes(1.0, 4000), LIMITS)


def test_more_than_two_channels_are_refused() -> None:
    with pytest.raises(InvalidAudio, match="3 channels"):
        probe_audio(audio_bytes(1.0, channels=3), LIMITS)


def test_stereo_is_accepted_and_decodes_to_mono() -> None:
    data = audio_bytes(1.0, channels=2)
    assert probe_audio(data, LIMITS).channels == 2
    mono, sr = decode_mono(data)
    assert mono.ndim == 1 and sr == 16000 and mono.dtype == np.float32


def test_encode_wav_writes_plain_pcm_with_no_metadata() -> None:
    x = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    wav = encode_wav(x, 16000)
    assert wav[:4] == b"RIFF"
    assert b"LIST" not in wav  # no INFO chunk
    back, sr = sf.read(io.BytesIO(wav), dtype="float32")
    assert sr == 16000 and np.allclose(back, x, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(st.integers(8000, 48000), st.integers(8000, 48000))
def test_resample_gives_the_expected_length(src: int, dst: int) -> None:
    x = np.zeros(src // 4, dtype=np.float32)
    y = resample(x, src, dst)
    assert abs(y.size - x.size * dst / src) <= 1
    assert y.dtype == np.float32


def test_resample_keeps_a_tone_at_its_frequency() -> None:
    sr = 22050
    t = np.arange(sr) / sr
    y = resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), sr, 16000)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / y.size - 440) < 2


def test_peaks_bucket_the_maximum() -> None:
    x = np.zeros(1000, dtype=np.float32)
    x[10] = 0.5
    x[990] = -0.9
    p = peaks(x, 10)
    assert p[0] == pytest.approx(0.5) and p[-1] == pytest.approx(0.9) and p[5] == 0
