"""Pure audio helpers: probe, decode, resample, encode, peaks.

Functions take bytes or a float32 mono ndarray plus `sample_rate: int`; no I/O beyond in-memory
buffers, no database, no globals.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from math import gcd

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from earmark.errors import InvalidAudio

ACCEPTED_FORMATS = ("WAV", "WAVEX", "FLAC", "OGG", "RF64", "W64", "AIFF", "MP3")


@dataclass(frozen=True, slots=True)
class AudioLimits:
    max_seconds: int = 30
    min_sample_rate: int = 8000
    max_channels: int = 2


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What ingest records about a clip: integers, never float seconds.

    >>> AudioInfo("WAV", "PCM_16", 16_000, 1, 32_000).seconds
    2.0
    """

    format: str
    subtype: str
    sample_rate: int
    channels: int
    num_samples: int

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate


def _check_riff_length(data: bytes) -> None:
    """libsndfile quietly shortens a truncated WAV to what is there; we want to know."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return
    fmt = "<I" if data[:4] == b"RIFF" else ">I"
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack(fmt, data[pos + 4 : pos + 8])
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF mean "unknown length" (streamed WAV): nothing to check against.
            if size not in (0, 0xFFFFFFFF) and pos + 8 + size > len(data):
                raise InvalidAudio(
                    f"truncated WAV: the header announces {size} bytes of audio, the file holds {len(data) - pos - 8}",
                    field="audio",
                )
            return
        pos += 8 + size + (size & 1)
    raise InvalidAudio("WAV file has no data chunk (truncated?)", field="audio")


def probe_audio(data: bytes, limits: AudioLimits) -> AudioInfo:
    """Validate `data` as a whole, decodable clip within `limits`; return its facts.

    Every sample is decoded (cheap for clips of seconds), so a damaged body is caught here at ingest,
    not later in a reviewer's browser.
    """
    if not data:
        raise InvalidAudio("the file is empty (0 bytes)", field="audio")
    _check_riff_length(data)
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise InvalidAudio("not a readable audio file; send WAV, FLAC or OGG (Vorbis/Opus)", field="audio") from exc
    if info.format not in ACCEPTED_FORMATS:
        raise InvalidAudio(f"audio format {info.format} is not accepted; send WAV, FLAC or OGG", field="audio")
    sr = int(info.samplerate)
    if sr < limits.min_sample_rate:
        raise InvalidAudio(f"sample rate {sr} Hz is below the minimum of {limits.min_sample_rate} Hz", field="audio")
    if info.channels > limits.max_channels:
        raise InvalidAudio(f"{info.channels} channels; at most {limits.max_channels} are accepted", field="audio")
    if info.frames > limits.max_seconds * sr:
        raise InvalidAudio(f"clip is {info.frames / sr:.1f} s long; the limit is {limits.max_seconds} s", field="audio")
    try:
        decoded, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InvalidAudio(f"audio body is damaged: {exc}", field="audio") from exc
    frames = int(decoded.shape[0])
    if frames == 0:
        raise InvalidAudio("the file holds no audio samples", field="audio")
    if info.frames > 0 and frames < info.frames:
        raise InvalidAudio(
            f"truncated audio: header announces {info.frames} samples, only {frames} decode",
            field="audio",
        )
    if frames > limits.max_seconds * sr:
        raise InvalidAudio(f"clip is {frames / sr:.1f} s long; the limit is {limits.max_seconds} s", field="audio")
    if not np.isfinite(decoded).all():
        raise InvalidAudio("audio holds NaN or infinite samples", field="audio")
    return AudioInfo(info.format, info.subtype, sr, int(info.channels), frames)


def decode_mono(data: bytes) -> tuple[np.ndarray, int]:
    """Decode to float32 mono (channels averaged) and the file's sample rate."""
    try:
        decoded, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InvalidAudio(f"cannot decode audio: {exc}", field="audio") from exc
    return decoded.mean(axis=1).astype(np.float32), int(sr)


def resample(x: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling to `target_rate` (anti-aliased)."""
    if sample_rate == target_rate:
        return x.astype(np.float32, copy=True)
    g = gcd(sample_rate, target_rate)
    return resample_poly(x, target_rate // g, sample_rate // g).astype(np.float32)


def encode_wav(x: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> bytes:
    """Encode mono float32 samples as a plain WAV with no metadata chunks."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), sample_rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def encode(x: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encode mono samples as WAV, FLAC or OGG (Vorbis)."""
    buf = io.BytesIO()
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    sf.write(buf, np.clip(x, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def peaks(x: np.ndarray, buckets: int) -> np.ndarray:
    """Max absolute amplitude in `buckets` equal slices, for drawing a waveform."""
    if buckets <= 0:
        raise ValueError("buckets must be positive")
    if x.size == 0:
        return np.zeros(buckets, dtype=np.float32)
    edges = np.linspace(0, x.size, buckets + 1).astype(int)
    out = np.zeros(buckets, dtype=np.float32)
    for i in range(buckets):
        seg = x[edges[i] : max(edges[i + 1], edges[i] + 1)]
        out[i] = float(np.abs(seg).max()) if seg.size else 0.0
    return out


def load_pyworld():  # type: ignore[no-untyped-def]
    """The pyworld module (WORLD vocoder). pyworld 0.3.5 reads its own version through
    pkg_resources at import (hence the setuptools<81 pin in pyproject.toml); its deprecation
    warning is silenced here, for every caller, and nothing else."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import pyworld
    return pyworld
