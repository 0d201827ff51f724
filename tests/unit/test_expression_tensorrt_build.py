"""The TensorRT build step, driven against a recording stand-in for the ``tensorrt`` module.

TensorRT cannot be installed from PyPI (its packages are stubs fetching from NVIDIA), so this checks what our
code asks of the builder — one optimisation profile with the right min/opt/max shape for every
input, FP16 with GridSample pinned to FP32, the timing cache read and written back, the plan
written through the engine cache — not what TensorRT does with it (tests/gpu does that).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from farm.render.expression import build_engine, tensorrt_backend
from farm.render.expression.engine_cache import EngineProfile
from farm.render.expression.model import ExpressionConfig

pytestmark = pytest.mark.unit


class _Layer:
    def __init__(self, kind: str) -> None:
        self.type = kind
        self.precision: str | None = None
        self.output_types: dict[int, str] = {}

    def set_output_type(self, index: int, dtype: str) -> None:
        self.output_types[index] = dtype


class _Network:
    def __init__(self) -> None:
        self.layers = [_Layer("ELEMENTWISE"), _Layer("GRID_SAMPLE"), _Layer("RESIZE")]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, i: int) -> _Layer:
        return self.layers[i]


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, name: str, lo: tuple[int, ...], opt: tuple[int, ...], hi: tuple[int, ...]) -> None:
        self.shapes[name] = (lo, opt, hi)


class _TimingCache:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def serialize(self) -> bytes:
        return self.blob + b"+tuned"


class _Config:
    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.profiles: list[_Profile] = []
        self.pool: dict[str, int] = {}
        self.timing: _TimingCache | None = None

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        self.pool[pool] = size

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def add_optimization_profile(self, profile: _Profile) -> None:
        self.profiles.append(profile)

    def create_timing_cache(self, blob: bytes) -> _TimingCache:
        return _TimingCache(blob)

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> None:
        self.timing = cache

    def get_timing_cache(self) -> _TimingCache:
        assert self.timing is not None
        return self.timing


class FakeTensorRT(types.ModuleType):
    """Just the surface ``tensorrt_backend.build_plan`` touches, recording what it was asked."""

    __version__ = "10.7.0"

    def __init__(self) -> None:
        super().__init__("tensorrt")
        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
        self.BuilderFlag = types.SimpleNamespace(FP16="FP16", PREFER_PRECISION_CONSTRAINTS="PREFER")
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
        self.LayerType = types.SimpleNamespace(GRID_SAMPLE="GRID_SAMPLE")
        self.float32 = "float32"
        self.parsed: list[bytes] = []
        self.network = _Network()
        self.config = _Config()
        fake = self

        class Builder:
            def __init__(self, logger: Any) -> None:
                pass

            def create_network(self, flags: int) -> _Network:
                return fake.network

            def create_builder_config(self) -> _Config:
                return fake.config

            def create_optimization_profile(self) -> _Profile:
                return _Profile()

            def build_serialized_network(self, network: _Network, config: _Config) -> bytes:
                return b"PLAN"

        class OnnxParser:
            def __init__(self, network: _Network, logger: Any) -> None:
                pass

            def parse(self, data: bytes) -> bool:
                fake.parsed.append(data)
                return True

        self.Builder = Builder
        self.OnnxParser = OnnxParser


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> FakeTensorRT:
    fake = FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(tensorrt_backend, "compute_capability", lambda device=0: (9, 0))
    return fake


def test_build_plan_asks_for_one_batch_profile_fp16_and_fp32_grid_sampling(
    fake_trt: FakeTensorRT, tmp_path: Path
) -> None:
    onnx_path, plan, timing = tmp_path / "m.onnx", tmp_path / "m.plan", tmp_path / "timing.cache"
    onnx_path.write_bytes(b"ONNX")
    timing.write_bytes(b"old")
    config, profile = ExpressionConfig(size=256), EngineProfile(max_batch=32, size=256, opt_batch=8)
    tensorrt_backend.build_plan(onnx_path, plan, timing, config=config, profile=profile)

    assert fake_trt.parsed == [b"ONNX"]
    assert plan.read_bytes() == b"PLAN"
    assert timing.read_bytes() == b"old+tuned"  # the timing cache was loaded and written back
    assert {"FP16", "PREFER"} <= fake_trt.config.flags
    grid = fake_trt.network.layers[1]
    assert grid.precision == "float32" and grid.output_types == {0: "float32"}
    assert fake_trt.network.layers[0].precision is None
    (only,) = fake_trt.config.profiles
    assert only.shapes == {
        "appearance": ((1, 3, 256, 256), (8, 3, 256, 256), (32, 3, 256, 256)),
        "keypoints": ((1, 68, 2), (8, 68, 2), (32, 68, 2)),
        "mouth": ((1, 4), (8, 4), (32, 4)),
        "controls": ((1, 6), (8, 6), (32, 6)),
    }


def test_the_build_cli_writes_a_keyed_plan_once_and_the_worker_finds_it(
    fake_trt: FakeTensorRT, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Skip the real ONNX export (tested in test_expression_onnx.py): the fake parser takes any bytes.
    monkeypatch.setattr(
        "farm.render.expression.backends.export_onnx", lambda config, path: path.write_bytes(b"x")
    )
    first = build_engine.run(tmp_path, size=64, max_batch=16, opt_batch=4)
    second = build_engine.run(tmp_path, size=64, max_batch=16, opt_batch=4)
    assert first["built"] is True and second["built"] is False
    assert Path(str(first["plan"])).name.endswith("-trt10.7.0-sm90-b1-4-16_s64_fp16.plan")
    assert fake_trt.parsed == [b"x"]  # built exactly once
    found = tensorrt_backend.find_engine(tmp_path, ExpressionConfig(size=64), max_batch=8)
    assert found == Path(str(first["plan"]))
    assert tensorrt_backend.find_engine(tmp_path, ExpressionConfig(size=64), max_batch=32) is None
