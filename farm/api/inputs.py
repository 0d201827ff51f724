"""Turn a JSON (base64 media) or multipart (file uploads) request into typed inputs.

Bodies are size-capped before they are read in full: a Content-Length over the cap, or a stream
that grows past it, is PAYLOAD_TOO_LARGE. Malformed JSON is MALFORMED_JSON; a JSON body of the wrong
shape is VALIDATION_ERROR with the offending field named.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import PurePath
from typing import Any

import pydantic
from starlette.datastructures import UploadFile
from starlette.requests import Request

from farm.kernel.characters import BuildOptions
from farm.kernel.domain import ModelKind
from farm.kernel.errors import MalformedJson, PayloadTooLarge, ValidationError
from farm.kernel.models import ModelEntry, resolve_model
from farm.kernel.settings import Settings

from .schemas import AgentRequest, CreateAgentJson, CreateSessionJson, SessionRequest

MB = 1024 * 1024
_MULTIPART = "multipart/form-data"
_AUDIO_SUFFIXES = {".wav", ".mp3", ".ogg", ".opus", ".flac", ".m4a", ".aac", ".webm"}
_OPTION_FIELDS = ("mode", "framing", "crop_scale", "size")  # multipart: plain text fields
_POINT_FIELDS = ("mouth_box", "mouth_points", "eyes")  # multipart: JSON text, e.g. "[10, 20, 60, 40]"


def body_limit_bytes(settings: Settings) -> int:
    """Largest accepted request body: both media, base64-inflated (4/3), plus 1 MB of slack."""
    return int((settings.max_image_mb + settings.max_audio_mb) * MB * 4 / 3) + MB


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit // MB} MB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit // MB} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith(_MULTIPART)


def _is_form(request: Request) -> bool:
    """Multipart or ``application/x-www-form-urlencoded`` (what aiohttp sends for a FormData with no
    file, e.g. livekit-plugins-bithuman's expression request with ``avatar_id`` only)."""
    content_type = request.headers.get("content-type", "").lower()
    return content_type.startswith((_MULTIPART, "application/x-www-form-urlencoded"))


def _b64(value: str, field: str) -> bytes:
    if "," in value[:100] and value.startswith("data:"):
        value = value.split(",", 1)[1]  # data URL
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationError(f"{field} is not valid base64") from exc


def b64(value: str, field: str) -> bytes:
    """Decode a base64 (or data-URL) field; VALIDATION_ERROR naming ``field`` when it is not."""
    return _b64(value, field)


async def json_body(request: Request, settings: Settings, model: type[pydantic.BaseModel]) -> Any:
    """A size-capped JSON body validated against ``model``."""
    return _json_model(await _read_body(request, body_limit_bytes(settings)), model)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Standard JSON or MALFORMED_JSON: also for invalid UTF-8, NaN/Infinity, integers too long to
    convert, and nesting deeper than the parser's recursion limit (each a ValueError or a
    RecursionError inside ``json.loads``, which must never reach the client as a 500)."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson("the request body is not valid JSON (or nests deeper than we parse)") from exc


def _json_model(raw: bytes, model: type[pydantic.BaseModel]) -> Any:
    doc = parse_json(raw)
    try:
        return model.model_validate(doc)
    except pydantic.ValidationError as exc:
        raise ValidationError(describe_errors(exc.errors())) from exc


def describe_errors(errors: Any) -> str:
    """One readable line from pydantic/FastAPI error dicts: ``field: problem; …``."""
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _form(request: Request, settings: Settings) -> Any:
    declared = request.headers.get("content-length")
    limit = body_limit_bytes(settings)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit // MB} MB")
    try:
        return await request.form(max_files=4, max_fields=16, max_part_size=limit)
    except Exception as exc:  # starlette raises MultiPartException / HTTPException on bad forms
        raise ValidationError("the multipart body could not be parsed") from exc


