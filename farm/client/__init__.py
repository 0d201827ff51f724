"""The farm's Python SDK, re-exported: it ships as its own package, ``avatar-farm-client``.

The code lives once, in ``clients/python/avatar_farm_client`` (httpx + pydantic only, one sans-IO core
with thin sync and async clients); the farm depends on it. This module keeps the documented import
working: ``import farm.client as bithuman``, ``from farm.client import AvatarSession``.
"""

from avatar_farm_client import (
    CODES,
    MODELS,
    TERMINAL,
    AgentInfo,
    AsyncAvatarSession,
    AuthenticationError,
    AvatarError,
    AvatarFarm,
    AvatarResponse,
    AvatarSession,
    ConflictError,
    NetworkError,
    NotFoundError,
    QuotaExceededError,
    RenderError,
    RequestError,
    SessionInfo,
    error_for,
)

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
