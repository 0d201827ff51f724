"""The Python SDK against the in-memory API: typed errors and the session/agent round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.client import AvatarFarm, error_from_envelope
from farm.kernel.domain import AgentStatus, SessionState
from farm.kernel.errors import (
    AgentNotReady,
    FarmError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    ValidationError,
)
from tests.unit.api_support import ApiHarness, png_bytes, wav_bytes

pytestmark = pytest.mark.unit


@pytest.fixture
def api(tmp_path: Path) -> ApiHarness:
    return ApiHarness.build(tmp_path)


def _farm(api: ApiHarness, secret: str | None) -> AvatarFarm:
    return AvatarFarm("http://testserver", secret, http=api.client)


def test_errors_map_back_to_the_farm_error_classes_by_code() -> None:
    def envelope(code: str, status: int) -> dict[str, object]:
        return {"error": {"code": code, "message": "m", "httpStatus": status}, "status": "error"}

    assert isinstance(error_from_envelope(404, envelope("NOT_FOUND", 404)), NotFound)
    assert isinstance(error_from_envelope(409, envelope("AGENT_NOT_READY", 409)), AgentNotReady)
    assert isinstance(error_from_envelope(413, envelope("PAYLOAD_TOO_LARGE", 413)), PayloadTooLarge)
    unknown = error_from_envelope(418, envelope("TEAPOT", 418))
    assert (unknown.code, unknown.http_status) == ("TEAPOT", 418)
    assert error_from_envelope(502, "<html>bad gateway</html>").http_status == 502


def test_a_session_round_trip_through_the_sdk(api: ApiHarness) -> None:
    farm = _farm(api, api.secret_a)
    agent = api.agent()
    created = farm.create_session(audio=wav_bytes(), avatar_id=agent.id)
    assert created.status == "QUEUED"
    assert [s.session_id for s in farm.list_sessions()] == [created.session_id]
    api.store.transition(created.session_id, SessionState.ENDED, reason="test")
    done = farm.wait_session(created.session_id, deadline_s=5)
    assert done.terminal and [h["state"] for h in done.history] == ["QUEUED", "ENDED"]


def test_an_agent_round_trip_through_the_sdk(api: ApiHarness) -> None:
    farm = _farm(api, api.secret_a)
    agent = farm.create_agent(png_bytes())
    api.agents.update(agent.agent_id, AgentStatus.READY)
    assert farm.wait_agent(agent.agent_id, deadline_s=5).status == "ready"


def test_sdk_calls_raise_typed_errors(api: ApiHarness) -> None:
    with pytest.raises(Unauthorized):
        _farm(api, None).list_sessions()
    farm = _farm(api, api.secret_a)
    with pytest.raises(NotFound):
        farm.get_session("0" * 32)
    with pytest.raises(ValidationError):
        farm.get_session("nope")  # not a session id at all
    with pytest.raises(ValidationError):
        farm.create_session(audio=b"not audio", avatar_image=png_bytes())
    with pytest.raises(FarmError):
        farm.get_agent("bad")


def test_health_probes_never_raise(api: ApiHarness) -> None:
    assert _farm(api, None).healthy()
    assert not AvatarFarm("http://127.0.0.1:9", None).healthy()
