"""``farm models check DIR`` and ``farm models pull ditto``: the operator's tools for learned weights.

``check`` prints the validator's full report (every graph, its batch axis, precision and licence,
the licence file) and returns non-zero when the set would be refused at prewarm. ``pull`` downloads
the graphs the farm runs from Ditto's HuggingFace repository with ``huggingface_hub`` (only those:
the repository's InsightFace detector and landmark graphs are licensed for non-commercial research
and are never fetched), copies the repository's LICENSE beside them, and checks the result. Where
the hub cannot be reached it says so and how to bring the files by hand.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TextIO

from farm.render.learned.signatures import GRAPHS, LICENCE_FILES
from farm.render.learned.validate import check_weights_dir

DITTO_REPO = "digital-avatar/ditto-talkinghead"
DITTO_SUBDIR = "ditto_onnx"
PULL_PATTERNS = (
    [f"{DITTO_SUBDIR}/{name}" for g in GRAPHS for name in g.files] + list(LICENCE_FILES) + ["README.md"]
)


def models_check(directory: Path, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    report = check_weights_dir(directory)
    print(report.text(), file=out)
    return 0 if report.ok else 1


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the hub could not be reached (offline, DNS, connection, timeout)."""
    names = {type(e).__name__ for e in _chain(exc)}
    reachability = {
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "ConnectError",
        "ConnectTimeout",
        "ConnectionError",
        "ReadTimeout",
        "TimeoutException",
        "NetworkError",
        "gaierror",
    }
    return bool(names & reachability)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def models_pull(model: str, revision: str | None, dest: Path, out: TextIO | None = None) -> int:
    """Download ``model``'s graphs into ``dest``; 0 when the pulled set passes the check."""
    out = out or sys.stdout
    if model != "ditto":
        print(f"farm models pull: unknown model {model!r} (known: ditto)", file=sys.stderr)
        return 2
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        print(
            "farm models pull: huggingface_hub is not installed (pip install -e '.[expression]'); "
            f"or download {DITTO_SUBDIR}/ of https://huggingface.co/{DITTO_REPO} yourself",
            file=sys.stderr,
        )
        return 1
    print(f"pulling {DITTO_REPO}@{revision or 'main'} ({len(PULL_PATTERNS)} patterns) into {dest}", file=out)
    try:
        snapshot_download(repo_id=DITTO_REPO, revision=revision, local_dir=dest, allow_patterns=PULL_PATTERNS)
    except Exception as exc:
        if _unreachable(exc):
            print(
                "farm models pull: the HuggingFace hub is not reachable from this machine "
                f"({type(exc).__name__}). Download {DITTO_SUBDIR}/ and LICENSE of "
                f"https://huggingface.co/{DITTO_REPO} where it is, copy them to {dest / DITTO_SUBDIR}, "
                f"then run `farm models check {dest / DITTO_SUBDIR}`.",
                file=sys.stderr,
            )
            return 1
        print(f"farm models pull: download failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    weights = dest / DITTO_SUBDIR
    for name in LICENCE_FILES:
        if (dest / name).is_file() and not (weights / name).exists():
            shutil.copy2(dest / name, weights / name)
    report = check_weights_dir(weights)
    print(report.text(), file=out)
    if report.ok:
        print(f"\nset FARM_EXPRESSION_WEIGHTS={weights.resolve()} on the expression workers", file=out)
    return 0 if report.ok else 1
