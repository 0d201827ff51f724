"""ExpressionRenderer over a real (CPU) ExpressionEngine: the streaming Renderer contract, lip-sync
responsiveness, gestures, and sessions sharing one batcher without cross-talk."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from farm.bench.common import speech_like
from farm.kernel.errors import BatcherClosed, InvalidAudio, InvalidImage, UnknownGesture
from farm.render.audio import frame_energy
from farm.render.base import SAMPLES_PER_FRAME, AvatarFrame, AvatarSource, Renderer
from farm.render.expression import ExpressionEngine
from farm.render.expression.engine import DeviceAvatar
from farm.render.expression.renderer import ExpressionRenderer
from farm.render.landmarks import sample_portrait

pytestmark = pytest.mark.unit

SIZE = 128
RATE = 16_000


@pytest.fixture(scope="module")
def engine() -> Iterator[ExpressionEngine]:
    eng = ExpressionEngine(size=SIZE, max_batch=4, backend="torch-cpu")
    eng.prewarm()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def avatar(engine: ExpressionEngine) -> DeviceAvatar:
    return engine.prepare_image(sample_portrait())


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Synthetic speech: voiced syllables (3-6 per second) of varying loudness, with pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 120 + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = np.zeros_like(t)
    pos = 0.1
    while pos < seconds - 0.3:
        length = rng.uniform(0.12, 0.3)
        loud = rng.uniform(0.15, 1.0)
        span = (t >= pos) & (t < pos + length)
        envelope[span] = loud * np.sin(np.pi * (t[span] - pos) / length)
        pos += length + rng.uniform(0.02, 0.25)
    out = 0.25 * voiced / np.abs(voiced).max() * envelope
    return out.astype(np.float32)


def _drain(renderer: Renderer) -> list[AvatarFrame]:
    frames = []
    while renderer.pending_frames():
        frames.append(renderer.next_frame())
    return frames


def test_the_renderer_satisfies_the_streaming_protocol(
    engine: ExpressionEngine, avatar: DeviceAvatar
) -> None:
    renderer = engine.open_session(avatar, "protocol")
    try:
        assert isinstance(renderer, Renderer)
        assert renderer.frame_size == (SIZE, SIZE)
        assert set(renderer.gestures) >= {"talk_head_nod_subtle", "head_tilt", "smile"}
        frame = renderer.next_frame()  # idle: nothing queued, never blocks
        assert frame.index == 0
        assert frame.image.shape == (SIZE, SIZE, 3) and frame.image.dtype == np.uint8
        assert frame.audio.shape == (SAMPLES_PER_FRAME,) and frame.audio.dtype == np.int16
        assert not frame.speaking and frame.segment_id is None and not frame.audio.any()
    finally:
        renderer.close()


def test_pushed_audio_comes_back_frame_by_frame_with_the_segment_end(
    engine: ExpressionEngine, avatar: DeviceAvatar
) -> None:
    renderer = engine.open_session(avatar, "segments")
    try:
        speech = _speech(1.0)[: 10 * SAMPLES_PER_FRAME + 100]  # 10 frames and a 100-sample tail
        pcm = (speech * 32767).astype(np.int16)
        renderer.push_audio(pcm[:3000], RATE)
        renderer.push_audio(pcm[3000:], RATE)
        # the partial tail waits for more audio or a flush, the last full frames for their look-ahead
        assert renderer.pending_frames() == (pcm.shape[0] - renderer.lookahead_samples) // SAMPLES_PER_FRAME
        renderer.flush()
        assert renderer.pending_frames() == 11
        frames = _drain(renderer)
        assert [f.index for f in frames] == list(range(11))
        assert all(f.speaking and f.segment_id == frames[0].segment_id for f in frames)
        assert [f.segment_end for f in frames] == [False] * 10 + [True]
        played = np.concatenate([f.audio for f in frames])
        assert np.abs(played[: pcm.shape[0]].astype(int) - pcm.astype(int)).max() <= 1
        assert not played[pcm.shape[0] :].any()  # zero padding after the tail
        assert not renderer.next_frame().speaking
    finally:
        renderer.close()


def test_a_flush_after_the_audio_was_played_still_delivers_the_segment_end(
    engine: ExpressionEngine, avatar: DeviceAvatar
) -> None:
    renderer = engine.open_session(avatar, "late-flush")
    try:
        renderer.push_audio(np.full(2 * SAMPLES_PER_FRAME, 0.1, np.float32), RATE)
        first = [renderer.next_frame() for _ in range(2)]  # a real-time loop plays them as they come
        assert all(f.speaking for f in first) and not any(f.segment_end for f in first)
        renderer.flush()
        (end,) = _drain(renderer)
        assert end.segment_end and end.segment_id == first[0].segment_id and not end.audio.any()
        renderer.push_audio(np.full(SAMPLES_PER_FRAME, 0.1, np.float32), RATE)
        nxt = renderer.next_frame()
        assert nxt.segment_id != first[0].segment_id  # a new segment after a flush
    finally:
        renderer.close()


def test_interrupt_drops_queued_speech(engine: ExpressionEngine, avatar: DeviceAvatar) -> None:
    renderer = engine.open_session(avatar, "interrupt")
    try:
        renderer.push_audio(_speech(2.0), RATE)
        renderer.next_frame()
        renderer.interrupt()
        assert renderer.pending_frames() == 0
        frame = renderer.next_frame()
        assert not frame.speaking and not frame.audio.any()
    finally:
        renderer.close()


def test_a_skipped_frame_takes_its_audio_and_enters_no_batch(
    engine: ExpressionEngine, avatar: DeviceAvatar
) -> None:
    renderer = engine.open_session(avatar, "skip")
    try:
        renderer.push_audio(_speech(1.0), RATE)
        renderer.flush()
        items_before = engine.batcher.stats.items
        pending = renderer.pending_frames()
        skipped = [renderer.next_frame(render=False) for _ in range(5)]
        assert all(f.image is None and f.speaking for f in skipped)
        assert any(f.audio.any() for f in skipped)
        assert renderer.pending_frames() == pending - 5
        assert engine.batcher.stats.items == items_before
        assert renderer.next_frame().pixels.shape == (SIZE, SIZE, 3)
    finally:
        renderer.close()


def test_other_sample_rates_are_resampled_to_16k_without_chunk_edges(
    engine: ExpressionEngine, avatar: DeviceAvatar
) -> None:
    renderer = engine.open_session(avatar, "rates")
    try:
        t = np.arange(48_000) / 48_000
        tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)  # one second at 48 kHz
        for start in range(0, 48_000, 480):  # 10 ms chunks, as a LiveKit stream delivers them
            renderer.push_audio(tone[start : start + 480], 48_000)
        renderer.flush()
        assert renderer.pending_frames() == 25
        played = np.concatenate([f.audio for f in _drain(renderer)]).astype(np.float32) / 32767
        expected = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)
        assert np.abs(played[100:-100] - expected[100:-100]).max() < 0.01
        with pytest.raises(InvalidAudio):
            renderer.push_audio(tone, 0)
    finally:
        renderer.close()


def test_the_loudness_baselines_mouth_follows_the_audio_energy(
    engine: ExpressionEngine, avatar: DeviceAvatar
) -> None:
    """Over 5 s of synthetic speech, mouth-region change correlates with frame energy (r >= 0.6)."""
    renderer = ExpressionRenderer(avatar, engine.batcher.join(), "lipsync", SIZE, mouth="loudness")
    try:
        speech = _speech(5.0, seed=7)
        renderer.push_audio(speech, RATE)
        renderer.flush()
        frames = _drain(renderer)
    finally:
        renderer.close()
    still = avatar.prepared.still_frame().astype(np.float32)
    pts = avatar.prepared.landmarks_px[48:68]
    (x0, y0), (x1, y1) = np.floor(pts.min(axis=0)).astype(int) - 4, np.ceil(pts.max(axis=0)).astype(int) + 6
    change = np.array(
        [np.abs(f.image[y0:y1, x0:x1].astype(np.float32) - still[y0:y1, x0:x1]).mean() for f in frames]
    )
    energy = frame_energy(speech)
    assert len(frames) == len(energy) == 125
    r = float(np.corrcoef(change, energy)[0, 1])
    assert r >= 0.6, f"Pearson r = {r:.3f}"
    opening = np.array([f.mouth_open for f in frames])
    assert float(np.corrcoef(opening, energy)[0, 1]) >= 0.6


def test_a_gesture_plays_as_a_motion_program_and_unknown_names_are_refused(
    engine: ExpressionEngine, avatar: DeviceAvatar
) -> None:
    plain = engine.open_session(avatar, "gesture")
    tilted = engine.open_session(avatar, "gesture")  # same id → same idle motion
    try:
        with pytest.raises(UnknownGesture):
            tilted.trigger("cartwheel")
        tilted.trigger("head_tilt")
        pairs = [(plain.next_frame(), tilted.next_frame()) for _ in range(25)]
        assert all(t.gesture == "head_tilt" for _, t in pairs)
        assert all(p.gesture is None for p, _ in pairs)
        diff = np.abs(pairs[20][0].image.astype(int) - pairs[20][1].image.astype(int)).mean()
        assert diff > 1.0  # the head visibly turned
        frames = [tilted.next_frame() for _ in range(40)]
        assert frames[-1].gesture is None  # the program ended (2 s)
    finally:
        plain.close()
        tilted.close()


def test_sessions_sharing_the_batcher_each_get_their_own_face(
    engine: ExpressionEngine, avatar: DeviceAvatar
) -> None:
    mirrored = engine.prepare_image(np.ascontiguousarray(sample_portrait()[:, ::-1]))
    assert mirrored.key != avatar.key
    results: dict[str, list[AvatarFrame]] = {}

    everyone_joined = threading.Barrier(4)

    def run(name: str, face: DeviceAvatar) -> None:
        renderer = engine.open_session(face, name)
        try:
            everyone_joined.wait(30)
            renderer.push_audio(_speech(1.0, seed=len(name)), RATE)
            renderer.flush()
            results[name] = _drain(renderer)
        finally:
            renderer.close()

    plan = {"a1": avatar, "b1": mirrored, "a2": avatar, "b2": mirrored}
    threads = [threading.Thread(target=run, args=item) for item in plan.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stills = {
        "a": avatar.prepared.still_frame().astype(int),
        "b": mirrored.prepared.still_frame().astype(int),
    }
    for name, frames in results.items():
        assert [f.index for f in frames] == list(range(25))
        own, other = stills[name[0]], stills["b" if name[0] == "a" else "a"]
        for f in frames:
            assert np.abs(f.image.astype(int) - own).mean() < np.abs(f.image.astype(int) - other).mean()
    assert len(results) == 4
    assert max(engine.batcher.stats.batch_sizes) > 1  # they really were batched together


def test_prepared_avatars_are_reused_per_image_hash(engine: ExpressionEngine, avatar: DeviceAvatar) -> None:
    assert engine.prepare_image(sample_portrait()) is avatar
    assert engine.avatar_size_mb(avatar) > 0


def test_an_avatar_source_without_an_image_is_refused(engine: ExpressionEngine) -> None:
    with pytest.raises(InvalidImage):
        engine.load_avatar(AvatarSource(key="pack-only"))


def test_a_closed_renderer_refuses_frames_and_closing_twice_is_harmless(
    engine: ExpressionEngine, avatar: DeviceAvatar
) -> None:
    renderer = engine.open_session(avatar, "closing")
    renderer.close()
    renderer.close()
    with pytest.raises(BatcherClosed):
        renderer.next_frame()


def test_the_engine_reports_its_backend_and_falls_back_when_no_tensorrt_plan_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from farm.render.expression import backends, tensorrt_backend

    class FakeCompiled(backends.TorchBackend):
        def __init__(self, config: object, max_batch: int) -> None:
            super().__init__(config, "cpu")  # type: ignore[arg-type]
            self.name = "torch-cuda-compiled"

    monkeypatch.setattr(tensorrt_backend, "find_engine", lambda *args: None)
    monkeypatch.setattr(backends, "CompiledCudaBackend", FakeCompiled)
    eng = ExpressionEngine(size=32, max_batch=2, backend="tensorrt")
    assert eng.backend == "unloaded"
    try:
        eng.prewarm()
        assert eng.backend == "torch-cuda-compiled"
    finally:
        eng.close()


def test_a_file_render_draws_the_same_frames_however_its_audio_is_chunked(
    engine: ExpressionEngine, avatar: DeviceAvatar
) -> None:
    """As a file session's frame loop does: render whatever is pending after each chunk arrives."""
    pcm = (speech_like(1.5, 44_100, seed=4) * 32767).astype(np.int16)

    def render(chunk: int) -> list[tuple[bytes, bytes]]:
        renderer = engine.open_session(avatar, "chunked")  # same session id: same motion seed
        try:
            frames = []
            for start in range(0, pcm.shape[0], chunk):
                renderer.push_audio(pcm[start : start + chunk], 44_100)
                frames += _drain(renderer)
            renderer.flush()
            frames += _drain(renderer)
            return [(f.image.tobytes(), f.audio.tobytes()) for f in frames]
        finally:
            renderer.close()

    whole = render(pcm.shape[0])
    assert len(whole) == -(-round(pcm.shape[0] * 16_000 / 44_100) // SAMPLES_PER_FRAME)
    assert render(1_500) == whole
