"""The SDK's raw API (agents, sessions from audio, fleet) on ``AvatarSession``, against the in-memory
API; the server's error codes as the SDK's classes; the deprecated ``AvatarFarm`` alias."""

from __future__ import annotations

from pathlib import Path

import pytest

import farm.api.routes.viewer  # noqa: F401  (its FarmError classes join the tree walked below)
from farm.client import (
    CODES,
    AuthenticationError,
    AvatarFarm,
    AvatarSession,
    ConflictError,
    NetworkError,
    NotFoundError,
    QuotaExceededError,
    RenderError,
    RequestError,
    error_for,
)
from farm.kernel.domain import AgentStatus, SessionState
from farm.kernel.errors import FarmError
from tests.unit.api_support import ApiHarness, png_bytes, wav_bytes

pytestmark = pytest.mark.unit


@pytest.fixture
def api(tmp_path: Path) -> ApiHarness:
    return ApiHarness.build(tmp_path)


def _farm(api: ApiHarness, secret: str | None) -> AvatarSession:
    return AvatarSession(api_url="http://testserver", api_secret=secret, http=api.client, max_retries=0)


def _server_codes() -> dict[str, int]:
    found: dict[str, int] = {}
    pending: list[type[FarmError]] = [FarmError]
    while pending:
        cls = pending.pop()
        found[cls.code] = cls.http_status
        pending.extend(cls.__subclasses__())
    return found


def test_every_code_of_the_servers_error_tree_has_its_sdk_class() -> None:
    server = _server_codes()
    assert len(server) > 30
    missing = sorted(set(server) - set(CODES))
    assert missing == [], f"add these codes to avatar_farm_client.errors.CODES: {missing}"
    for code, status in server.items():
        error = error_for(status, {"error": {"code": code, "message": "m", "httpStatus": status}})
        assert type(error) is CODES[code]
        if status == 401:
            assert isinstance(error, AuthenticationError), code
        elif status in (402, 429):
            assert isinstance(error, QuotaExceededError), code
        elif status < 500:  # a worker's own failure codes (LEASE_LOST 409) are render errors
            assert isinstance(error, RequestError | QuotaExceededError | RenderError), code
        else:
            assert isinstance(error, NetworkError | RenderError | RequestError), code


def test_an_unknown_code_maps_by_status_and_keeps_its_code() -> None:
    unknown = error_for(418, {"error": {"code": "TEAPOT", "message": "m", "httpStatus": 418}})
    assert type(unknown) is RequestError and (unknown.code, unknown.status) == ("TEAPOT", 418)
    assert isinstance(error_for(404, {"error": {"code": "GONE_NOW"}}), NotFoundError)
    assert isinstance(error_for(502, "<html>bad gateway</html>"), NetworkError)


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
    assert [a.agent_id for a in farm.list_agents()] == [agent.agent_id]
    api.agents.update(agent.agent_id, AgentStatus.READY)
    assert farm.wait_agent(agent.agent_id, deadline_s=5).status == "ready"


def test_sdk_calls_raise_typed_errors(api: ApiHarness) -> None:
    with pytest.raises(AuthenticationError):
        _farm(api, None).list_sessions()
    farm = _farm(api, api.secret_a)
    with pytest.raises(NotFoundError) as missing:
        farm.get_session("0" * 32)
    assert (missing.value.status, missing.value.code) == (404, "NOT_FOUND")
    with pytest.raises(RequestError) as invalid:
        farm.get_session("nope")  # not a session id at all
    assert invalid.value.code == "VALIDATION_ERROR"
    with pytest.raises(RequestError):
        farm.create_session(audio=b"not audio", avatar_image=png_bytes())
    created = farm.create_session(audio=wav_bytes(), avatar_id=api.agent().id)
    farm.stop_session(created.session_id)
    with pytest.raises(ConflictError):
        farm.stop_session(created.session_id)


def test_health_probes_never_raise(api: ApiHarness) -> None:
    assert _farm(api, None).healthy()
    assert not AvatarSession(api_url="http://127.0.0.1:9").healthy()


def test_avatar_farm_still_works_and_says_it_is_deprecated(api: ApiHarness) -> None:
    with pytest.deprecated_call(match="AvatarSession"):
        old = AvatarFarm("http://testserver", api.secret_a, http=api.client)
    assert isinstance(old, AvatarSession)
    assert old.create_agent(png_bytes()).status == "processing"
