"""The Grafana dashboard and the alert rules name only metrics the farm exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from farm.api.metrics import ApiMetrics
from farm.worker.metrics import WorkerMetrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
RECORDED = {"farm:session_queue_wait_seconds:p95_5m", "farm:frames_late:ratio_5m"}


def _exported() -> set[str]:
    worker = WorkerMetrics()
    for call in (worker.session_started, worker.ttff):
        call("essence", 1.0)
    worker.set_capacity("essence", 1)
    worker.set_ready("essence", True)
    worker.frames("essence", 1, 1)
    worker.av_offset("essence", 0.0)
    worker.batch("essence", 1)
    worker.lease_lost("essence")
    worker.handed_back("essence")
    worker.dropped_speech("essence", 1.5)
    worker.failed("essence", "X")
    worker.ttff("essence", 1.0, {"claim": 0.1})
    api = ApiMetrics()
    api.requests.labels("GET", "/", "200").inc()
    text = (generate_latest(worker.registry) + generate_latest(api.registry)).decode()
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }


def _farm_names(expr: str) -> set[str]:
    return set(re.findall(r"\bfarm_[a-z_]+", expr))


def test_dashboard_and_alerts_use_exported_metrics() -> None:
    exported = _exported()
    dashboard = json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = set().union(*(_farm_names(e) for e in exprs))
    assert used and used <= exported, f"unknown metrics: {sorted(used - exported)}"
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    assert recorded == RECORDED
