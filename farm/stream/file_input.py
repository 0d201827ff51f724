"""FileInput: a SessionInput that speaks one uploaded clip, then closes.

It yields the clip as SpeechChunk events of ``chunk_s`` seconds (half a second when None), one
SegmentEnd, then InputClosed — the same events a LiveKit byte stream produces for one agent
utterance. A file is decoded as a stream (``media.PcmReader``), one chunk per step on a worker
thread: the event loop never waits on more than one chunk's decoding, the process never holds the
decoded clip, and ``aclose`` stops the decoding at the next chunk. The renderers resample and cut
frames the same whatever the chunking, so the video is frame-for-frame the same as from one chunk.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from farm.infra.media import DEFAULT_CHUNK_S, AudioLimits, PcmReader
from farm.stream.base import InputClosed, InputEvent, SegmentEnd, SpeechChunk


class FileInput:
    """Speech from an audio file (any format PyAV decodes) or from already decoded PCM.

    A file is checked against ``max_mb`` and ``max_sample_rate_hz`` in ``start`` (before any
    decoding) and against ``max_s`` while it decodes (PayloadTooLarge once the clip passes it).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        pcm: np.ndarray | None = None,
        sample_rate: int | None = None,
        max_s: float = 3600.0,
        max_mb: float | None = None,
        max_sample_rate_hz: int | None = None,
        chunk_s: float | None = None,
    ) -> None:
        if (path is None) == (pcm is None):
            raise ValueError("FileInput needs exactly one of path or pcm")
        if pcm is not None and not sample_rate:
            raise ValueError("FileInput(pcm=...) needs its sample_rate")
        if chunk_s is not None and chunk_s <= 0:
            raise ValueError("chunk_s must be positive")
        self._path = path
        self._pcm = pcm
        self._rate = sample_rate or 0
        self._limits = AudioLimits(max_s=max_s, max_mb=max_mb, max_sample_rate_hz=max_sample_rate_hz)
        self._chunk_s = chunk_s or DEFAULT_CHUNK_S
        self._reader: PcmReader | None = None
        self._lock = threading.Lock()  # one decoding step or the close at a time
        self._closed = False
        self._read_s = 0.0  # seconds_read once the reader is closed

    async def start(self) -> None:
        """Open the clip and check its limits (errors.InvalidAudio / PayloadTooLarge for bad files)."""
        if self._path is not None and self._reader is None:
            self._reader = await asyncio.to_thread(PcmReader, self._path, self._limits, chunk_s=self._chunk_s)
            self._rate = self._reader.rate

    @property
    def seconds_read(self) -> float:
        """How much of a file has been decoded so far (0 for already decoded PCM)."""
        reader = self._reader
        return reader.samples_read / reader.rate if reader is not None else self._read_s

    async def events(self) -> AsyncIterator[InputEvent]:
        if self._pcm is None and self._reader is None:
            raise RuntimeError("FileInput.events() before start()")
        async for chunk in self._chunks():
            yield SpeechChunk(pcm=chunk, sample_rate=self._rate)
        if self._closed:
            return
        yield SegmentEnd()
        yield InputClosed(reason="end of clip")

    async def _chunks(self) -> AsyncIterator[np.ndarray]:
        if self._pcm is not None:
            step = max(1, int(self._chunk_s * self._rate))
            for begin in range(0, self._pcm.shape[0], step):
                if self._closed:
                    return
                yield self._pcm[begin : begin + step]
                await asyncio.sleep(0)
            return
        while not self._closed:
            chunk = await asyncio.to_thread(self._read)
            if chunk is None:
                return
            yield chunk

    def _read(self) -> np.ndarray | None:
        """One decoding step (on a worker thread); None at the end of the clip or once closed."""
        with self._lock:
            if self._closed or self._reader is None:
                return None
            return self._reader.read()

    async def aclose(self) -> None:
        """Stop: no chunk after the one being decoded now; the file is closed."""
        self._closed = True
        if self._reader is not None:
            await asyncio.to_thread(self._close_reader)

    def _close_reader(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._read_s = self._reader.samples_read / self._reader.rate
                self._reader.close()
                self._reader = None
