"""Speech synthesis and phonemization with espeak-ng (library and voices from the `espeakng-loader` wheel).

Used to build the demo and test clips without apt or network. espeak-ng keeps global state, so
calls are serialized by a lock; the library is loaded on first use.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass, field

import numpy as np

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_rate: int = 22050

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
CHARS_UTF8 = 1
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4
PHONEMES_IPA = 0x02  # espeak_TextToPhonemes phonememode bit 1: IPA instead of espeak's ASCII names

VARIANTS = ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7")


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class Synthesis:
    """Synthesized speech: int16-range float32 samples in [-1, 1] and word starts.

    `words` holds (char_start, char_length, sample_start) per spoken word, char positions 0-based.
    """

    samples: np.ndarray
    sample_rate: int
    words: list[tuple[int, int, int]] = field(default_factory=list)


class SpeechUnavailable(RuntimeError):
    pass


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


def _load() -> ctypes.CDLL:
    global _lib, _rate
    if _lib is not None:
        return _lib
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise SpeechUnavailable("espeakng-loader is not installed") from exc
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    data_parent = os.path.dirname(espeakng_loader.get_data_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode(), 0)
    if rate <= 0:
        raise SpeechUnavailable(f"espeak-ng failed to initialize (code {rate})")
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    _lib, _rate = lib, rate
    return lib


def synthesize(
    text: str,
    *,
    voice: str = "en-us",
    variant: str | None = None,
    rate: int = 170,
    pitch: int = 50,
    seed: int = 1,
) -> Synthesis:
    """Speak `text`; returns samples at espeak's native rate (22050 Hz) and word positions."""
    with _lock:
        lib = _load()
        name = voice if variant is None else f"{voice}+{variant}"
        if lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise SpeechUnavailable(f"espeak-ng has no voice {name!r}")
        lib.espeak_SetParameter(PARAM_RATE, int(rate), 0)
        lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0)
        chunks: list[np.ndarray] = []
        words: list[tuple[int, int, int]] = []

        def on_audio(wav: ctypes._Pointer[ctypes.c_short], n: int, events: ctypes._Pointer[_Event]) -> int:
            if n > 0 and wav:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float32) / 32768.0)
            i = 0
            while events[i].type != EVENT_LIST_TERMINATED:
                ev = events[i]
                if ev.type == EVENT_WORD:
                    words.append((ev.text_position - 1, ev.length, ev.sample))
                i += 1
            return 0

        callback = _Callback(on_audio)
        lib.espeak_SetSynthCallback(callback)
        encoded = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(encoded)
        # espeak-ng draws noise from its own and libc's generators: seed both. It also keeps wave
        # generator state (flutter, phase) between calls, so output is reproducible for the same
        # sequence of calls in a fresh process, not call by call (tests/test_demo.py checks this).
        lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        _libc().srand(ctypes.c_uint(seed))
        code = lib.espeak_Synth(buf, len(encoded), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if code != 0:
            raise SpeechUnavailable(f"espeak-ng synthesis failed (code {code})")
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        return Synthesis(samples, _rate, words)


def phonemize(text: str, *, voice: str = "en-us") -> str:
    """IPA for `text` by espeak-ng's rules, clauses joined by spaces, e.g. "dʒˈɛnɪfɚ" for jennifer."""
    with _lock:
        lib = _load()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SpeechUnavailable(f"espeak-ng has no voice {voice!r}")
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        buf = ctypes.create_string_buffer(text.encode("utf-8") + b"\0")
        pointer = ctypes.c_void_p(ctypes.addressof(buf))
        clauses = []
        # Each call translates one clause and advances the pointer; it is set to NULL at the end.
        while pointer.value:
            out = lib.espeak_TextToPhonemes(ctypes.byref(pointer), CHARS_UTF8, PHONEMES_IPA)
            clauses.append((out or b"").decode("utf-8").strip())
        return " ".join(c for c in clauses if c)
