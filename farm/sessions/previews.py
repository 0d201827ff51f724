"""Where a photo's face/framing preview waits for a build worker and where its result is read back.

The API writes a ``FacePreview`` (``pending``) and queues ``farm.agent.preview`` on the ``build``
queue; a build worker (``farm.sessions.face_preview``) finds the face and writes the finished record;
the API (or the studio, polling) reads it. Records expire after ``names.PREVIEW_TTL_S``. A tenant
sees only its own previews (another tenant's is NotFound). Two implementations of ``PreviewStore``:
``RedisPreviewStore`` (production) and ``MemoryPreviewStore`` (unit tests).
"""

from __future__ import annotations

import re
import secrets
import threading
from typing import TYPE_CHECKING, Protocol

from farm.kernel import names
from farm.kernel.contracts import FacePreview
from farm.kernel.errors import NotFound

if TYPE_CHECKING:
    from redis import Redis

PREVIEW_ID_PATTERN = r"^pv_[0-9a-f]{16}$"
_PREVIEW_ID_RE = re.compile(PREVIEW_ID_PATTERN)


def new_preview_id() -> str:
    return "pv_" + secrets.token_hex(8)


def is_preview_id(value: str) -> bool:
    return bool(_PREVIEW_ID_RE.fullmatch(value))


class PreviewStore(Protocol):
    def put(self, preview: FacePreview) -> None:
        """Store (or overwrite, when a worker finishes it) the record, with the preview TTL."""
        ...

    def get(self, preview_id: str) -> FacePreview:
        """The record; NotFound when unknown or expired."""
        ...


def get_for_tenant(store: PreviewStore, tenant: str, preview_id: str) -> FacePreview:
    """The tenant's own preview; another tenant's is NotFound (404, never 403)."""
    preview = store.get(preview_id)
    if preview.tenant != tenant:
        raise NotFound(f"preview {preview_id} not found")
    return preview


class MemoryPreviewStore:
    """In-memory PreviewStore for unit tests (no expiry)."""

    def __init__(self) -> None:
        self._records: dict[str, FacePreview] = {}
        self._lock = threading.Lock()

    def put(self, preview: FacePreview) -> None:
        with self._lock:
            self._records[preview.preview_id] = preview

    def get(self, preview_id: str) -> FacePreview:
        with self._lock:
            preview = self._records.get(preview_id)
        if preview is None:
            raise NotFound(f"preview {preview_id} not found")
        return preview


class RedisPreviewStore:
    """PreviewStore in Redis: STRING ``farm:preview:<id>`` (JSON), TTL ``names.PREVIEW_TTL_S``."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def put(self, preview: FacePreview) -> None:
        key = names.preview_key(preview.preview_id)
        self._redis.set(key, preview.model_dump_json(), ex=names.PREVIEW_TTL_S)

    def get(self, preview_id: str) -> FacePreview:
        raw = self._redis.get(names.preview_key(preview_id))
        if raw is None:
            raise NotFound(f"preview {preview_id} not found (unknown, or older than 15 minutes)")
        return FacePreview.model_validate_json(raw)
