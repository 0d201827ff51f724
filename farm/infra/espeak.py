"""espeak-ng in process: speech plus the exact sample position of every phoneme (IPA names).

The farm's text-to-speech (``farm.infra.speech``) runs the ``espeak-ng`` command; this module loads
the same Debian package's shared library (``libespeak-ng.so.1``) through ctypes because only the
library reports phoneme events: ``synthesize`` returns the audio and ``Phone`` spans that tile it.
It is used to make viseme training data and test audio, never to serve users.

Licence: espeak-ng (library and data) is GPL-3.0-or-later. It is called at run time from the system
installation only; none of its sources or data are copied into this repository (see
``farm/render/speech/weights/README.md``).

Facts this code relies on (espeak-ng 1.51, Debian 12, checked with ``offsetof``):

* ``espeak_EVENT`` is 40 bytes: type@0, unique_identifier@4, text_position@8, length@12,
  audio_position@16 (ms), sample@20 (samples since the start of this ``espeak_Synth`` call),
  user_data@24, id@32 (an 8-byte union; ``id.string`` may fill all 8 bytes with no NUL).
* Initialised with ``PHONEME_EVENTS | PHONEME_IPA`` the PHONEME events carry IPA names ("aɪ",
  "ɑːɹ", "" for a pause), which spell each accent's own realisation; the option is fixed for the
  life of the process (``espeak_Terminate`` then ``espeak_Initialize`` hung in 1.51).
* Voice, parameters and callback are process globals: one lock serialises every call, and each
  call re-applies every parameter after selecting the voice (selecting resets them).
* An unknown variant is silently ignored by espeak, so variants are checked against the data dir.
* A phoneme event marks the start of that phoneme's own sound; a stop's silent closure lies before
  its event (``farm.render.speech.training.labels`` moves it to the stop).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from farm.kernel.errors import SpeechUnavailable

SAMPLE_RATE_HZ = 22_050  # what espeak_Initialize returns for the built-in voices
LIBRARY = "libespeak-ng.so.1"  # the unversioned .so comes only with the -dev package
DATA_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data"),
    Path("/usr/lib/aarch64-linux-gnu/espeak-ng-data"),
)
INSTALL_HINT = "install the Debian package espeak-ng (apt-get install espeak-ng)"

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_EE_OK = 0
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7
PAUSE = "_"  # the name of a stretch no phoneme event covers (and of espeak's pause phonemes)


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


if ctypes.sizeof(_Event) != 40:  # pragma: no cover - a platform whose layout we never checked
    raise ImportError("espeak_EVENT layout differs from the checked one (40 bytes)")

_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True, slots=True)
class Phone:
    """One phoneme span: IPA name (``PAUSE`` for silence) and [start, end) in samples at 22.05 kHz."""

    name: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Voice:
    """An espeak voice with its prosody: ``name`` like "en-us" or "en-us+f3" (base + variant)."""

    name: str = "en-us"
    rate_wpm: int = 175  # 80..450
    pitch: int = 50  # 0..100
    pitch_range: int = 50  # 0..100

    @property
    def base(self) -> str:
        return self.name.split("+", 1)[0].lower()


class _Engine:
    """The process's one initialised libespeak-ng (IPA phoneme events)."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or LIBRARY
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise SpeechUnavailable(f"cannot load {LIBRARY}: {INSTALL_HINT}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 100, None, options)
        if rate != SAMPLE_RATE_HZ:
            raise SpeechUnavailable(
                f"espeak_Initialize returned {rate}, expected {SAMPLE_RATE_HZ}: {INSTALL_HINT}"
            )
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str]] = []  # (type, sample, phoneme name)
        self._callback = _Callback(self._on_synth)  # referenced for the life of the process
        lib.espeak_SetSynthCallback(self._callback)
        self.data_dir = next((d for d in DATA_DIRS if d.is_dir()), None)

    def _on_synth(self, wav, count, events) -> int:  # type: ignore[no-untyped-def]  # ctypes callback
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != 0:
            event = events[i]
            name = ""
            if event.type == _EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
            self._events.append((event.type, event.sample, name))
            i += 1
        return 0

    def run(self, text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
        lib = self._lib
        if "+" in voice.name and self.data_dir is not None:
            variant = voice.name.split("+", 1)[1]
            if not (self.data_dir / "voices" / "!v" / variant).is_file():
                raise ValueError(f"unknown espeak variant {variant!r}")
        if lib.espeak_SetVoiceByName(voice.name.encode()) != _EE_OK:
            raise ValueError(f"unknown espeak voice {voice.name!r}")
        params = (
            (_PARAM_RATE, voice.rate_wpm),
            (_PARAM_PITCH, voice.pitch),
            (_PARAM_RANGE, voice.pitch_range),
            (_PARAM_VOLUME, 100),
            (_PARAM_WORDGAP, 0),
        )
        for param, value in params:
            if lib.espeak_SetParameter(param, int(value), 0) != _EE_OK:
                raise ValueError(f"espeak rejected parameter {param} = {value}")
        self._chunks, self._events = [], []
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        flags = _CHARS_UTF8 | _ENDPAUSE
        if lib.espeak_Synth(buffer, len(buffer), 0, _POS_CHARACTER, 0, flags, None, None) != _EE_OK:
            raise SpeechUnavailable("espeak_Synth failed")
        lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        events, self._chunks, self._events = self._events, [], []
        return pcm.astype(np.int16, copy=False), events


_lock = threading.Lock()
_engine: _Engine | None = None


def _get_engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def phones_from_events(events: list[tuple[int, int, str]], n_samples: int) -> list[Phone]:
    """PHONEME events (start positions) → spans that tile ``[0, n_samples)``.

    A phoneme ends at the next phoneme event, or at the END event of its clause; stretches no event
    covers (the first ~10 ms of each clause) and espeak's pause phonemes are named ``PAUSE``.
    """
    spans: list[tuple[str, int, int]] = []
    pending: tuple[str, int] | None = None
    for kind, sample, name in events:
        if kind == _EVENT_PHONEME:
            start = min(max(sample, 0), n_samples)
            if pending is not None:
                spans.append((pending[0], pending[1], max(start, pending[1])))
            pending = (name.strip() or PAUSE, start)
        elif kind in (_EVENT_END, _EVENT_MSG_TERMINATED) and pending is not None:
            spans.append((pending[0], pending[1], min(max(sample, pending[1]), n_samples)))
            pending = None
    if pending is not None:
        spans.append((pending[0], pending[1], n_samples))
    phones: list[Phone] = []
    position = 0
    for name, start, end in spans:
        if start > position:
            phones.append(Phone(PAUSE, position, start))
        if end > start:
            phones.append(Phone(name, start, end))
        position = max(position, end)
    if position < n_samples:
        phones.append(Phone(PAUSE, position, n_samples))
    return phones


def synthesize(text: str, voice: Voice | None = None) -> tuple[np.ndarray, list[Phone]]:
    """Speak ``text``: (int16 mono PCM at ``SAMPLE_RATE_HZ``, phone spans tiling it).

    Raises ``SpeechUnavailable`` when libespeak-ng is not installed and ``ValueError`` for an
    unknown voice or variant. Thread-safe (one lock: espeak's state is process-global).
    """
    with _lock:
        pcm, events = _get_engine().run(text, voice or Voice())
    return pcm, phones_from_events(events, len(pcm))


def variants_dir() -> Path | None:
    """espeak-ng's directory of voice variants (``voices/!v``), or None when not installed."""
    data = next((d for d in DATA_DIRS if d.is_dir()), None)
    return data / "voices" / "!v" if data is not None else None
