"""Face/framing previews of a photo before it becomes an agent: the API half (no face model here).

``create`` checks the upload as an agent build would (size, decodable image, points inside it),
stores it, writes a ``pending`` FacePreview and queues ``farm.agent.preview`` on the build queue; a
build worker finishes the record (``farm.sessions.face_preview``). ``get`` reads it back, for its
tenant only. Nothing is charged: a preview is how the studio says "no face" before a build costs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from farm.infra import media
from farm.infra.blobs import BlobStore
from farm.kernel.characters import BuildOptions
from farm.kernel.contracts import FacePreview, PreviewFaceMessage
from farm.kernel.errors import BackendUnavailable, FarmError, PayloadTooLarge, ValidationError
from farm.kernel.settings import Settings
from farm.sessions.previews import PreviewStore, get_for_tenant, is_preview_id, new_preview_id
from farm.tenancy.base import ApiKey

from .service import BuildQueue

log = logging.getLogger(__name__)


@dataclass
class PreviewService:
    settings: Settings
    previews: PreviewStore
    blobs: BlobStore
    builds: BuildQueue

    def create(self, key: ApiKey, image: bytes, options: BuildOptions) -> FacePreview:
        """Validate and queue a preview; returns the ``pending`` record (poll ``get``)."""
        if len(image) > self.settings.max_image_mb * 1024 * 1024:
            raise PayloadTooLarge(f"the image is larger than the {self.settings.max_image_mb:g} MB limit")
        width, height = media.validate_image(image, max_pixels=self.settings.max_image_pixels)
        options.check_image(width, height)
        suffix = ".png" if image.startswith(b"\x89PNG") else ".jpg"
        preview = FacePreview(
            preview_id=new_preview_id(),
            tenant=key.tenant,
            image_ref=self.blobs.put(image, suffix),
            options=options,
            width=width,
            height=height,
        )
        self.previews.put(preview)
        try:
            self.builds.submit(PreviewFaceMessage(preview_id=preview.preview_id))
        except Exception as exc:
            log.warning("preview submit failed", extra={"preview_id": preview.preview_id})
            if isinstance(exc, FarmError):
                raise
            raise BackendUnavailable("the build queue is unavailable") from exc
        return preview

    def get(self, key: ApiKey, preview_id: str) -> FacePreview:
        if not is_preview_id(preview_id):
            raise ValidationError("preview_id must look like pv_0123456789abcdef")
        return get_for_tenant(self.previews, key.tenant, preview_id)
