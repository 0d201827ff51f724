"""The package map stays what docs/architecture.md draws: every module of farm/ is in exactly one
layer of the import contract, the root holds entry points only, and the worker path stays small."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
FARM = ROOT / "farm"


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    farm_layers = next(c for c in contracts if c["type"] == "layers" and "farm.kernel" in str(c["layers"]))
    return [name.strip() for layer in farm_layers["layers"] for name in layer.split(":")]


def test_every_farm_package_and_root_module_is_in_exactly_one_layer() -> None:
    named = _layers()
    assert len(named) == len(set(named)), "a package is named in two layers"
    present = {f"farm.{p.name}" for p in FARM.iterdir() if (p / "__init__.py").exists()}
    present |= {f"farm.{p.stem}" for p in FARM.glob("*.py") if p.stem != "__init__"}
    assert sorted(present - set(named)) == [], "add these to a layer in pyproject.toml"
    assert sorted(set(named) - present) == [], "these layers name packages that no longer exist"


def test_the_root_holds_entry_points_only() -> None:
    modules = sorted(p.name for p in FARM.glob("*.py"))
    assert len(modules) <= 6, modules
    assert modules == ["__init__.py", "cli.py"]


def test_no_wildcard_or_unlisted_ignore_in_the_import_contracts() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for contract in config["tool"]["importlinter"]["contracts"]:
        for ignored in contract.get("ignore_imports", []):
            assert "*" not in ignored, f"{contract['name']}: wildcard ignore {ignored!r}"
        assert "unmatched_ignore_imports_alerting" not in contract, "an ignore that matches nothing must fail"


@pytest.mark.parametrize(
    ("module", "cls"),
    [
        ("farm/worker/runtime.py", "WorkerRuntime"),
        ("farm/sessions/runner.py", "SessionRunner"),
        ("farm/stream/pump.py", "FramePump"),
    ],
)
def test_classes_on_the_worker_path_stay_small(module: str, cls: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls)
    methods = [n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    lines = (node.end_lineno or node.lineno) - node.lineno + 1
    assert len(methods) <= 20, f"{cls} has {len(methods)} methods: split a concern out (middleware?)"
    assert lines <= 300, f"{cls} has {lines} lines"
