"""Export torch modules of the set to ONNX files with exactly the declared names, dtypes and axes.

The result is a weights directory the validator accepts and the ONNX Runtime backend runs: one file
per graph under its preferred name, every batched graph with a symbolic batch axis (so the farm can
batch sessions on it), ``hubert`` with its free sample and frame axes. Used by the test helper
(tiny random modules) and by operators who want dynamic-batch graphs of their own torch weights.
The TorchScript-based exporter is used (``dynamo=False``): it is several times faster than the
dynamo exporter on these graphs and handles 3-D grid sampling (ONNX GridSample, opset 20).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from farm.render.learned.signatures import BATCH, GRAPHS_BY_NAME, GraphSpec, example_feeds

ONNX_OPSET = 20  # GridSample on 5-D inputs needs opset 20


class _HubertExport(nn.Module):
    """The streaming HuBERT graph has no batch axis: (1, N) samples → (T, 1024) features."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_values)[0]


def _dynamic_axes(graph: GraphSpec) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for spec in (*graph.inputs, *graph.outputs):
        named = {i: str(dim) for i, dim in enumerate(spec.shape) if isinstance(dim, str)}
        if named:
            axes[spec.name] = named
    return axes


def export_graph(name: str, module: nn.Module, path: Path, *, opset: int = ONNX_OPSET) -> Path:
    """Write ``module`` (the graph ``name`` of ``signatures``) to ``path`` as ONNX."""
    graph = GRAPHS_BY_NAME[name]
    wrapped = _HubertExport(module) if name == "hubert" else module
    batch = 2 if any(BATCH in spec.shape for spec in graph.inputs) else 1
    feeds = example_feeds(graph, batch=batch)
    args = tuple(torch.from_numpy(feeds[spec.name]) for spec in graph.inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            wrapped.float().eval(),
            args,
            str(tmp),
            input_names=[s.name for s in graph.inputs],
            output_names=[s.name for s in graph.outputs],
            dynamic_axes=_dynamic_axes(graph),
            opset_version=opset,
            dynamo=False,
        )
    _declare_outputs(tmp, graph)
    tmp.replace(path)
    return path


def _declare_outputs(path: Path, graph: GraphSpec) -> None:
    """Write the declared output shapes into the file.

    The tracer names output dims it cannot prove constant (``Mulout_dim_2``) even where they are
    fixed by construction; the declaration is the contract, so it replaces them (the tests check
    every output's runtime shape against the same declaration).
    """
    import onnx

    model = onnx.load(str(path))
    declared = {spec.name: spec for spec in graph.outputs}
    for output in model.graph.output:
        spec = declared[output.name]
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        for dim in spec.shape:
            entry = dims.add()
            if isinstance(dim, int):
                entry.dim_value = dim
            else:
                entry.dim_param = dim
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_set(modules: Mapping[str, nn.Module], directory: Path) -> dict[str, Path]:
    """Export every module under its graph's preferred file name in ``directory``."""
    return {
        name: export_graph(name, module, directory / GRAPHS_BY_NAME[name].files[0])
        for name, module in modules.items()
    }
