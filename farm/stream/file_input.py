"""FileInput: a SessionInput that speaks one uploaded clip, then closes.

It yields the decoded clip as SpeechChunk events of ``chunk_s`` seconds, one SegmentEnd, then
InputClosed — the same events a LiveKit byte stream produces for one agent utterance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from farm.media import decode_audio
from farm.stream.base import InputClosed, InputEvent, SegmentEnd, SpeechChunk


class FileInput:
    """Speech from an audio file (any format PyAV decodes) or from already decoded PCM.

    ``chunk_s`` None yields the whole clip as one chunk (exact frame count, no chunk seams).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        pcm: np.ndarray | None = None,
        sample_rate: int | None = None,
        max_s: float = 3600.0,
        chunk_s: float | None = None,
    ) -> None:
        if (path is None) == (pcm is None):
            raise ValueError("FileInput needs exactly one of path or pcm")
        if pcm is not None and not sample_rate:
            raise ValueError("FileInput(pcm=...) needs its sample_rate")
        self._path = path
        self._pcm = pcm
        self._rate = sample_rate or 0
        self._max_s = max_s
        self._chunk_s = chunk_s
        self._closed = False

    async def start(self) -> None:
        """Decode the clip (raises errors.InvalidAudio / PayloadTooLarge for bad files)."""
        if self._pcm is None:
            assert self._path is not None
            self._pcm, self._rate = decode_audio(self._path.read_bytes(), max_s=self._max_s)

    @property
    def duration_s(self) -> float:
        """Length of the decoded clip (after ``start``)."""
        return 0.0 if self._pcm is None else self._pcm.shape[0] / self._rate

    async def events(self) -> AsyncIterator[InputEvent]:
        if self._pcm is None:
            raise RuntimeError("FileInput.events() before start()")
        total = self._pcm.shape[0]
        step = total if self._chunk_s is None else max(1, int(self._chunk_s * self._rate))
        for begin in range(0, total, max(1, step)):
            if self._closed:
                return
            yield SpeechChunk(pcm=self._pcm[begin : begin + step], sample_rate=self._rate)
        yield SegmentEnd()
        yield InputClosed(reason="end of clip")

    async def aclose(self) -> None:
        self._closed = True
