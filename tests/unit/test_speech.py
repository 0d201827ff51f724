"""Speech synthesis and answering: espeak-ng locally, OpenAI-compatible backends over real HTTP."""

from __future__ import annotations

import pytest

from farm.infra import media
from farm.infra.speech import (
    EchoResponder,
    EspeakSynthesizer,
    OpenAiChatResponder,
    OpenAiSpeechSynthesizer,
    responder_from,
    synthesizer_from,
)
from farm.kernel.errors import SpeechUnavailable, ValidationError
from farm.kernel.settings import Settings
from tests.support.openai_server import SECONDS_PER_CHAR, openai_server

pytestmark = pytest.mark.unit


def _seconds(wav: bytes) -> float:
    pcm, rate = media.decode_audio(wav, max_s=600)
    return len(pcm) / rate


def test_espeak_speaks_text_as_a_wav_whose_length_grows_with_the_text() -> None:
    tts = EspeakSynthesizer()
    short = _seconds(tts.synthesize("Hello."))
    long = _seconds(tts.synthesize("Hello, how are you? I am a talking avatar and I say a longer sentence."))
    assert 0.3 < short < 2.0
    assert long > 2 * short


def test_espeak_honours_the_voice_and_refuses_an_unknown_one() -> None:
    tts = EspeakSynthesizer()
    assert _seconds(tts.synthesize("Guten Tag", voice="de")) > 0.3
    with pytest.raises(ValidationError, match="voice"):
        tts.synthesize("hello", voice="no-such-voice")


def test_empty_or_overlong_text_is_a_validation_error() -> None:
    tts = EspeakSynthesizer(max_chars=10)
    with pytest.raises(ValidationError, match="empty"):
        tts.synthesize("   ")
    with pytest.raises(ValidationError, match="over the 10 limit"):
        tts.synthesize("x" * 11)


def test_the_openai_compatible_tts_backend_is_used_when_configured() -> None:
    with openai_server() as server:
        tts = synthesizer_from(Settings(tts_url=server.url, tts_api_key="k", tts_voice="nova"))
        assert isinstance(tts, OpenAiSpeechSynthesizer)
        wav = tts.synthesize("twenty characters!!!")
        path, body, auth = server.requests[-1]
    assert path == "/v1/audio/speech"
    assert body == {
        "model": "tts-1",
        "input": "twenty characters!!!",
        "voice": "nova",
        "response_format": "wav",
    }
    assert auth == "Bearer k"
    assert _seconds(wav) == pytest.approx(20 * SECONDS_PER_CHAR, abs=0.01)


def test_a_failing_or_unreachable_tts_backend_is_speech_unavailable() -> None:
    with openai_server() as server:
        server.fail_with = 500
        tts = OpenAiSpeechSynthesizer(server.url, api_key=None, model="m", default_voice="v")
        with pytest.raises(SpeechUnavailable, match="HTTP 500"):
            tts.synthesize("hello")
        url = server.url
    with pytest.raises(SpeechUnavailable, match="unreachable"):
        OpenAiSpeechSynthesizer(url, api_key=None, model="m", default_voice="v").synthesize("hello")


def test_the_chat_backend_answers_with_the_agents_system_prompt() -> None:
    with openai_server() as server:
        chat = responder_from(Settings(chat_url=server.url, chat_model="small"))
        assert isinstance(chat, OpenAiChatResponder)
        reply = chat.reply("Hello!", system_prompt="You are Ada.")
        _, body, auth = server.requests[-1]
    assert reply == "You are Ada. | you said: Hello!"
    assert body["model"] == "small"
    assert body["messages"][0] == {"role": "system", "content": "You are Ada."}
    assert auth is None


def test_without_a_chat_backend_the_text_is_spoken_as_given() -> None:
    responder = responder_from(Settings())
    assert isinstance(responder, EchoResponder)
    assert responder.reply("Say exactly this.", system_prompt="ignored") == "Say exactly this."
    assert isinstance(synthesizer_from(Settings()), EspeakSynthesizer)
