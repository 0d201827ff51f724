"""Check a weights directory against the declared graph signatures, and say what is wrong in one line.

``check_weights_dir(dir)`` reads each graph's interface (``onnx_io``, weights skipped) and compares it
with ``signatures``: the file is present, every declared input and output exists with its dtype and
rank, fixed dims match, the batch axis is symbolic (batched) or 1 (one item per call), no input the
farm would not feed, no custom op ONNX Runtime cannot run. It also requires a licence file beside
the graphs (Ditto's weights carry no licence statement upstream, so the operator records the terms
they obtained them under) and lists each graph's licence. ``require_valid`` raises
``ModelWeightsInvalid`` whose message names the first broken graph, the mismatch and what was
expected; ``farm models check DIR`` prints the whole report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from farm.kernel.errors import ModelWeightsInvalid
from farm.render.learned.onnx_io import GraphIO, OnnxReadError, TensorIO, read_graph_io
from farm.render.learned.signatures import (
    AUDIO_WINDOW_SAMPLES,
    BATCH,
    GRAPH_SET,
    GRAPHS,
    HUBERT_DIM,
    LICENCE_FILES,
    STANDARD_DOMAINS,
    GraphSpec,
    TensorSpec,
    concrete_shape,
    example_feeds,
)

if TYPE_CHECKING:
    from farm.render.learned.graphs import GraphBackend

BatchMode = Literal["dynamic", "fixed-1", "none", "unknown"]


@dataclass(slots=True)
class GraphVerdict:
    """What the check found for one graph."""

    spec: GraphSpec
    path: Path | None = None
    batch: BatchMode = "unknown"
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(slots=True)
class WeightsReport:
    """The verdict on a whole directory."""

    directory: Path
    graphs: list[GraphVerdict]
    licence_file: Path | None
    problems: list[str] = field(default_factory=list)  # directory-level errors (missing dir, no licence)

    @property
    def errors(self) -> list[str]:
        return self.problems + [e for g in self.graphs for e in g.errors]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """One line: the first error and how many more, or that the set is valid."""
        errors = self.errors
        if not errors:
            return f"{self.directory}: a valid {GRAPH_SET} graph set ({len(self.graphs)} graphs)"
        more = (
            f" (+{len(errors) - 1} more problems: run `farm models check {self.directory}`)"
            if len(errors) > 1
            else ""
        )
        return f"{self.directory}: {errors[0]}{more}"

    def text(self) -> str:
        """The full human-readable report (`farm models check`)."""
        lines = [f"weights directory: {self.directory}", f"graph set: {GRAPH_SET}", ""]
        for g in self.graphs:
            mark = "ok  " if g.ok else "FAIL"
            where = g.path.name if g.path is not None else "(missing)"
            size = f", {g.path.stat().st_size / 1e6:.1f} MB" if g.path is not None and g.path.exists() else ""
            lines.append(
                f"[{mark}] {g.spec.name}: {where}{size}, batch axis {g.batch}, runs in {g.spec.precision}"
            )
            lines += [f"       error: {e}" for e in g.errors]
            lines += [f"       note: {n}" for n in g.notes]
            lines.append(f"       licence: {g.spec.licence}")
        lines.append("")
        if self.licence_file is not None:
            lines.append(
                f"licence file: {self.licence_file.name} ({self.licence_file.stat().st_size} bytes): "
                "read it; it is the operator's record of the terms these weights are used under"
            )
        lines += [f"error: {p}" for p in self.problems]
        lines.append("")
        lines.append("verdict: OK" if self.ok else f"verdict: INVALID ({len(self.errors)} problems)")
        return "\n".join(lines)


def _dims(shape: tuple[int | str | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _shape_errors(where: str, spec: TensorSpec, actual: TensorIO) -> list[str]:
    """Rank and fixed-dim mismatches against every accepted shape; [] when one of them fits."""
    if actual.shape is None:
        return []  # no shape in the file: checked at warm-up, where the graph runs
    reasons: list[str] = []
    for expected in spec.shapes:
        if len(expected) != len(actual.shape):
            got, want = (
                f"rank {len(actual.shape)} {_dims(actual.shape)}",
                f"rank {len(expected)} {_dims(expected)}",
            )
            reasons.append(f"{got}, expected {want}")
            continue
        bad = [
            f"dim {i} is {got}, expected {want}"
            for i, (want, got) in enumerate(zip(expected, actual.shape, strict=True))
            if isinstance(want, int) and isinstance(got, int) and got != want
        ]
        bad += [
            f"batch axis (dim {i}) is fixed at {got}; expected a symbolic batch axis or 1"
            for i, (want, got) in enumerate(zip(expected, actual.shape, strict=True))
            if want == BATCH and isinstance(got, int) and got != 1
        ]
        if not bad:
            return []
        reasons.append("; ".join(bad))
    return [f"{where} has {reasons[0]}"]


def _batch_mode(spec: GraphSpec, io: GraphIO) -> BatchMode:
    if not spec.batched:
        return "none"
    first = io.input(spec.inputs[0].name)
    if first is None or first.shape is None or not first.shape:
        return "unknown"
    return "fixed-1" if first.shape[0] == 1 else "dynamic"


def check_graph_io(spec: GraphSpec, io: GraphIO) -> list[str]:
    """Every mismatch between a graph's declared and actual interface, each naming the tensor."""
    errors: list[str] = []
    for kind, declared, actual in (("input", spec.inputs, io.inputs), ("output", spec.outputs, io.outputs)):
        names = {t.name for t in actual}
        for tensor in declared:
            found = next((t for t in actual if t.name == tensor.name), None)
            where = f"{spec.name}: {kind} '{tensor.name}'"
            if found is None:
                errors.append(
                    f"{where} is missing (the file has {kind}s {sorted(names)}; expected {tensor.describe()})"
                )
                continue
            if found.dtype != tensor.dtype:
                errors.append(f"{where} is {found.dtype}, expected {tensor.dtype} ({tensor.describe()})")
            errors += _shape_errors(where, tensor, found)
    extra = sorted({t.name for t in io.inputs} - {t.name for t in spec.inputs})
    if extra:
        errors.append(
            f"{spec.name}: unexpected inputs {extra} (the farm feeds only {[t.name for t in spec.inputs]})"
        )
    custom = sorted(f"{op} (domain {domain})" for domain, op in io.ops if domain not in STANDARD_DOMAINS)
    if custom:
        errors.append(
            f"{spec.name}: uses custom ops {custom}, which ONNX Runtime cannot run "
            f"(Ditto's warp_network.onnx needs its TensorRT plugin: provide warp_network_ori.onnx, "
            f"the same graph with the standard GridSample)"
        )
    return errors


