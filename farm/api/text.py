"""Text in: talking videos from text (``POST /v1/video/generate``), speech (``POST /v1/tts``). No HTTP here.

A generate request names an avatar (``agent_id`` or a face ``image``) and either ``text`` or
``audio``. Text is first answered (``Responder``: the OpenAI-compatible chat model when
``settings.chat_url`` is set, with the agent's ``system_prompt``; otherwise the text is spoken as
given), then synthesized (``SpeechSynthesizer``, the agent's voice), then rendered as an ordinary
file-input session (``SessionService.create``), so everything after the speech is the session path
the farm already has: the queue, a worker, an MP4.

Order, so that bad input loses nothing: exactly one avatar and one of text/audio; the agent exists
and is ready; the reply and its speech; the speech's length within ``settings.max_video_s``; only
then the session is created (which stores the blobs).
"""

from __future__ import annotations

import base64
import logging
import math
from dataclasses import dataclass

from farm.infra.speak import SpeakBus
from farm.infra.speech import Responder, SpeechSynthesizer
from farm.kernel.contracts import SpeakMessage
from farm.kernel.domain import Agent, AgentStatus, ModelKind, Session
from farm.kernel.errors import (
    AgentNotReady,
    InvalidAudio,
    NotFound,
    PayloadTooLarge,
    SpeechUnavailable,
    ValidationError,
)
from farm.kernel.settings import Settings
from farm.sessions.agents import is_agent_id
from farm.sessions.base import AgentStore, SessionStore
from farm.tenancy.base import ApiKey
from farm.tenancy.plans import CREDITS_PER_MINUTE

from .schemas import SessionRequest
from .service import SessionService

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """A decoded ``POST /v1/video/generate``: one avatar, one of text and audio."""

    model: ModelKind  # the queue (worker pool)
    avatar_id: str | None = None
    avatar_image: bytes | None = None
    text: str | None = None
    audio: bytes | None = None
    voice: str | None = None
    engine: str | None = None  # the engine the public model name maps to (farm.kernel.models)
    model_name: str | None = None


@dataclass(frozen=True, slots=True)
class Generated:
    """The queued render and what it will say."""

    session: Session
    reply_text: str | None  # None when audio was given
    speech_s: float  # length of the speech, so of the video


