"""The rig's model files: their provenance record, a checked load and a thin LiteRT wrapper.

The ``.tflite`` files in ``models/`` are MediaPipe's face models (Apache-2.0, licence text in
``models/LICENSE``), extracted unmodified from the ``mediapipe==0.10.21`` wheel; ``models/models.json``
records, per file, its path inside that wheel, its size and its SHA-256. Every file is hashed
before its interpreter is built, and a file that is missing or differs from its record is refused
with ``ModelFileInvalid`` naming the file, so a corrupted or swapped model never runs.

The interpreter is Google's LiteRT (``ai-edge-litert``, Apache-2.0), not the ``mediapipe`` package
(which needs numpy < 2 and protobuf < 5). Interpreters are not thread-safe: each thread that runs
the rig needs its own ``TfliteModel`` objects.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farm.kernel.errors import ModelFileInvalid

MODELS_DIR = Path(__file__).resolve().parent / "models"
RECORD_FILE = "models.json"


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """What ``models.json`` says about one model file."""

    file: str
    sha256: str
    size_bytes: int
    licence: str
    path_in_source: str


@functools.cache
def records(models_dir: Path = MODELS_DIR) -> dict[str, ModelRecord]:
    """The provenance record of every model file in ``models_dir``, by file name."""
    try:
        data = json.loads((models_dir / RECORD_FILE).read_text())
        return {
            name: ModelRecord(
                file=name,
                sha256=str(entry["sha256"]),
                size_bytes=int(entry["bytes"]),
                licence=str(entry["licence"]),
                path_in_source=str(entry["path_in_source"]),
            )
            for name, entry in data["files"].items()
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileInvalid(
            f"the face rig's model record {RECORD_FILE} is missing or unreadable", path=str(models_dir)
        ) from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_path(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """The path of model file ``name`` after checking its size and SHA-256 against its record."""
    record = records(models_dir).get(name)
    if record is None:
        raise ModelFileInvalid(f"model file {name} has no provenance record in {RECORD_FILE}", file=name)
    path = models_dir / name
    if not path.is_file():
        raise ModelFileInvalid(
            f"model file {name} is missing from {models_dir} (reinstall the package)", file=name
        )
    size = path.stat().st_size
    digest = sha256_of(path) if size == record.size_bytes else ""
    if digest != record.sha256:
        raise ModelFileInvalid(
            f"model file {name} does not match its record (expected sha256 {record.sha256[:12]}… and "
            f"{record.size_bytes} bytes, found {digest[:12] or 'another size'}…, {size} bytes): "
            "the file is corrupt or was replaced; reinstall the package",
            file=name,
        )
    return path


class TfliteModel:
    """A LiteRT interpreter over one verified model file with a single float32 input."""

    def __init__(self, name: str, *, num_threads: int = 1, models_dir: Path = MODELS_DIR) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.name = name
        self._interpreter = Interpreter(
            model_path=str(verified_path(name, models_dir)), num_threads=num_threads
        )
        self._interpreter.allocate_tensors()
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelFileInvalid(f"model file {name}: expected one input, found {len(inputs)}", file=name)
        self._input_index = int(inputs[0]["index"])
        self.input_shape = tuple(int(v) for v in inputs[0]["shape"])
        self._outputs: list[dict[str, Any]] = list(self._interpreter.get_output_details())

    def __call__(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run once; the outputs come back as copies, in the model's declared order."""
        self._interpreter.set_tensor(self._input_index, tensor.astype(np.float32, copy=False))
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(d["index"]).copy() for d in self._outputs]
