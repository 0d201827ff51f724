"""The LiveKit-protocol model's ingress probe (used by `farm bench room` to locate A/V offset)."""

from __future__ import annotations

import fractions

import av
import httpx
import numpy as np
import pytest

from farm.testing.lk_model import LiveKitModel
from farm.testing.lk_model.probe import IngressProbe, decode_thumbs

pytestmark = pytest.mark.unit


def audio_frame(level: float, pts: int) -> av.AudioFrame:
    pcm = np.full((1, 960), level, dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = 48_000, pts, fractions.Fraction(1, 48_000)
    return frame


def test_decoded_frames_are_logged_per_track_with_their_rtp_arrival_and_features() -> None:
    probe = IngressProbe()
    probe.packet("r", "avatar", "TR_a", "audio", rtp=1000, origin=1000, at=5.0)
    probe.packet("r", "avatar", "TR_a", "audio", rtp=1960, origin=1000, at=5.02)
    probe.record("r", "avatar", "TR_a", audio_frame(0, pts=0))
    probe.record("r", "avatar", "TR_a", audio_frame(3000, pts=960))
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 200
    probe.record("r", "avatar", "TR_v", av.VideoFrame.from_ndarray(red, format="rgb24"))
    probe.record("other-room", "x", "TR_x", audio_frame(1, pts=0))

    tracks = {t["sid"]: t for t in probe.snapshot("r")["tracks"]}
    assert set(tracks) == {"TR_a", "TR_v"}
    assert tracks["TR_a"]["arrival"] == [5.0, 5.02]  # matched through the RTP timestamp
    assert tracks["TR_a"]["level"][0] == 0.0 and tracks["TR_a"]["level"][1] == pytest.approx(3000, rel=1e-3)
    (thumb,) = decode_thumbs(tracks["TR_v"])
    assert thumb[..., 0].mean() == pytest.approx(200, abs=3) and thumb[..., 1].mean() < 5
    probe.forget("r", "avatar")
    assert probe.snapshot("r") == {"tracks": []}


@pytest.mark.parametrize("probe", [True, False])
async def test_the_debug_endpoint_exists_only_with_the_probe_on(probe: bool) -> None:
    model = LiveKitModel("127.0.0.1", 0, probe=probe)
    await model.start()
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{model.port}/debug/ingress?room=r")
    finally:
        await model.aclose()
    assert response.status_code == (200 if probe else 404)
    if probe:
        assert response.json() == {"tracks": []}