@dataclass
class TextService:
    """Text → reply → speech → a queued session."""

    settings: Settings
    sessions: SessionService
    agents: AgentStore
    synthesizer: SpeechSynthesizer
    responder: Responder
    store: SessionStore
    speak_bus: SpeakBus

    def generate(self, key: ApiKey, request: GenerateRequest, *, audio_s: float | None = None) -> Generated:
        """Reply, speak, queue. ``audio_s``: the uploaded audio's length, measured by an async caller
        (``SessionService.measure_audio``, off its event loop); None measures it here."""
        if (request.avatar_id is None) == (request.avatar_image is None):
            raise ValidationError("give exactly one of agent_id and image")
        if (request.text is None) == (request.audio is None):
            raise ValidationError("give exactly one of text and audio")
        agent = self._agent(key, request.avatar_id) if request.avatar_id is not None else None
        self.sessions.require_minute(key, request.model)  # before paying for a reply and its speech
        reply: str | None = None
        if request.text is not None:
            reply = self.reply(request.text, agent)
            audio = self.speak(reply, voice=request.voice, agent=agent)
        else:
            assert request.audio is not None
            audio = request.audio
        speech_s = self.check_length(audio, audio_s if request.audio is not None else None)
        self._require_video_credits(key, request.model, speech_s)
        session = self.sessions.create(
            key,
            SessionRequest(
                model=request.model,
                engine=request.engine,
                model_name=request.model_name,
                audio=audio,
                audio_suffix=".wav" if reply is not None else ".audio",
                avatar_id=request.avatar_id,
                avatar_image=request.avatar_image,
            ),
            audio_s=speech_s,
        )
        return Generated(session=session, reply_text=reply, speech_s=speech_s)

    def _require_video_credits(self, key: ApiKey, model: ModelKind, speech_s: float) -> None:
        metering = self.sessions.metering
        if metering is not None:
            minutes = max(1, math.ceil(speech_s / 60.0))
            metering.require_credits(
                key.tenant, minutes * CREDITS_PER_MINUTE[model], f"a {minutes}-minute video"
            )

    def reply(self, text: str, agent: Agent | None) -> str:
        """What the avatar says to ``text`` (the text itself without an answering model)."""
        if not text.strip():
            raise ValidationError("text must not be empty")
        if len(text) > self.settings.max_text_chars:
            raise ValidationError(
                f"text is {len(text)} characters, over the {self.settings.max_text_chars} limit"
            )
        answer = self.responder.reply(text, system_prompt=agent.system_prompt if agent is not None else None)
        return answer[: self.settings.max_text_chars]  # a chatty model's reply is cut, never the user's fault

    def speak(self, text: str, *, voice: str | None = None, agent: Agent | None = None) -> bytes:
        """WAV of ``text`` in ``voice``, else the agent's voice, else the settings default."""
        wav = self.synthesizer.synthesize(text, voice=voice or (agent.voice if agent is not None else None))
        try:
            self.sessions.audio_seconds(wav)  # a streaming decode: nothing but the WAV is held
        except InvalidAudio as exc:
            raise SpeechUnavailable("the speech service returned audio that could not be decoded") from exc
        return wav

    def speech_for(self, key: ApiKey, text: str, *, voice: str | None, agent_id: str | None) -> bytes:
        """``POST /v1/tts``: the speech of ``text`` (no reply), in the agent's voice when one is named."""
        agent = self._agent(key, agent_id, need_ready=False) if agent_id is not None else None
        if len(text) > self.settings.max_text_chars:
            raise ValidationError(
                f"text is {len(text)} characters, over the {self.settings.max_text_chars} limit"
            )
        return self.speak(text, voice=voice, agent=agent)

    def speak_live(self, key: ApiKey, agent_id: str, message: str, room_id: str | None = None) -> list[str]:
        """Say ``message`` (as given) in every live room of the agent (or only ``room_id``).

        NOT_FOUND when the agent has no live room session there. Returns the rooms published to.
        """
        agent = self._agent(key, agent_id, need_ready=False)
        rooms = [
            s
            for s in self.store.live_for_tenant(key.tenant)
            if s.avatar_id == agent.id and s.livekit and (room_id is None or s.livekit.room == room_id)
        ]
        if not rooms:
            where = f" in room {room_id}" if room_id else ""
            raise NotFound(f"No active rooms found for agent {agent.id}{where}")
        if len(message) > self.settings.max_text_chars:
            raise ValidationError(f"message is over the {self.settings.max_text_chars} character limit")
        audio = base64.b64encode(self.speak(message, agent=agent)).decode()
        delivered: list[str] = []
        for session in rooms:
            assert session.livekit is not None
            self.speak_bus.publish(
                SpeakMessage(
                    tenant=key.tenant,
                    agent_id=agent.id,
                    session_id=session.id,
                    text=message,
                    audio_wav_b64=audio,
                )
            )
            delivered.append(session.livekit.room)
        log.info("speech published", extra={"agent_id": agent.id, "sessions": len(rooms)})
        return delivered

    def check_length(self, audio: bytes, measured_s: float | None = None) -> float:
        """The clip's length in seconds (``measured_s`` when already measured); over ``max_video_s`` is
        PAYLOAD_TOO_LARGE (nothing stored)."""
        seconds = self.sessions.audio_seconds(audio) if measured_s is None else measured_s
        if seconds > self.settings.max_video_s:
            raise PayloadTooLarge(
                f"the video would be {seconds:.1f} s long, over the {self.settings.max_video_s:g} s limit; "
                "send shorter text or audio"
            )
        return seconds

    def _agent(self, key: ApiKey, agent_id: str, *, need_ready: bool = True) -> Agent:
        if not is_agent_id(agent_id):
            raise ValidationError("agent_id must be an agent code like A78WKV4515 (^[A-Z][A-Z0-9]{9}$)")
        agent = self.agents.get_for_tenant(key.tenant, agent_id)
        if need_ready and agent.status is not AgentStatus.READY:
            raise AgentNotReady(f"agent {agent.id} is {agent.status.value}, not ready")
        return agent
