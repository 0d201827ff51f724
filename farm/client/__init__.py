"""Python SDK for users of the farm.

``AvatarSession`` / ``AsyncAvatarSession``: text in, a talking-avatar MP4 out, with the SDK's own
errors (``AuthenticationError``, ``QuotaExceededError``, ``NetworkError``, ``RequestError``,
``RenderError``; base ``AvatarError``). ``AvatarFarm`` is the lower-level client of the raw API
(sessions from audio, agents); its errors are the farm's ``FarmError`` classes.

Documentation snippets written for bitHuman's SDK run with one changed import:
``import farm.client as bithuman``.
"""

from farm.client.client import AgentInfo, AvatarFarm, SessionInfo, error_from_envelope
from farm.client.errors import (
    AuthenticationError,
    AvatarError,
    NetworkError,
    QuotaExceededError,
    RenderError,
    RequestError,
    error_for,
)
from farm.client.session import AsyncAvatarSession, AvatarResponse, AvatarSession

__all__ = [
    "AgentInfo",
    "AsyncAvatarSession",
    "AuthenticationError",
    "AvatarError",
    "AvatarFarm",
    "AvatarResponse",
    "AvatarSession",
    "NetworkError",
    "QuotaExceededError",
    "RenderError",
    "RequestError",
    "SessionInfo",
    "error_for",
    "error_from_envelope",
]
