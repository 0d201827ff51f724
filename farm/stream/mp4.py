"""Mp4Sink: a FrameSink that records a session into an MP4 file (H.264 + AAC) with PyAV.

Used for file-input sessions until the LiveKit publisher exists, and kept for recordings. Frames are
encoded as fast as they are rendered (``realtime`` is False). The file is written under a ``.part``
name and moved into place on ``aclose``, so a reader never sees a half-written recording.
"""

from __future__ import annotations

import os
import uuid
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

from farm.render.base import FPS, SAMPLE_RATE_HZ, AvatarFrame


class Mp4Sink:
    """Write every frame's image (H.264, yuv420p) and its 640 audio samples (AAC, 16 kHz mono)."""

    def __init__(
        self,
        path: Path,
        *,
        fps: int = FPS,
        video_bitrate: int = 2_000_000,
        preset: str = "veryfast",
        threads: int = 1,
    ) -> None:
        self.path = Path(path)
        self.fps = fps
        self._bitrate = video_bitrate
        self._preset = preset
        self._threads = threads
        # One part file per sink: a worker that lost its lease never shares a file with the new holder.
        self._part = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex[:8]}.part")
        self._container: OutputContainer | None = None
        self._video: VideoStream | None = None
        self._audio: AudioStream | None = None
        self._samples = 0
        self.frames_written = 0
        self._last_image: np.ndarray | None = None
        self._closed = False

    @property
    def realtime(self) -> bool:
        return False

    async def start(self) -> None:
        """Create the output directory and open the container; streams open with the first frame."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._part), mode="w", format="mp4")

    def _open_streams(self, width: int, height: int) -> None:
        assert self._container is not None
        video = self._container.add_stream("libx264", rate=self.fps)
        video.width, video.height = width - width % 2, height - height % 2
        video.pix_fmt = "yuv420p"
        video.bit_rate = self._bitrate
        video.codec_context.time_base = Fraction(1, self.fps)
        video.codec_context.options = {"preset": self._preset, "tune": "zerolatency"}
        video.codec_context.thread_count = self._threads
        audio = self._container.add_stream("aac", rate=SAMPLE_RATE_HZ)
        audio.layout = "mono"
        self._video, self._audio = video, audio

    async def write(self, frame: AvatarFrame) -> None:
        if self._container is None or self._closed:
            raise RuntimeError("Mp4Sink.write before start() or after aclose()")
        image = frame.image if frame.image is not None else self._last_image  # a skipped frame repeats
        if image is None:
            raise RuntimeError("Mp4Sink: the first frame of a recording must carry an image")
        self._last_image = image
        height, width = image.shape[:2]
        if self._video is None:
            self._open_streams(width, height)
        assert self._video is not None and self._audio is not None
        image = image[: self._video.height, : self._video.width]
        vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        vframe.pts = self.frames_written
        vframe.time_base = Fraction(1, self.fps)
        self._container.mux(self._video.encode(vframe))
        pcm = np.ascontiguousarray(frame.audio, dtype=np.int16).reshape(1, -1)
        aframe = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        aframe.sample_rate = SAMPLE_RATE_HZ
        aframe.pts = self._samples
        aframe.time_base = Fraction(1, SAMPLE_RATE_HZ)
        self._container.mux(self._audio.encode(aframe))
        self._samples += pcm.shape[1]
        self.frames_written += 1

    async def abort(self) -> None:
        """Close without publishing: the part file is deleted, ``path`` is left as it is (a holder
        that lost its lease must not replace the new holder's output). Idempotent."""
        if self._closed:
            return
        self._closed = True
        container, self._container = self._container, None
        if container is not None:
            container.close()
        self._part.unlink(missing_ok=True)

    async def aclose(self) -> None:
        """Flush both encoders, close the file and move it into place. Idempotent."""
        if self._closed:
            return
        self._closed = True
        container, self._container = self._container, None
        if container is None:
            return
        try:
            if self._video is not None and self._audio is not None:
                container.mux(self._video.encode(None))
                container.mux(self._audio.encode(None))
        finally:
            container.close()
        if self.frames_written:
            os.replace(self._part, self.path)
        else:
            self._part.unlink(missing_ok=True)
