"""Python SDK for users of the farm: ``AvatarFarm`` (HTTP client) and its typed errors.

Errors come back as the farm's own ``FarmError`` classes, chosen by the envelope's stable code
(``NotFound``, ``Unauthorized``, ``AgentNotReady``, …), so callers catch the same types the server
raises.
"""

from farm.client.client import AgentInfo, AvatarFarm, SessionInfo, error_from_envelope

__all__ = ["AgentInfo", "AvatarFarm", "SessionInfo", "error_from_envelope"]