def check_graph(spec: GraphSpec, directory: Path) -> GraphVerdict:
    verdict = GraphVerdict(spec)
    present = [directory / name for name in spec.files if (directory / name).is_file()]
    if not present:
        verdict.errors.append(
            f"{spec.name}: missing file (expected {' or '.join(spec.files)} in {directory})"
        )
        return verdict
    verdict.path = present[0]
    if len(present) > 1:
        verdict.notes.append(
            f"using {present[0].name}; also present: {', '.join(p.name for p in present[1:])}"
        )
    try:
        io = read_graph_io(verdict.path)
    except OnnxReadError as exc:
        verdict.errors.append(f"{spec.name}: {verdict.path.name} is not a readable ONNX model ({exc})")
        return verdict
    verdict.errors += check_graph_io(spec, io)
    verdict.batch = _batch_mode(spec, io)
    if verdict.batch == "fixed-1":
        verdict.notes.append(
            "batch axis fixed at 1: sessions run one at a time on this graph "
            "(re-export with a symbolic batch axis to batch them)"
        )
    return verdict


def find_licence(directory: Path) -> Path | None:
    return next((directory / n for n in LICENCE_FILES if (directory / n).is_file()), None)


def check_weights_dir(directory: Path) -> WeightsReport:
    """Check every declared graph (and the licence file) in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        problem = (
            f"not a directory: {directory} (FARM_EXPRESSION_WEIGHTS must name the folder holding the graphs)"
        )
        return WeightsReport(directory, [], None, [problem])
    report = WeightsReport(
        directory, [check_graph(spec, directory) for spec in GRAPHS], find_licence(directory)
    )
    if report.licence_file is None:
        report.problems.append(
            f"no licence file ({' or '.join(LICENCE_FILES)}) in {directory}: Ditto's weights state no "
            "licence upstream, so put the licence you obtained them under next to the graphs "
            "(`farm models pull ditto` copies the repository's LICENSE)"
        )
    return report


def check_outputs(backend: GraphBackend) -> None:
    """Run every loaded graph once at batch 1 and compare what comes out with the declaration.

    The file check cannot see dims a file leaves symbolic; this catches them where the graph runs
    (at prewarm), with the same kind of message: ModelWeightsInvalid naming graph and tensor."""
    for graph in GRAPHS:
        if not graph.batched:
            continue
        feeds = {k: backend.asarray(v) for k, v in example_feeds(graph, 1).items()}
        outputs = backend.run(graph.name, feeds)
        for spec in graph.outputs:
            got = tuple(backend.to_host(outputs[spec.name]).shape)
            allowed = [concrete_shape(TensorSpec(spec.name, spec.dtype, shape), 1) for shape in spec.shapes]
            if got not in allowed:
                raise ModelWeightsInvalid(
                    f"{graph.name}: output '{spec.name}' came out {list(got)} at batch 1, expected "
                    f"{' or '.join(str(list(a)) for a in allowed)} ({spec.describe()})"
                )
    encoding = backend.to_host(
        backend.speech_features(backend.asarray(np.zeros((1, AUDIO_WINDOW_SAMPLES), np.float32)))
    )
    if encoding.shape != (1, 20, HUBERT_DIM):
        raise ModelWeightsInvalid(
            f"hubert: a {AUDIO_WINDOW_SAMPLES}-sample window gave features {list(encoding.shape[1:])}, "
            f"expected [20, {HUBERT_DIM}] (50 Hz frames of 1024)"
        )


def require_valid(directory: Path) -> WeightsReport:
    """The report of a valid directory; ModelWeightsInvalid (one clear message) otherwise."""
    report = check_weights_dir(directory)
    if not report.ok:
        raise ModelWeightsInvalid(report.summary(), directory=str(directory), problems=len(report.errors))
    return report
