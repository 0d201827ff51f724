"""Worker liveness: a short-TTL key per worker process, beaten by a dedicated thread.

A session lease lives ``lease_ttl_s`` (seconds) so that a worker whose event loop is busy for a
moment does not lose its sessions. A worker that DIES, though, must be noticed at once: each worker
process beats ``names.worker_alive_key`` every ``liveness_renew_s`` from its own thread (a busy
event loop cannot starve it) with a TTL of ``liveness_ttl_s``, and deletes it on a clean stop. The
reaper treats a live session whose lease holder has no liveness key as orphaned: it revokes the
lease (compare-and-delete on its value, so the dead holder can never renew it) and re-queues it.

``Heart`` is the beating thread; ``WorkerLiveness`` the seam (Redis, in-memory).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import redis

from farm.infra.redis_conn import redis_errors
from farm.kernel import names
from farm.kernel.errors import FarmError

log = logging.getLogger(__name__)


class WorkerLiveness(Protocol):
    def beat(self, worker_id: str, ttl_s: float) -> bool:
        """Refresh the worker's liveness key; False when it had lapsed (expired or deleted) before."""
        ...

    def forget(self, worker_id: str) -> None:
        """Delete the key (clean stop): the worker's sessions are orphaned at once."""
        ...

    def alive(self, worker_ids: Iterable[str]) -> set[str]:
        """Which of ``worker_ids`` have a liveness key now."""
        ...


class RedisWorkerLiveness:
    """``names.worker_alive_key``: ``SET … PX ttl GET`` (one round trip tells a lapse too)."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @redis_errors
    def beat(self, worker_id: str, ttl_s: float) -> bool:
        previous = self._r.set(names.worker_alive_key(worker_id), "1", px=max(1, int(ttl_s * 1000)), get=True)
        return previous is not None

    @redis_errors
    def forget(self, worker_id: str) -> None:
        self._r.delete(names.worker_alive_key(worker_id))

    @redis_errors
    def alive(self, worker_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(worker_ids))
        if not ids:
            return set()
        pipe = self._r.pipeline(transaction=False)
        for worker_id in ids:
            pipe.exists(names.worker_alive_key(worker_id))
        return {w for w, found in zip(ids, pipe.execute(), strict=True) if found}


class MemoryWorkerLiveness:
    """In-memory liveness with an injectable clock (unit tests only)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def beat(self, worker_id: str, ttl_s: float) -> bool:
        with self._lock:
            had = self._until.get(worker_id, 0.0) > self._clock()
            self._until[worker_id] = self._clock() + ttl_s
            return had

    def forget(self, worker_id: str) -> None:
        with self._lock:
            self._until.pop(worker_id, None)

    def alive(self, worker_ids: Iterable[str]) -> set[str]:
        now = self._clock()
        with self._lock:
            return {w for w in worker_ids if self._until.get(w, 0.0) > now}


class Heart:
    """The beating thread of one worker process: ``start → stop``.

    ``on_lapse`` runs (on this thread) when a beat finds the key had lapsed: the reaper may already
    have taken this worker's sessions, so the runtime abandons them (the fenced lease would make
    them stop at their next renewal anyway; this is sooner). ``steady`` is True once beats have
    succeeded, without a lapse, a Redis error or a late answer, for a whole TTL: a reaper trusts the
    liveness of others only then (after a Redis restart every key is gone at once, after a pause
    they all lapse at once, and workers need a beat to put theirs back).
    """

    def __init__(
        self,
        liveness: WorkerLiveness,
        worker_id: str,
        *,
        ttl_s: float,
        renew_s: float,
        on_lapse: Callable[[], object] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._liveness = liveness
        self._worker_id = worker_id
        self._ttl_s = ttl_s
        self._renew_s = renew_s
        self._on_lapse = on_lapse
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ok_since: float | None = None
        self._unreachable = False  # the last beat failed (Redis unreachable)
        self._sent_at: float | None = None  # the beat waiting on Redis now, if any
        # A beat answered later than this may have let the key lapse (renew_s after the last beat,
        # plus this, is a whole TTL); shorter waits, a busy CPU's included, cannot have.
        self._late_s = max(renew_s, ttl_s - renew_s)

    @property
    def steady(self) -> bool:
        """Beats succeeded on time for a whole TTL, and none is waiting on Redis for too long.

        The second half matters right after a pause: Redis may answer other clients' reads before
        this thread has seen its own late answer, so a beat still in flight counts as unsteady."""
        now, sent_at, ok_since = self._clock(), self._sent_at, self._ok_since
        if sent_at is not None and now - sent_at > self._late_s:
            return False
        return ok_since is not None and now - ok_since >= self._ttl_s

    def start(self) -> None:
        """Beat once (synchronously: no claim can precede the first beat), then from a thread."""
        if self._thread is not None:
            return
        self._beat(first=True)
        self._thread = threading.Thread(target=self._run, name="farm-liveness", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and delete the key (the reaper re-queues what this worker still held)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._liveness.forget(self._worker_id)
        except FarmError:
            log.warning("liveness key not deleted", extra={"worker_id": self._worker_id})

    def _run(self) -> None:
        while not self._stop.wait(self._renew_s):
            self._beat(first=False)

    def _beat(self, *, first: bool) -> None:
        self._sent_at = self._clock()
        try:
            self._beat_once(self._sent_at, first=first)
        finally:
            self._sent_at = None  # only after the outcome (ok_since) is recorded

    def _beat_once(self, sent_at: float, *, first: bool) -> None:
        try:
            held = self._liveness.beat(self._worker_id, self._ttl_s)
        except FarmError:
            self._ok_since = None
            self._unreachable = True
            log.warning("liveness beat failed", extra={"worker_id": self._worker_id})
            return
        after_outage, self._unreachable = self._unreachable, False
        if self._clock() - sent_at > self._late_s:
            # Redis answered late (paused, failing over): keys lapsed by its clock while every beat
            # waited, so a lapse now says nothing about this worker. Steadiness starts again.
            log.warning("liveness beat answered late", extra={"worker_id": self._worker_id})
            self._ok_since = self._clock()
            return
        if held or first or after_outage:
            # After beats failed (Redis down, restarted, failing over) the key lapsed for everyone
            # at once, not because this worker was judged dead: reapers only judge once their own
            # beats are steady for a TTL, and this beat is back sooner, so the sessions stay here.
            # Had a reaper revoked a lease meanwhile, its holder still stops at its next renewal.
            if self._ok_since is None:
                self._ok_since = self._clock()
            return
        self._ok_since = self._clock()
        log.warning("liveness lapsed: abandoning its sessions", extra={"worker_id": self._worker_id})
        try:
            self._on_lapse()
        except Exception:
            log.exception("liveness lapse handler failed", extra={"worker_id": self._worker_id})
