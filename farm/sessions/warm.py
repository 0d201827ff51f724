"""Warm routing: send a session to a READY worker that already holds its avatar, else the shared queue.

Every render worker process (threads/solo pools) consumes, besides its model's shared queue
(``essence`` / ``expression``, the Redis lists KEDA scales on), a private queue
``names.worker_queue(worker_id)`` that it advertises in the worker registry (``WorkerInfo.warm_queue``)
with the avatar keys in its cache and its free slots. ``WarmRouter.pick`` reads the registry (cached
for ``cache_s``; re-read early when only its own count of recent sends rules the holders out) and
names the worker to send a session to, or None for the shared queue. A worker with no free slot is
never picked: a session never waits for a busy worker when another can serve.

A message on a private queue can be stranded (the worker died, or filled up after the pick). The
session's truth is in the store, so ``StrandedRescuer`` (run from the workers' heartbeat next to the
reaper; one worker per interval holds ``names.RESCUER_LOCK_KEY``) reads only the index of
warm-routed never-claimed sessions (``names.WARM_PENDING_KEY``, kept by the store's writes), never
the live sessions: its cost is the sends of the last seconds, flat in workers and live sessions.
It re-submits a never-claimed QUEUED session to the shared queue once when its target left the
registry or kept it waiting longer than ``max_wait_s``; whichever delivery claims first runs it, the
other is a duplicate that exits (claims are idempotent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from farm.infra.redis_conn import redis_errors
from farm.kernel import names
from farm.kernel.contracts import RunSessionMessage, WorkerInfo
from farm.kernel.domain import ModelKind, Session, SessionState
from farm.sessions.base import SessionQueue, WorkerRegistry

log = logging.getLogger(__name__)

REGISTRY_CACHE_S = 1.0
MIN_REREAD_S = 0.02
"""Re-read the registry early (when our own send count is all that rules a holder out) at most this often."""
GONE_GRACE_S = 0.5
"""A target missing from the registry for a session younger than this may just be a stale read."""

_MODEL_QUEUES = {ModelKind.ESSENCE: names.QUEUE_ESSENCE, ModelKind.EXPRESSION: names.QUEUE_EXPRESSION}


class WarmRouter:
    """Pick the worker whose private queue should get a session (API side; thread-safe)."""

    def __init__(
        self,
        registry: WorkerRegistry,
        *,
        cache_s: float = REGISTRY_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._workers: list[WorkerInfo] = []
        self._read_at: float | None = None
        self._sent: dict[str, int] = {}  # sessions sent per worker since the last registry read

    def pick(self, model: ModelKind, avatar_key: str | None) -> str | None:
        """worker_id of a READY worker serving ``model`` that holds ``avatar_key`` and has a free slot.

        Among several, the one with the most free slots. None (use the shared queue) when there is
        none, when ``avatar_key`` is None, or when the registry cannot be read.
        """
        if avatar_key is None:
            return None
        queue = _MODEL_QUEUES[ModelKind(model)]
        with self._lock:
            best, exhausted = self._best(self._refresh(), queue, avatar_key)
            if best is None and exhausted and self._clock() - (self._read_at or 0.0) >= MIN_REREAD_S:
                # Only our own count of recent sends says the holders are full: sessions may have
                # ended since the last read, so look again rather than send a warm session away.
                best, _ = self._best(self._refresh(force=True), queue, avatar_key)
            if best is None:
                return None
            self._sent[best] = self._sent.get(best, 0) + 1  # until the next read shows it
            return best

    def _best(self, workers: list[WorkerInfo], queue: str, avatar_key: str) -> tuple[str | None, bool]:
        """The holder with the most free slots, and whether a holder was left out by our sends alone."""
        best: tuple[int, str] | None = None
        exhausted = False
        for info in workers:
            if info.warm_queue is None or queue not in info.queues or info.free_slots <= 0:
                continue
            if avatar_key not in info.cached_avatars and avatar_key not in info.hot_avatars:
                continue
            free = info.free_slots - self._sent.get(info.worker_id, 0)
            if free <= 0:
                exhausted = True
            elif best is None or free > best[0]:
                best = (free, info.worker_id)
        return (best[1] if best else None), exhausted

    def _refresh(self, *, force: bool = False) -> list[WorkerInfo]:
        now = self._clock()
        if force or self._read_at is None or now - self._read_at >= self._cache_s:
            try:
                self._workers = self._registry.list()
            except Exception:
                log.warning("worker registry unreadable: shared queue only")
                self._workers = []
            self._read_at = now
            self._sent.clear()
        return self._workers


def stranded(sessions: Iterable[Session], alive: set[str], *, now: float, max_wait_s: float) -> list[Session]:
    """Never-claimed QUEUED sessions on a private queue whose worker is gone or kept them waiting."""
    out: list[Session] = []
    for session in sessions:
        if session.state is not SessionState.QUEUED or session.routed_to is None or session.attempts:
            continue
        waited_s = now - session.updated_at
        gone = session.routed_to not in alive and waited_s >= GONE_GRACE_S
        if gone or waited_s >= max_wait_s:
            out.append(session)
    return out


@dataclass
class StrandedRescuer:
    """Re-submit stranded warm-routed sessions to their shared queue, once each (Redis SET NX marker)."""

    client: redis.Redis
    registry: WorkerRegistry
    queue: SessionQueue
    max_wait_s: float
    lock_s: float = 1.0
    """At most one rescue per this interval across the fleet (0: every call, tests)."""
    holder: str = "rescuer"
    clock: Callable[[], float] = time.time

    @redis_errors
    def run_once(self) -> list[str]:
        if self.lock_s > 0 and not self.client.set(
            names.RESCUER_LOCK_KEY, self.holder, nx=True, px=max(1, int(self.lock_s * 1000))
        ):
            return []  # another worker rescued within the interval
        ids: list[str] = self.client.zrange(names.WARM_PENDING_KEY, 0, -1)
        if not ids:
            return []
        raws = self.client.mget([names.session_key(i) for i in ids])
        gone = [sid for sid, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:  # expired records (never claimed, retention passed): drop them from the index
            self.client.zrem(names.WARM_PENDING_KEY, *gone)
        sessions = [Session.model_validate_json(raw) for raw in raws if raw is not None]
        alive = {info.worker_id for info in self.registry.list()}
        rescued: list[str] = []
        for session in stranded(sessions, alive, now=self.clock(), max_wait_s=self.max_wait_s):
            key = names.session_rerouted_key(session.id)
            if not self.client.set(key, session.routed_to or "", nx=True, ex=names.SESSION_RETENTION_S):
                continue
            self.queue.submit(RunSessionMessage(session_id=session.id, model=session.model))
            rescued.append(session.id)
            log.warning(
                "warm-routed session re-submitted to the shared queue",
                extra={"session_id": session.id, "worker_id": session.routed_to},
            )
        return rescued
