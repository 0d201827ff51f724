"""FrameBatcher: many sessions, one inference per tick, exactly one output per input.

One batcher per worker process and model. Each session ``join()``s and gets a ``BatchClient``;
``client.submit(item)`` returns a ``concurrent.futures.Future`` for that item's output. A single
daemon thread forms batches and calls ``infer(items) -> outputs`` once per batch. A batch closes
when the first of these happens:

* it holds ``max_batch_size`` items (full);
* every session currently joined has a request waiting (adaptive: with N sessions at 25 fps the
  batch is N and fires as soon as the N-th frame request arrives, not on a timer);
* the oldest waiting request has waited ``max_wait_s`` (the tick, 40 ms by default), so a session
  never waits for a peer that is slow to ask.

Guarantees: outputs go back in input order, so each session receives its own frames in the order
it submitted them (no cross-talk); ``infer`` must return exactly one output per input or every
request of that batch fails with ``BatchSizeMismatch`` carrying both counts; an ``infer`` error
fails that batch's futures and the batcher carries on. Results are handed over through futures, so
a consumer that is slow to collect its frame never stalls the thread or the other sessions.
``leave()`` cancels the client's requests that have not entered a batch yet.

Threads rather than asyncio, because the Renderer API is synchronous (``next_frame()`` submits and
waits on its future) and inference releases the GIL (torch, onnxruntime, TensorRT).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from farm.kernel.errors import BatcherClosed, BatchSizeMismatch

log = logging.getLogger(__name__)

InT = TypeVar("InT")
OutT = TypeVar("OutT")


@dataclass(slots=True)
class _Request(Generic[InT, OutT]):
    client_id: int
    item: InT
    future: Future[OutT]
    submitted_at: float


@dataclass(slots=True)
class BatcherStats:
    """Counters for observability and the benchmark."""

    batches: int = 0
    items: int = 0
    failed_batches: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)  # size -> how many batches had it

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class BatchClient(Generic[InT, OutT]):
    """One session's handle on a FrameBatcher."""

    def __init__(self, batcher: FrameBatcher[InT, OutT], client_id: int) -> None:
        self._batcher = batcher
        self.client_id = client_id
        self._left = False

    def submit(self, item: InT) -> Future[OutT]:
        """Queue one item; the future resolves to its output (or its batch's error)."""
        if self._left:
            raise BatcherClosed("this session has left the batcher", client_id=self.client_id)
        return self._batcher._submit(self.client_id, item)

    def leave(self) -> None:
        """Stop taking part; pending (not yet batched) requests are cancelled. Idempotent."""
        if not self._left:
            self._left = True
            self._batcher._leave(self.client_id)


class FrameBatcher(Generic[InT, OutT]):
    """Cross-session dynamic batcher with a max batch size and a max wait (see the module docstring)."""

    def __init__(
        self,
        infer: Callable[[list[InT]], Sequence[OutT]],
        *,
        max_batch_size: int,
        max_wait_s: float = 0.040,
        name: str = "frame-batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self._infer = infer
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.name = name
        self.stats = BatcherStats()
        self._cond = threading.Condition()
        self._pending: deque[_Request[InT, OutT]] = deque()
        self._members: set[int] = set()
        self._ids = itertools.count(1)
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the batching thread (idempotent)."""
        with self._cond:
            if self._closed:
                raise BatcherClosed("the batcher is closed", name=self.name)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the thread; requests not yet batched fail with BatcherClosed. Idempotent."""
        with self._cond:
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        closed = BatcherClosed("the batcher closed before this frame ran", name=self.name)
        for request in dropped:
            if request.future.set_running_or_notify_cancel():
                request.future.set_exception(closed)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def join(self) -> BatchClient[InT, OutT]:
        """Register a session; from the next batch on it counts towards the adaptive batch size."""
        with self._cond:
            if self._closed:
                raise BatcherClosed("the batcher is closed", name=self.name)
            client_id = next(self._ids)
            self._members.add(client_id)
            return BatchClient(self, client_id)

    @property
    def members(self) -> int:
        with self._cond:
            return len(self._members)

    # ------------------------------------------------------------------ client side
    def _submit(self, client_id: int, item: InT) -> Future[OutT]:
        future: Future[OutT] = Future()
        with self._cond:
            if self._closed:
                raise BatcherClosed("the batcher is closed", name=self.name)
            if client_id not in self._members:
                raise BatcherClosed("this session has left the batcher", client_id=client_id)
            self._pending.append(_Request(client_id, item, future, time.monotonic()))
            self._cond.notify_all()
        return future

    def _leave(self, client_id: int) -> None:
        with self._cond:
            self._members.discard(client_id)
            kept = deque(r for r in self._pending if r.client_id != client_id)
            dropped = [r for r in self._pending if r.client_id == client_id]
            self._pending = kept
            self._cond.notify_all()  # the remaining members may now make a full batch
        for request in dropped:
            request.future.cancel()

    # ------------------------------------------------------------------ batching thread
    def _ready(self, now: float) -> bool:
        if not self._pending:
            return False
        if len(self._pending) >= self.max_batch_size:
            return True
        waiting = {r.client_id for r in self._pending}
        if self._members and waiting >= self._members:
            return True
        return now - self._pending[0].submitted_at >= self.max_wait_s

    def _next_batch(self) -> list[_Request[InT, OutT]] | None:
        """Block until a batch is ready (or the batcher closes: None)."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._ready(now):
                    count = min(self.max_batch_size, len(self._pending))
                    return [self._pending.popleft() for _ in range(count)]
                if self._pending:
                    self._cond.wait(max(0.0, self._pending[0].submitted_at + self.max_wait_s - now))
                else:
                    self._cond.wait()
            return None

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if live:
                self._run(live)

    def _run(self, batch: list[_Request[InT, OutT]]) -> None:
        try:
            outputs = self._infer([r.item for r in batch])
            if len(outputs) != len(batch):
                raise BatchSizeMismatch(
                    f"inference returned {len(outputs)} outputs for {len(batch)} inputs",
                    inputs=len(batch),
                    outputs=len(outputs),
                )
        except Exception as exc:
            self.stats.failed_batches += 1
            log.exception("batch inference failed", extra={"batcher": self.name, "batch_size": len(batch)})
            for request in batch:
                request.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.batch_sizes[len(batch)] = self.stats.batch_sizes.get(len(batch), 0) + 1
        for request, output in zip(batch, outputs, strict=True):
            request.future.set_result(output)
