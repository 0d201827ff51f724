"""The API the studio uses, against the in-memory app: keys a tenant manages itself, who a key is,
usage per day, agents with names, search, thumbnails and last use, face previews finished by the
build worker's function, the operators' view (admin tenants only) and rooms on the farm's LiveKit."""

from __future__ import annotations

import io
from pathlib import Path

import jwt
import pytest
from PIL import Image

from farm.api.routes import studio
from farm.kernel.contracts import PreviewFaceMessage, WorkerInfo
from farm.kernel.domain import AgentStatus, ModelKind, Session, SessionState
from farm.render.landmarks import sample_portrait
from farm.sessions.face_preview import preview_face
from farm.sessions.previews import MemoryPreviewStore
from farm.tenancy.metering import Metering
from tests.unit.api_support import ApiHarness, b64, png_bytes, wav_bytes

pytestmark = pytest.mark.unit

LIVEKIT = {"livekit_url": "ws://lk.test:7880", "livekit_api_key": "k", "livekit_api_secret": "s" * 32}


@pytest.fixture
def api(tmp_path: Path) -> ApiHarness:
    return ApiHarness.build(tmp_path, admin_tenants=["ops"])


def _portrait_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(sample_portrait()).save(buf, format="PNG")
    return buf.getvalue()


def test_a_tenant_creates_lists_and_revokes_its_own_keys_and_sees_no_other_tenants(api: ApiHarness) -> None:
    created = api.client.post("/v1/keys", json={"name": "ci"}, headers=api.headers())
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["secret"].startswith("farm_") and new["name"] == "ci" and not new["current"]
    assert api.client.get("/v1/me", headers=api.headers(new["secret"])).json()["tenant"] == "tenant-a"

    listed = api.client.get("/v1/keys", headers=api.headers()).json()["data"]
    assert [k["name"] for k in listed] == ["a", "ci"] and [k["current"] for k in listed] == [True, False]
    assert all("secret" not in k for k in listed)
    theirs = api.client.get("/v1/keys", headers=api.headers(api.secret_b)).json()["data"]
    assert [k["name"] for k in theirs] == ["b"]

    foreign = api.client.delete(f"/v1/keys/{new['key_id']}", headers=api.headers(api.secret_b))
    assert foreign.status_code == 404
    revoked = api.client.delete(f"/v1/keys/{new['key_id']}", headers=api.headers())
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert api.client.get("/v1/me", headers=api.headers(new["secret"])).status_code == 401


def test_me_says_whether_the_key_sees_the_operator_views(api: ApiHarness) -> None:
    me = api.client.get("/v1/me", headers=api.headers()).json()
    assert (me["tenant"], me["admin"], me["plan"]) == ("tenant-a", False, "custom")
    _, ops = api.keys.create("ops", "operator")
    assert api.client.get("/v1/me", headers=api.headers(ops)).json()["admin"] is True


def test_usage_per_day_counts_credits_and_minutes(api: ApiHarness) -> None:
    metering: Metering = api.client.app.state.farm.metering  # type: ignore[attr-defined]
    metering.ledger.set_plan("tenant-a", "free")
    body = {"image": b64(png_bytes()), "audio": b64(wav_bytes(1.0)), "model": "expression"}
    assert api.client.post("/v1/video/generate", json=body, headers=api.headers()).status_code == 201
    daily = api.client.get("/v1/usage/daily?days=7", headers=api.headers()).json()
    assert len(daily["days"]) == 7 and all(d["credits"] == {} for d in daily["days"][:-1])
    assert (daily["days"][-1]["credits"], daily["days"][-1]["minutes"]) == (
        {"expression": 4},
        {"expression": 1},
    )
    assert api.client.get("/v1/usage", headers=api.headers()).json()["plan"]["monthly_credits"] == 199
    assert api.client.get("/v1/usage/daily?days=91", headers=api.headers()).status_code == 400


def test_agents_have_names_search_last_use_and_a_thumbnail(api: ApiHarness) -> None:
    code = api.client.post("/v1/agents", json={"image": b64(_portrait_png())}, headers=api.headers()).json()[
        "agent_id"
    ]
    other = api.agent()
    renamed = api.client.patch(f"/v1/agents/{code}", json={"name": "Ada"}, headers=api.headers())
    assert renamed.json()["data"]["name"] == "Ada"
    found = api.client.get("/v1/agents?q=ada", headers=api.headers()).json()
    assert [a["agent_id"] for a in found["data"]] == [code] and found["pagination"]["total"] == 1
    by_id = api.client.get(f"/v1/agents?q={other.id[2:7].lower()}", headers=api.headers()).json()
    assert other.id in [a["agent_id"] for a in by_id["data"]]

    api.agents.update(code, AgentStatus.READY)
    assert (
        api.client.post(
            "/v1/sessions", json=api.session_body(avatar_id=code), headers=api.headers()
        ).status_code
        == 201
    )
    listed = {a["agent_id"]: a for a in api.client.get("/v1/agents", headers=api.headers()).json()["data"]}
    assert listed[code]["last_used_at"] is not None and listed[other.id]["last_used_at"] is None

    thumb = api.client.get(f"/v1/agents/{code}/thumbnail", headers=api.headers())
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 160
    foreign = api.client.get(f"/v1/agents/{code}/thumbnail", headers=api.headers(api.secret_b))
    assert foreign.status_code == 404


