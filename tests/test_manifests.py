"""Deployment manifests validated offline: k8s/ (kustomize) and docker-compose.yml.

Core kinds go through ``kubernetes-validate --strict`` (schemas for k8s 1.25–1.37, unknown fields
are errors); KEDA ScaledObjects (a CRD it cannot check) are checked here against what the farm
needs: one redis-list trigger per queue on the queue's exact list name, targeting a Deployment
that consumes that queue, whose termination grace covers the worker's drain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from farm import names

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
QUEUES = {names.QUEUE_ESSENCE, names.QUEUE_EXPRESSION, names.QUEUE_BUILD}


def _documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((K8S / resource).read_text()) if d)
    return docs


DOCS = _documents()


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in DOCS if d["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any], name: str) -> str | None:
    for item in container.get("env", []):
        if item["name"] == name:
            return str(item["value"])
    config = _by_kind("ConfigMap")["farm-config"]["data"]
    return config.get(name)


@pytest.mark.parametrize(
    "doc",
    [d for d in DOCS if d["apiVersion"] != "keda.sh/v1alpha1"],
    ids=lambda d: d["kind"] + "/" + d["metadata"]["name"],
)
def test_core_manifests_pass_strict_schema_validation(doc: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    kubernetes_validate.validate(doc, "1.30", strict=True)


def test_the_schema_gate_rejects_an_unknown_field() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    broken = yaml.safe_load(yaml.safe_dump(_by_kind("Deployment")["api"]))
    _container(broken)["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)


def test_every_queue_has_a_worker_deployment_scaled_by_its_redis_list() -> None:
    deployments, scaled = _by_kind("Deployment"), _by_kind("ScaledObject")
    seen_queues = set()
    for name, obj in scaled.items():
        target = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        (trigger,) = obj["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "redis", name
        assert meta["address"].startswith("redis."), name
        assert all(isinstance(v, str) for v in meta.values()), f"{name}: KEDA metadata values are strings"
        assert int(meta["listLength"]) >= 1
        args = _container(target)["args"]
        assert args[args.index("--queue") + 1] == meta["listName"], f"{name} scales on another queue"
        assert isinstance(obj["spec"]["minReplicaCount"], int) and isinstance(
            obj["spec"]["maxReplicaCount"], int
        )
        seen_queues.add(meta["listName"])
    assert seen_queues == QUEUES


@pytest.mark.parametrize("deployment", ["worker-essence", "worker-expression", "worker-build"])
def test_worker_termination_grace_covers_its_drain(deployment: str) -> None:
    worker = _by_kind("Deployment")[deployment]
    drain_s = float(_env(_container(worker), "FARM_DRAIN_GRACE_S") or 0)
    grace_s = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert drain_s > 0
    assert drain_s + 10 <= grace_s <= drain_s + 60


def test_expression_workers_ask_for_a_gpu_and_use_a_fork_free_pool() -> None:
    container = _container(_by_kind("Deployment")["worker-expression"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["args"][container["args"].index("--pool") + 1] in {"threads", "solo"}
    for other in ("worker-essence", "worker-build", "api"):
        assert "nvidia.com/gpu" not in str(_container(_by_kind("Deployment")[other])["resources"])


def test_redis_persists_and_never_evicts() -> None:
    args = " ".join(_by_kind("StatefulSet")["redis"]["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--appendonly yes" in args and "--maxmemory-policy noeviction" in args


def test_the_api_probes_health_and_readiness() -> None:
    container = _container(_by_kind("Deployment")["api"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_docker_compose_runs_redis_api_every_worker_and_flower() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "api", "worker-essence", "worker-expression", "worker-build", "flower"} <= set(services)
    for queue in QUEUES:
        command = " ".join(services[f"worker-{queue}"]["command"])
        assert f"--queue {queue}" in command
    assert "nvidia" in str(services["worker-expression"].get("deploy", ""))
