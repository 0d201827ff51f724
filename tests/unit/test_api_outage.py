"""The app's guarantee: a Redis outage that reaches it untranslated is 503 BACKEND_UNAVAILABLE with
Retry-After, whichever store raised it (the integration test kills a real Redis; this one pins the
mapping itself, for every error class that means "down", without a server)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.unit.api_support import ApiHarness

pytestmark = pytest.mark.unit

OUTAGES = [
    redis.ConnectionError("Connection refused"),
    redis.TimeoutError("Timeout reading from socket"),
    redis.BusyLoadingError("LOADING Redis is loading the dataset in memory"),
    redis.ReadOnlyError("READONLY You can't write against a read only replica."),
    redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."),  # type: ignore[attr-defined]
]


@pytest.mark.parametrize("outage", OUTAGES, ids=lambda e: type(e).__name__)
def test_an_untranslated_redis_outage_is_503_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outage: redis.RedisError
) -> None:
    api = ApiHarness.build(tmp_path)

    def down(_secret: str) -> None:
        raise outage

    monkeypatch.setattr(api.keys, "authenticate", down)
    response = api.client.get("/v1/agents", headers=api.headers())

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "BACKEND_UNAVAILABLE"
    assert response.headers["retry-after"] == "1"
    assert api.client.get("/healthz").status_code == 200  # liveness does not depend on Redis


def test_a_redis_bug_is_still_a_500_not_disguised_as_an_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = ApiHarness.build(tmp_path)

    def wrong(_secret: str) -> None:
        raise redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    monkeypatch.setattr(api.keys, "authenticate", wrong)
    response = api.client.get("/v1/agents", headers=api.headers())

    assert (response.status_code, response.json()["error"]["code"]) == (500, "INTERNAL_ERROR")
