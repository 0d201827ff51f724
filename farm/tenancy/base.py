"""Tenancy seams: an API key as the API sees it, and the store that mints and checks them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    tenant: str
    name: str
    created_at: float
    revoked: bool = False
    concurrency_limit: int | None = None


class KeyStore(Protocol):
    def create(self, tenant: str, name: str, concurrency_limit: int | None = None) -> tuple[ApiKey, str]:
        """Return the key and its secret (shown once; only a hash is stored)."""
        ...

    def authenticate(self, secret: str) -> ApiKey:
        """Raise errors.Unauthorized for an unknown or revoked secret (constant-time compare)."""
        ...

    def list(self) -> list[ApiKey]: ...

    def revoke(self, key_id: str) -> None: ...
