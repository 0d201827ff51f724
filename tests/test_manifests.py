"""Deployment manifests validated offline: k8s/ (kustomize) and docker-compose.yml.

Core kinds go through ``kubernetes-validate --strict`` (schemas for k8s 1.25–1.37, unknown fields
are errors); KEDA ScaledObjects (a CRD it cannot check) are checked here against what the farm
needs: one redis-list trigger per queue on the queue's exact list name, targeting a Deployment
that consumes that queue, whose termination grace covers the worker's drain.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from farm.kernel import names
from farm.kernel.settings import Settings

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
    [d for d in DOCS if not d["apiVersion"].startswith("keda.sh/")],
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


def _pod_specs() -> dict[str, dict[str, Any]]:
    out = {}
    for kind in ("Deployment", "StatefulSet"):
        for name, doc in _by_kind(kind).items():
            out[name] = doc["spec"]["template"]["spec"]
    return out


def test_render_pools_scale_on_demand_and_the_build_pool_on_its_list() -> None:
    deployments, scaled = _by_kind("Deployment"), _by_kind("ScaledObject")
    seen_queues = set()
    for name, obj in scaled.items():
        target = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        args = _container(target)["args"]
        queue = args[args.index("--queue") + 1]
        (trigger,) = obj["spec"]["triggers"]
        meta = trigger["metadata"]
        assert all(isinstance(v, str) for v in meta.values()), f"{name}: KEDA metadata values are strings"
        if queue in names.RENDER_QUEUES:
            # Demand (queued + live + spares) from the API, averaged against the per-pod capacity.
            assert trigger["type"] == "metrics-api" and trigger["metricType"] == "AverageValue", name
            assert meta["url"].endswith(f"/scaling/{queue}") and meta["valueLocation"] == "value"
            capacity = Settings().pod_capacity[queue]
            assert int(meta["targetValue"]) == capacity, f"{name}: target must be the per-pod capacity"
            assert obj["spec"]["maxReplicaCount"] * capacity >= 10_000, f"{name} caps the farm below 10,000"
            down = obj["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
            assert down["stabilizationWindowSeconds"] >= 300
        else:
            assert trigger["type"] == "redis" and meta["listName"] == queue
            assert trigger["authenticationRef"]["name"] in _by_kind("TriggerAuthentication")
        seen_queues.add(queue)
    assert seen_queues == QUEUES


@pytest.mark.parametrize("deployment", ["worker-essence", "worker-expression", "worker-build"])
def test_worker_grace_covers_the_prestop_wait_for_live_sessions_and_the_drain(deployment: str) -> None:
    worker = _by_kind("Deployment")[deployment]
    container = _container(worker)
    drain_s = float(_env(container, "FARM_DRAIN_GRACE_S") or 0)
    session_s = float(_env(container, "FARM_MAX_SESSION_S") or 0)
    grace_s = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert drain_s > 0 and session_s > 0
    assert session_s + drain_s + 10 <= grace_s <= session_s + drain_s + 120
    hook = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "/drainz" in hook and ":8081/" in hook


@pytest.mark.parametrize("deployment", ["worker-essence", "worker-expression", "worker-build"])
def test_workers_are_probed_on_their_health_endpoint(deployment: str) -> None:
    container = _container(_by_kind("Deployment")[deployment])
    assert container["startupProbe"]["httpGet"]["path"] == "/startupz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    (port,) = container["ports"]
    assert str(port["containerPort"]) == _env(container, "FARM_HEALTH_PORT")
    # the startup budget covers a prewarm (FARM_PREWARM_TIMEOUT_S default 120 s)
    probe = container["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 120


def test_every_pod_runs_restricted_as_one_non_root_uid() -> None:
    for name, spec in _pod_specs().items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"] + spec.get("initContainers", []):
            sec = container["securityContext"]
            assert sec["allowPrivilegeEscalation"] is False, name
            assert sec["capabilities"]["drop"] == ["ALL"], name
    uids = {spec["securityContext"]["runAsUser"] for n, spec in _pod_specs().items() if n != "redis"}
    assert uids == {1000}
    assert _by_kind("Namespace")["avatar-farm"]["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"
    ] == ("restricted")


def test_no_password_is_committed_and_redis_needs_one() -> None:
    assert _by_kind("Secret") == {}, "Secrets are created by the operator, never committed"
    assert "FARM_REDIS_URL" not in _by_kind("ConfigMap")["farm-config"]["data"]
    for name, spec in _pod_specs().items():
        env = {e["name"]: e for c in spec["containers"] for e in c.get("env", [])}
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "farm-redis", name
    redis_args = " ".join(
        _by_kind("StatefulSet")["redis"]["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    assert "--requirepass $(REDIS_PASSWORD)" in redis_args and "--maxmemory 1536mb" in redis_args


def test_every_workload_has_a_disruption_budget_and_spreads() -> None:
    budgets = {d["spec"]["selector"]["matchLabels"]["app"] for d in _by_kind("PodDisruptionBudget").values()}
    assert {"api", "worker-essence", "worker-expression", "worker-build", "redis"} <= budgets
    for name in ("api", "worker-essence", "worker-expression", "worker-build"):
        keys = {c["topologyKey"] for c in _pod_specs()[name]["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, name


def test_ingress_is_denied_by_default_and_redis_is_farm_only() -> None:
    policies = _by_kind("NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}
    assert policies["redis-from-farm"]["spec"]["podSelector"]["matchLabels"] == {"app": "redis"}


def test_flower_runs_with_the_farm_app() -> None:
    args = " ".join(_container(_by_kind("Deployment")["flower"])["args"])
    assert "celery -A tasks.celery_entry" in args


def test_expression_workers_ask_for_a_gpu_and_use_a_fork_free_pool() -> None:
    container = _container(_by_kind("Deployment")["worker-expression"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["args"][container["args"].index("--pool") + 1] in {"threads", "solo"}
    for other in ("worker-essence", "worker-build", "api"):
        assert "nvidia.com/gpu" not in str(_container(_by_kind("Deployment")[other])["resources"])


def test_redis_persists_and_never_evicts() -> None:
    args = " ".join(_by_kind("StatefulSet")["redis"]["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--appendonly yes" in args and "--maxmemory-policy noeviction" in args and "--maxmemory " in args


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


# ------------------------------------------------------------------ k8s-ha/: Redis with Sentinel
K8S_HA = ROOT / "k8s-ha"
HA_KUSTOMIZATION = yaml.safe_load((K8S_HA / "kustomization.yaml").read_text())
HA_DOCS = [d for d in yaml.safe_load_all((K8S_HA / "redis-ha.yaml").read_text()) if d]
NAMESPACE = yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]


def _ha(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in HA_DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


def _ha_patches() -> list[dict[str, Any]]:
    patches = []
    for entry in HA_KUSTOMIZATION["patches"]:
        text = entry["patch"] if "patch" in entry else (K8S_HA / entry["path"]).read_text()
        patches.extend(d for d in yaml.safe_load_all(text) if d)
    return patches


def _sentinel_addresses() -> list[str]:
    sentinels = _ha("StatefulSet", "redis-sentinel")
    service = sentinels["spec"]["serviceName"]
    return [
        f"redis-sentinel-{i}.{service}.{NAMESPACE}.svc:26379" for i in range(sentinels["spec"]["replicas"])
    ]


def _script(name: str) -> str:
    (container,) = _ha("StatefulSet", name)["spec"]["template"]["spec"]["containers"]
    return " ".join(container["args"])


@pytest.mark.parametrize("doc", HA_DOCS, ids=lambda d: d["kind"] + "/" + d["metadata"]["name"])
def test_ha_manifests_pass_strict_schema_validation(doc: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    kubernetes_validate.validate(doc, "1.30", strict=True)


def test_ha_overlay_builds_on_the_base_and_removes_only_the_single_redis() -> None:
    assert HA_KUSTOMIZATION["resources"] == ["../k8s", "redis-ha.yaml"]
    deleted = {(p["kind"], p["metadata"]["name"]) for p in _ha_patches() if p.get("$patch") == "delete"}
    assert deleted == {
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("PodDisruptionBudget", "redis"),
        ("NetworkPolicy", "redis-from-farm"),
    }
    base_ids = {(d["kind"], d["metadata"]["name"]) for d in DOCS}
    assert deleted <= base_ids
    assert not {(d["kind"], d["metadata"]["name"]) for d in HA_DOCS} & base_ids


def test_every_container_that_used_the_single_redis_reaches_the_sentinels_instead() -> None:
    def uses_redis_url(container: dict[str, Any]) -> bool:
        return any(e["name"] == "FARM_REDIS_URL" for e in container.get("env", []))

    in_base = {
        (name, c["name"])
        for name, spec in _pod_specs().items()
        for c in spec["containers"] + spec.get("initContainers", [])
        if uses_redis_url(c)
    }
    patched = set()
    for patch in _ha_patches():
        if patch["kind"] != "Deployment":
            continue
        spec = patch["spec"]["template"]["spec"]
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            env = {e["name"]: e for e in container["env"]}
            assert env["FARM_REDIS_URL"] == {"name": "FARM_REDIS_URL", "$patch": "delete"}
            secret = env["FARM_REDIS_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert secret == {"name": "farm-redis", "key": "password"}
            patched.add((patch["metadata"]["name"], container["name"]))
    assert patched == in_base
    assert "FARM_REDIS_URL" not in " ".join(_container(_by_kind("Deployment")["flower"])["args"])


def test_the_farm_config_names_every_sentinel_and_the_monitored_master() -> None:
    (config,) = [p for p in _ha_patches() if p["kind"] == "ConfigMap"]
    data = config["data"]
    settings = Settings(
        redis_sentinels=data["FARM_REDIS_SENTINELS"], redis_sentinel_master=data["FARM_REDIS_SENTINEL_MASTER"]
    )
    assert settings.redis_sentinels == _sentinel_addresses()
    master = settings.redis_sentinel_master
    assert f"sentinel monitor {master} $primary 6379 2" in _script("redis-sentinel")
    assert f"get-master-addr-by-name {master}" in _script("redis-node")
    (build,) = [p for p in _ha_patches() if p["kind"] == "ScaledObject"]
    (trigger,) = build["spec"]["triggers"]
    assert trigger["type"] == "redis-sentinel" and trigger["metadata"]["sentinelMaster"] == master
    assert trigger["metadata"]["addresses"] == data["FARM_REDIS_SENTINELS"]
    assert trigger["metadata"]["listName"] == names.QUEUE_BUILD


def test_sentinels_and_data_nodes_agree_on_names_ports_and_quorum() -> None:
    nodes, sentinels = _ha("StatefulSet", "redis-node"), _ha("StatefulSet", "redis-sentinel")
    for sts, port in ((nodes, 6379), (sentinels, 26379)):
        service = _ha("Service", sts["spec"]["serviceName"])
        assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
        assert service["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
        (container,) = sts["spec"]["template"]["spec"]["containers"]
        (declared,) = container["ports"]
        assert declared["containerPort"] == port == service["spec"]["ports"][0]["port"]
        hosts = next(e["value"] for e in container["env"] if e["name"] == "SENTINELS").split()
        assert hosts == [a.rsplit(":", 1)[0] for a in _sentinel_addresses()]
    first_node = f"redis-node-0.{nodes['spec']['serviceName']}.{NAMESPACE}.svc"
    assert first_node in _script("redis-node") and first_node in _script("redis-sentinel")
    quorum = 2
    assert sentinels["spec"]["replicas"] // 2 < quorum <= sentinels["spec"]["replicas"] - 1
    assert nodes["spec"]["replicas"] >= 2


def test_ha_redis_persists_never_evicts_and_authenticates_everywhere() -> None:
    node = _script("redis-node")
    for flag in ("--appendonly yes", "--maxmemory-policy noeviction", "--maxmemory 1536mb"):
        assert flag in node
    assert '--requirepass "$REDIS_PASSWORD"' in node and '--masterauth "$REDIS_PASSWORD"' in node
    sentinel = _script("redis-sentinel")
    assert "requirepass $REDIS_PASSWORD" in sentinel and "sentinel auth-pass" in sentinel
    for name in ("redis-node", "redis-sentinel"):
        spec = _ha("StatefulSet", name)["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        env = {e["name"]: e for e in container["env"]}
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "farm-redis"
        budget = _ha("PodDisruptionBudget", name)
        assert budget["spec"]["maxUnavailable"] == 1 and budget["spec"]["selector"]["matchLabels"] == {
            "app": name
        }


def test_ha_redis_is_reachable_from_farm_pods_and_from_itself_only() -> None:
    policy = _ha("NetworkPolicy", "redis-ha-from-farm")
    (selector,) = policy["spec"]["podSelector"]["matchExpressions"]
    assert set(selector["values"]) == {"redis-node", "redis-sentinel"}
    (rule,) = policy["spec"]["ingress"]
    allowed = set(rule["from"][0]["podSelector"]["matchExpressions"][0]["values"])
    farm_apps = {"api", "worker-essence", "worker-expression", "worker-build", "flower"}
    assert allowed == farm_apps | {"redis-node", "redis-sentinel"}
    assert {p["port"] for p in rule["ports"]} == {6379, 26379}


def test_the_ha_overlay_renders_without_the_single_redis() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the overlay's files are checked above, the render here")
    rendered = subprocess.run([kubectl, "kustomize", str(K8S_HA)], capture_output=True, text=True, check=True)
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    ids = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("StatefulSet", "redis") not in ids and ("Service", "redis") not in ids
    assert {("StatefulSet", "redis-node"), ("StatefulSet", "redis-sentinel")} <= ids
    assert "FARM_REDIS_URL" not in rendered.stdout and "@redis:6379" not in rendered.stdout
    assert all(d["metadata"].get("namespace") == NAMESPACE for d in docs if d["kind"] != "Namespace")
