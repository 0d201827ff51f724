"""How the API is served: uvicorn with bounded request heads.

uvicorn's httptools protocol buffers a request's line and headers without any limit and waits for
them for ever, so one client could hold megabytes per connection (a 200 KB header, 20,000 headers)
or hold connections open by trickling bytes (slowloris). :func:`uvicorn_config` serves the app with
:class:`BoundedHeadProtocol` instead, which answers in the error envelope and closes the connection:

- a head over ``api_max_header_bytes`` (request line + headers) → 431 ``HEADERS_TOO_LARGE``;
- more than ``api_max_headers`` headers → 431 ``HEADERS_TOO_LARGE``;
- a head not complete ``api_header_timeout_s`` after the connection opened or the request began
  → 408 ``REQUEST_TIMEOUT``.

Bodies are not affected: their limits are the routes' (``max_audio_mb``, ``max_image_mb``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from farm.kernel.errors import error_body
from farm.kernel.settings import Settings

log = logging.getLogger(__name__)

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeadRejected(Exception):
    """Raised inside a parser callback to stop parsing a head that broke a limit."""


class BoundedHeadProtocol(HttpToolsProtocol):
    """httptools protocol whose request heads are bounded in size, count and time.

    Limits are class attributes; :func:`bounded_protocol` makes a subclass with a farm's settings.
    """

    max_head_bytes = 64 * 1024
    max_headers = 100
    head_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # bytes that arrive now belong to a request line or headers
        self._head_bytes = 0
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._rejected = False

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # A head still incomplete after this many bytes is too large, however it was split.
        if not self._rejected and self._in_head and self._head_bytes > self.max_head_bytes:
            self._reject(431, "HEADERS_TOO_LARGE", self._too_large_message())

    def send_400_response(self, msg: str) -> None:
        if not self._rejected:  # a callback that raised _HeadRejected has answered already
            super().send_400_response(msg)

    # --- parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True  # _head_bytes already counts this request's first bytes
        self._header_count = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_head_bytes:
            self._reject(431, "HEADERS_TOO_LARGE", self._too_large_message())
            raise _HeadRejected

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            message = f"a request may carry at most {self.max_headers} headers"
            self._reject(431, "HEADERS_TOO_LARGE", message)
            raise _HeadRejected
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what arrives next is the next request's head
        self._head_bytes = 0

    # --- limits
    def _too_large_message(self) -> str:
        return f"the request line and headers may take at most {self.max_head_bytes} bytes"

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and self.head_timeout_s > 0:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            if self._head_bytes == 0 and self.cycle is None:
                self.transport.close()  # never said a word: nothing to answer
                return
            message = f"the request line and headers must arrive within {self.head_timeout_s:g} s"
            self._reject(408, "REQUEST_TIMEOUT", message)

    def _reject(self, status: int, code: str, message: str) -> None:
        """Answer in the error envelope, close the connection, and ignore whatever else arrives."""
        if self._rejected:
            return
        self._rejected = True
        self._disarm_head_timer()
        body = json.dumps(error_body(status, code, message)).encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
        head.append(b"connection: close\r\n\r\n")
        log.warning("request head rejected", extra={"status": status, "code": code})
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def bounded_protocol(settings: Settings) -> type[BoundedHeadProtocol]:
    """A :class:`BoundedHeadProtocol` with this farm's head limits."""
    return type(
        "FarmHttpProtocol",
        (BoundedHeadProtocol,),
        {
            "max_head_bytes": settings.api_max_header_bytes,
            "max_headers": settings.api_max_headers,
            "head_timeout_s": settings.api_header_timeout_s,
        },
    )


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The one way the farm serves its API: host and port from settings, bounded request heads."""
    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_level": "info",
        "http": bounded_protocol(settings),
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)
