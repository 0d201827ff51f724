"""ModelPool: bounded, observable prewarm and an avatar LRU bounded in megabytes."""

from __future__ import annotations

import threading

import pytest

from farm.kernel.domain import ModelKind
from farm.kernel.errors import PrewarmFailed
from farm.render.base import AvatarSource, RenderEngine
from farm.render.pool import ModelPool, PoolState
from tests.support.tone_engine import ToneEngine

pytestmark = pytest.mark.unit


def test_prewarm_loads_engines_and_hot_avatars_then_reports_ready() -> None:
    engine = ToneEngine()
    pool = ModelPool([ModelKind.ESSENCE], lambda _: engine)
    assert pool.state is PoolState.STARTING
    pool.prewarm(timeout_s=10, hot=[(ModelKind.ESSENCE, AvatarSource(key="A1"))])
    stats = pool.stats()
    assert stats.state is PoolState.READY
    assert engine.prewarmed.is_set()
    assert stats.hot_avatars == ["A1"] and stats.cached_avatars == 1
    assert stats.models == ["essence"] and stats.backend == "numpy"
    assert stats.prewarm_s is not None and stats.prewarm_s >= 0


def test_a_failing_prewarm_leaves_the_pool_in_error() -> None:
    pool = ModelPool([ModelKind.ESSENCE], lambda _: ToneEngine(prewarm_error="weights missing"))
    with pytest.raises(PrewarmFailed, match="weights missing"):
        pool.prewarm(timeout_s=10)
    assert pool.state is PoolState.ERROR
    assert pool.error is not None and "weights missing" in pool.error


def test_a_prewarm_that_overruns_its_bound_is_an_error() -> None:
    release = threading.Event()

    class Stuck(ToneEngine):
        def prewarm(self) -> None:
            release.wait(10)

    pool = ModelPool([ModelKind.ESSENCE], lambda _: Stuck())
    try:
        with pytest.raises(PrewarmFailed, match="bound"):
            pool.prewarm(timeout_s=0.1)
        assert pool.state is PoolState.ERROR
    finally:
        release.set()


def test_the_avatar_cache_evicts_least_recently_used_over_budget() -> None:
    engine = ToneEngine()  # 1 MB per avatar
    pool = ModelPool([ModelKind.ESSENCE], lambda _: engine, avatar_cache_mb=2.0)
    for key in ("a", "b", "a", "c"):  # "a" used again, so "b" is the least recent when "c" arrives
        pool.get_avatar(ModelKind.ESSENCE, AvatarSource(key=key))
    assert engine.loaded == ["a", "b", "c"]
    pool.get_avatar(ModelKind.ESSENCE, AvatarSource(key="a"))
    assert engine.loaded == ["a", "b", "c"]
    pool.get_avatar(ModelKind.ESSENCE, AvatarSource(key="b"))
    assert engine.loaded == ["a", "b", "c", "b"]
    assert pool.cache_mb <= 2.0


def test_a_pool_refuses_models_it_does_not_serve() -> None:
    def factory(_: ModelKind) -> RenderEngine:
        return ToneEngine()

    pool = ModelPool([ModelKind.ESSENCE], factory)
    pool.prewarm(timeout_s=10)
    with pytest.raises(PrewarmFailed):
        pool.engine(ModelKind.EXPRESSION)
