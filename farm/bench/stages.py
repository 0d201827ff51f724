"""``farm bench stages``: the per-frame cost of the farm's own stages of an Essence room session.

Renders ``--frames`` frames (``--size``, default 512²) of speech with the real Essence renderer and
times, per frame (median ms): the render, the RGB → RGBA ``rtc.VideoFrame`` the publisher builds, and
the RGBA → I420 conversion the SDK does before encoding. The density bench's CPU per session minus
these is what the LiveKit SDK costs (encode, Opus, packetisation). Run it pinned (``taskset -c 1``) to
compare with a pinned worker. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from livekit import rtc

from farm.bench.common import finish, parse_args, speech_like
from farm.kernel.domain import ModelKind
from farm.render.base import AvatarSource
from farm.render.essence import EssenceEngine, build_pack, sample_portrait
from farm.render.pool import ModelPool
from farm.stream.livekit.publisher import to_video_frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench stages", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path)
    args = parse_args(parser, argv, smoke={"frames": 10, "size": 128})
    with tempfile.TemporaryDirectory() as tmp:
        pack = build_pack(sample_portrait(), Path(tmp) / "pack", size=args.size)
        pool = ModelPool([ModelKind.ESSENCE], lambda _: EssenceEngine())
        pool.prewarm(120)
        renderer = pool.open_session(ModelKind.ESSENCE, AvatarSource(key="A", pack_path=pack), "stages")
        renderer.push_audio(speech_like(args.frames / 25 + 1), 16_000)
        costs: dict[str, list[float]] = {"render_ms": [], "rgb_to_rgba_frame_ms": [], "rgba_to_i420_ms": []}
        for _ in range(args.frames):
            t0 = time.perf_counter()
            frame = renderer.next_frame()
            t1 = time.perf_counter()
            video = to_video_frame(frame.pixels)
            t2 = time.perf_counter()
            video.convert(rtc.VideoBufferType.I420)
            t3 = time.perf_counter()
            for key, seconds in zip(costs, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                costs[key].append(seconds * 1000.0)
        renderer.close()
        pool.close()
    result: dict[str, object] = {"bench": "stages", "frame_size": args.size, "frames": args.frames}
    result.update({key: round(statistics.median(values), 3) for key, values in costs.items()})
    finish(result, args.out, smoke=args.smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
