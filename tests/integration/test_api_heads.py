"""Request heads are bounded in size, count and time: the production server over raw sockets.

uvicorn's own httptools protocol reads any head, however large, and waits for it for ever; these
tests fail against it (``http="httptools"``): 431s and 408s come from ``farm.api.server``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest

from farm.kernel.settings import Settings
from tests.integration.api_support import LiveApi, live_api

pytestmark = pytest.mark.integration


@pytest.fixture
def api(settings: Settings, redis_url: str) -> Iterator[LiveApi]:
    limits = {"api_max_header_bytes": 16_384, "api_max_headers": 40, "api_header_timeout_s": 1.0}
    with live_api(settings.model_copy(update={"redis_url": redis_url, **limits})) as server:
        yield server


def _connect(api: LiveApi) -> socket.socket:
    port = int(api.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=20)


def _send(sock: socket.socket, data: bytes) -> None:
    """Send what the server will take; it may close mid-way once a limit is crossed."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _read_response(sock: socket.socket) -> int:
    """One whole response on a connection kept alive, and its status: its head and body may arrive in
    separate reads, so a single recv could leave the body to be read as the next response's start."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response.status


def _status_and_code(reply: bytes) -> tuple[int, str]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"connection: close" in head.lower()
    envelope = json.loads(body)
    assert envelope["error"]["httpStatus"] == status and envelope["status_code"] == status
    return status, envelope["error"]["code"]


def _get(headers: list[bytes], path: bytes = b"/healthz") -> bytes:
    lines = [b"GET " + path + b" HTTP/1.1", b"host: farm", *headers, b"connection: close", b"", b""]
    return b"\r\n".join(lines)


def test_a_request_within_the_limits_is_served(api: LiveApi) -> None:
    with _connect(api) as sock:
        _send(sock, _get([b"x-n%d: %s" % (i, b"v" * 200) for i in range(37)]))  # 40 headers, ~8 KB
        assert _read_all(sock).startswith(b"HTTP/1.1 200")


def test_too_many_headers_are_431_in_the_envelope(api: LiveApi) -> None:
    with _connect(api) as sock:
        _send(sock, _get([b"x-n%d: 1" % i for i in range(41)]))
        assert _status_and_code(_read_all(sock)) == (431, "HEADERS_TOO_LARGE")


def test_a_head_over_the_byte_limit_is_431_however_it_is_split(api: LiveApi) -> None:
    with _connect(api) as sock:
        _send(sock, b"GET /healthz HTTP/1.1\r\nhost: farm\r\nx-big: ")
        for _ in range(40):  # 40 × 1 KB of one header value, never finished: cut at 16 KB
            _send(sock, b"v" * 1024)
        assert _status_and_code(_read_all(sock)) == (431, "HEADERS_TOO_LARGE")


def test_a_huge_header_or_url_is_cut_off_without_reading_it_all(api: LiveApi) -> None:
    for request in (_get([b"x-big: " + b"v" * 4_000_000]), _get([], path=b"/" + b"a" * 4_000_000)):
        with _connect(api) as sock:
            _send(sock, request)
            assert _status_and_code(_read_all(sock)) == (431, "HEADERS_TOO_LARGE")


def test_a_head_that_trickles_is_408_after_the_header_timeout(api: LiveApi) -> None:
    with _connect(api) as sock:
        _send(sock, b"GET /healthz HTTP/1.1\r\nhost: farm\r\n")  # ...and never the blank line
        assert _status_and_code(_read_all(sock)) == (408, "REQUEST_TIMEOUT")


def test_a_connection_that_never_speaks_is_closed(api: LiveApi) -> None:
    with _connect(api) as sock:
        assert _read_all(sock) == b""  # closed after the header timeout, nothing to answer


def test_keep_alive_requests_and_slow_bodies_are_not_cut(api: LiveApi) -> None:
    """The timer covers heads only: a second request on one connection, and a body slower than it."""
    with _connect(api) as sock:
        for _ in range(2):
            _send(sock, b"GET /healthz HTTP/1.1\r\nhost: farm\r\n\r\n")
            time.sleep(0.6)  # 1.2 s in all: longer than the header timeout, across two heads
            assert _read_response(sock) == 200
        body = b'{"name": "x"}'
        head = b"POST /v1/agents HTTP/1.1\r\nhost: farm\r\ncontent-type: application/json\r\n"
        _send(sock, head + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        time.sleep(1.5)
        _send(sock, body)
        status, code = _status_and_code(_read_all(sock))
        assert status == 401 and code != "REQUEST_TIMEOUT"
