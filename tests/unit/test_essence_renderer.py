"""The per-session Essence renderer: lip-sync, segments, interrupts, gestures and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farm.bench.common import speech_like
from farm.kernel.errors import UnknownGesture
from farm.render.audio import frame_energy
from farm.render.base import AvatarFrame, Renderer
from farm.render.essence import EssenceRenderer, LoadedAvatar

pytestmark = pytest.mark.unit


def _render_all(renderer: EssenceRenderer) -> list[AvatarFrame]:
    frames = []
    while renderer.pending_frames():
        frames.append(renderer.next_frame())
    return frames


def _mouth_box(avatar: LoadedAvatar) -> tuple[slice, slice]:
    x0, y0, x1, y1 = avatar.pack.manifest["mouth"]["region"]
    return slice(y0, y1), slice(x0, x1)


def test_it_is_a_renderer(essence_avatar: LoadedAvatar) -> None:
    renderer = EssenceRenderer(essence_avatar, "s")
    assert isinstance(renderer, Renderer)
    assert renderer.frame_size == (256, 256)
    frame = renderer.next_frame()
    assert frame.image.shape == (256, 256, 3) and frame.image.dtype == np.uint8
    assert frame.audio.shape == (640,) and frame.audio.dtype == np.int16


def test_silence_keeps_the_mouth_closed(essence_avatar: LoadedAvatar) -> None:
    renderer = EssenceRenderer(essence_avatar, "s")
    quiet = (1e-4 * np.random.default_rng(3).standard_normal(32_000)).astype(np.float32)  # -80 dBFS
    renderer.push_audio(quiet, 16_000)
    renderer.flush()
    pack = essence_avatar.pack
    rows, cols = _mouth_box(essence_avatar)
    for i, frame in enumerate(_render_all(renderer)):
        assert frame.speaking and frame.mouth_open == 0.0
        closed = pack.base_frame("idle", i % pack.clip_length("idle")).astype(np.float32)[rows, cols]
        assert np.abs(frame.image[rows, cols].astype(np.float32) - closed).mean() < 0.5


def test_the_loudness_baselines_openness_follows_the_loudness_of_speech(essence_avatar: LoadedAvatar) -> None:
    audio = speech_like(5.0)
    renderer = EssenceRenderer(essence_avatar, "s", mouth="loudness")
    renderer.push_audio(audio, 16_000)
    renderer.flush()
    frames = _render_all(renderer)
    openness = np.array([f.mouth_open for f in frames])
    energy = frame_energy(audio)
    assert openness.shape == energy.shape
    assert np.corrcoef(openness, energy)[0, 1] >= 0.6
    assert openness.max() >= 0.6 and (openness == 0.0).any()


def test_an_open_mouth_changes_the_mouth_region_of_the_picture(essence_avatar: LoadedAvatar) -> None:
    renderer = EssenceRenderer(essence_avatar, "s")
    renderer.push_audio(speech_like(3.0), 16_000)
    renderer.flush()
    pack = essence_avatar.pack
    rows, cols = _mouth_box(essence_avatar)
    for i, frame in enumerate(_render_all(renderer)):
        if frame.mouth_open >= 0.6:
            base = pack.base_frame("idle", i % pack.clip_length("idle")).astype(np.float32)
            in_mouth = np.abs(frame.image[rows, cols].astype(np.float32) - base[rows, cols]).mean()
            above = np.abs(frame.image[: rows.start].astype(np.float32) - base[: rows.start]).mean()
            assert in_mouth > 3.0 and in_mouth > 4.0 * above  # above it: only blinks, gaze and beats


def test_the_loudness_baselines_mouth_does_not_flicker(essence_avatar: LoadedAvatar) -> None:
    renderer = EssenceRenderer(essence_avatar, "s", mouth="loudness")
    renderer.push_audio(speech_like(5.0, seed=4), 16_000)
    renderer.flush()
    openness = np.array([f.mouth_open for f in _render_all(renderer)])
    direction = np.sign(np.diff(openness))
    reversals = np.count_nonzero(direction[1:] * direction[:-1] < 0)
    assert reversals <= len(openness) / 4  # a syllable (~4 Hz) needs two reversals per ~6 frames


@pytest.mark.parametrize(
    ("samples", "rate"),
    [
        (1, 16_000),
        (639, 16_000),
        (640, 16_000),
        (641, 16_000),
        (16_005, 16_000),
        (48_000, 48_000),
        (22_051, 22_050),
    ],
)
def test_a_clip_plays_in_ceil_samples_over_640_frames(
    essence_avatar: LoadedAvatar, samples: int, rate: int
) -> None:
    renderer = EssenceRenderer(essence_avatar, "s")
    renderer.push_audio(np.full(samples, 0.1, np.float32), rate)
    renderer.flush()
    at_16k = math.ceil(samples * 16_000 / rate)
    assert renderer.pending_frames() == math.ceil(at_16k / 640)
    frames = _render_all(renderer)
    assert len(frames) == math.ceil(at_16k / 640)
    assert [f.segment_end for f in frames] == [False] * (len(frames) - 1) + [True]
    assert renderer.next_frame().speaking is False


def test_audio_comes_back_sample_exact_and_padded_with_zeros(essence_avatar: LoadedAvatar) -> None:
    pcm = np.random.default_rng(1).integers(-20_000, 20_000, 1_000).astype(np.int16)
    renderer = EssenceRenderer(essence_avatar, "s")
    renderer.push_audio(pcm, 16_000)
    renderer.flush()
    out = np.concatenate([f.audio for f in _render_all(renderer)])
    assert np.array_equal(out[:1_000], pcm)
    assert not out[1_000:].any() and out.shape == (1_280,)


def test_an_unflushed_partial_frame_waits_for_more_audio(essence_avatar: LoadedAvatar) -> None:
    renderer = EssenceRenderer(essence_avatar, "s")
    lookahead = renderer.lookahead_samples  # a frame is pending once its look-ahead arrived
    renderer.push_audio(np.full(640 + lookahead - 1, 0.1, np.float32), 16_000)
    assert renderer.pending_frames() == 0
    renderer.push_audio(np.full(1, 0.1, np.float32), 16_000)
    assert renderer.pending_frames() == 1
    assert renderer.next_frame().speaking
    renderer.interrupt()
    renderer.push_audio(np.full(1_000, 0.1, np.float32), 16_000)
    assert renderer.next_frame().speaking  # a live stream that runs dry plays without its look-ahead
    assert renderer.pending_frames() == 0 and not renderer.next_frame().speaking
    renderer.push_audio(np.full(280, 0.1, np.float32), 16_000)
    frame = renderer.next_frame()
    assert frame.speaking and not frame.segment_end


def test_segments_are_numbered_and_each_ends_on_its_last_frame(essence_avatar: LoadedAvatar) -> None:
    renderer = EssenceRenderer(essence_avatar, "s")
    for _ in range(2):
        renderer.push_audio(np.full(1_500, 0.1, np.float32), 16_000)
        renderer.flush()
    frames = _render_all(renderer)
    assert [f.segment_id for f in frames] == [1, 1, 1, 2, 2, 2]
    assert [f.segment_end for f in frames] == [False, False, True, False, False, True]


def test_a_flush_after_the_audio_played_out_still_ends_the_segment_once(
    essence_avatar: LoadedAvatar,
) -> None:
    # A streaming agent may flush after its last chunk already played (TTS slower than real time);
    # the segment must still end exactly once, or the agent waits for playback_finished forever.
    renderer = EssenceRenderer(essence_avatar, "s")
    renderer.push_audio(np.full(1_280, 0.1, np.float32), 16_000)
    played = [renderer.next_frame() for _ in range(3)]
    assert [f.segment_id for f in played] == [1, 1, None]
    assert not any(f.segment_end for f in played)
    renderer.flush()
    renderer.flush()  # a second flush of the same segment is ignored
    after = [renderer.next_frame() for _ in range(3)]
    assert [f.segment_end for f in after] == [True, False, False]
    assert after[0].segment_id == 1 and not after[0].audio.any()


def test_interrupt_returns_to_idle_on_the_next_frame(essence_avatar: LoadedAvatar) -> None:
    renderer = EssenceRenderer(essence_avatar, "s")
    renderer.push_audio(speech_like(3.0), 16_000)
    renderer.flush()
    talking = [renderer.next_frame() for _ in range(15)]
    assert any(f.mouth_open > 0 for f in talking)
    renderer.interrupt()
    assert renderer.pending_frames() == 0
    after = [renderer.next_frame() for _ in range(8)]
    assert not any(f.speaking or f.audio.any() for f in after) and after[0].segment_id is None
    assert [f.mouth_open for f in after[4:]] == [0.0] * 4  # relaxed shut within 4 frames, and stays


def test_a_triggered_gesture_starts_on_the_next_frame_and_ends(essence_avatar: LoadedAvatar) -> None:
    renderer = EssenceRenderer(essence_avatar, "s")
    for _ in range(7):
        renderer.next_frame()
    renderer.trigger("head_tilt")
    pack = essence_avatar.pack
    length = pack.clip_length("head_tilt")
    frames = [renderer.next_frame() for _ in range(length + 1)]
    assert [f.gesture for f in frames] == ["head_tilt"] * length + [None]
    middle = frames[length // 2]
    idle = pack.base_frame("idle", middle.index % pack.clip_length("idle")).astype(np.float32)
    assert np.abs(middle.image.astype(np.float32) - idle).mean() > 2.0


def test_lip_sync_continues_during_a_gesture(essence_avatar: LoadedAvatar) -> None:
    audio = speech_like(2.0)
    renderer = EssenceRenderer(essence_avatar, "s", mouth="loudness")  # openness tracks this energy
    renderer.push_audio(audio, 16_000)
    renderer.flush()
    renderer.trigger("mini_wave_hello")
    frames = _render_all(renderer)
    during = [f for f in frames if f.gesture == "mini_wave_hello"]
    assert len(during) >= 40
    openness = np.array([f.mouth_open for f in during])
    assert np.corrcoef(openness, frame_energy(audio)[: len(during)])[0, 1] >= 0.6


def test_an_unknown_gesture_is_refused_with_the_valid_names(essence_avatar: LoadedAvatar) -> None:
    renderer = EssenceRenderer(essence_avatar, "s")
    with pytest.raises(UnknownGesture) as caught:
        renderer.trigger("backflip")
    assert caught.value.code == "UNKNOWN_GESTURE"
    assert "backflip" in caught.value.message
    assert all(name in caught.value.message for name in renderer.gestures)
    assert renderer.next_frame().gesture is None


def test_the_same_input_gives_the_same_frames_whatever_the_chunking(essence_avatar: LoadedAvatar) -> None:
    audio = speech_like(2.0, rate=48_000, seed=2)

    def run(chunk: int) -> list[AvatarFrame]:
        renderer = EssenceRenderer(essence_avatar, "s")
        for start in range(0, audio.shape[0], chunk):
            renderer.push_audio(audio[start : start + chunk], 48_000)
        renderer.flush()
        renderer.trigger("smile")
        return _render_all(renderer)

    first, second, third = run(480), run(480), run(audio.shape[0])
    assert len(first) == len(third) == 50
    for a, b, c in zip(first, second, third, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.audio, b.audio)
        assert np.array_equal(a.image, c.image) and np.array_equal(a.audio, c.audio)
        assert a.mouth_open == c.mouth_open and a.gesture == c.gesture


def test_empty_pushes_and_bad_rates_are_handled(essence_avatar: LoadedAvatar) -> None:
    from farm.kernel.errors import InvalidAudio

    renderer = EssenceRenderer(essence_avatar, "s")
    renderer.push_audio(np.zeros(0, np.int16), 24_000)
    renderer.flush()
    assert renderer.pending_frames() == 0 and not renderer.next_frame().speaking
    with pytest.raises(InvalidAudio):
        renderer.push_audio(np.zeros(10, np.int16), 0)


def test_a_skipped_frame_advances_audio_and_mouth_exactly_like_a_rendered_one(
    essence_avatar: LoadedAvatar,
) -> None:
    rendered, skipping = EssenceRenderer(essence_avatar, "s"), EssenceRenderer(essence_avatar, "s")
    for renderer in (rendered, skipping):
        renderer.push_audio(speech_like(1.0), 16_000)
        renderer.flush()
    for index in range(30):
        full, skipped = rendered.next_frame(), skipping.next_frame(render=index % 3 == 0)
        assert skipped.audio.tobytes() == full.audio.tobytes()
        assert (skipped.mouth_open, skipped.segment_id, skipped.segment_end) == (
            full.mouth_open,
            full.segment_id,
            full.segment_end,
        )
        if index % 3:
            assert skipped.image is None
            with pytest.raises(ValueError, match="skipped"):
                _ = skipped.pixels
        else:
            assert skipped.pixels.tobytes() == full.pixels.tobytes()
