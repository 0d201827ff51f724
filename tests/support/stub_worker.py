"""An in-process worker that runs the real WorkerRuntime over in-memory parts (dramatiq's stub_worker).

``StubQueue`` is the SessionQueue; ``StubWorker`` is the consumer: it takes a message whenever the
runtime has a free slot, like a Celery threads pool with ``concurrency = capacity`` and prefetch off,
and runs it with ``WorkerRuntime.arun_session`` on the runtime's own loop. Results are kept per
session id; tests wait on them (events, never sleeps).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import Future

from farm.kernel.contracts import RunSessionMessage, SessionTaskResult
from farm.worker.runtime import WorkerRuntime


class StubQueue:
    """SessionQueue in memory: FIFO; ``submit`` is safe from any thread."""

    def __init__(self) -> None:
        self.messages: deque[RunSessionMessage] = deque()
        self.submitted: list[RunSessionMessage] = []
        self.changed = threading.Condition()

    def submit(self, message: RunSessionMessage) -> None:
        with self.changed:
            self.messages.append(message)
            self.submitted.append(message)
            self.changed.notify_all()

    def take(self) -> RunSessionMessage | None:
        with self.changed:
            return self.messages.popleft() if self.messages else None


class StubWorker:
    """Consume ``queue`` into ``runtime`` (prewarmed and started by ``start``)."""

    def __init__(self, runtime: WorkerRuntime, queue: StubQueue) -> None:
        self.runtime = runtime
        self.queue = queue
        self.results: dict[str, Future[SessionTaskResult]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer: threading.Thread | None = None
        self._inflight = 0  # like a Celery threads pool: at most ``capacity`` deliveries at once

    def start(self) -> StubWorker:
        self.runtime.prewarm()
        self.runtime.start()
        self._consumer = threading.Thread(target=self._consume, name="stub-consumer", daemon=True)
        self._consumer.start()
        return self

    def result(self, session_id: str, timeout_s: float = 20.0) -> SessionTaskResult:
        with self.queue.changed:
            self.queue.changed.wait_for(lambda: session_id in self.results, timeout_s)
        return self.results[session_id].result(timeout_s)

    def started(self, session_id: str) -> bool:
        return session_id in self.results

    def stop(self) -> None:
        self._stop.set()
        with self.queue.changed:
            self.queue.changed.notify_all()
        if self._consumer is not None:
            self._consumer.join(5)
        self.runtime.stop()

    def _consume(self) -> None:
        while not self._stop.is_set():
            with self.queue.changed:
                self.queue.changed.wait_for(
                    lambda: self._stop.is_set() or (bool(self.queue.messages) and self._has_slot()),
                    timeout=0.05,
                )
                if self._stop.is_set() or not self._has_slot():
                    continue
                message = self.queue.messages.popleft() if self.queue.messages else None
                if message is None:
                    continue
                self._inflight += 1
            future = asyncio.run_coroutine_threadsafe(self.runtime.arun_session(message), self.runtime.loop)
            with self.queue.changed:
                self.results[message.session_id] = future
                self.queue.changed.notify_all()
            future.add_done_callback(lambda _f: self._done())

    def _has_slot(self) -> bool:
        return self.runtime.ready and self._inflight < self.runtime.slots.capacity

    def _done(self) -> None:
        with self.queue.changed:
            self._inflight -= 1
            self.queue.changed.notify_all()
