"""Health, readiness, fleet, metrics, OpenAPI and the error envelope for routing errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.kernel.contracts import WorkerInfo
from tests.unit.api_support import ApiHarness

pytestmark = pytest.mark.unit


@pytest.fixture
def api(tmp_path: Path) -> ApiHarness:
    return ApiHarness.build(tmp_path)


def _worker(worker_id: str, queue: str, state: str = "READY", active: int = 0) -> WorkerInfo:
    return WorkerInfo(
        worker_id=worker_id,
        hostname="host",
        pid=1,
        queues=[queue],
        state=state,  # type: ignore[arg-type]
        capacity=4,
        active_sessions=active,
        prewarm_s=1.5,
        models=[queue],
        backend="numpy",
    )


def test_healthz_answers_without_a_key(api: ApiHarness) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_readyz_follows_redis_reachability(api: ApiHarness) -> None:
    assert api.client.get("/readyz").status_code == 200
    api.ping_ok[0] = False
    response = api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "BACKEND_UNAVAILABLE"


def test_the_fleet_groups_workers_by_queue_with_free_slots(api: ApiHarness) -> None:
    api.registry.publish(_worker("e1", "essence", active=1), 30)
    api.registry.publish(_worker("e2", "essence", state="STARTING"), 30)
    api.registry.publish(_worker("x1", "expression"), 30)
    fleet = api.client.get("/v1/fleet", headers=api.headers()).json()["queues"]
    assert (fleet["essence"]["ready"], fleet["essence"]["capacity"], fleet["essence"]["free_slots"]) == (
        1,
        4,
        3,
    )
    assert {w["worker_id"]: w["state"] for w in fleet["essence"]["workers"]} == {
        "e1": "READY",
        "e2": "STARTING",
    }
    assert fleet["expression"]["workers"][0]["prewarm_s"] == 1.5
    assert fleet["expression"]["free_slots"] == 4


def test_the_fleet_needs_a_key(api: ApiHarness) -> None:
    assert api.client.get("/v1/fleet").status_code == 401


def test_unknown_routes_and_methods_use_the_error_envelope(api: ApiHarness) -> None:
    missing = api.client.get("/v1/nothing-here", headers=api.headers())
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "NOT_FOUND")
    wrong = api.client.put("/v1/sessions", headers=api.headers())
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "METHOD_NOT_ALLOWED")


def test_query_validation_errors_are_400(api: ApiHarness) -> None:
    response = api.client.get("/v1/sessions?limit=0", headers=api.headers())
    assert (response.status_code, response.json()["error"]["code"]) == (400, "VALIDATION_ERROR")
    assert "limit" in response.json()["error"]["message"]


def test_metrics_count_requests_by_route(api: ApiHarness) -> None:
    api.client.get("/healthz")
    text = api.client.get("/metrics").text
    assert 'farm_api_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text


def test_every_response_carries_a_request_id(api: ApiHarness) -> None:
    assert api.client.get("/healthz").headers["x-request-id"]
    assert api.client.get("/healthz", headers={"X-Request-Id": "abc"}).headers["x-request-id"] == "abc"


def test_openapi_documents_both_session_body_types(api: ApiHarness) -> None:
    spec = api.client.get("/openapi.json").json()
    content = spec["paths"]["/v1/sessions"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert "api-secret" in str(spec["components"]["securitySchemes"])


def test_docs_load_swagger_ui_from_the_api_itself_not_a_cdn(api: ApiHarness) -> None:
    page = api.client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "/docs-assets/swagger-ui-bundle.js" in page.text
    js = api.client.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert api.client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_the_fleet_shows_a_tenant_only_its_own_warm_agents(api: ApiHarness) -> None:
    mine, theirs = api.agent("tenant-a"), api.agent("tenant-b")
    worker = _worker("e1", "essence").model_copy(
        update={"cached_avatars": [mine.id, theirs.id, "img-0123456789abcdef"], "hot_avatars": [theirs.id]}
    )
    api.registry.publish(worker, 30)

    seen_by_a = api.client.get("/v1/fleet", headers=api.headers()).json()["queues"]["essence"]["workers"][0]
    seen_by_b = api.client.get("/v1/fleet", headers=api.headers(api.secret_b)).json()["queues"]["essence"]
    assert (seen_by_a["cached_avatars"], seen_by_a["hot_avatars"]) == ([mine.id], [])
    assert seen_by_b["workers"][0]["hot_avatars"] == [theirs.id]
