"""On-disk cache of TensorRT engines, keyed so a plan is only ever loaded where it was built for.

TensorRT plans are not portable across GPU architectures or TensorRT versions, and a plan is only
valid for the optimisation profile it was built with (NVIDIA's TensorRT developer guide). The key is
therefore (model hash, TensorRT version, GPU compute capability, profile), and it is spelled out in the file
name so an operator can read a volume listing. Builds happen offline (image build or an init
container, ``python -m farm.render.expression.build_engine``), never on a request path: ``ensure``
skips work when the plan is present, builds into a temporary file and renames it into place, and
holds an exclusive file lock so two init containers sharing a volume do not build twice. The
timing cache is shared by every model built for the same (TensorRT version, compute capability).

Nothing here imports ``tensorrt``; the build function is passed in.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

PLAN_SUFFIX = ".plan"
META_SUFFIX = ".json"


@dataclass(frozen=True, slots=True)
class EngineProfile:
    """The optimisation profile: batch range (min, opt, max), frame size and precision."""

    max_batch: int
    size: int
    opt_batch: int | None = None
    min_batch: int = 1
    fp16: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.optimal <= self.max_batch:
            raise ValueError(
                f"need 1 <= min <= opt <= max batch, got {self.min_batch}/{self.optimal}/{self.max_batch}"
            )

    @property
    def optimal(self) -> int:
        return self.opt_batch if self.opt_batch is not None else self.max_batch

    def label(self) -> str:
        precision = "fp16" if self.fp16 else "fp32"
        return f"b{self.min_batch}-{self.optimal}-{self.max_batch}_s{self.size}_{precision}"


@dataclass(frozen=True, slots=True)
class EngineCacheKey:
    """Everything a serialized plan depends on."""

    model_hash: str
    trt_version: str
    compute_capability: tuple[int, int]
    profile: EngineProfile

    def filename(self) -> str:
        stem = _stem(self.model_hash, self.trt_version, self.compute_capability)
        return f"{stem}-{self.profile.label()}{PLAN_SUFFIX}"

    def digest(self) -> str:
        """A short stable hash of the whole key (written in the metadata, checked on lookup)."""
        blob = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


BuildFn = Callable[[Path, Path], None]
"""``build(plan_tmp_path, timing_cache_path)``: write a serialized plan to the first path."""


class EngineCache:
    """A directory of plans (+ JSON metadata) and per-(TensorRT, GPU) timing caches."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def plan_path(self, key: EngineCacheKey) -> Path:
        return self.root / key.filename()

    def timing_cache_path(self, key: EngineCacheKey) -> Path:
        major, minor = key.compute_capability
        return self.root / f"timing-trt{key.trt_version}-sm{major}{minor}.cache"

    def lookup(self, key: EngineCacheKey) -> Path | None:
        """The plan for ``key`` if a complete build is present (plan non-empty, metadata matches)."""
        plan = self.plan_path(key)
        meta = plan.with_suffix(META_SUFFIX)
        if not plan.is_file() or plan.stat().st_size == 0 or not meta.is_file():
            return None
        try:
            recorded = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        return plan if recorded.get("digest") == key.digest() else None

    def find_compatible(
        self,
        model_hash: str,
        trt_version: str,
        compute_capability: tuple[int, int],
        *,
        size: int,
        min_max_batch: int,
    ) -> tuple[Path, EngineCacheKey] | None:
        """A complete plan for this model, TensorRT and GPU whose profile covers ``1..min_max_batch``
        at ``size`` (the smallest such, so the tightest profile wins)."""
        found: list[tuple[int, Path, EngineCacheKey]] = []
        for plan in self.root.glob(f"{_stem(model_hash, trt_version, compute_capability)}-*{PLAN_SUFFIX}"):
            key = _read_key(plan.with_suffix(META_SUFFIX))
            if key is None or key.profile.size != size or key.profile.min_batch != 1:
                continue
            if key.profile.max_batch >= min_max_batch and self.lookup(key) == plan:
                found.append((key.profile.max_batch, plan, key))
        if not found:
            return None
        _, plan, key = min(found, key=lambda item: (item[0], item[1].name))
        return plan, key

    def ensure(self, key: EngineCacheKey, build: BuildFn) -> tuple[Path, bool]:
        """The plan for ``key``, building it if absent. Returns (path, built_now)."""
        found = self.lookup(key)
        if found is not None:
            return found, False
        self.root.mkdir(parents=True, exist_ok=True)
        with self._exclusive(key):
            found = self.lookup(key)  # another builder may have finished while we waited
            if found is not None:
                return found, False
            plan = self.plan_path(key)
            tmp = plan.with_name(plan.name + ".tmp")
            started = time.perf_counter()
            build(tmp, self.timing_cache_path(key))
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise RuntimeError(f"engine build produced no plan at {tmp}")
            tmp.replace(plan)
            meta = {
                "digest": key.digest(),
                "key": asdict(key),
                "build_s": round(time.perf_counter() - started, 2),
            }
            plan.with_suffix(META_SUFFIX).write_text(json.dumps(meta, indent=2, sort_keys=True))
            return plan, True

    @contextlib.contextmanager
    def _exclusive(self, key: EngineCacheKey) -> Iterator[None]:
        lock_path = self.plan_path(key).with_suffix(".lock")
        with lock_path.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _stem(model_hash: str, trt_version: str, compute_capability: tuple[int, int]) -> str:
    major, minor = compute_capability
    return f"expression-{model_hash}-trt{trt_version}-sm{major}{minor}"


def _read_key(meta_path: Path) -> EngineCacheKey | None:
    try:
        raw = json.loads(meta_path.read_text())["key"]
        return EngineCacheKey(
            model_hash=raw["model_hash"],
            trt_version=raw["trt_version"],
            compute_capability=(int(raw["compute_capability"][0]), int(raw["compute_capability"][1])),
            profile=EngineProfile(**raw["profile"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
