"""The sans-IO core: every request the SDK makes, how its answer is read, and when to try again.

Nothing here touches a socket or sleeps. An operation is a *flow*: a generator that yields what it
needs done (``HttpRequest``: send this; ``Sleep``: wait this long) and is sent back what happened
(``HttpResponse``, or ``TransportFailure`` when no answer came). Its return value is the result.
The sync and async clients (``_drivers``) only move bytes and sleep, the way h11 or openai-python's
base client split protocol from I/O, so retries, backoff, polling and parsing exist once.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import AvatarError, NetworkError, error_for, is_retryable

log = logging.getLogger("avatar_farm_client")

T = TypeVar("T")

HEADER_API_SECRET = "api-secret"
HEADER_IDEMPOTENCY = "Idempotency-Key"
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP call to make. ``idempotent``: safe to send again after an ambiguous failure."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    files: Mapping[str, tuple[str, bytes]] | None = None
    data: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None  # None: the client's own timeout (request_timeout_s)
    idempotent: bool = True
    raw: bool = False  # the caller wants the body's bytes, not its JSON


@dataclass(frozen=True)
class HttpResponse:
    """What came back (status, lower-cased headers, body bytes) and how long it took."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class TransportFailure:
    """No answer: the connection failed (``CONNECTION_ERROR``) or timed out (``TIMEOUT``)."""

    kind: str
    message: str
    sent: bool = True  # False when the request surely never reached the farm (connect refused)


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = HttpRequest | Sleep
Reply = HttpResponse | TransportFailure | None
Flow = Generator[Step, Reply, T]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped; a 429's ``Retry-After`` wins.

    Retried: transport failures, transient 5xx and rate limits, ``max_retries`` times. A request that
    is not idempotent (a POST without an Idempotency-Key) is retried only when it cannot have been
    processed: the connection was refused, or the answer was a 429.
    """

    max_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = MAX_BACKOFF_S
    jitter: Callable[[], float] = field(default=lambda: random.uniform(0.5, 1.5), compare=False)

    def delay_s(self, attempt: int, error: AvatarError, request: HttpRequest, sent: bool) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``; None: give up and raise ``error``."""
        if attempt >= self.max_retries or not is_retryable(error):
            return None
        if not request.idempotent and sent and error.code != "RATE_LIMITED":
            return None
        if error.retry_after_s is not None:
            return min(error.retry_after_s, self.max_backoff_s)
        return min(self.backoff_s * (2**attempt) * self.jitter(), self.max_backoff_s)


def body_of(response: HttpResponse) -> Any:
    """The JSON body, or the text when it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        return response.content.decode("utf-8", "replace")


def read(request: HttpRequest, reply: Reply) -> Any:
    """The answer's body (bytes when ``request.raw``), or the AvatarError it stands for."""
    if isinstance(reply, TransportFailure):
        raise NetworkError(reply.message, code=reply.kind)
    assert reply is not None, "a driver must answer every HttpRequest"
    log.debug("%s %s -> %d in %.1f ms", request.method, request.path, reply.status, reply.elapsed_ms)
    if reply.status >= 400:
        raise error_for(reply.status, body_of(reply), reply.headers)
    return reply.content if request.raw else body_of(reply)


def call(request: HttpRequest, policy: RetryPolicy) -> Flow[Any]:
    """Send ``request`` until it succeeds or the policy gives up; the body as ``read`` returns it."""
    attempt = 0
    while True:
        reply = yield request
        try:
            return read(request, reply)
        except AvatarError as error:
            sent = not isinstance(reply, TransportFailure) or reply.sent
            wait_s = policy.delay_s(attempt, error, request, sent)
            if wait_s is None:
                raise
            log.debug("retry %d of %s after %s in %.2f s", attempt + 1, request.path, error.code, wait_s)
            attempt += 1
            yield Sleep(wait_s)


def probe(path: str, timeout_s: float = 2.0) -> Flow[bool]:
    """True when ``path`` answers 200; never raises, never retries (health checks)."""
    reply = yield HttpRequest("GET", path, timeout_s=timeout_s)
    return isinstance(reply, HttpResponse) and reply.status == 200
