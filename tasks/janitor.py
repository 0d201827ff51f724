"""Broker state of dead workers: their private (warm-routing) queues and kombu bindings.

Per worker, the broker holds: for a render worker consuming its private queue
``names.worker_queue(worker_id)`` (its own direct exchange), kombu's ``_kombu.binding.<queue>`` SET
(and the queue's LIST while it has messages); for every Celery worker, its member of the remote
control fanout table ``_kombu.binding.celery.pidbox``; and its ``names.WORKERS_INDEX_KEY`` member.
A clean stop removes them; a worker killed with -9 cannot. ``WorkerQueueJanitor`` indexes every
worker at boot (``names.WORKER_QUEUES_KEY``) and, from the reaper pass (under the fleet-wide reaper
lock, at most every ``sweep_every_s``), removes all of that for each indexed worker whose registry
entry expired. Messages still on a dead worker's private queue belong to QUEUED sessions the
stranded-session rescuer re-sends to the shared queue, so nothing is lost by deleting it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from farm.infra.redis_conn import redis_errors
from farm.kernel import names
from farm.kernel.contracts import WorkerInfo
from farm.kernel.errors import FarmError

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 5.0
PIDBOX_BINDING_KEY = "_kombu.binding.celery.pidbox"
"""kombu's binding table of Celery's remote-control fanout exchange (one member per worker node)."""
_KOMBU_SEP = "\x06\x16"  # kombu.transport.redis.Channel.sep: routing key, pattern, queue


class WorkerQueueJanitor:
    """``add`` when a worker declares its private queue, ``remove`` when it deletes it, ``sweep``
    (reaper cleaner) for the workers that died holding one."""

    def __init__(
        self,
        client: redis.Redis,
        delete_queue: Callable[[str], None],
        *,
        sweep_every_s: float = SWEEP_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._r = client
        self._delete_queue = delete_queue
        self._every_s = sweep_every_s
        self._clock = clock
        self._next_at = 0.0

    @redis_errors
    def add(self, worker_id: str) -> None:
        self._r.zadd(names.WORKER_QUEUES_KEY, {worker_id: time.time()})

    @redis_errors
    def remove(self, worker_id: str) -> None:
        self._r.zrem(names.WORKER_QUEUES_KEY, worker_id)

    @redis_errors
    def sweep(self) -> list[str]:
        """Delete the private queue and binding of every indexed worker without a registry entry."""
        now = self._clock()
        if now < self._next_at:
            return []
        self._next_at = now + self._every_s
        indexed = [str(w) for w in self._r.zrange(names.WORKER_QUEUES_KEY, 0, -1)]
        if not indexed:
            return []
        entries = self._r.mget([names.worker_key(w) for w in indexed])
        live_nodes = {WorkerInfo.model_validate_json(e).hostname for e in entries if e is not None}
        swept: list[str] = []
        for worker_id in [w for w, entry in zip(indexed, entries, strict=True) if entry is None]:
            try:
                self._delete_queue(worker_id)
            except FarmError:
                log.warning("dead worker's queue not deleted", extra={"worker_id": worker_id})
                continue
            node = worker_id.rpartition(":")[0]  # worker ids are "<celery nodename>:<pid>"
            pipe = self._r.pipeline(transaction=False)
            if node and node not in live_nodes:  # prefork children share their parent's node
                pipe.srem(PIDBOX_BINDING_KEY, f"{_KOMBU_SEP}{_KOMBU_SEP}{node}.celery.pidbox")
            pipe.zrem(names.WORKERS_INDEX_KEY, worker_id)
            pipe.zrem(names.WORKER_QUEUES_KEY, worker_id)
            pipe.execute()
            swept.append(worker_id)
            log.info("dead worker's private queue deleted", extra={"worker_id": worker_id})
        return swept
