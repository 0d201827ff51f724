"""``farm bench NAME``: every bench answers ``--help`` with its own usage and a ``--smoke`` option, the
names its docstrings and comments mention still exist, and a name that is no bench is refused. (Each
bench's smoke run is in tests/integration/test_bench_smoke.py, tests/e2e/test_bench_smoke_livekit.py and, for
the chaos scenarios, tests/chaos/test_faults.py.)"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import tokenize
from pathlib import Path

import pytest

import farm.bench
from farm.bench.common import parse_args
from farm.cli import main as farm_main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "farm" / "bench"
BENCHES = sorted(
    info.name
    for info in pkgutil.iter_modules(farm.bench.__path__)
    if callable(getattr(importlib.import_module(f"farm.bench.{info.name}"), "main", None))
)


SMOKE_TESTS = ("integration/test_bench_smoke.py", "e2e/test_bench_smoke_livekit.py", "chaos/test_faults.py")


def test_every_bench_has_a_smoke_test() -> None:
    tests = "\n".join((ROOT / "tests" / path).read_text() for path in SMOKE_TESTS)
    run = {name.replace("-", "_") for name in re.findall(r'bench\("([a-z_-]+)"', tests)}
    assert set(BENCHES) - {"expression_learned"} == run  # expression_learned: `expression --model learned`


@pytest.mark.parametrize("name", BENCHES)
def test_every_bench_answers_help_with_its_usage_and_a_smoke_option(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        farm_main(["bench", name.replace("_", "-"), "--help"])
    assert exited.value.code == 0
    usage = capsys.readouterr().out
    prog = "farm bench expression --model learned" if name == "expression_learned" else f"farm bench {name}"
    assert usage.startswith(f"usage: {prog} ")
    assert "--smoke" in usage


def test_the_learned_model_bench_answers_help_through_expression(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        farm_main(["bench", "expression", "--model", "learned", "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: farm bench expression --model learned ")


@pytest.mark.parametrize("path", sorted(BENCH_DIR.glob("*.py")), ids=lambda p: p.name)
def test_every_module_and_file_a_bench_names_in_its_prose_exists(path: Path) -> None:
    text = _prose(path)
    for dotted in set(re.findall(r"\bfarm(?:\.[A-Za-z_]\w*)+", text)):
        assert _resolves(dotted), f"{path.name} names {dotted}, which does not exist"
    for named in set(re.findall(r"\bfarm/[\w/]+\.py\b", text)):
        assert (ROOT / named).exists(), f"{path.name} names {named}, which does not exist"


def _prose(path: Path) -> str:
    """The docstrings, strings and comments of a module (where names go stale), not its code (nor
    the code in an f-string's braces)."""
    with path.open("rb") as source:
        tokens = tokenize.tokenize(source.readline)
        text = "\n".join(t.string for t in tokens if t.type in (tokenize.STRING, tokenize.COMMENT))
    return re.sub(r"\{[^{}]*\}", "", text)


def _resolves(dotted: str) -> bool:
    """``dotted`` is a module, or an attribute path inside the longest module prefix of it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_a_name_that_is_no_bench_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert farm_main(["bench", "no_such_bench"]) == 2
    assert "no benchmark named 'no_such_bench'" in capsys.readouterr().err
    assert farm_main(["bench", "onsets"]) == 2  # a helper module of the room benches
    assert "not one" in capsys.readouterr().err


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="farm bench example")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    return parser


def test_smoke_replaces_the_defaults_with_the_test_sizes() -> None:
    args = parse_args(_parser(), ["--smoke"], smoke={"sessions": 2, "size": 128})
    assert (args.smoke, args.sessions, args.size) == (True, 2, 128)


def test_an_option_given_with_smoke_still_wins() -> None:
    args = parse_args(_parser(), ["--sessions", "5", "--smoke"], smoke={"sessions": 2, "size": 128})
    assert (args.sessions, args.size) == (5, 128)


def test_without_smoke_the_defaults_stand() -> None:
    args = parse_args(_parser(), [], smoke={"sessions": 2, "size": 128})
    assert (args.smoke, args.sessions, args.size) == (False, 200, 512)


def test_the_smoke_option_says_what_it_shrinks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(_parser(), ["--help"], smoke={"sessions": 2, "size": 128})
    assert "sessions=2, size=128" in " ".join(capsys.readouterr().out.split())
