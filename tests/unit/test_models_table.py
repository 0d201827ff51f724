"""The model table: public names the plugin sends → engines → pools, served or clearly refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.kernel.contracts import WorkerInfo
from farm.kernel.domain import ModelKind
from farm.kernel.errors import ModelNotConfigured
from farm.kernel.models import engines_for_queues, model_table, resolve_model
from farm.kernel.settings import Settings
from tests.unit.api_support import ApiHarness

pytestmark = pytest.mark.unit


def test_the_default_table_serves_every_plugin_name_but_the_learned_one_without_weights() -> None:
    table = model_table(Settings())

    assert {n: (e.engine, e.queue, e.served) for n, e in table.items()} == {
        "essence": ("essence", ModelKind.ESSENCE, True),
        "essence-2": ("essence", ModelKind.ESSENCE, True),
        "expression": ("expression", ModelKind.EXPRESSION, True),
        "expression-2": ("expression-2", ModelKind.EXPRESSION, False),
    }
    assert "FARM_EXPRESSION_WEIGHTS" in (table["expression-2"].reason or "")


def test_learned_weights_make_expression_2_served_on_the_gpu_pool() -> None:
    settings = Settings(expression_weights=Path("/weights"))

    entry = resolve_model("expression-2", settings)

    assert (entry.engine, entry.queue) == ("expression-2", ModelKind.EXPRESSION)
    assert engines_for_queues(["expression"], settings) == ["expression", "expression-2"]
    assert engines_for_queues(["essence", "build"], settings) == ["essence"]


def test_an_operator_can_remap_names_in_settings_and_unknown_engines_are_never_served() -> None:
    settings = Settings(models={"essence": "essence", "expression-2": "expression", "custom": "nope"})

    assert resolve_model("expression-2", settings).engine == "expression"  # the analytic engine, on purpose
    with pytest.raises(ModelNotConfigured, match="unknown engine 'nope'"):
        resolve_model("custom", settings)
    with pytest.raises(ModelNotConfigured, match="it serves: essence, expression-2"):
        resolve_model("essence-2", settings)  # no longer in this farm's table


def test_get_v1_models_lists_each_name_with_what_runs_it(tmp_path: Path) -> None:
    api = ApiHarness.build(tmp_path)
    api.registry.publish(
        WorkerInfo(
            worker_id="w1",
            hostname="h",
            pid=1,
            queues=["essence"],
            state="READY",
            capacity=6,
            active_sessions=2,
            models=["essence"],
            backend="numpy",
        ),
        ttl_s=30,
    )

    response = api.client.get("/v1/models", headers=api.headers())

    assert response.status_code == 200, response.text
    models = {m["name"]: m for m in response.json()["models"]}
    assert set(models) == {"essence", "essence-2", "expression", "expression-2"}
    assert (models["essence-2"]["engine"], models["essence-2"]["workers"]) == ("essence", 1)
    assert (models["essence"]["free_slots"], models["essence"]["capacity_per_worker"]) == (4, 6)
    assert models["essence"]["backends"] == ["numpy"]
    assert models["expression"]["workers"] == 0
    assert models["expression-2"]["served"] is False
    assert api.client.get("/v1/models").status_code == 401  # the same auth as every /v1 route
