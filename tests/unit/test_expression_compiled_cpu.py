"""The opt-in ``torch-cpu-compiled`` backend (Inductor C++ kernels) computes what eager torch does.

One Inductor compilation at a tiny frame size (a dynamic batch graph), yet the slowest test of
`make test`: 85 s there with Inductor's cache cold, beside the rest on the 2-core EPYC (2026-12-07).
"""

from __future__ import annotations

import pytest
import torch

from farm.render.expression.backends import CompiledCpuBackend, TorchBackend, cxx_compiler_available
from farm.render.expression.model import ExpressionConfig, example_inputs

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not cxx_compiler_available(), reason="Inductor needs a C++ compiler on PATH"),
]


def test_compiled_cpu_matches_eager_for_several_batch_sizes() -> None:
    config = ExpressionConfig(size=32)
    compiled, eager = CompiledCpuBackend(config), TorchBackend(config)
    for batch in (3, 5):  # both served by the one dynamic-batch graph
        inputs = example_inputs(batch, config)
        out = compiled.run(*inputs)
        assert out.shape == (batch, 3, 32, 32)
        assert torch.allclose(out, eager.run(*inputs), atol=1e-4)
