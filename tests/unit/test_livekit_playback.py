"""PlaybackTracker: exactly one lk.playback_finished per announced segment, whatever happens."""

from __future__ import annotations

import pytest

from farm.stream.livekit.playback import Finished, PlaybackTracker, Started

pytestmark = pytest.mark.unit


def play(tracker: PlaybackTracker, renderer_id: int, frames: int, *, end: bool = True) -> list[object]:
    events: list[object] = []
    for i in range(frames):
        last = end and i == frames - 1
        if tracker.audible(renderer_id, True):
            events += tracker.on_frame(renderer_id, True, last)
    return events


def test_a_played_segment_starts_once_and_finishes_once_with_its_duration() -> None:
    tracker = PlaybackTracker()
    tracker.announce("s1")

    events = play(tracker, 1, 25)

    assert isinstance(events[0], Started)
    assert [type(e) for e in events] == [Started, Finished]
    finished = events[1]
    assert isinstance(finished, Finished)
    assert finished.payload() == {"playback_position": 1.0, "interrupted": False}
    assert tracker.unreported == 1  # until its audio has played out and the report is claimed
    assert tracker.deliver(finished.segment) and tracker.unreported == 0
    assert not tracker.deliver(finished.segment)  # exactly once


def test_segments_map_to_renderer_ids_in_order() -> None:
    tracker = PlaybackTracker()
    first, second = tracker.announce("a"), tracker.announce("b")

    play(tracker, 7, 3)
    play(tracker, 8, 5)

    assert (first.renderer_id, first.frames) == (7, 3)
    assert (second.renderer_id, second.frames) == (8, 5)


def test_clear_reports_every_unreported_segment_as_interrupted_with_the_played_position() -> None:
    tracker = PlaybackTracker()
    tracker.announce("playing")
    tracker.announce("queued")
    play(tracker, 1, 10, end=False)  # 0.4 s written, 0.1 s of it still queued

    reports = tracker.clear(queued_s=0.1)

    assert [r.payload() for r in reports] == [
        {"playback_position": 0.3, "interrupted": True},
        {"playback_position": 0.0, "interrupted": True},
    ]
    assert tracker.unreported == 0


def test_frames_rendered_before_the_interrupt_is_applied_are_muted_and_never_reported_again() -> None:
    tracker = PlaybackTracker()
    tracker.announce("s1")
    tracker.announce("s2")
    play(tracker, 1, 4, end=False)
    tracker.clear(0.0)

    late = [tracker.audible(1, True), tracker.audible(2, True)]  # in flight while the runner catches up
    events = tracker.on_frame(1, True, True) + tracker.on_frame(2, True, True)
    tracker.barrier()

    assert late == [False, False]
    assert events == []
    assert not tracker.audible(2, True)  # retired ids stay silent after the barrier


def test_a_segment_after_a_clear_is_tracked_normally() -> None:
    tracker = PlaybackTracker()
    tracker.announce("old")
    play(tracker, 1, 3, end=False)
    tracker.clear(0.0)
    tracker.barrier()
    tracker.announce("new")

    events = play(tracker, 2, 5)

    assert [type(e) for e in events] == [Started, Finished]
    finished = events[1]
    assert isinstance(finished, Finished)
    assert finished.payload() == {"playback_position": 0.2, "interrupted": False}


def test_an_empty_stream_is_reported_at_once_and_only_once() -> None:
    tracker = PlaybackTracker()
    segment = tracker.announce("empty")

    first = tracker.finish_empty(segment)
    second = tracker.finish_empty(segment)

    assert first is not None and first.payload() == {"playback_position": 0.0, "interrupted": False}
    assert second is None
    assert tracker.close() == []


def test_closing_reports_what_is_left_as_interrupted() -> None:
    tracker = PlaybackTracker()
    tracker.announce("s1")
    play(tracker, 3, 2, end=False)

    reports = tracker.close()

    assert [r.interrupted for r in reports] == [True]
    assert tracker.close() == []


def test_idle_frames_and_unannounced_audio_produce_no_reports() -> None:
    tracker = PlaybackTracker()

    assert tracker.on_frame(None, False, False) == []
    assert play(tracker, 5, 3) == []  # audio nobody announced: played, never reported


def test_a_clear_while_an_ended_segments_audio_still_plays_interrupts_it_instead_of_its_normal_report() -> (
    None
):
    """The agent cuts its speech: it closes the stream, then sends lk.clear_buffer. When the stream's
    end reaches the avatar first, the segment's last frame is written while 0.3 s of it is still
    queued; the clear drops that audio, so the segment was interrupted at what was heard, and the
    normal report scheduled for its playout end must not go out (it did: the agent got
    ``interrupted: false`` for speech it cut, and no interrupted report)."""
    tracker = PlaybackTracker()
    tracker.announce("cut")
    events = play(tracker, 1, 16)  # 0.64 s written, the last frame with segment_end
    normal = events[-1]
    assert isinstance(normal, Finished) and not normal.interrupted

    reports = tracker.clear(queued_s=0.3)

    assert [r.payload() for r in reports] == [{"playback_position": 0.34, "interrupted": True}]
    assert not tracker.deliver(normal.segment)  # the scheduled normal report is dropped
    assert tracker.unreported == 0


def test_a_clear_after_an_ended_segment_played_out_leaves_its_normal_report_and_interrupts_the_next() -> None:
    """Only the newest audio is queued: an older segment whose audio all played keeps its normal
    report; the segment playing now is the one interrupted, at its own heard position."""
    tracker = PlaybackTracker()
    tracker.announce("done")
    tracker.announce("now")
    first = play(tracker, 1, 10)[-1]  # 0.4 s, ended
    play(tracker, 2, 5, end=False)  # 0.2 s of the next, 0.1 s of it queued

    reports = tracker.clear(queued_s=0.1)

    assert [r.payload() for r in reports] == [{"playback_position": 0.1, "interrupted": True}]
    assert isinstance(first, Finished) and tracker.deliver(first.segment)
    assert tracker.unreported == 0
