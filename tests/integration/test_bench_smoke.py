"""Every ``farm bench`` runs here at test size (``--smoke``: the same code, the same JSON, smaller
numbers) through the real CLI, so no bench can rot: each exits 0 and prints its JSON, with the keys
a real run prints and the facts it exists to show. Numbers are never judged.

The benches that need a real livekit-server (room, density) run in tests/e2e/test_bench_smoke_livekit.py,
the chaos scenarios in tests/chaos. Each run's time is printed at the end of the module.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.support.bench_smoke import BenchRunner

pytestmark = pytest.mark.integration

TTFF_STEPS = {"api_accept", "queue_wait", "claim", "model_ready", "avatar_ready", "sink_ready", "first_frame"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchRunner]:
    runner = BenchRunner(tmp_path_factory.mktemp("bench-smoke"))
    yield runner
    runner.report("farm bench --smoke, integration")


def test_api_heads_shows_the_farm_refusing_a_head_that_uvicorn_keeps_reading(bench: BenchRunner) -> None:
    summary = bench("api-heads")

    farm, uvicorn = summary["results"]
    assert farm["protocol"] == "farm" and farm["answers"] == {"431": summary["connections"]}
    assert uvicorn["protocol"] == "uvicorn-httptools" and uvicorn["answers"] == {
        "open": summary["connections"]
    }


def test_audio_memory_renders_every_frame_of_each_rate_and_reports_peak_memory(bench: BenchRunner) -> None:
    summary = bench("audio-memory")

    assert {"clip_s", "rates", "max_peak_rss_mb", "target_peak_rss_mb", "within_target"} <= summary.keys()
    assert [row["rate_hz"] for row in summary["rates"]] == [192_000]
    for row in summary["rates"]:
        worker, probe = row["worker"], row["api_probe"]
        assert (worker["state"], worker["reason"]) == ("ENDED", "input closed")
        assert worker["frames"] == math.ceil(summary["clip_s"] * 16_000 / 640)  # every frame, no more
        assert probe["duration_s"] == summary["clip_s"]
        for child in (worker, probe):
            assert 0 < child["baseline_rss_mb"] <= child["peak_rss_mb"]


def test_characters_writes_a_sheet_and_lip_sync_figures_per_character(bench: BenchRunner) -> None:
    summary = bench("characters", written="summary.json")  # --out: a directory, sheets and summary

    assert set(summary["characters"]) == {"person-full-body", "cat", "cartoon"}
    for numbers in summary["characters"].values():  # how well: tests/unit/test_essence_characters.py
        assert numbers["frames"] == 50
        assert -1.0 <= numbers["openness_loudness_corr"] <= 1.0
        assert -1.0 <= numbers["mouth_pixels_loudness_corr"] <= 1.0
        with Image.open(bench.last_out / numbers["sheet"]) as sheet:
            assert sheet.format == "PNG" and sheet.width > sheet.height > 100
    assert [row["portrait_scale"] for row in summary["smallest_face"]] == [0.25]


def test_dispatch_reports_request_to_claim_and_its_parts(bench: BenchRunner) -> None:
    summary = bench("dispatch")

    assert summary["sessions"] == 2 and summary["warmup_sessions"] == 1
    for series in ("request_to_claim", "api_request", "queued_to_assigned"):
        assert set(summary[series]) == {"median_ms", "p90_ms", "p99_ms", "max_ms"}
    assert summary["request_to_claim"]["median_ms"] >= summary["queued_to_assigned"]["median_ms"]
    assert summary["workers"] and summary["workers"][0]["models"] == ["essence"]


def test_dynamics_measures_triggers_through_the_api_to_the_rendered_gesture(bench: BenchRunner) -> None:
    summary = bench("dynamics")

    assert summary["via"] == "api" and summary["triggers"] == 2
    assert summary["measured"] >= 1 and summary["measured"] + summary["missed"] == summary["triggers"]
    assert {"median", "p95", "p99"} <= summary["latency_ms"].keys()
    assert summary["api_response_ms"]["n"] == summary["triggers"]  # every POST answered 2xx


def test_encoder_encodes_every_picture_answers_the_keyframe_request_and_decodes_back(
    bench: BenchRunner,
) -> None:
    summary = bench("encoder")

    assert summary["frame_size"] == [128, 128]
    assert [row["codec"] for row in summary["codecs"]] == ["h264", "vp8"]
    for row in summary["codecs"]:
        assert row["encoded"] == row["pictures"] == row["decoded"] == 50
        assert row["requested_keyframe_is_key"] and row["keyframes"] == 2
        assert row["psnr_db_min"] > 25.0  # the access units decode to the rendered pictures
        assert {"cpu_ms_per_picture", "convert_ms_median", "kbps", "keyframe_bytes"} <= row.keys()


def test_essence_reports_build_load_render_and_memory_per_session(bench: BenchRunner) -> None:
    summary = bench("essence")

    assert summary["frame_size"] == [128, 128] and summary["frames"] == 25
    for key in (
        "render_ms_median",
        "render_ms_p95",
        "pack_build_s",
        "pack_load_ms",
        "rss_mb_per_extra_session",
    ):
        assert key in summary


def test_expression_measures_a_backend_and_the_batched_pipeline(bench: BenchRunner, tmp_path: Path) -> None:
    summary = bench("expression", "--work-dir", str(tmp_path), label="expression")

    (backend,) = summary["backends"]
    assert backend["backend"] == "torch-cpu" and [r["batch"] for r in backend["per_batch"]] == [1, 2]
    assert backend["max_abs_diff_vs_torch_cpu"] == 0.0
    (pipeline,) = summary["pipeline"]
    assert pipeline["sessions"] == 2 and pipeline["frames"] > 0


def test_the_learned_expression_model_is_measured_on_each_backend_present(bench: BenchRunner) -> None:
    result = bench("expression", "--model", "learned")

    assert result["benchmark"] == "expression-learned" and result["mode"].startswith("smoke")
    torch_modes = result["backends"]["torch"]["modes"]
    assert all(row["median_ms"] > 0 for row in torch_modes["eager"]["frame"] + torch_modes["eager"]["motion"])
    assert torch_modes["cudagraph"] == {"skipped": "CUDA graphs need a CUDA device"}
    assert "skipped" in torch_modes["compiled"]
    assert result["backends"]["tensorrt"]["skipped"].startswith("tensorrt is not installed")
    assert [row["batch"] for row in result["backends"]["onnxruntime"]["per_batch"]] == [1]
    assert result["realtime"]["first_frame"]["first_frame_ms"] > 0
    assert result["realtime"]["paced"]["frames"] > 0
    assert {row["graph"] for row in result["parameters"]} == {
        "appearance_extractor",
        "motion_extractor",
        "stitch_network",
        "warp_network",
        "decoder",
        "lmdm",
        "hubert",
    }


def test_landmarks_compares_the_rig_with_the_recorded_dlib_points(bench: BenchRunner) -> None:
    summary = bench("landmarks")

    assert set(summary["images"]) == {"astronaut", "grace_hopper", "full_body", "small_face"}
    assert "mean68" in summary["images"]["astronaut"]["vs_dlib_px"]  # the reference matched the image
    assert [row["portrait_scale"] for row in summary["smallest_face"]] == [0.25]


def test_lipsync_scores_both_mouth_models_on_the_stream_and_in_both_engines(bench: BenchRunner) -> None:
    result = bench("lipsync", "--json")

    for model in ("visemes_stream", "visemes_mouth", "loudness"):
        figures = result["stream"][model]
        assert {"viseme_accuracy", "closure_recall", "rounding_recall", "onset_lag_ms"} <= figures.keys()
    assert result["ms_per_frame"]["viseme_model"]["cpu_ms"] > 0
    for engine in ("essence", "expression"):
        assert {"visemes", "loudness"} <= result["rendered"][engine].keys()


def test_redis_load_reports_both_modes_per_worker_count(bench: BenchRunner) -> None:
    summary = bench("redis-load")

    assert [(r["mode"], r["workers"]) for r in summary["rows"]] == [("before", 2), ("after", 2)]
    assert all(r["ops_per_s_per_session"] > 0 for r in summary["rows"])
    assert {"after_ops_per_s", "after_bytes_per_s"} == set(summary["projection_10000_sessions"])


def test_stages_times_render_and_both_frame_conversions(bench: BenchRunner) -> None:
    summary = bench("stages")

    assert summary["frames"] == 10
    assert {"render_ms", "rgb_to_rgba_frame_ms", "rgba_to_i420_ms"} <= summary.keys()


def test_studio_paints_and_lists_agents_in_chromium_and_over_http(bench: BenchRunner) -> None:
    summary = bench("studio")  # needs the built studio (make studio) and /usr/bin/chromium

    assert summary["agents"] == 50 and summary["loads"] == 1
    for figure in ("api_list_ms", "first_paint_ms", "signed_in_list_ms", "next_page_ms"):
        assert summary[figure]["n"] >= 1 and summary[figure]["median"] > 0, figure
    assert 0 < summary["initial_bytes"]["js"] < 100_000  # pages and plots load on demand


def test_ttff_reports_cold_warm_and_hot_with_their_breakdown(bench: BenchRunner) -> None:
    summary = bench("ttff")

    assert {summary[c]["sessions"] for c in ("warm", "hot")} == {2} and summary["cold"]["sessions"] == 1
    for condition in ("cold", "warm", "hot"):
        assert set(summary[condition]["breakdown_p50_ms"]) == TTFF_STEPS
        assert set(summary[condition]["ttff_ms"]) == {"p50", "p95", "max"}
    assert summary["hot"]["warm_routed"] == 2  # the hot worker holds both avatars: routed to it
    assert set(summary["ratios_p50"]) == {"cold_over_warm", "cold_over_hot"}
