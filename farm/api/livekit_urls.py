"""Which LiveKit servers a room-start request may send a worker to (the ``livekit_url`` allow-list).

``POST /v1/runtime-tokens/request`` carries the caller's ``livekit_url``; the worker connects there.
Without a check anyone with a key could make workers open connections to any host (SSRF). Allowed:
the entries of ``settings.livekit_url_allowlist``, or, when that is empty, ``settings.livekit_url``
alone. An entry is a URL (``wss://lk.example.com``, ``https://x.livekit.cloud/sub``: same host, same
port, same security and a path under the entry's) or a bare host (``lk.example.com``: any port, any
scheme). ``ws``/``http`` and ``wss``/``https`` are one family each (LiveKit clients use either).
Hosts are compared parsed, never as string prefixes, so ``lk.example.com.evil.net`` and
``lk.example.com@evil.net`` do not pass for ``lk.example.com``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from farm.kernel.errors import LiveKitUrlNotAllowed, ValidationError
from farm.kernel.settings import Settings

_SECURE = {"wss": True, "https": True, "ws": False, "http": False}
_DEFAULT_PORT = {True: 443, False: 80}


@dataclass(frozen=True, slots=True)
class _Server:
    host: str
    secure: bool | None  # None: a bare-host entry (any scheme)
    port: int | None  # None: any port
    path: str

    def admits(self, url: _Server) -> bool:
        if url.host != self.host:
            return False
        if self.secure is not None and (url.secure != self.secure or url.port != self.port):
            return False
        return url.path.startswith(self.path)


def _parsed(url: str) -> SplitResult:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
    except ValueError as exc:
        raise ValidationError("livekit_url is not a valid URL") from exc
    return parts


def _server(url: str) -> _Server:
    parts = _parsed(url)
    secure = _SECURE.get(parts.scheme.lower())
    if secure is None or not parts.hostname:
        raise ValidationError("livekit_url must be a ws(s):// or http(s):// URL with a host")
    port = parts.port or _DEFAULT_PORT[secure]
    return _Server(parts.hostname.lower().rstrip("."), secure, port, _dir(parts.path))


def _entry(entry: str) -> _Server:
    if "://" not in entry:
        return _Server(entry.strip().lower().rstrip("."), None, None, "/")
    return _server(entry)


def _dir(path: str) -> str:
    """A path as a directory prefix: ``/a`` admits ``/a/b`` but not ``/ab``."""
    return path.rstrip("/") + "/"


def allowed_servers(settings: Settings) -> list[str]:
    """The allow-list in force: the setting, else the configured LiveKit URL, else nothing."""
    if settings.livekit_url_allowlist:
        return list(settings.livekit_url_allowlist)
    return [settings.livekit_url] if settings.livekit_url else []


def check_livekit_url(url: str, settings: Settings) -> None:
    """400 VALIDATION_ERROR for a malformed URL, 400 LIVEKIT_URL_NOT_ALLOWED for one off the list."""
    server = _server(url)
    allowed = allowed_servers(settings)
    if any(_entry(entry).admits(server) for entry in allowed):
        return
    if not allowed:
        raise LiveKitUrlNotAllowed(
            "this farm accepts no livekit_url: its operator must set FARM_LIVEKIT_URL (or "
            "FARM_LIVEKIT_URL_ALLOWLIST) to the LiveKit server(s) its workers may join"
        )
    raise LiveKitUrlNotAllowed(
        f"livekit_url host {server.host!r} is not a LiveKit server this farm joins; allowed: "
        f"{', '.join(allowed)} (operators: FARM_LIVEKIT_URL_ALLOWLIST)"
    )
