"""ModelPool: the prewarmed engines and the avatar cache of one worker process.

Created by the worker's process-init hook and handed down to tasks (never a module global). Its
state backs readiness: STARTING until ``prewarm`` finishes, READY after, ERROR when prewarm fails or
overruns its bound. Loaded avatars are kept in an LRU cache bounded in megabytes.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from farm.kernel.errors import FarmError, PrewarmFailed
from farm.render.base import AvatarSource, RenderEngine, Renderer

log = logging.getLogger(__name__)

EngineFactory = Callable[[str], RenderEngine]
"""Engine name (``farm.render.registry.ENGINES``) → a new, not yet prewarmed engine."""


class PoolState(enum.StrEnum):
    STARTING = "STARTING"  # created; engines loading (or not yet asked to)
    READY = "READY"  # engines prewarmed (or lazy by configuration): sessions may be taken
    ERROR = "ERROR"  # prewarm failed or timed out: this process must take no session


@dataclass
class _Cached:
    avatar: object
    size_mb: float


@dataclass
class PoolStats:
    """What the pool reports to the worker registry and benchmarks."""

    state: PoolState
    models: list[str]
    backend: str | None
    prewarm_s: float | None
    hot_avatars: list[str]
    cached_avatars: int
    cache_mb: float
    error: str | None = None
    avatar_hits: int = 0
    avatar_misses: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached_keys: list[str] = field(default_factory=list)  # avatar keys in the LRU, most recent last


class ModelPool:
    """Engines for ``models`` and an avatar LRU of at most ``avatar_cache_mb`` per process."""

    def __init__(
        self,
        models: Iterable[str],
        engine_factory: EngineFactory,
        *,
        avatar_cache_mb: float = 512.0,
    ) -> None:
        self.models = [str(m) for m in models]  # engine names
        self._factory = engine_factory
        self._cache_budget_mb = avatar_cache_mb
        self._engines: dict[str, RenderEngine] = {}
        self._cache: OrderedDict[tuple[str, str], _Cached] = OrderedDict()
        self._lock = threading.RLock()
        self._engine_lock = threading.Lock()
        self.state = PoolState.STARTING
        self.error: str | None = None
        self.prewarm_s: float | None = None
        self.hot_avatars: list[str] = []
        self._hits = 0
        self._misses = 0

    # ------------------------------------------------------------ prewarm
    def prewarm(self, timeout_s: float, hot: Iterable[tuple[str, AvatarSource]] = ()) -> None:
        """Load and warm every engine, then the hot avatars, within ``timeout_s``.

        READY on success; ERROR (and PrewarmFailed raised) on any failure or on overrunning the bound.
        """
        started = time.perf_counter()
        outcome: list[BaseException] = []

        def work() -> None:
            try:
                for model in self.models:
                    self.engine(model)
                for model, source in hot:
                    self.get_avatar(model, source)
                    self.hot_avatars.append(source.key)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=work, name="farm-prewarm", daemon=True)
        thread.start()
        thread.join(timeout_s)
        elapsed = time.perf_counter() - started
        self.prewarm_s = elapsed
        if thread.is_alive():
            self._fail(f"prewarm exceeded its {timeout_s:g} s bound")
        elif outcome:
            exc = outcome[0]
            detail = exc.message if isinstance(exc, FarmError) else f"{type(exc).__name__}: {exc}"
            self._fail(f"prewarm failed: {detail}", cause=exc)
        self.state = PoolState.READY
        log.info("prewarm finished", extra={"prewarm_s": round(elapsed, 3), "models": self.model_names})

    def mark_ready_lazy(self) -> None:
        """Skip prewarm (settings.prewarm off): engines load on first use (a cold start)."""
        self.state = PoolState.READY

    def _fail(self, message: str, cause: BaseException | None = None) -> None:
        self.state = PoolState.ERROR
        self.error = message
        log.error("prewarm failed", extra={"error": message})
        raise PrewarmFailed(message) from cause

    # ------------------------------------------------------------ engines and avatars
    def engine(self, model: str) -> RenderEngine:
        """The engine of ``model``, created and prewarmed on first use."""
        if model not in self.models:
            raise PrewarmFailed(f"this worker does not serve the {model} model")
        with self._engine_lock:
            engine = self._engines.get(model)
            if engine is None:
                engine = self._factory(model)
                engine.prewarm()
                self._engines[model] = engine
            return engine

    def get_avatar(self, model: str, source: AvatarSource) -> object:
        """A loaded avatar from the LRU cache, loading (and evicting) as needed."""
        key = (model, source.key)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self._hits += 1
                return cached.avatar
        engine = self.engine(model)
        avatar = engine.load_avatar(source)
        size_mb = float(engine.avatar_size_mb(avatar))
        with self._lock:
            self._misses += 1
            self._cache[key] = _Cached(avatar, size_mb)
            self._cache.move_to_end(key)
            self._evict()
        return avatar

    def _evict(self) -> None:
        """Drop least recently used avatars over the budget (never the one just added)."""
        while len(self._cache) > 1 and self.cache_mb > self._cache_budget_mb:
            key, _ = self._cache.popitem(last=False)
            log.info("avatar evicted", extra={"avatar": key[1], "model": str(key[0])})

    def open_session(self, model: str, source: AvatarSource, session_id: str) -> Renderer:
        """A per-session renderer over a cached avatar."""
        avatar = self.get_avatar(model, source)
        return self.engine(model).open_session(avatar, session_id)

    # ------------------------------------------------------------ observability
    @property
    def cache_mb(self) -> float:
        with self._lock:
            return sum(c.size_mb for c in self._cache.values())

    @property
    def model_names(self) -> list[str]:
        return [str(m) for m in self.models]

    @property
    def backend(self) -> str | None:
        backends = sorted({e.backend for e in self._engines.values()})
        return ",".join(backends) if backends else None

    def stats(self) -> PoolStats:
        with self._lock:
            cached = len(self._cache)
            keys = [key for _, key in self._cache]
        return PoolStats(
            state=self.state,
            models=self.model_names,
            backend=self.backend,
            prewarm_s=self.prewarm_s,
            hot_avatars=list(self.hot_avatars),
            cached_avatars=cached,
            cache_mb=self.cache_mb,
            error=self.error,
            avatar_hits=self._hits,
            avatar_misses=self._misses,
            cached_keys=keys,
        )

    def holds(self, model: str, key: str) -> bool:
        """Whether the avatar ``key`` of ``model`` is in the cache now (no load, no LRU touch)."""
        with self._lock:
            return (model, key) in self._cache

    def close(self) -> None:
        """Release every engine. Idempotent."""
        with self._engine_lock:
            engines, self._engines = list(self._engines.values()), {}
        with self._lock:
            self._cache.clear()
        for engine in engines:
            try:
                engine.close()
            except Exception:
                log.exception("engine close failed")
