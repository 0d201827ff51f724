"""avatar-farm-client: the Python SDK of the avatar render farm (httpx + pydantic, nothing else).

``AvatarSession`` / ``AsyncAvatarSession``: text in, a talking-avatar MP4 out, and the farm's raw API
(agents, sessions from audio, fleet) on the same object. Errors are the SDK's own, chosen by the
farm's stable codes: ``AuthenticationError``, ``QuotaExceededError``, ``NetworkError``,
``RequestError`` (``NotFoundError``, ``ConflictError``), ``RenderError``; base ``AvatarError``.

Documentation snippets written for bitHuman's SDK run with one changed import:
``import avatar_farm_client as bithuman``. ``AvatarFarm`` is a deprecated alias of the raw API.
"""

from ._api import MODELS, TERMINAL, AgentInfo, AvatarResponse, SessionInfo
from .errors import (
    CODES,
    AuthenticationError,
    AvatarError,
    ConflictError,
    NetworkError,
    NotFoundError,
    QuotaExceededError,
    RenderError,
    RequestError,
    error_for,
)
from .session import AsyncAvatarSession, AvatarFarm, AvatarSession

__version__ = "0.1.0"

__all__ = [
    "CODES",
    "MODELS",
    "TERMINAL",
    "AgentInfo",
    "AsyncAvatarSession",
    "AuthenticationError",
    "AvatarError",
    "AvatarFarm",
    "AvatarResponse",
    "AvatarSession",
    "ConflictError",
    "NetworkError",
    "NotFoundError",
    "QuotaExceededError",
    "RenderError",
    "RequestError",
    "SessionInfo",
    "error_for",
]
