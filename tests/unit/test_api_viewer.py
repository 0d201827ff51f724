"""The viewer link: subscribe-only, short-lived, only for rooms where the caller has a live avatar."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from farm.api.routes.viewer import VENDOR_DIR
from farm.kernel.domain import ModelKind, Session
from tests.unit.api_support import ApiHarness

pytestmark = pytest.mark.unit

LK = {"livekit_url": "ws://lk.test:7880", "livekit_api_key": "lk-key", "livekit_api_secret": "s" * 40}


def live_room_session(api_h: ApiHarness, tenant: str, room: str) -> None:
    session = Session(
        id=uuid.uuid4().hex, tenant=tenant, model=ModelKind.ESSENCE, avatar_id="A1", livekit={"room": room}
    )
    api_h.store.create(session)


def test_a_viewer_link_carries_a_subscribe_only_token_in_its_fragment(tmp_path: Path) -> None:
    api_h = ApiHarness.build(tmp_path, **LK)
    live_room_session(api_h, "tenant-a", "room-7")

    response = api_h.client.post("/v1/rooms/room-7/viewer", json={"ttl_s": 120}, headers=api_h.headers())

    assert response.status_code == 200, response.text
    url = urlsplit(response.json()["viewer_url"])
    assert url.path == "/view/room-7" and not url.query  # nothing secret reaches a server log
    fragment = parse_qs(url.fragment)
    assert fragment["url"] == ["ws://lk.test:7880"]
    claims = jwt.decode(fragment["token"][0], "s" * 40, algorithms=["HS256"])
    assert claims["video"] == {
        "room": "room-7",
        "roomJoin": True,
        "canSubscribe": True,
        "canPublish": False,
        "canPublishData": False,
    }
    assert claims["exp"] - claims["nbf"] == 120


def test_no_link_for_another_tenants_room_or_without_a_livekit_server(tmp_path: Path) -> None:
    api_h = ApiHarness.build(tmp_path, **LK)
    live_room_session(api_h, "tenant-b", "room-b")
    other = api_h.client.post("/v1/rooms/room-b/viewer", headers=api_h.headers())
    assert (other.status_code, other.json()["error"]["code"]) == (404, "NOT_FOUND")

    bare = ApiHarness.build(tmp_path / "bare")
    live_room_session(bare, "tenant-a", "room-a")
    refused = bare.client.post("/v1/rooms/room-a/viewer", headers=bare.headers())
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "LIVEKIT_NOT_CONFIGURED")
    assert bare.client.post("/v1/rooms/bad room!/viewer", headers=bare.headers()).status_code in (
        400,
        404,
        422,
    )


def test_the_page_and_the_browser_sdk_are_served_by_the_farm(api_h_plain: ApiHarness) -> None:
    page = api_h_plain.client.get("/view/room-7")
    assert page.status_code == 200 and "livekit-client.umd.js" in page.text
    sdk = api_h_plain.client.get("/static/livekit-client.umd.js")
    if (VENDOR_DIR / "livekit-client.umd.js").is_file():
        assert sdk.status_code == 200 and "LivekitClient" in sdk.text
    else:
        assert (sdk.status_code, sdk.json()["error"]["code"]) == (503, "ASSET_MISSING")


@pytest.fixture
def api_h_plain(tmp_path: Path) -> ApiHarness:
    return ApiHarness.build(tmp_path)
