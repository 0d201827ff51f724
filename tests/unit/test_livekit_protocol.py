"""Wire helpers of the remote-avatar protocol: stream formats, PCM re-chunking, trigger_dynamics,
room tokens, and the model server's simulcast SDP fix."""

from __future__ import annotations

import datetime
import json

import jwt
import numpy as np
import pytest
from livekit import api

from farm.infra.livekit_tokens import parse_room_token
from farm.kernel import names
from farm.kernel.domain import RoomJoin
from farm.kernel.errors import UnknownGesture, ValidationError
from farm.kernel.settings import Settings
from farm.stream.livekit.protocol import PcmDecoder, dynamics_reply, stream_format
from farm.stream.livekit.token import join_for_session, mint_token

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret-long-enough-for-hs256-0123456789"


def test_stream_format_reads_string_attributes() -> None:
    fmt = stream_format({"sample_rate": "24000", "num_channels": "2"})
    assert (fmt.sample_rate, fmt.channels) == (24_000, 2)


@pytest.mark.parametrize(
    "attrs", [None, {}, {"sample_rate": "24000"}, {"sample_rate": "x", "num_channels": "1"}]
)
def test_stream_format_refuses_missing_or_bad_attributes(attrs: dict[str, str] | None) -> None:
    with pytest.raises(ValidationError):
        stream_format(attrs)


def test_pcm_decoder_keeps_partial_samples_across_chunks() -> None:
    pcm = np.arange(-5, 5, dtype=np.int16).repeat(2)  # stereo, interleaved
    raw = pcm.tobytes()
    decoder = PcmDecoder(channels=2)

    parts = [decoder.push(raw[i : i + 3]) for i in range(0, len(raw), 3)]

    assert np.array_equal(np.concatenate(parts), pcm)
    assert all(p.size % 2 == 0 for p in parts)
    assert decoder.leftover_bytes == 0


def test_trigger_dynamics_reply_has_the_bithuman_shape() -> None:
    started: list[str] = []
    reply = json.loads(
        dynamics_reply(json.dumps({"action": "mini_wave_hello", "identity": "a"}), started.append)
    )
    assert reply == {
        "action": "mini_wave_hello",
        "animation_triggered": True,
        "service": "avatar-farm",
        "status": "success",
    }
    assert started == ["mini_wave_hello"]


def test_an_unknown_gesture_is_answered_not_triggered() -> None:
    def refuse(action: str) -> None:
        raise UnknownGesture(action)

    reply = json.loads(dynamics_reply('{"action": "moonwalk"}', refuse))
    assert reply["animation_triggered"] is False and reply["status"] == "success"


@pytest.mark.parametrize("payload", ["", "not json", "[]", '{"action": 3}', '{"gesture": "x"}'])
def test_a_malformed_trigger_is_a_validation_error(payload: str) -> None:
    with pytest.raises(ValidationError):
        dynamics_reply(payload, lambda _a: None)


def plugin_token(room: str = "r1", identity: str = "bithuman-avatar-agent") -> str:
    """What livekit-plugins-bithuman mints for the avatar (reference §3)."""
    return (
        api.AccessToken("key", SECRET)
        .with_kind("agent")
        .with_identity(identity)
        .with_name(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .with_attributes(
            {names.LK_ATTR_PUBLISH_ON_BEHALF: "agent-AJ_1", "agent_id": "A91XMB7113", "api_secret": "s"}
        )
        .to_jwt()
    )


def test_a_callers_token_is_read_without_its_secret() -> None:
    join = parse_room_token("wss://lk.example", plugin_token())
    assert (join.room, join.identity, join.agent_identity, join.agent_id) == (
        "r1",
        "bithuman-avatar-agent",
        "agent-AJ_1",
        "A91XMB7113",
    )


def test_a_token_for_another_room_or_no_jwt_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse_room_token("wss://lk", plugin_token(room="r1"), room="r2")
    with pytest.raises(ValidationError):
        parse_room_token("wss://lk", "garbage")


def make_settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def test_the_farm_mints_a_least_privilege_agent_token_bounded_by_the_session_length() -> None:
    settings = make_settings(
        livekit_url="wss://lk", livekit_api_key="key", livekit_api_secret=SECRET, max_session_s=600
    )

    join = join_for_session(RoomJoin(room="r9", agent_identity="agent-7"), settings)
    assert join.token is not None
    claims = api.TokenVerifier("key", SECRET).verify(join.token)
    raw = jwt.decode(join.token, options={"verify_signature": False})

    assert (join.url, join.room, join.identity, join.agent_identity) == (
        "wss://lk",
        "r9",
        names.DEFAULT_AVATAR_IDENTITY,
        "agent-7",
    )
    assert claims.kind == "agent"
    assert claims.attributes == {names.LK_ATTR_PUBLISH_ON_BEHALF: "agent-7"}
    assert claims.video is not None and claims.video.room == "r9" and claims.video.room_join
    assert not claims.video.room_admin and not claims.video.room_create
    assert raw["exp"] - raw["nbf"] <= 600 + 300


def test_a_callers_token_is_used_as_it_is_and_never_decoded_again_by_the_worker() -> None:
    parsed = parse_room_token("wss://lk.example", plugin_token())
    join = join_for_session(parsed, make_settings())
    assert join == parsed  # nothing minted, nothing re-read
    stored = RoomJoin.model_validate({"room": "r1", "url": "ws://x", "token": "t", "identity": "a"})
    assert join_for_session(stored, make_settings()).token == "t"  # even a token it could not parse


def test_minting_needs_the_farm_livekit_key() -> None:
    with pytest.raises(ValidationError):
        mint_token(make_settings(), room="r1")
    with pytest.raises(ValidationError):
        join_for_session(RoomJoin(room="r1"), make_settings())  # no URL either


def test_a_default_ttl_token_is_clamped_to_the_session_bound() -> None:
    settings = make_settings(livekit_api_key="k", livekit_api_secret=SECRET, max_session_s=60)
    raw = jwt.decode(
        mint_token(settings, room="r", ttl_s=datetime.timedelta(hours=6).total_seconds()),
        options={"verify_signature": False},
    )
    assert raw["exp"] - raw["nbf"] <= 360
