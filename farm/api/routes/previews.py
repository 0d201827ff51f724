"""``/v1/previews``: the face and framing of a photo, found on a build worker, before an agent is built.

``POST`` takes what ``POST /v1/agents`` takes (JSON with a base64 ``image`` and build options, or
multipart) and answers 202 with a ``pending`` preview; ``GET /v1/previews/{id}`` answers ``ready``
(face box, 68 landmarks, the crop the agent will show) or ``failed`` (NO_FACE_FOUND, MOUTH_TOO_SMALL,
INVALID_IMAGE, ...) once the worker has looked, usually within a second. Nothing is charged.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from farm.api import inputs
from farm.api.deps import Caller, Services
from farm.api.routes.agents import _CREATE_BODY
from farm.api.schemas import ERROR_RESPONSES
from farm.kernel.contracts import FacePreview, PreviewStatus
from farm.sessions.previews import PREVIEW_ID_PATTERN

router = APIRouter(prefix="/v1/previews", tags=["agents"], responses=ERROR_RESPONSES)

PreviewIdPath = Annotated[
    str, PathParam(pattern=PREVIEW_ID_PATTERN, description="Preview id (pv_ + 16 hex).")
]


class PreviewError(BaseModel):
    code: str
    message: str


class PreviewView(BaseModel):
    preview_id: str
    status: PreviewStatus
    status_url: str
    width: int
    height: int
    face_box: tuple[float, float, float, float] | None
    points: list[tuple[float, float]]
    crop_box: tuple[float, float, float, float] | None
    output_size: tuple[int, int] | None
    mouth_px: float | None
    method: str | None
    error: PreviewError | None

    @classmethod
    def of(cls, preview: FacePreview, base_url: str) -> PreviewView:
        failed = preview.error_code is not None
        return cls(
            preview_id=preview.preview_id,
            status=preview.status,
            status_url=f"{base_url}/v1/previews/{preview.preview_id}",
            width=preview.width,
            height=preview.height,
            face_box=preview.face_box,
            points=preview.points,
            crop_box=preview.crop_box,
            output_size=preview.output_size,
            mouth_px=preview.mouth_px,
            method=preview.method,
            error=PreviewError(code=preview.error_code or "", message=preview.error_message or "")
            if failed
            else None,
        )


def _base(request: Request, public_url: str | None) -> str:
    return (public_url or str(request.base_url)).rstrip("/")


@router.post("", status_code=202, response_model=PreviewView, openapi_extra=_CREATE_BODY)
async def create_preview(request: Request, farm: Services, key: Caller) -> PreviewView:
    """Queue a face/framing preview of a photo; poll ``status_url`` until ``ready`` or ``failed``."""
    body = await inputs.agent_request(request, farm.settings)
    preview = await run_in_threadpool(farm.previews_service.create, key, body.image, body.options)
    return PreviewView.of(preview, _base(request, farm.settings.public_url))


@router.get("/{preview_id}", response_model=PreviewView)
def get_preview(preview_id: PreviewIdPath, request: Request, farm: Services, key: Caller) -> PreviewView:
    """One of your previews (another tenant's is 404; previews expire after 15 minutes)."""
    preview = farm.previews_service.get(key, preview_id)
    return PreviewView.of(preview, _base(request, farm.settings.public_url))