def test_a_build_reports_its_stage_and_progress_while_processing(api: ApiHarness) -> None:
    agent = api.agent(status=AgentStatus.PROCESSING)
    api.agents.update(agent.id, AgentStatus.PROCESSING, build_stage="clip:idle", build_progress=0.35)
    data = api.client.get(f"/v1/agents/{agent.id}", headers=api.headers()).json()["data"]
    assert (data["build_stage"], data["progress"]) == ("clip:idle", 0.35)


def test_a_preview_is_queued_for_a_build_worker_and_shows_the_face_and_framing(api: ApiHarness) -> None:
    previews = api.client.app.state.farm.previews  # type: ignore[attr-defined]
    assert isinstance(previews, MemoryPreviewStore)
    queued = api.client.post("/v1/previews", json={"image": b64(_portrait_png())}, headers=api.headers())
    assert queued.status_code == 202, queued.text
    pending = queued.json()
    assert pending["status"] == "pending" and pending["face_box"] is None
    assert api.builds.messages == [PreviewFaceMessage.model_validate(api.builds.messages[0].model_dump())]
    assert (
        api.client.get(f"/v1/previews/{pending['preview_id']}", headers=api.headers(api.secret_b)).status_code
        == 404
    )

    preview_face(api.settings, previews, api.blobs, pending["preview_id"])  # what the build worker runs
    ready = api.client.get(f"/v1/previews/{pending['preview_id']}", headers=api.headers()).json()
    assert ready["status"] == "ready" and len(ready["points"]) == 68 and ready["error"] is None
    x0, y0, x1, y1 = ready["face_box"]
    cx0, cy0, cx1, cy1 = ready["crop_box"]
    assert cx0 <= x0 < x1 <= cx1 and cy0 <= y0 < y1 <= cy1  # the frame shows the whole face
    assert ready["mouth_px"] > 0 and ready["output_size"][0] == ready["output_size"][1]


def test_a_photo_without_a_face_previews_as_no_face_found(api: ApiHarness) -> None:
    previews = api.client.app.state.farm.previews  # type: ignore[attr-defined]
    blank = png_bytes(256, 256)
    pending = api.client.post("/v1/previews", json={"image": b64(blank)}, headers=api.headers()).json()
    preview_face(api.settings, previews, api.blobs, pending["preview_id"])
    failed = api.client.get(f"/v1/previews/{pending['preview_id']}", headers=api.headers()).json()
    assert (failed["status"], failed["error"]["code"]) == ("failed", "NO_FACE_FOUND")
    not_an_image = api.client.post("/v1/previews", json={"image": b64(b"hello")}, headers=api.headers())
    assert not_an_image.json()["error"]["code"] == "INVALID_IMAGE"


def _ended(api: ApiHarness, sid: str, first_frame_ms: float, frames: float, total_ms: float) -> None:
    api.store.create(Session(id=sid, tenant="tenant-b", model=ModelKind.ESSENCE))
    timings = {"first_frame": first_frame_ms, "frames": frames, "total": total_ms}
    api.store.transition(sid, SessionState.ENDED, reason="test", timings_ms=timings)


def test_the_operator_view_is_for_admin_tenants_only_and_plots_ttff_and_fps(api: ApiHarness) -> None:
    assert (
        api.client.get("/v1/operators/overview", headers=api.headers()).json()["error"]["code"]
        == "ADMIN_ONLY"
    )
    api.registry.publish(
        WorkerInfo(worker_id="w1", hostname="h", pid=1, queues=["essence"], state="READY", capacity=4,
                   active_sessions=1),
        ttl_s=60,
    )  # fmt: skip
    api.registry.publish(
        WorkerInfo(worker_id="w2", hostname="h", pid=2, queues=["essence"], state="DRAINING", capacity=4),
        ttl_s=60,
    )
    for i, ttff_ms in enumerate((120.0, 180.0, 900.0)):
        _ended(api, f"{i:032x}", ttff_ms, 250.0, ttff_ms + 10_000.0)
    _, ops = api.keys.create("ops", "operator")
    view = api.client.get("/v1/operators/overview", headers=api.headers(ops)).json()
    essence = next(p for p in view["pools"] if p["pool"] == "essence")
    assert (essence["ready"], essence["draining"], essence["capacity"], essence["active_sessions"]) == (
        1,
        1,
        4,
        1,
    )
    ttff = view["ttff_s"]["essence"]
    assert ttff["samples"] == 3 and sum(ttff["counts"]) == 3 and ttff["p50"] == 0.18
    assert view["fps"]["essence"]["p50"] == 25.0 and view["sessions_sampled"] == 3


