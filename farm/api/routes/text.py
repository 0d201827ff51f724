"""Text in: ``POST /v1/video/generate``, ``GET /v1/sessions/{id}/video``, ``POST /v1/tts``,
``POST /v1/validate``. Thin: decode, call ``TextService``, return.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from farm.api import inputs
from farm.api.deps import Caller, Services
from farm.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from farm.api.idempotency import remember, replay
from farm.api.schemas import (
    ERROR_RESPONSES,
    GenerateVideoJson,
    SessionIdPath,
    TtsJson,
    Validated,
    VideoGenerated,
    json_body_doc,
)
from farm.api.text import GenerateRequest
from farm.kernel import names
from farm.kernel.domain import SessionState
from farm.kernel.errors import Conflict, NotFound, Unauthorized
from farm.kernel.models import resolve_model

router = APIRouter(tags=["text"], responses=ERROR_RESPONSES)
_GENERATE_SCOPE = "video.generate"


def _base(request: Request, public_url: str | None) -> str:
    return (public_url or str(request.base_url)).rstrip("/")


@router.post(
    "/v1/video/generate",
    status_code=201,
    response_model=VideoGenerated,
    openapi_extra=json_body_doc(GenerateVideoJson),
)
async def generate_video(request: Request, farm: Services, key: Caller) -> Response:
    """Text (answered, then spoken) or audio → a queued MP4 render. Honours ``Idempotency-Key``."""
    idem = request.headers.get(IDEMPOTENCY_HEADER)
    replayed = await run_in_threadpool(replay, farm.replays, key.tenant, _GENERATE_SCOPE, idem, 201)
    if replayed is not None:
        return replayed
    body: GenerateVideoJson = await inputs.json_body(request, farm.settings, GenerateVideoJson)
    audio = inputs.b64(body.audio, "audio") if body.audio is not None else None
    audio_s = await farm.sessions.measure_audio(audio) if audio is not None else None  # off the loop
    base = _base(request, farm.settings.public_url)

    entry = resolve_model(body.model, farm.settings)

    def generate() -> Response:  # the chat model, TTS, Redis and the broker: off the event loop
        generated = farm.text.generate(
            key,
            GenerateRequest(
                model=entry.queue,
                engine=entry.engine,
                model_name=entry.name,
                avatar_id=body.agent_id,
                avatar_image=inputs.b64(body.image, "image") if body.image is not None else None,
                text=body.text,
                audio=audio,
                voice=body.voice,
            ),
            audio_s=audio_s,
        )
        sid = generated.session.id
        out = VideoGenerated(
            session_id=sid,
            status=generated.session.state,
            status_url=f"{base}/v1/sessions/{sid}",
            video_url=f"{base}/v1/sessions/{sid}/video",
            reply_text=generated.reply_text,
            duration_s=round(generated.speech_s, 3),
        )
        body_json = out.model_dump_json()
        return remember(farm.replays, key.tenant, _GENERATE_SCOPE, idem, body=body_json, status=201)

    return await run_in_threadpool(generate)


@router.get("/v1/sessions/{session_id}/video", response_class=FileResponse)
def session_video(session_id: SessionIdPath, farm: Services, key: Caller) -> FileResponse:
    """The MP4 of an ENDED file-output session (409 while it is still rendering)."""
    session = farm.sessions.get(key, session_id)
    if session.state is not SessionState.ENDED:
        raise Conflict(f"session {session_id} is {session.state.value}; its video exists once it has ENDED")
    if not session.output or session.output.startswith("livekit://"):
        raise NotFound(f"session {session_id} streamed to a room and has no video file")
    path = Path(session.output)
    if not path.is_file():
        raise NotFound(f"the video of session {session_id} is no longer stored")
    return FileResponse(path, media_type="video/mp4", filename=f"{session_id}.mp4")


@router.post(
    "/v1/tts",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}},
    openapi_extra=json_body_doc(TtsJson),
)
async def text_to_speech(request: Request, farm: Services, key: Caller) -> Response:
    """Speech for ``text`` as a WAV (espeak-ng locally, or the configured OpenAI-compatible TTS)."""
    body: TtsJson = await inputs.json_body(request, farm.settings, TtsJson)
    wav = await run_in_threadpool(
        farm.text.speech_for, key, body.text, voice=body.voice, agent_id=body.agent_id
    )
    return Response(wav, media_type="audio/wav")


@router.post("/v1/validate", response_model=Validated)
def validate(request: Request, farm: Services) -> JSONResponse:
    """``{"valid": true}`` when the ``api-secret`` header names a live key; always HTTP 200."""
    secret = request.headers.get(names.HEADER_API_SECRET, "")
    try:
        farm.keys.authenticate(secret)
    except Unauthorized:
        return JSONResponse({"valid": False})
    return JSONResponse({"valid": True})
