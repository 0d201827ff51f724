"""Worker registry: which render workers are up, READY or not, with capacity and prewarm facts.

Each worker publishes a ``contracts.WorkerInfo`` under a TTL key and refreshes it from its heartbeat;
a worker that dies simply expires. ``GET /v1/fleet`` and the benchmarks read ``list()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis

from farm.infra.redis_conn import redis_errors, require_text_client
from farm.kernel import names
from farm.kernel.contracts import WorkerInfo


class RedisWorkerRegistry:
    """WorkerRegistry over Redis: ``names.worker_key`` (TTL) + ``names.WORKERS_INDEX_KEY`` (ZSET)."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = require_text_client(client)

    @redis_errors
    def publish(self, info: WorkerInfo, ttl_s: float) -> None:
        info = info.model_copy(update={"heartbeat_at": time.time()})
        pipe = self._r.pipeline(transaction=True)
        pipe.set(names.worker_key(info.worker_id), info.model_dump_json(), px=max(1, int(ttl_s * 1000)))
        pipe.zadd(names.WORKERS_INDEX_KEY, {info.worker_id: info.heartbeat_at})
        pipe.execute()

    @redis_errors
    def remove(self, worker_id: str) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(names.worker_key(worker_id))
        pipe.zrem(names.WORKERS_INDEX_KEY, worker_id)
        pipe.execute()

    @redis_errors
    def list(self) -> list[WorkerInfo]:
        ids: list[str] = self._r.zrange(names.WORKERS_INDEX_KEY, 0, -1)
        if not ids:
            return []
        raws: list[str | None] = self._r.mget([names.worker_key(w) for w in ids])
        alive: list[WorkerInfo] = []
        expired: list[str] = []
        for worker_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                expired.append(worker_id)
            else:
                alive.append(WorkerInfo.model_validate_json(raw))
        if expired:
            self._r.zrem(names.WORKERS_INDEX_KEY, *expired)
        return sorted(alive, key=lambda i: i.worker_id)


class MemoryWorkerRegistry:
    """WorkerRegistry in a dict with TTLs on an injectable clock (unit tests only)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._workers: dict[str, tuple[WorkerInfo, float]] = {}

    def publish(self, info: WorkerInfo, ttl_s: float) -> None:
        with self._lock:
            self._workers[info.worker_id] = (info, self._clock() + ttl_s)

    def remove(self, worker_id: str) -> None:
        with self._lock:
            self._workers.pop(worker_id, None)

    def list(self) -> list[WorkerInfo]:
        now = self._clock()
        with self._lock:
            for wid in [w for w, (_, exp) in self._workers.items() if exp <= now]:
                del self._workers[wid]
            return sorted((info for info, _ in self._workers.values()), key=lambda i: i.worker_id)
