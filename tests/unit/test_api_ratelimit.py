"""Rate limits over the API: per-tenant buckets by tier, headers, 429 with Retry-After, failed auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.api.ratelimit import MemoryRateLimiter, tier_of
from farm.tenancy.plans import Tier
from tests.unit.api_support import ApiHarness, b64, png_bytes, wav_bytes

pytestmark = pytest.mark.unit


@pytest.fixture
def api(tmp_path: Path) -> ApiHarness:
    return ApiHarness.build(tmp_path)


@pytest.fixture
def now(api: ApiHarness) -> list[float]:
    """A hand-driven clock for the API's limiter."""
    clock = [1000.0]
    api.client.app.state.farm.limiter = MemoryRateLimiter(clock=lambda: clock[0])  # type: ignore[attr-defined]
    return clock


def _free(api: ApiHarness, tenant: str = "tenant-a") -> None:
    api.client.app.state.farm.metering.ledger.set_plan(tenant, "free")  # type: ignore[attr-defined]


def test_routes_map_to_cost_tiers() -> None:
    assert tier_of("POST", "/v1/video/generate") is Tier.GENERATE
    assert tier_of("POST", "/v1/agents") is Tier.GENERATE
    assert tier_of("POST", "/v1/tts") is Tier.WRITE
    assert tier_of("DELETE", "/v1/agents/{agent_id}") is Tier.WRITE
    assert tier_of("GET", "/v1/sessions") is Tier.READ


def test_reads_carry_headers_and_the_bucket_empties_into_429_with_retry_after(
    api: ApiHarness, now: list[float]
) -> None:
    _free(api)  # 120 reads per minute: 2 tokens per second
    first = api.client.get("/v1/sessions", headers=api.headers())
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("120", "119")
    assert first.headers["X-RateLimit-Reset"] == "1"
    for _ in range(119):
        assert api.client.get("/v1/sessions", headers=api.headers()).status_code == 200
    limited = api.client.get("/v1/sessions", headers=api.headers())
    assert (limited.status_code, limited.json()["error"]["code"]) == (429, "RATE_LIMITED")
    assert limited.headers["Retry-After"] == "1" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Reset"] == "60"
    now[0] += 0.5  # one token back
    assert api.client.get("/v1/sessions", headers=api.headers()).status_code == 200


def test_generation_has_its_own_small_bucket_and_a_refused_request_stores_nothing(
    api: ApiHarness, now: list[float]
) -> None:
    _free(api)
    api.client.app.state.farm.metering.ledger.add_topup("tenant-a", 1000)  # type: ignore[attr-defined]
    _, roomy = api.keys.create("tenant-a", "roomy", concurrency_limit=10)  # the free plan allows 1 live
    body = {"image": b64(png_bytes()), "audio": b64(wav_bytes(0.5))}
    statuses = [
        api.client.post("/v1/video/generate", json=body, headers=api.headers(roomy)).status_code
        for _ in range(5)
    ]
    assert statuses == [201, 201, 201, 201, 429]
    assert len(api.queue.messages) == 4
    refused = api.client.post("/v1/video/generate", json=body, headers=api.headers(roomy))
    assert refused.headers["Retry-After"] == "15"  # 4 per minute: a token every 15 s
    assert api.client.get("/v1/sessions", headers=api.headers()).status_code == 200  # reads are separate


def test_the_bucket_is_shared_by_every_key_of_the_tenant(api: ApiHarness, now: list[float]) -> None:
    _free(api)
    _, second_key = api.keys.create("tenant-a", "second")
    for _ in range(60):
        api.client.get("/v1/sessions", headers=api.headers())
        api.client.get("/v1/sessions", headers=api.headers(second_key))
    assert api.client.get("/v1/sessions", headers=api.headers(second_key)).status_code == 429
    other_tenant = api.client.get("/v1/sessions", headers=api.headers(api.secret_b))
    assert other_tenant.status_code == 200


def test_unlimited_plans_are_not_limited_and_get_no_headers(api: ApiHarness, now: list[float]) -> None:
    for _ in range(300):
        r = api.client.get("/v1/sessions", headers=api.headers())
    assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers


def test_failed_authentication_is_limited_per_address_and_validate_is_free(
    api: ApiHarness, now: list[float]
) -> None:
    statuses = [
        api.client.get("/v1/sessions", headers={"api-secret": "farm_guess"}).status_code for _ in range(31)
    ]
    assert statuses == [401] * 30 + [429]
    assert api.client.get("/v1/sessions", headers=api.headers()).status_code == 200  # real keys unaffected
    validate = api.client.post("/v1/validate", headers={"api-secret": "farm_guess"})
    assert validate.status_code == 200 and "X-RateLimit-Limit" not in validate.headers
