"""SpeechQueue (40 ms frames and segments) and MotionState (blinks, sway, gesture programs)."""

from __future__ import annotations

import numpy as np
import pytest

from farm.kernel.errors import UnknownGesture
from farm.render.base import SAMPLES_PER_FRAME
from farm.render.expression.motion import BLINK, FPS, GESTURES, PITCH, PROGRAMS, ROLL, SMILE, MotionState
from farm.render.expression.speech import SpeechQueue

pytestmark = pytest.mark.unit


def _samples(frames: float, value: float = 0.1) -> np.ndarray:
    return np.full(int(frames * SAMPLES_PER_FRAME), value, np.float32)


def test_segments_play_in_order_each_ending_once() -> None:
    queue = SpeechQueue()
    queue.push(_samples(2, 0.1))
    queue.flush()
    queue.push(_samples(1.5, 0.2))
    queue.flush()
    assert queue.pending_frames() == 4
    frames = [queue.take_frame() for _ in range(5)]
    ids = [f.segment_id for f in frames]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2] and ids[4] is None
    assert [f.segment_end for f in frames] == [False, True, False, True, False]
    assert frames[3].samples[: SAMPLES_PER_FRAME // 2].max() == pytest.approx(0.2)
    assert not frames[3].samples[SAMPLES_PER_FRAME // 2 :].any()  # zero-padded tail


def test_an_unflushed_partial_frame_waits_and_lookahead_spans_segments() -> None:
    queue = SpeechQueue()
    queue.push(_samples(0.5))
    assert queue.pending_frames() == 0
    assert not queue.take_frame().speaking
    queue.push(_samples(0.5))
    assert queue.pending_frames() == 1
    queue.flush()
    queue.push(_samples(2, 0.3))
    assert queue.lookahead(3 * SAMPLES_PER_FRAME).shape == (3 * SAMPLES_PER_FRAME,)
    assert queue.take_frame().segment_end


def test_an_open_segment_holds_back_the_frames_whose_lookahead_has_not_arrived() -> None:
    queue = SpeechQueue()
    queue.push(_samples(5))
    assert queue.pending_frames(hold=2 * SAMPLES_PER_FRAME) == 3
    assert queue.pending_frames() == 5
    queue.flush()
    assert queue.pending_frames(hold=2 * SAMPLES_PER_FRAME) == 5  # a flushed segment holds nothing back


def test_a_flush_with_nothing_pushed_is_ignored_and_clear_drops_everything() -> None:
    queue = SpeechQueue()
    queue.flush()
    assert queue.pending_frames() == 0
    queue.push(_samples(3))
    queue.clear()
    assert queue.pending_frames() == 0 and not queue.take_frame().speaking


def test_motion_is_deterministic_per_seed_and_blinks_every_few_seconds() -> None:
    def run(seed: int) -> np.ndarray:
        state = MotionState(seed)
        return np.stack([state.step(0.0)[0] for _ in range(10 * FPS)])

    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    blink_starts = np.flatnonzero((a[1:, BLINK] > 0.9) & (a[:-1, BLINK] <= 0.9))
    assert 2 <= len(blink_starts) <= 5  # every 2.4-5.6 s over 10 s
    assert np.abs(a[:, PITCH]).max() < 0.1 and np.abs(a[:, ROLL]).max() < 0.05  # small idle sway


def test_gesture_programs_have_the_essence_names_and_end_on_time() -> None:
    assert set(GESTURES) == {"talk_head_nod_subtle", "head_tilt", "smile"}
    state = MotionState(0)
    state.trigger("smile")
    steps = [state.step(0.0) for _ in range(PROGRAMS["smile"].frames + 2)]
    assert all(name == "smile" for _, name in steps[: PROGRAMS["smile"].frames])
    assert steps[-1][1] is None
    assert max(c[SMILE] for c, _ in steps) == pytest.approx(1.0, abs=0.01)
    with pytest.raises(UnknownGesture):
        state.trigger("mini_wave_hello")  # needs a hand: not a face-warp motion program
