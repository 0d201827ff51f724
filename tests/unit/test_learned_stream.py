"""Speech becomes motion chunks with bounded look-ahead; the diffusion sampler and motion maths hold."""

from __future__ import annotations

import numpy as np
import pytest

from farm.render.learned.diffusion import alphas_cumprod, sample, time_pairs
from farm.render.learned.motion import (
    GESTURE_SET,
    SourceMotion,
    bins_to_degrees,
    blend_into,
    driving_keypoints,
    emotion_vector,
)
from farm.render.learned.stream import (
    CHUNK_SAMPLES,
    FUTURE_SAMPLES,
    LOOKAHEAD_MS,
    PAST_SAMPLES,
    SpeechTimeline,
    hubert_frame_features,
    to_float_mono,
)

pytestmark = pytest.mark.unit


def _ramp(n: int, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n) % 1000 / 1000).astype(np.float32)


def test_look_ahead_is_85_ms_and_within_the_120_ms_bound() -> None:
    assert FUTURE_SAMPLES == 1360
    assert LOOKAHEAD_MS == 85
    assert LOOKAHEAD_MS <= 120  # the bound


def test_a_chunk_starts_only_once_its_frames_and_look_ahead_are_queued() -> None:
    timeline = SpeechTimeline()
    timeline.push(_ramp(CHUNK_SAMPLES + FUTURE_SAMPLES - 1))
    assert timeline.take() is None
    timeline.push(_ramp(1, CHUNK_SAMPLES + FUTURE_SAMPLES - 1))
    chunk = timeline.take()
    assert chunk is not None and len(chunk.frames) == 5 and not chunk.ends_segment
    assert np.all(chunk.window[:PAST_SAMPLES] == 0)  # a segment starts with silence as its past
    assert np.array_equal(chunk.window[PAST_SAMPLES:], _ramp(CHUNK_SAMPLES + FUTURE_SAMPLES))
    assert np.array_equal(np.concatenate(chunk.frames), _ramp(CHUNK_SAMPLES))


def test_the_next_window_sees_the_previous_audio_as_its_past() -> None:
    timeline = SpeechTimeline()
    timeline.push(_ramp(3 * CHUNK_SAMPLES))
    first, second = timeline.take(), timeline.take()
    assert first is not None and second is not None
    assert np.array_equal(second.window[:PAST_SAMPLES], _ramp(PAST_SAMPLES, CHUNK_SAMPLES - PAST_SAMPLES))
    assert timeline.take() is None  # the third chunk still waits for its look-ahead


def test_flush_releases_the_tail_and_marks_the_segment_end() -> None:
    timeline = SpeechTimeline()
    timeline.push(_ramp(CHUNK_SAMPLES + 700))
    timeline.flush()
    first, last = timeline.take(), timeline.take()
    assert first is not None and last is not None and timeline.take() is None
    assert (len(first.frames), first.ends_segment) == (5, False)
    assert (len(last.frames), last.ends_segment) == (2, True)  # 700 samples: two frames, zero-padded
    assert last.segment_id == first.segment_id == 1


def test_a_flush_releases_the_look_ahead_held_back_as_the_segment_end() -> None:
    timeline = SpeechTimeline()
    timeline.push(_ramp(CHUNK_SAMPLES + FUTURE_SAMPLES))
    assert timeline.take() is not None
    timeline.flush()
    tail = timeline.take()
    assert tail is not None and tail.ends_segment and len(tail.frames) == 3  # 1360 samples: 3 frames
    timeline.push(_ramp(10))
    timeline.flush()
    nxt = timeline.take()
    assert nxt is not None and nxt.segment_id == 2 and nxt.ends_segment


def test_clear_drops_every_queued_sample() -> None:
    timeline = SpeechTimeline()
    timeline.push(_ramp(5 * CHUNK_SAMPLES))
    timeline.clear()
    assert timeline.take() is None and timeline.buffered_samples() == 0


def test_features_of_a_chunk_are_its_ten_hubert_frames_averaged_in_pairs() -> None:
    encoding = np.arange(20, dtype=np.float32)[:, None].repeat(4, axis=1)
    features = hubert_frame_features(encoding)
    assert features.shape == (5, 4)
    assert np.allclose(features[:, 0], [6.5, 8.5, 10.5, 12.5, 14.5])


def test_pcm_of_any_width_becomes_float_mono() -> None:
    stereo = np.array([[32767, -32768], [0, 0]], np.int16)
    assert np.allclose(to_float_mono(stereo), [-0.5 / 32768, 0.0], atol=1e-4)
    assert to_float_mono(np.array([16384], np.int16))[0] == 0.5


def test_the_cosine_schedule_decreases_and_ten_steps_end_on_the_clean_sample() -> None:
    abar = alphas_cumprod()
    assert abar.shape == (1000,) and np.all(np.diff(abar) < 0) and 0 < abar[-1] < abar[0] <= 1
    pairs = time_pairs(10)
    assert pairs[0] == (999, 899) and pairs[-1] == (99, -1) and len(pairs) == 10


def test_a_perfect_denoiser_brings_the_sampler_to_its_target() -> None:
    target = np.linspace(-1, 1, 12, dtype=np.float64).reshape(3, 4)
    rng = np.random.default_rng(0)

    def step(x: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        a = alphas_cumprod()[t]
        return (x - np.sqrt(a) * target) / np.sqrt(1 - a), target

    noises = [rng.standard_normal(target.shape) for _ in range(9)]
    assert np.allclose(sample(step, rng.standard_normal(target.shape), noises, 10), target)


def _source() -> SourceMotion:
    rng = np.random.default_rng(3)
    outputs = {
        k: rng.normal(size=n).astype(np.float32) * 0.1
        for k, n in {"pitch": 66, "yaw": 66, "roll": 66, "t": 3, "exp": 63, "scale": 1, "kp": 63}.items()
    }
    outputs["scale"] = np.array([1.2], np.float32)
    return SourceMotion.from_outputs(outputs)


def test_the_first_generated_frame_drives_the_source_pose_unchanged() -> None:
    source = _source()
    frame = np.random.default_rng(4).normal(size=265).astype(np.float32)
    x_d, opening = driving_keypoints(source, frame, frame)
    assert np.allclose(x_d, source.keypoints(), atol=1e-5) and opening == 0.0
    assert source.vector().shape == (265,) and np.isclose(source.vector()[0], 0.2)


def test_only_lip_and_eye_keypoints_take_the_driven_expression() -> None:
    source = _source()
    first = np.zeros(265, np.float32)
    moved = first.copy()
    moved[202:] = 0.05  # every expression dim moves
    x_d, opening = driving_keypoints(source, moved, first)
    changed = np.where(np.abs(x_d - source.keypoints()).sum(1) > 1e-6)[0]
    assert sorted(changed) == [6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    assert opening > 0.5


def test_pose_bins_read_as_degrees_and_gestures_offset_the_pose() -> None:
    peaked = np.full(66, -50.0)
    peaked[40] = 50.0
    assert np.isclose(bins_to_degrees(peaked), 40 * 3 - 97.5)
    nod = GESTURE_SET["talk_head_nod_subtle"]
    assert np.allclose(nod.offset(0.0), 0) and np.abs(nod.offset(0.25)[0]) > 5
    assert np.isclose(emotion_vector().sum(), 1.0) and emotion_vector()[4] > 0.99


def test_a_new_chunk_continues_from_the_last_frame_shown() -> None:
    chunk = np.ones((5, 265), np.float32)
    blended = blend_into(np.zeros(265, np.float32), chunk)
    assert np.allclose(blended[:, 0], [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])
