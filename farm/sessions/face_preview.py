"""Find a photo's face and framing on a build worker: the core of the ``farm.agent.preview`` task.

API pods never load a face model; they queue this on the ``build`` queue and read the result back
(``farm.sessions.previews``). The finished record has what ``build_pack`` would use — the face (68
landmarks and box, or the skeleton around an animal's given mouth), the crop the agent's frame will
show and the mouth's size in it — or the error the build would fail with.
"""

from __future__ import annotations

import logging

from farm.infra.blobs import BlobStore
from farm.infra.media import load_image_rgb
from farm.kernel.characters import MIN_MOUTH_FRAME_PX
from farm.kernel.contracts import FacePreview
from farm.kernel.errors import FarmError, MouthTooSmall
from farm.kernel.settings import Settings
from farm.sessions.previews import PreviewStore

log = logging.getLogger(__name__)


def preview_face(
    settings: Settings, previews: PreviewStore, blobs: BlobStore, preview_id: str
) -> FacePreview:
    """Finish preview ``preview_id``: ``ready`` with the framing, or ``failed`` with a code and message."""
    from farm.render.essence.builder import plan_framing

    preview = previews.get(preview_id)
    update: dict[str, object] = {}
    try:
        image = load_image_rgb(blobs.path(preview.image_ref), settings.max_image_pixels)
        update |= {"width": int(image.shape[1]), "height": int(image.shape[0])}
        plan = plan_framing(image, preview.options, settings.essence_size)
        update |= {
            "status": "ready",
            "face_box": tuple(float(v) for v in plan.face.box),
            "points": [(round(float(x), 1), round(float(y), 1)) for x, y in plan.face.points],
            "crop_box": tuple(float(v) for v in plan.crop_box),
            "output_size": plan.output_size,
            "mouth_px": round(plan.mouth_px, 1),
            "method": plan.face.method,
        }
        if plan.mouth_too_small:
            small = MouthTooSmall(
                f"the mouth would be {plan.mouth_px:.1f} pixels wide in the {plan.output_size[0]}x"
                f"{plan.output_size[1]} frame; at least {MIN_MOUTH_FRAME_PX} are needed: use a photo "
                "where the face is larger, framing 'face', or a smaller crop_scale"
            )
            update |= {"status": "failed", "error_code": small.code, "error_message": small.message}
    except FarmError as exc:
        update |= {"status": "failed", "error_code": exc.code, "error_message": exc.message}
    except Exception:
        log.exception("face preview failed", extra={"preview_id": preview_id})
        update |= {"status": "failed", "error_code": "INTERNAL_ERROR", "error_message": "the preview failed"}
    done = preview.model_copy(update=update)
    previews.put(done)
    return done
