"""The learned model's benchmark without a GPU answers with a skip reason, and its GPU check runs on the
CPU at test size. (Its smoke run is in tests/integration/test_bench_smoke.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from farm.cli import main as farm_main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# What a bare GPU box lacks: the gpu check must not need any of it.
BLOCKED = (
    "pydantic",
    "pydantic_settings",
    "celery",
    "kombu",
    "redis",
    "fastapi",
    "livekit",
    "scipy",
    "cv2",
    "av",
    "PIL",
    "skimage",
    "dlib",
    "onnxruntime",
    "onnx",
    "huggingface_hub",
)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: this checks the no-GPU answer")
def test_without_a_gpu_the_full_benchmark_answers_with_a_skip_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert farm_main(["bench", "expression", "--model", "learned", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["benchmark"] == "expression-learned"
    assert result["skipped"].startswith("no CUDA device")
    assert "machine" in result and "date" in result


def test_the_gpu_check_runs_without_the_farms_service_dependencies_and_writes_one_json(
    tmp_path: Path,
) -> None:
    out = tmp_path / "gpu-check.json"
    code = f"""
import runpy, sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # as if not installed: import raises, find_spec answers None
sys.argv = ["gpucheck", "--tiny", "--budget-s", "60", "--out", {str(out)!r}]
runpy.run_module("farm.render.learned.gpucheck", run_name="__main__")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "tiny" and "skipped" not in report
    assert report["environment"]["torch"] == torch.__version__
    assert report["throughput"]["modes"]["eager"]["frame"][0]["median_ms"] > 0
    assert report["realtime"]["first_frame"]["first_frame_ms"] > 0
