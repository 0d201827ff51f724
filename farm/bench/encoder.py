"""``farm bench encoder``: what the farm's own video encoder costs per picture, as one JSON object.

Renders ``--seconds`` of a speaking Essence session (the sample portrait's pack at ``--size``, with a
gesture), then feeds the same pictures through ``FarmVideoEncoder`` (``video_encoder=farm``) for each
codec, one picture at a time on one core, into a sink that records the access units instead of
LiveKit's ``EncodedVideoSource``. Per codec: ``cpu_ms_per_picture`` (the process's CPU over the run
over the pictures: the encoder's thread and the hand-over), the RGB→I420 conversion alone, the
bitrate produced under the 2 Mbps cap, and the PSNR of the decoded pictures against the rendered
ones (PyAV's decoder). ``keyframe_ms`` is one
requested keyframe's encode time. The SDK's own encoder cannot run outside a room; compare it with
``farm bench density --video-encoder sdk|farm`` (the same sessions, real server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from livekit import rtc

from farm.bench.common import finish, parse_args, speech_like
from farm.render.base import AvatarSource
from farm.render.essence import EssenceEngine, EssenceRenderer, build_pack, sample_portrait
from farm.stream.livekit.encoder import FarmVideoEncoder
from farm.stream.livekit.publisher import VIDEO_MAX_BITRATE

CODECS = ("h264", "vp8")


@dataclass
class _Recording:
    """Stands in for ``rtc.EncodedVideoSource``: keeps the access units, asks for a keyframe once."""

    frames: list[rtc.EncodedVideoFrame] = field(default_factory=list)
    ask_keyframe_at: int = -1
    captured: threading.Event = field(default_factory=threading.Event)  # the bench waits without spinning

    def take_feedback(self) -> rtc.EncodedVideoSourceFeedback:
        asked = len(self.frames) == self.ask_keyframe_at
        return rtc.EncodedVideoSourceFeedback(keyframe_requested=asked, rate_control=None)

    def capture_frame(self, frame: rtc.EncodedVideoFrame) -> bool:
        self.frames.append(frame)
        self.captured.set()
        return True

    async def aclose(self) -> None:
        return None


def _pictures(size: int, seconds: float) -> list[np.ndarray]:
    engine = EssenceEngine()
    with tempfile.TemporaryDirectory(prefix="encoder-bench-") as tmp:
        build_pack(sample_portrait(), Path(tmp) / "pack", size=size)
        avatar = engine.load_avatar(AvatarSource("bench", pack_path=Path(tmp) / "pack"))
        renderer = EssenceRenderer(avatar, "bench")
        renderer.push_audio(speech_like(seconds), 16_000)
        renderer.flush()
        frames = int(seconds * 25)
        out = []
        for i in range(frames):
            if i == frames // 3:
                renderer.trigger("head_tilt")
            out.append(np.ascontiguousarray(renderer.next_frame().pixels))
        return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else round(10 * float(np.log10(255.0**2 / mse)), 2)


def _encode(codec: str, pictures: list[np.ndarray]) -> dict[str, Any]:
    height, width = pictures[0].shape[:2]
    sink = _Recording(ask_keyframe_at=len(pictures) // 2)
    encoder = FarmVideoEncoder((width, height), codec, max_bitrate=VIDEO_MAX_BITRATE, sink=sink)
    frames = [rtc.VideoFrame(width, height, rtc.VideoBufferType.RGB24, p.tobytes()) for p in pictures]
    convert_ms = []
    for frame in frames[:50]:
        began = time.perf_counter()
        encoder.i420(frame)
        convert_ms.append((time.perf_counter() - began) * 1000.0)
    cpu = time.process_time()
    wall = time.perf_counter()
    for i, frame in enumerate(frames):  # one at a time: each picture is encoded before the next
        sink.captured.clear()
        encoder.show(frame, timestamp_us=i * 40_000)
        if not sink.captured.wait(5.0):
            raise RuntimeError(f"{codec}: picture {i} was not encoded in 5 s")
    cpu_ms = (time.process_time() - cpu) * 1000.0 / len(frames)
    wall_ms = (time.perf_counter() - wall) * 1000.0 / len(frames)
    asyncio.run(encoder.aclose())
    decoder = av.CodecContext.create("h264" if codec == "h264" else "vp8", "r")
    decoded = [d.to_ndarray(format="rgb24") for f in sink.frames for d in decoder.decode(av.Packet(f.data))]
    psnr = [_psnr(d, p) for d, p in zip(decoded, pictures, strict=False)]
    key_at = sink.ask_keyframe_at
    sizes = [len(f.data) for f in sink.frames]
    return {
        "codec": codec,
        "pictures": len(frames),
        "encoded": encoder.stats.encoded,
        "cpu_ms_per_picture": round(cpu_ms, 3),
        "wall_ms_per_picture": round(wall_ms, 3),
        "encode_ms_mean": round(encoder.stats.encode_ms_mean, 3),
        "convert_ms_median": round(statistics.median(convert_ms), 3),
        "kbps": round(sum(sizes) * 8 * 25 / len(sizes) / 1000.0, 1),
        "keyframes": encoder.stats.keyframes,
        "requested_keyframe_is_key": sink.frames[key_at].frame_type == rtc.EncodedFrameType.ENCODED_FRAME_KEY,
        "keyframe_bytes": sizes[key_at],
        "delta_bytes_median": int(statistics.median(sizes[1:key_at])) if key_at > 1 else None,
        "decoded": len(decoded),
        "psnr_db_median": statistics.median(psnr) if psnr else None,
        "psnr_db_min": min(psnr) if psnr else None,
    }


def run(*, size: int, seconds: float) -> dict[str, Any]:
    import cv2

    pictures = _pictures(size, seconds)
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):  # one core, as a worker's session would have it
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    results = [_encode(codec, pictures) for codec in CODECS]
    return {
        "bench": "encoder",
        "frame_size": [size, size],
        "max_bitrate": VIDEO_MAX_BITRATE,
        "codecs": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm bench encoder", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="avatar frame size (square)")
    parser.add_argument("--seconds", type=float, default=10.0, help="speech rendered and encoded")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parse_args(parser, argv, smoke={"size": 128, "seconds": 2.0})
    finish(run(size=args.size, seconds=args.seconds), args.out, smoke=args.smoke)
    return 0