def test_a_room_on_the_farms_livekit_is_started_for_a_ready_agent_with_a_watch_only_token(
    tmp_path: Path,
) -> None:
    no_livekit = ApiHarness.build(tmp_path / "a")
    agent = no_livekit.agent()
    refused = no_livekit.client.post("/v1/rooms", json={"agent_id": agent.id}, headers=no_livekit.headers())
    assert refused.json()["error"]["code"] == "LIVEKIT_NOT_CONFIGURED"

    api = ApiHarness.build(tmp_path / "b", **LIVEKIT)
    agent = api.agent()
    assert (
        api.client.post("/v1/rooms", json={"agent_id": agent.id}, headers=api.headers()).json()["error"][
            "code"
        ]
        == "NO_CAPACITY"
    )
    api.registry.publish(
        WorkerInfo(worker_id="w1", hostname="h", pid=1, queues=["essence"], state="READY", capacity=4),
        ttl_s=60,
    )
    started = api.client.post("/v1/rooms", json={"agent_id": agent.id}, headers=api.headers())
    assert started.status_code == 201, started.text
    room = started.json()
    session = api.store.get(room["session_id"])
    assert session.livekit is not None
    assert (session.livekit.room, session.livekit.identity, session.livekit.token) == (
        room["room_name"],
        "bithuman-avatar-agent",
        None,  # the worker mints the avatar's token with the farm's own key
    )
    assert [m.session_id for m in api.queue.messages] == [session.id]
    grants = jwt.decode(room["viewer_token"], "s" * 32, algorithms=["HS256"])["video"]
    assert grants["room"] == room["room_name"] and not grants["canPublish"] and grants["canSubscribe"]
    foreign = api.client.post("/v1/rooms", json={"agent_id": agent.id}, headers=api.headers(api.secret_b))
    assert foreign.status_code == 404


def test_the_studio_page_is_served_with_its_assets_or_says_how_to_build_it(
    api: ApiHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(studio, "STUDIO_DIR", tmp_path / "missing")
    missing = api.client.get("/studio")
    assert (missing.status_code, missing.json()["error"]["code"]) == (503, "ASSET_MISSING")
    built = tmp_path / "studio"
    (built / "assets").mkdir(parents=True)
    (built / "index.html").write_text("<!doctype html><title>Studio</title>")
    (built / "assets" / "app-1a2b.js").write_text("export {}")
    monkeypatch.setattr(studio, "STUDIO_DIR", built)
    page = api.client.get("/studio")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    asset = api.client.get("/studio/assets/app-1a2b.js")
    assert (
        asset.headers["content-type"].startswith("text/javascript")
        and "immutable" in asset.headers["cache-control"]
    )
    assert api.client.get("/studio/assets/nope.js").status_code == 404
    assert api.client.get("/studio/assets/..%2Findex.html").status_code in (400, 404)


def test_an_animal_preview_frames_the_mouth_the_user_marked(api: ApiHarness) -> None:
    from skimage import data

    from farm.bench.characters import CAT_MOUTH_BOX

    previews = api.client.app.state.farm.previews  # type: ignore[attr-defined]
    body = {"image": b64(_png(data.chelsea())), "mode": "animal", "mouth_box": CAT_MOUTH_BOX}
    pending = api.client.post("/v1/previews", json=body, headers=api.headers()).json()
    preview_face(api.settings, previews, api.blobs, pending["preview_id"])
    ready = api.client.get(f"/v1/previews/{pending['preview_id']}", headers=api.headers()).json()
    assert (ready["status"], ready["method"]) == ("ready", "user-points")  # no face detector for a cat
    cx0, cy0, cx1, cy1 = ready["crop_box"]
    mx0, my0, mx1, my1 = CAT_MOUTH_BOX
    assert cx0 <= mx0 < mx1 <= cx1 and cy0 <= my0 < my1 <= cy1
    no_mouth = api.client.post("/v1/previews", json={**body, "mouth_box": None}, headers=api.headers())
    assert no_mouth.json()["error"]["code"] == "POINTS_REQUIRED"  # refused before anything is queued


def _png(array: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")  # type: ignore[arg-type]
    return buf.getvalue()
