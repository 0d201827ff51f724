"""The FarmError tree: every error carries its HTTP status, a stable code and a retry policy.

Adapters (Redis, LiveKit, CUDA, image and audio decoders) translate their exceptions into these, so
that routes, tasks and RPC handlers map errors in one place.
"""

from __future__ import annotations

from typing import ClassVar


class FarmError(Exception):
    """Base of every error the farm raises on purpose."""

    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def envelope(self) -> dict[str, object]:
        """The public error body (bitHuman's shape)."""
        return error_body(self.http_status, self.code, self.message)


def error_body(status: int, code: str, message: str) -> dict[str, object]:
    """The one error envelope: ``{"error": {code, message, httpStatus}, "status", "status_code"}``."""
    return {
        "error": {"code": code, "message": message, "httpStatus": status},
        "status": "error",
        "status_code": status,
    }


class ValidationError(FarmError):
    http_status = 400
    code = "VALIDATION_ERROR"


class MalformedJson(ValidationError):
    code = "MALFORMED_JSON"


class InvalidImage(ValidationError):
    code = "INVALID_IMAGE"


class InvalidAudio(ValidationError):
    code = "INVALID_AUDIO"


class NoFaceFound(ValidationError):
    code = "NO_FACE_FOUND"


class UnknownGesture(ValidationError):
    code = "UNKNOWN_GESTURE"


class PointsRequired(ValidationError):
    """Animal mode without the mouth's position (no detector can find an animal's mouth)."""

    code = "POINTS_REQUIRED"


class PointsOutsideImage(ValidationError):
    """A user-given mouth or eye point lies outside the image."""

    code = "POINTS_OUTSIDE_IMAGE"


class MouthTooSmall(ValidationError):
    """The mouth (given, or found) is too small in the image or the output frame to animate."""

    code = "MOUTH_TOO_SMALL"


class ModelNotConfigured(ValidationError):
    """A request named a model this farm does not serve, e.g. ``expression-2`` with no learned weights
    configured (``FARM_EXPRESSION_WEIGHTS``); the message lists the models it does serve."""

    code = "MODEL_NOT_CONFIGURED"


class ModeNotSupported(ValidationError):
    """A model asked for a mode it does not have (Expression has no animal mode)."""

    code = "MODE_NOT_SUPPORTED"


class LiveKitUrlNotAllowed(ValidationError):
    """A room-start request names a LiveKit server outside ``settings.livekit_url_allowlist``."""

    code = "LIVEKIT_URL_NOT_ALLOWED"


class LiveKitNotConfigured(FarmError):
    """A room feature on a farm without its own LiveKit server (``FARM_LIVEKIT_URL``, key, secret)."""

    http_status = 503
    code = "LIVEKIT_NOT_CONFIGURED"


class Unauthorized(FarmError):
    http_status = 401
    code = "UNAUTHORIZED"


class InsufficientBalance(FarmError):
    """The tenant's plan credits (and top-ups) are spent: new billable work is refused."""

    http_status = 402
    code = "INSUFFICIENT_BALANCE"


class KeyExpired(Unauthorized):
    """A runtime key (``POST /v1/runtime-tokens/mint``) past its expiry: mint a fresh one."""

    code = "KEY_EXPIRED"


class KeyOutOfScope(FarmError):
    """A runtime key used outside its scope (another route, room, agent or tenant)."""

    http_status = 403
    code = "KEY_SCOPE"


class AdminOnly(FarmError):
    """An operator view asked for with a key whose tenant is not in ``settings.admin_tenants``."""

    http_status = 403
    code = "ADMIN_ONLY"


class ConcurrencyLimit(FarmError):
    http_status = 403
    code = "CONCURRENCY_LIMIT_REACHED"


class NotFound(FarmError):
    http_status = 404
    code = "NOT_FOUND"


class Conflict(FarmError):
    http_status = 409
    code = "CONFLICT"


class IllegalTransition(Conflict):
    code = "ILLEGAL_TRANSITION"


class AgentNotReady(Conflict):
    code = "AGENT_NOT_READY"


class PayloadTooLarge(FarmError):
    http_status = 413
    code = "PAYLOAD_TOO_LARGE"


class RateLimited(FarmError):
    http_status = 429
    code = "RATE_LIMITED"
    retryable = True


class SpeechUnavailable(FarmError):
    """Speech synthesis or the answering model failed (espeak-ng missing, remote TTS/chat down)."""

    http_status = 503
    code = "SPEECH_UNAVAILABLE"
    retryable = True


class NoCapacity(FarmError):
    http_status = 503
    code = "NO_CAPACITY"
    retryable = True


class BackendUnavailable(FarmError):
    """Redis, the broker or another dependency is unreachable."""

    http_status = 503
    code = "BACKEND_UNAVAILABLE"
    retryable = True


class PackError(FarmError):
    """An avatar pack is corrupt, truncated or of the wrong format version."""

    http_status = 500
    code = "PACK_CORRUPT"


class PackVersionMismatch(PackError):
    code = "PACK_VERSION_MISMATCH"


class ModelFileInvalid(FarmError):
    """A model file the farm ships is missing, or is not the file its provenance record names (sha256)."""

    http_status = 500
    code = "MODEL_FILE_INVALID"


class VisemeModelInvalid(FarmError):
    """The viseme weights file is missing, unreadable or does not match the declared signature."""

    http_status = 500
    code = "VISEME_MODEL_INVALID"


class PrewarmFailed(FarmError):
    http_status = 503
    code = "PREWARM_FAILED"


class ModelWeightsInvalid(PrewarmFailed):
    """The configured weights directory fails validation (a graph missing, a signature that differs
    from the declared one, no licence file): the worker must not report READY. The message names the
    graph, the mismatch and what was expected; ``farm models check DIR`` prints the full report."""

    code = "MODEL_WEIGHTS_INVALID"


class LeaseLost(FarmError):
    """The session's lease expired or was taken over: the holder must stop publishing."""

    http_status = 409
    code = "LEASE_LOST"


class BatchSizeMismatch(FarmError):
    """A batched inference returned a different number of outputs than it was given inputs."""

    http_status = 500
    code = "BATCH_SIZE_MISMATCH"


class BatcherClosed(FarmError):
    """A frame was submitted to (or was waiting in) a batcher that has closed or that the session left."""

    http_status = 503
    code = "BATCHER_CLOSED"
    retryable = True


class LeaseExpired(FarmError):
    """A session's worker vanished (lease expired) more often than ``settings.max_attempts`` allows."""

    http_status = 503
    code = "LEASE_EXPIRED"
    retryable = True


class QueueTimeout(FarmError):
    """A session waited in QUEUED longer than ``settings.queue_deadline_s`` (no worker took it)."""

    http_status = 503
    code = "QUEUE_TIMEOUT"
    retryable = True


class RoomJoinFailed(FarmError):
    """The LiveKit server refused or did not answer the avatar's join (bad token, unreachable URL)."""

    http_status = 502
    code = "ROOM_JOIN_FAILED"
    retryable = True
