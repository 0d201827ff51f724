"""The only code that does I/O: run a flow (``_core``) over httpx, synchronously or with asyncio.

A driver sends each ``HttpRequest`` the flow yields and hands back an ``HttpResponse`` (or a
``TransportFailure`` when httpx raised), and waits out each ``Sleep``. It decides nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

import httpx

from ._core import Flow, HttpRequest, HttpResponse, Reply, Sleep, TransportFailure

T = TypeVar("T")


def _httpx_kwargs(request: HttpRequest) -> dict[str, Any]:
    """httpx's arguments; without ``timeout_s`` the client's own timeout applies."""
    kwargs: dict[str, Any] = {"headers": dict(request.headers)}
    if request.timeout_s is not None:
        kwargs["timeout"] = request.timeout_s
    for name in ("params", "json", "files", "data"):
        value = getattr(request, name)
        if value is not None:
            kwargs[name] = value
    return kwargs


def _response(response: httpx.Response, started_s: float) -> HttpResponse:
    elapsed_ms = (time.perf_counter() - started_s) * 1000.0
    return HttpResponse(response.status_code, response.headers, response.content, elapsed_ms)


def _failure(exc: httpx.HTTPError) -> TransportFailure:
    kind = "TIMEOUT" if isinstance(exc, httpx.TimeoutException) else "CONNECTION_ERROR"
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    return TransportFailure(kind, f"{type(exc).__name__}: {exc}", sent=not never_sent)


def drive_sync(flow: Flow[T], http: httpx.Client) -> T:
    """Run ``flow`` to its result with a blocking httpx client."""
    reply: Reply = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration as done:
            result: T = done.value
            return result
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            reply = None
            continue
        started = time.perf_counter()
        try:
            answer = http.request(step.method, step.path, **_httpx_kwargs(step))
        except httpx.HTTPError as exc:
            reply = _failure(exc)
        else:
            reply = _response(answer, started)


async def drive_async(flow: Flow[T], http: httpx.AsyncClient) -> T:
    """Run ``flow`` to its result with an asyncio httpx client."""
    reply: Reply = None
    while True:
        try:
            step = flow.send(reply)
        except StopIteration as done:
            result: T = done.value
            return result
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            reply = None
            continue
        started = time.perf_counter()
        try:
            answer = await http.request(step.method, step.path, **_httpx_kwargs(step))
        except httpx.HTTPError as exc:
            reply = _failure(exc)
        else:
            reply = _response(answer, started)
