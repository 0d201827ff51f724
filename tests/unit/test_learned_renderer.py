"""A learned Expression session streams: speech in, every frame once, idle motion, interrupts, batching.

The engine runs the test-size torch modules on the CPU (random weights); most tests advance with
``render=False`` (motion, audio and flags step exactly as for a rendered frame) and render only the
frames whose pictures they look at.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from farm.kernel.errors import BatcherClosed, UnknownGesture
from farm.render.base import AvatarFrame, Renderer
from farm.render.learned import LearnedExpressionEngine
from farm.render.learned.avatar import synthetic
from farm.render.learned.pipeline import MotionHistory, MotionJob, _rounds

pytestmark = pytest.mark.unit

SIZE = 96


@pytest.fixture(scope="module")
def engine() -> Iterator[LearnedExpressionEngine]:
    engine = LearnedExpressionEngine(
        weights=None, backend="torch", preset="tiny", size=SIZE, max_batch=4, sampling_steps=2
    )
    engine.prewarm()
    yield engine
    engine.close()


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    return (
        (np.random.default_rng(seed).standard_normal(int(seconds * 16_000)) * 0.2)
        .clip(-1, 1)
        .astype(np.float32)
    )


def _drain(renderer: Renderer) -> list[AvatarFrame]:
    frames = []
    while renderer.pending_frames():
        frames.append(renderer.next_frame(render=False))
    return frames


def test_the_renderer_implements_the_renderer_protocol(engine: LearnedExpressionEngine) -> None:
    renderer = engine.open_session(engine.upload(synthetic(0, SIZE)), "protocol")
    assert isinstance(renderer, Renderer)
    assert renderer.frame_size == (SIZE, SIZE)
    renderer.close()


def test_a_session_plays_every_pushed_frame_once_then_goes_idle(engine: LearnedExpressionEngine) -> None:
    renderer = engine.open_session(engine.upload(synthetic(0, SIZE)), "speaks")
    speech = _speech(1.0)
    for part in np.array_split(speech, 7):  # chunking does not matter
        renderer.push_audio(part, 16_000)
    renderer.flush()
    assert renderer.pending_frames() == 25
    frames = _drain(renderer)
    assert [f.speaking for f in frames] == [True] * 25
    assert [f.segment_end for f in frames] == [False] * 24 + [True]
    played = np.concatenate([f.audio for f in frames]).astype(np.float32) / 32767
    assert np.abs(played[: speech.shape[0]] - speech).max() < 1e-4
    after = renderer.next_frame(render=False)
    assert not after.speaking and not np.any(after.audio) and after.segment_id is None
    renderer.close()


def test_an_open_segment_holds_back_frames_until_their_look_ahead_arrives(
    engine: LearnedExpressionEngine,
) -> None:
    renderer = engine.open_session(engine.upload(synthetic(0, SIZE)), "held")
    renderer.push_audio(_speech(0.28), 16_000)  # 4480 samples: 80 short of a chunk plus 85 ms
    assert renderer.pending_frames() == 0
    assert not renderer.next_frame(render=False).speaking  # never waits for audio: an idle frame
    renderer.push_audio(_speech(0.01), 16_000)
    assert renderer.pending_frames() == 5
    renderer.close()


def test_interrupt_empties_the_pipeline_within_one_frame(engine: LearnedExpressionEngine) -> None:
    renderer = engine.open_session(engine.upload(synthetic(0, SIZE)), "interrupted")
    renderer.push_audio(_speech(2.0), 16_000)
    renderer.flush()
    assert all(renderer.next_frame(render=False).speaking for _ in range(3))
    renderer.interrupt()
    assert renderer.pending_frames() == 0
    nxt = renderer.next_frame(render=False)
    assert not nxt.speaking and not np.any(nxt.audio)
    assert not any(renderer.next_frame(render=False).speaking for _ in range(6))
    renderer.close()


def test_idle_frames_keep_moving(engine: LearnedExpressionEngine) -> None:
    renderer = engine.open_session(engine.upload(synthetic(1, SIZE)), "idle")
    first = renderer.next_frame().pixels
    for _ in range(11):
        renderer.next_frame(render=False)
    later = renderer.next_frame().pixels
    assert not renderer.next_frame(render=False).speaking
    assert np.abs(first.astype(int) - later.astype(int)).max() > 0  # not a frozen face
    renderer.close()


def test_skipped_frames_advance_exactly_like_rendered_ones(engine: LearnedExpressionEngine) -> None:
    flags = []
    for render in (True, False):
        renderer = engine.open_session(engine.upload(synthetic(0, SIZE)), f"skip-{render}")
        renderer.push_audio(_speech(0.2, seed=5), 16_000)
        renderer.flush()
        frames = [renderer.next_frame(render=render) for _ in range(6)]
        flags.append([(f.index, f.speaking, f.segment_id, f.segment_end, f.audio.tobytes()) for f in frames])
        assert all((f.image is not None) == render for f in frames)
        renderer.close()
    assert flags[0] == flags[1]


def test_audio_at_another_rate_is_resampled_to_16_khz(engine: LearnedExpressionEngine) -> None:
    renderer = engine.open_session(engine.upload(synthetic(0, SIZE)), "48k")
    pcm = (_speech(1.0) * 32767).astype(np.int16)
    renderer.push_audio(np.repeat(pcm, 3), 48_000)
    renderer.flush()
    assert renderer.pending_frames() == 25
    renderer.close()


def test_gestures_play_for_their_duration_and_unknown_ones_are_refused(
    engine: LearnedExpressionEngine,
) -> None:
    renderer = engine.open_session(engine.upload(synthetic(0, SIZE)), "gesture")
    assert renderer.gestures == ("talk_head_nod_subtle", "head_tilt")
    with pytest.raises(UnknownGesture):
        renderer.trigger("wave")
    renderer.trigger("head_tilt")
    names = [renderer.next_frame(render=False).gesture for _ in range(52)]
    assert names[:50] == ["head_tilt"] * 50 and names[50:] == [None, None]
    renderer.close()


def test_close_is_idempotent_and_a_closed_session_refuses_frames(engine: LearnedExpressionEngine) -> None:
    renderer = engine.open_session(engine.upload(synthetic(0, SIZE)), "closed")
    renderer.close()
    renderer.close()
    with pytest.raises(BatcherClosed):
        renderer.next_frame()


def test_sessions_share_batches_and_each_gets_its_own_picture(engine: LearnedExpressionEngine) -> None:
    avatars = [engine.upload(synthetic(10 + i, SIZE)) for i in range(3)]
    renderers = [engine.open_session(a, f"batched-{i}") for i, a in enumerate(avatars)]
    before = engine.batcher_stats()["frames"]["batches"]
    start = threading.Barrier(3)
    pictures: list[list[np.ndarray]] = [[] for _ in renderers]

    def drive(i: int) -> None:
        start.wait()
        for _ in range(2):
            pictures[i].append(renderers[i].next_frame().pixels)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (
        engine.batcher_stats()["frames"]["batches"] - before < 6
    )  # at least one batch held several sessions
    for avatar, frames in zip(avatars, pictures, strict=True):
        corner = avatar.prepared.canvas.background[0, 0]  # outside the face: the session's own picture
        assert all(np.array_equal(frame[0, 0], corner) for frame in frames)
    for r in renderers:
        r.close()


def test_one_sessions_chunks_in_one_batch_run_in_order_in_rounds() -> None:
    a = MotionHistory(np.zeros(265), np.zeros(79), np.zeros(1024), 0)
    b = MotionHistory(np.zeros(265), np.zeros(79), np.zeros(1024), 1)
    jobs = [MotionJob(a, None), MotionJob(a, None), MotionJob(b, None), MotionJob(a, None)]
    assert _rounds(jobs) == [[0, 2], [1], [3]]
