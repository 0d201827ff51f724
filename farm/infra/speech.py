"""Text in: speech synthesis (``SpeechSynthesizer``) and answering (``Responder``) seams.

Two synthesizers: ``EspeakSynthesizer`` (the local default; the Debian package ``espeak-ng``, no
network, no model download) and ``OpenAiSpeechSynthesizer`` (any OpenAI-compatible
``POST {url}/audio/speech``). Two responders: ``EchoResponder`` (the avatar speaks the text as
given: the default) and ``OpenAiChatResponder`` (any OpenAI-compatible ``POST {url}/chat/completions``
with the agent's ``system_prompt``). ``synthesizer_from`` / ``responder_from`` pick by Settings.

Every synthesizer returns a WAV (16-bit PCM); failures become ``SpeechUnavailable`` (503, retryable)
and empty or over-long text is ``ValidationError``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Protocol

import httpx

from farm.kernel.errors import SpeechUnavailable, ValidationError
from farm.kernel.settings import Settings

log = logging.getLogger(__name__)

ESPEAK_BINARY = "espeak-ng"
ESPEAK_TIMEOUT_S = 60.0


class SpeechSynthesizer(Protocol):
    """Text → a WAV clip of its speech."""

    def synthesize(self, text: str, *, voice: str | None = None) -> bytes:
        """WAV bytes (16-bit PCM, mono). ``voice``: a backend-specific voice name; None = default."""
        ...


class Responder(Protocol):
    """What the avatar says in answer to a user's text."""

    def reply(self, text: str, *, system_prompt: str | None = None) -> str: ...


def _checked_text(text: str, max_chars: int) -> str:
    stripped = text.strip()
    if not stripped:
        raise ValidationError("text must not be empty")
    if len(stripped) > max_chars:
        raise ValidationError(f"text is {len(stripped)} characters, over the {max_chars} limit")
    return stripped


class EspeakSynthesizer:
    """Local speech with ``espeak-ng`` (22.05 kHz mono WAV). Voices are espeak names: en, en-us, de…"""

    def __init__(
        self, *, default_voice: str = "en", words_per_minute: int = 165, max_chars: int = 5000
    ) -> None:
        self._default_voice = default_voice
        self._wpm = words_per_minute
        self._max_chars = max_chars
        self._known: frozenset[str] | None = None

    def synthesize(self, text: str, *, voice: str | None = None) -> bytes:
        text = _checked_text(text, self._max_chars)
        binary = shutil.which(ESPEAK_BINARY)
        if binary is None:
            raise SpeechUnavailable(
                "espeak-ng is not installed (apt-get install espeak-ng, or `make install`)"
            )
        voice = voice or self._default_voice
        if voice.split("+", 1)[0].lower() not in self._voices(binary):
            raise ValidationError(f"espeak-ng has no voice {voice!r}; `espeak-ng --voices` lists them")
        with tempfile.TemporaryDirectory(prefix="farm-tts-") as tmp:
            out = Path(tmp) / "speech.wav"
            # -w writes a WAV with correct sizes (--stdout leaves streaming placeholders in the header).
            cmd = [binary, "-v", voice, "-s", str(self._wpm), "-w", str(out), "--stdin"]
            try:
                done = subprocess.run(
                    cmd,
                    input=text.encode("utf-8"),
                    capture_output=True,
                    timeout=ESPEAK_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise SpeechUnavailable("speech synthesis timed out") from exc
            if done.returncode != 0 or not out.exists():
                log.warning("espeak-ng failed", extra={"returncode": done.returncode})
                raise SpeechUnavailable(f"espeak-ng could not speak with voice {voice!r}")
            return out.read_bytes()

    def _voices(self, binary: str) -> frozenset[str]:
        """Every name ``-v`` accepts (language, voice name, voice file), lower-case; read once."""
        if self._known is None:
            listing = subprocess.run([binary, "--voices"], capture_output=True, timeout=10, check=False)
            known: set[str] = set()
            for line in listing.stdout.decode("utf-8", "replace").splitlines()[1:]:
                cols = line.split()
                if len(cols) >= 5:
                    known.update(c.lower() for c in (cols[1], cols[3], cols[4], cols[4].rsplit("/", 1)[-1]))
            self._known = frozenset(known)
        return self._known


class OpenAiSpeechSynthesizer:
    """Any OpenAI-compatible TTS: ``POST {base_url}/audio/speech`` ``{model, input, voice, …}``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        model: str,
        default_voice: str,
        request_timeout_s: float = 60.0,
        max_chars: int = 5000,
        http: httpx.Client | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/audio/speech"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model
        self._default_voice = default_voice
        self._max_chars = max_chars
        self._http = http or httpx.Client(timeout=request_timeout_s)

    def synthesize(self, text: str, *, voice: str | None = None) -> bytes:
        body = {
            "model": self._model,
            "input": _checked_text(text, self._max_chars),
            "voice": voice or self._default_voice,
            "response_format": "wav",
        }
        try:
            response = self._http.post(self._url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise SpeechUnavailable("the speech service is unreachable") from exc
        if response.status_code != 200:
            log.warning("speech service refused", extra={"status": response.status_code})
            raise SpeechUnavailable(f"the speech service answered HTTP {response.status_code}")
        return response.content


class EchoResponder:
    """No answering model: the avatar speaks the user's text as given."""

    def reply(self, text: str, *, system_prompt: str | None = None) -> str:
        return text


class OpenAiChatResponder:
    """Any OpenAI-compatible chat: ``POST {base_url}/chat/completions``; the prompt is the system turn."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        model: str,
        request_timeout_s: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model
        self._http = http or httpx.Client(timeout=request_timeout_s)

    def reply(self, text: str, *, system_prompt: str | None = None) -> str:
        messages: list[dict[str, str]] = []
        if system_prompt:
            messages.append({"role": "system", "content": system_prompt})
        messages.append({"role": "user", "content": text})
        try:
            response = self._http.post(
                self._url, json={"model": self._model, "messages": messages}, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise SpeechUnavailable("the chat service is unreachable") from exc
        if response.status_code != 200:
            raise SpeechUnavailable(f"the chat service answered HTTP {response.status_code}")
        return _first_choice(response.json())


def _first_choice(body: Any) -> str:
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise SpeechUnavailable("the chat service answered without a message") from exc
    if not isinstance(content, str) or not content.strip():
        raise SpeechUnavailable("the chat service answered with an empty message")
    return content.strip()


def synthesizer_from(settings: Settings) -> SpeechSynthesizer:
    """espeak-ng unless ``settings.tts_url`` names an OpenAI-compatible speech endpoint."""
    if settings.tts_url:
        return OpenAiSpeechSynthesizer(
            settings.tts_url,
            api_key=settings.tts_api_key,
            model=settings.tts_model,
            default_voice=settings.tts_voice or "alloy",
            max_chars=settings.max_text_chars,
        )
    return EspeakSynthesizer(default_voice=settings.tts_voice or "en", max_chars=settings.max_text_chars)


def responder_from(settings: Settings) -> Responder:
    """Echo unless ``settings.chat_url`` names an OpenAI-compatible chat endpoint."""
    if settings.chat_url:
        return OpenAiChatResponder(
            settings.chat_url, api_key=settings.chat_api_key, model=settings.chat_model
        )
    return EchoResponder()
