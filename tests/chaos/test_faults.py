"""Faults a production farm meets, injected into a real one: a worker killed mid-session (file and
LiveKit room), Redis killed and restarted or paused mid-stream, a soak of many sessions. Counts are
asserted; times are reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from farm.bench.chaos import ChaosFarm, chaos_farm, redis_freeze, redis_restart, soak, worker_kill
from farm.bench.chaos_room import room_kill
from farm.bench.roomfarm import livekit_target
from farm.devtools.livekit_server import DEV_API_KEY, DEV_API_SECRET
from tests.chaos.conftest import Report

pytestmark = pytest.mark.chaos


def test_a_killed_workers_session_resumes_on_another_worker_with_the_same_frames(
    farm: ChaosFarm, report: Report
) -> None:
    result = worker_kill(farm, trials=2, clip_s=3.0)
    report(result)

    for trial in result["trials"]:
        assert trial["status"] == "ENDED"
        assert trial["resumed_on"] != trial["killed"]
        assert trial["frames"] == result["expected_frames"] == 75
    assert result["frames_exact"] == "2/2"


def test_a_redis_restart_loses_no_session_no_worker_and_answers_no_500(
    farm: ChaosFarm, report: Report
) -> None:
    result = redis_restart(farm, sessions=3, clip_s=4.0, outage_s=3.0)
    report(result)

    assert result["api_500s"] == 0, result["api_answers_during_outage"]
    assert result["api_answers_during_outage"].get("503", 0) > 0  # the outage was seen, and said so
    assert result["worker_processes_alive"] == result["worker_processes"] == 3  # 2 Essence + the build worker
    assert not result["processes_restarted"]
    assert result["lost"] == [] and result["stuck"] == []
    assert result["new_session_after"] == "ENDED"


def test_a_soak_of_many_sessions_loses_none_and_leaves_no_growing_keys(
    farm: ChaosFarm, report: Report
) -> None:
    result = soak(farm, sessions=300, in_flight=8)
    report(result)

    assert result["ended"] == 300
    assert result["lost"] == [] and result["stuck"] == [] and result["failed"] == {}
    assert result["leaked_key_patterns"] == {}


def test_a_killed_room_publisher_is_replaced_by_exactly_one_new_publisher(
    tmp_path: Path, report: Report
) -> None:
    with (
        livekit_target(None, DEV_API_KEY, DEV_API_SECRET, tmp_path) as lk,
        chaos_farm(workers=2, concurrency=2, root=tmp_path, livekit_url=lk.url) as farm,
    ):
        result = asyncio.run(room_kill(farm, lk, trials=1))
    report(result)

    (trial,) = result["trials"]
    assert trial["status"] == "ENDED" and trial["attempts"] == 2
    assert trial["most_live_tracks_after_resume"] == 1


def test_a_paused_redis_loses_no_session_and_costs_no_re_render(farm: ChaosFarm, report: Report) -> None:
    """SIGSTOP, not SIGKILL: calls wait instead of failing, and TTL keys lapse by Redis's clock. A
    freeze shorter than the lease's slack (lease TTL − renewal interval) must not look like dead
    workers: before the Heart and the reaper checked for late answers, all 4 sessions re-rendered."""
    result = redis_freeze(farm, sessions=4, clip_s=5.0, outage_s=3.0)
    report(result)

    assert result["api_500s"] == 0, result["api_answers_during_outage"]
    # calls that waited longer than FARM_API_REDIS_TIMEOUT_S (2 s) were answered 503, not held
    assert result["api_answers_during_outage"].get("503", 0) > 0
    assert result["worker_processes_alive"] == result["worker_processes"] == 3
    assert result["lost"] == [] and result["stuck"] == [] and result["failed"] == {}
    assert result["claimed_again"] == 0
    assert result["new_session_after"] == "ENDED"