async def _file_or_b64(form: Any, field: str, limit_mb: float) -> tuple[bytes | None, str]:
    value = form.get(field)
    if value is None or value == "":
        return None, ""
    if isinstance(value, UploadFile):
        data = await value.read(int(limit_mb * MB) + 1)
        if len(data) > limit_mb * MB:
            raise PayloadTooLarge(f"{field} is larger than the {limit_mb:g} MB limit")
        return data, PurePath(value.filename or "").suffix.lower()
    return _b64(str(value), field), ""


def _model(value: Any) -> ModelKind:
    """An agent's model (``POST /v1/agents``): the pool it is built for, essence or expression."""
    if value in (None, ""):
        return ModelKind.ESSENCE
    try:
        return ModelKind(str(value))
    except ValueError as exc:
        raise ValidationError("model must be 'essence' or 'expression'") from exc


def session_model(value: Any, settings: Settings) -> ModelEntry:
    """A session's public model name (default ``essence``) → its served table entry (400 otherwise)."""
    return resolve_model(str(value) if value not in (None, "") else ModelKind.ESSENCE.value, settings)


def _audio_suffix(suffix: str) -> str:
    return suffix if suffix in _AUDIO_SUFFIXES else ".audio"


async def session_request(request: Request, settings: Settings) -> SessionRequest:
    """Decode ``POST /v1/sessions`` (JSON or multipart) into a SessionRequest."""
    if _is_multipart(request):
        form = await _form(request, settings)
        audio, audio_suffix = await _file_or_b64(form, "audio", settings.max_audio_mb)
        image, _ = await _file_or_b64(form, "avatar_image", settings.max_image_mb)
        if audio is None:
            raise ValidationError("audio: field required")
        avatar_id = form.get("avatar_id") or None
        entry = session_model(form.get("model"), settings)
        return SessionRequest(
            model=entry.queue,
            engine=entry.engine,
            model_name=entry.name,
            audio=audio,
            audio_suffix=_audio_suffix(audio_suffix),
            avatar_id=str(avatar_id) if avatar_id is not None else None,
            avatar_image=image,
        )
    body: CreateSessionJson = _json_model(
        await _read_body(request, body_limit_bytes(settings)), CreateSessionJson
    )
    entry = session_model(body.model, settings)
    return SessionRequest(
        model=entry.queue,
        engine=entry.engine,
        model_name=entry.name,
        audio=_b64(body.audio, "audio"),
        audio_suffix=".audio",
        avatar_id=body.avatar_id,
        avatar_image=_b64(body.avatar_image, "avatar_image") if body.avatar_image is not None else None,
    )


def _optional_text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


async def agent_request(request: Request, settings: Settings) -> AgentRequest:
    """Decode ``POST /v1/agents``: JSON (``image`` base64 + options) or multipart (``image`` file +
    option fields; ``mouth_box``, ``mouth_points`` and ``eyes`` as JSON text)."""
    if _is_multipart(request):
        form = await _form(request, settings)
        image, _ = await _file_or_b64(form, "image", settings.max_image_mb)
        if image is None:
            raise ValidationError("image: field required")
        return AgentRequest(
            image=image,
            options=_form_options(form),
            model=_model(form.get("model")),
            system_prompt=_optional_text(form.get("system_prompt")),
            voice=_optional_text(form.get("voice")),
        )
    body: CreateAgentJson = _json_model(
        await _read_body(request, body_limit_bytes(settings)), CreateAgentJson
    )
    return AgentRequest(
        image=_b64(body.image, "image"),
        options=body.options(),
        model=body.model,
        system_prompt=body.system_prompt,
        voice=body.voice,
    )


def _form_options(form: Any) -> BuildOptions:
    fields: dict[str, Any] = {k: str(form[k]) for k in _OPTION_FIELDS if form.get(k) not in (None, "")}
    for name in _POINT_FIELDS:
        value = form.get(name)
        if value in (None, ""):
            continue
        try:
            fields[name] = json.loads(str(value))
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"{name}: not JSON; send e.g. [10, 20, 60, 40] or [[10, 20], [60, 40]]"
            ) from exc
    try:
        return BuildOptions.model_validate(fields)
    except pydantic.ValidationError as exc:
        raise ValidationError(describe_errors(exc.errors())) from exc
