"""Plans and credits over the API (in-memory ledger): usage shapes, 402 when out, plan concurrency."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.tenancy.metering import Metering
from tests.unit.api_support import ApiHarness, b64, png_bytes, wav_bytes

pytestmark = pytest.mark.unit


@pytest.fixture
def api(tmp_path: Path) -> ApiHarness:
    return ApiHarness.build(tmp_path)


def _metering(api: ApiHarness) -> Metering:
    metering: Metering = api.client.app.state.farm.metering  # type: ignore[attr-defined]
    return metering


def test_a_generated_video_is_charged_per_started_minute_and_shows_in_usage(api: ApiHarness) -> None:
    _metering(api).ledger.set_plan("tenant-a", "free")
    body = {"image": b64(png_bytes()), "audio": b64(wav_bytes(1.0)), "model": "expression"}
    r = api.client.post("/v1/video/generate", json=body, headers=api.headers())
    assert r.status_code == 201, r.text
    usage = api.client.get("/v1/usage", headers=api.headers()).json()
    assert usage["plan"] == {
        "name": "free",
        "monthly_credits": 199,
        "concurrent_sessions": 1,
        "requests_per_min": {"generate": 4, "write": 30, "read": 120},
    }
    assert (usage["balance"], usage["plan_credits_left"], usage["topup_credits"]) == (195, 195, 0)
    assert usage["by_model"]["expression"] == {
        "minutes": 1,
        "credits": 4,
        "credits_per_minute": 4,
        "minutes_left": 48,
    }
    assert usage["by_model"]["essence"]["minutes_left"] == 97
    summary = api.client.get("/v2/credit-summaries", headers=api.headers()).json()
    assert summary == {
        "balance": 195,
        "plan_credits": 195,
        "topup_credits": 0,
        "is_enterprise": False,
        "minutes_estimate": {"essence_1_cloud": 97, "expression_1_cloud": 48},
    }
    other = api.client.get("/v1/usage", headers=api.headers(api.secret_b)).json()
    assert (other["plan"]["name"], other["balance"]) == ("custom", None)  # unlimited by default


def test_out_of_credits_new_work_is_refused_with_402_and_nothing_is_stored(api: ApiHarness) -> None:
    metering = _metering(api)
    metering.ledger.set_plan("tenant-a", "free")
    metering.charge_once("tenant-a", "spent", "test", 198)  # 1 credit left
    attempts = [
        api.client.post(
            "/v1/sessions", json=api.session_body(avatar_image=b64(png_bytes())), headers=api.headers()
        ),
        api.client.post(
            "/v1/video/generate", json={"image": b64(png_bytes()), "text": "Hi"}, headers=api.headers()
        ),
        api.client.post("/v1/agents", json={"image": b64(png_bytes())}, headers=api.headers()),
    ]
    for r in attempts:
        assert (r.status_code, r.json()["error"]["code"]) == (402, "INSUFFICIENT_BALANCE"), r.text
        assert "balance is 1" in r.json()["error"]["message"]
    assert api.stored_nothing() and api.agents.list_for_tenant("tenant-a") == []


def test_an_agent_build_is_charged_once_at_submit(api: ApiHarness) -> None:
    _metering(api).ledger.set_plan("tenant-a", "creator")
    api.client.post("/v1/agents", json={"image": b64(png_bytes())}, headers=api.headers())
    usage = api.client.get("/v1/usage", headers=api.headers()).json()
    assert (usage["balance"], usage["one_time"]) == (1_550, {"agent_build": 250})


def test_the_plans_concurrency_governs_new_sessions(api: ApiHarness) -> None:
    _metering(api).ledger.set_plan("tenant-a", "free")  # 1 concurrent session
    body = api.session_body(avatar_image=b64(png_bytes()))
    assert api.client.post("/v1/sessions", json=body, headers=api.headers()).status_code == 201
    second = api.client.post("/v1/sessions", json=body, headers=api.headers())
    assert (second.status_code, second.json()["error"]["code"]) == (403, "CONCURRENCY_LIMIT_REACHED")


def test_an_uploaded_clip_is_charged_for_its_started_minutes_when_queued(api: ApiHarness) -> None:
    _metering(api).ledger.set_plan("tenant-a", "free")
    body = api.session_body(avatar_image=b64(png_bytes()), audio=b64(wav_bytes(1.0)))
    assert api.client.post("/v1/sessions", json=body, headers=api.headers()).status_code == 201
    usage = api.client.get("/v1/usage", headers=api.headers()).json()
    assert (usage["balance"], usage["by_model"]["essence"]["minutes"]) == (197, 1)
