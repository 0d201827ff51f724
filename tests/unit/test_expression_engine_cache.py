"""TensorRT engine cache: keyed by model, TensorRT version, GPU and profile; builds once, offline.

The builds here are fakes (a function that writes bytes): what is tested is the key, the
skip-if-present logic and the lookup the worker does at prewarm, none of which needs TensorRT.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from farm.render.expression import backends
from farm.render.expression.engine_cache import EngineCache, EngineCacheKey, EngineProfile

pytestmark = pytest.mark.unit


def _key(
    *,
    model_hash: str = "abc123",
    trt: str = "10.9.0",
    cc: tuple[int, int] = (9, 0),
    max_batch: int = 64,
    size: int = 512,
    fp16: bool = True,
) -> EngineCacheKey:
    return EngineCacheKey(model_hash, trt, cc, EngineProfile(max_batch=max_batch, size=size, fp16=fp16))


class FakeBuild:
    """Stands in for the TensorRT build: counts calls and writes a plan (or fails)."""

    def __init__(self, payload: bytes = b"serialized-plan", fail: bool = False) -> None:
        self.calls: list[tuple[Path, Path]] = []
        self.payload = payload
        self.fail = fail

    def __call__(self, plan_tmp: Path, timing_cache: Path) -> None:
        self.calls.append((plan_tmp, timing_cache))
        plan_tmp.write_bytes(b"partial")
        if self.fail:
            raise RuntimeError("builder ran out of workspace")
        plan_tmp.write_bytes(self.payload)
        timing_cache.write_bytes(b"timings")


def test_the_file_name_spells_out_every_part_of_the_key() -> None:
    name = _key().filename()
    assert name == "expression-abc123-trt10.9.0-sm90-b1-64-64_s512_fp16.plan"


@pytest.mark.parametrize(
    "other",
    [
        _key(model_hash="def456"),
        _key(trt="10.13.0"),
        _key(cc=(8, 9)),
        _key(max_batch=32),
        _key(size=256),
        _key(fp16=False),
        EngineCacheKey("abc123", "10.9.0", (9, 0), EngineProfile(max_batch=64, size=512, opt_batch=16)),
    ],
)
def test_any_change_in_model_tensorrt_gpu_or_profile_is_a_different_entry(other: EngineCacheKey) -> None:
    assert other.filename() != _key().filename()
    assert other.digest() != _key().digest()


def test_an_impossible_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="min <= opt <= max"):
        EngineProfile(max_batch=8, size=512, opt_batch=16)


def test_a_missing_engine_is_built_once_and_then_skipped(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path / "engines"), FakeBuild()
    plan, built = cache.ensure(_key(), build)
    assert built is True
    assert plan.read_bytes() == b"serialized-plan"
    assert plan.name == _key().filename()
    assert len(build.calls) == 1
    assert build.calls[0][1] == cache.timing_cache_path(_key())

    again, built_again = cache.ensure(_key(), build)
    assert (again, built_again) == (plan, False)
    assert len(build.calls) == 1  # skip-if-present: the builder did not run again
    assert not list((tmp_path / "engines").glob("*.tmp"))


def test_the_timing_cache_is_shared_per_tensorrt_version_and_gpu(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    assert cache.timing_cache_path(_key(max_batch=16)) == cache.timing_cache_path(_key(model_hash="x"))
    assert cache.timing_cache_path(_key(cc=(8, 0))) != cache.timing_cache_path(_key())


def test_a_failed_build_leaves_no_plan_and_is_retried_next_time(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    with pytest.raises(RuntimeError, match="workspace"):
        cache.ensure(_key(), FakeBuild(fail=True))
    assert cache.lookup(_key()) is None
    assert not cache.plan_path(_key()).exists()
    _, built = cache.ensure(_key(), FakeBuild())
    assert built is True


def test_a_plan_without_its_metadata_or_with_a_foreign_digest_is_not_trusted(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    plan, _ = cache.ensure(_key(), FakeBuild())
    plan.with_suffix(".json").unlink()  # e.g. a copy interrupted between the two files
    assert cache.lookup(_key()) is None
    _, built = cache.ensure(_key(), FakeBuild())
    assert built is True
    plan.with_suffix(".json").write_text('{"digest": "0000"}')
    assert cache.lookup(_key()) is None


def test_an_empty_plan_from_a_builder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no plan"):
        EngineCache(tmp_path).ensure(_key(), FakeBuild(payload=b""))


def test_concurrent_builders_sharing_a_volume_build_once(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path), FakeBuild()
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.ensure(_key(), build)[1])) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False, False, False, True]
    assert len(build.calls) == 1


def test_the_worker_finds_the_tightest_plan_that_covers_its_batch(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    for key in (_key(max_batch=8), _key(max_batch=32), _key(max_batch=64), _key(max_batch=32, size=256)):
        cache.ensure(key, FakeBuild())
    cache.ensure(_key(max_batch=16, cc=(8, 9)), FakeBuild())  # another GPU
    cache.ensure(_key(max_batch=16, trt="10.3.0"), FakeBuild())  # another TensorRT

    def find(batch: int, size: int = 512) -> EngineCacheKey | None:
        found = cache.find_compatible("abc123", "10.9.0", (9, 0), size=size, min_max_batch=batch)
        return found[1] if found else None

    assert find(16) == _key(max_batch=32)
    assert find(8) == _key(max_batch=8)
    assert find(64) == _key(max_batch=64)
    assert find(128) is None
    assert find(16, size=256) == _key(max_batch=32, size=256)
    assert cache.find_compatible("other", "10.9.0", (9, 0), size=512, min_max_batch=1) is None


def test_importing_the_tensorrt_backend_does_not_import_tensorrt() -> None:
    code = "import sys, farm.render.expression.tensorrt_backend; assert 'tensorrt' not in sys.modules"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_backend_preference_is_tensorrt_then_compiled_cuda_then_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backends.torch.cuda, "is_available", lambda: False)
    assert backends.preferred_backend() == "torch-cpu"
    monkeypatch.setattr(backends.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(backends, "tensorrt_importable", lambda: False)
    assert backends.preferred_backend() == "torch-cuda-compiled"
    monkeypatch.setattr(backends, "tensorrt_importable", lambda: True)
    assert backends.preferred_backend() == "tensorrt"


def test_batches_are_padded_to_a_few_power_of_two_buckets() -> None:
    assert backends.batch_buckets(16) == [1, 2, 4, 8, 16]
    assert backends.batch_buckets(24) == [1, 2, 4, 8, 16, 24]
    assert backends.batch_buckets(1) == [1]
    assert [backends.bucket_for(b, [1, 2, 4, 8]) for b in (1, 2, 3, 5, 8)] == [1, 2, 4, 8, 8]
    with pytest.raises(ValueError, match="exceeds"):
        backends.bucket_for(9, [1, 2, 4, 8])
