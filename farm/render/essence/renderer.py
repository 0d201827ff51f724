"""The per-session Essence renderer: queued speech in, one 40 ms ``AvatarFrame`` out per call.

Per frame it decodes one pre-built I420 base frame (idle loop or gesture clip, cross-faded for a few
frames at a gesture's start and end), picks a mouth shape from the frame's audio and, unless the
mouth is closed, warps that small pre-rendered patch to the frame's head pose and blends it in with
the feathered mask. Everything heavy is shared (``LoadedAvatar``); a session holds only its queue
and a few numbers. Deterministic: the same calls give the same frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from farm.kernel.errors import InvalidAudio, UnknownGesture
from farm.render.audio import Resampler, frame_energy, log_mel
from farm.render.base import SAMPLES_PER_FRAME, AvatarFrame
from farm.render.essence.pack import EssencePack
from farm.render.essence.visemes import ShapeSelector

FADE_FRAMES = 4  # cross-fade length at a gesture's start and end


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a mouth patch lands in one base frame: destination box and patch -> box matrix."""

    x0: int
    y0: int
    x1: int
    y1: int
    matrix: np.ndarray  # (2, 3) float32


class LoadedAvatar:
    """A pack plus per-frame placements, shared read-only by every session in the process."""

    def __init__(self, pack: EssencePack) -> None:
        self.pack = pack
        self.placements = {clip: [self._place(m) for m in pack.poses[clip]] for clip in pack.frames}
        self.levels = pack.smile_levels
        self.level_of = {clip: self._levels(pack.smile[clip]) for clip in pack.frames}
        self.closed = int(np.argmin(np.abs(pack.centres).sum(axis=1)))
        self.mask = np.ascontiguousarray(pack.mask, dtype=np.float32)
        self.features = {k: float(v) for k, v in pack.manifest["features"].items() if k != "kind"}

    def _levels(self, smiles: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(smiles)[:, None] - self.levels[None, :]).argmin(axis=1)

    def _place(self, pose: np.ndarray) -> Placement:
        width, height = self.pack.frame_size
        ph, pw = self.pack.mask.shape
        ox, oy = self.pack.mouth_origin
        to_patch = np.array([[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]])
        full = np.asarray(pose, np.float64) @ to_patch  # patch pixel -> frame pixel
        corners = np.array([[0, 0, 1], [pw, 0, 1], [0, ph, 1], [pw, ph, 1]], np.float64) @ full.T
        x0 = int(max(0, np.floor(corners[:, 0].min())))
        y0 = int(max(0, np.floor(corners[:, 1].min())))
        x1 = int(min(width, np.ceil(corners[:, 0].max()) + 1))
        y1 = int(min(height, np.ceil(corners[:, 1].max()) + 1))
        matrix = full.copy()
        matrix[:, 2] -= (x0, y0)
        return Placement(x0, y0, x1, y1, matrix.astype(np.float32))

    @property
    def gestures(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.pack.gestures)

    @property
    def nbytes(self) -> int:
        return self.pack.nbytes


@dataclass
class _Segment:
    """Queued speech of one segment, at 16 kHz."""

    segment_id: int
    chunks: deque[np.ndarray] = field(default_factory=deque)
    length: int = 0  # samples queued, not yet played
    played: int = 0  # samples already played
    flushed: bool = False
    resampler: Resampler | None = None

    def add(self, samples: np.ndarray) -> None:
        if samples.size:
            self.chunks.append(samples)
            self.length += samples.shape[0]

    def frames_ready(self) -> int:
        full, rest = divmod(self.length, SAMPLES_PER_FRAME)
        if self.flushed and self.length == 0:
            return 1  # played out before its flush came: one silent frame carries segment_end
        return full + (1 if self.flushed and rest else 0)

    def take(self) -> np.ndarray:
        out = np.zeros(SAMPLES_PER_FRAME, np.float32)
        filled = 0
        while filled < SAMPLES_PER_FRAME and self.chunks:
            chunk = self.chunks.popleft()
            use = min(SAMPLES_PER_FRAME - filled, chunk.shape[0])
            out[filled : filled + use] = chunk[:use]
            if use < chunk.shape[0]:
                self.chunks.appendleft(chunk[use:])
            filled += use
        self.length -= filled
        self.played += filled
        return out


class EssenceRenderer:
    """Implements ``farm.render.base.Renderer`` over a shared ``LoadedAvatar``."""

    def __init__(self, avatar: LoadedAvatar, session_id: str) -> None:
        self.avatar = avatar
        self.session_id = session_id
        self._selector = ShapeSelector(avatar.pack.centres, avatar.features)
        self._segments: deque[_Segment] = deque()
        self._next_segment = 1
        self._index = 0
        self._idle_pos = 0
        self._gesture: str | None = None
        self._gesture_pos = 0
        self._closed = False

    # ------------------------------------------------------------------ Renderer protocol
    @property
    def gestures(self) -> tuple[str, ...]:
        return self.avatar.gestures

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.avatar.pack.frame_size

    def push_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise InvalidAudio(f"sample rate must be positive, got {sample_rate}")
        data = np.asarray(pcm)
        if np.issubdtype(data.dtype, np.integer):
            samples = data.astype(np.float32) / np.float32(float(np.iinfo(data.dtype).max) + 1.0)
        else:
            samples = data.astype(np.float32)
        if samples.ndim == 2:
            samples = samples.mean(axis=1)
        segment = self._open_segment()
        if segment.resampler is None or segment.resampler.rate_in != sample_rate:
            if segment.resampler is not None:
                segment.add(segment.resampler.finish())
            segment.resampler = Resampler(sample_rate)
        segment.add(np.clip(segment.resampler.push(samples.ravel()), -1.0, 1.0))

    def flush(self) -> None:
        if not self._segments or self._segments[-1].flushed:
            return
        segment = self._segments[-1]
        if segment.resampler is not None:
            segment.add(np.clip(segment.resampler.finish(), -1.0, 1.0))
        segment.flushed = True
        if segment.length == 0 and segment.played == 0:
            self._segments.pop()  # nothing was ever pushed: not a segment

    def interrupt(self) -> None:
        self._segments.clear()
        self._selector.reset()

    def trigger(self, gesture: str) -> None:
        if gesture not in self.avatar.pack.frames or gesture == "idle":
            raise UnknownGesture(
                f"unknown gesture {gesture!r}; valid gestures: {', '.join(self.gestures)}",
                gesture=gesture,
                valid=list(self.gestures),
            )
        self._gesture = gesture
        self._gesture_pos = 0

    def pending_frames(self) -> int:
        return sum(s.frames_ready() for s in self._segments)

    def next_frame(self, render: bool = True) -> AvatarFrame:
        audio, segment_id, segment_end = self._take_audio()
        speaking = segment_id is not None
        if speaking:
            mel = log_mel(audio)[0]
            shape = self._selector.step(float(frame_energy(audio)[0]), mel)
        else:
            shape = self._selector.step(0.0, _SILENT_ROW)
        image: np.ndarray | None = None
        if render:
            image, clip, pos = self._base_frame()
            if shape != self.avatar.closed:
                self._paste_mouth(image, clip, pos, shape)
        frame = AvatarFrame(
            index=self._index,
            image=image,
            audio=np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16),
            speaking=speaking,
            segment_id=segment_id,
            segment_end=segment_end,
            gesture=self._gesture,
            mouth_open=float(self.avatar.pack.shapes[shape].open),
        )
        self._advance()
        return frame

    def close(self) -> None:
        self._segments.clear()
        self._closed = True

    # ------------------------------------------------------------------ internals
    def _open_segment(self) -> _Segment:
        if not self._segments or self._segments[-1].flushed:
            self._segments.append(_Segment(self._next_segment))
            self._next_segment += 1
        return self._segments[-1]

    def _take_audio(self) -> tuple[np.ndarray, int | None, bool]:
        if not self._segments or self._segments[0].frames_ready() == 0:
            return np.zeros(SAMPLES_PER_FRAME, np.float32), None, False
        segment = self._segments[0]
        audio = segment.take()
        end = segment.flushed and segment.length == 0
        if end:
            self._segments.popleft()
        return audio, segment.segment_id, end

    def _base_frame(self) -> tuple[np.ndarray, str, int]:
        pack = self.avatar.pack
        if self._gesture is None:
            return pack.base_frame("idle", self._idle_pos), "idle", self._idle_pos
        pos = self._gesture_pos
        length = pack.clip_length(self._gesture)
        weight = min(1.0, (pos + 1) / (FADE_FRAMES + 1), (length - pos) / (FADE_FRAMES + 1))
        if weight >= 1.0:
            return pack.base_frame(self._gesture, pos), self._gesture, pos
        idle = pack.base_frame("idle", self._idle_pos)
        mixed = cv2.addWeighted(pack.base_frame(self._gesture, pos), weight, idle, 1.0 - weight, 0.0)
        if weight >= 0.5:
            return mixed, self._gesture, pos
        return mixed, "idle", self._idle_pos

    def _paste_mouth(self, image: np.ndarray, clip: str, pos: int, shape: int) -> None:
        avatar = self.avatar
        place = avatar.placements[clip][pos]
        level = int(avatar.level_of[clip][pos])
        size = (place.x1 - place.x0, place.y1 - place.y0)
        patch = cv2.warpAffine(
            np.asarray(avatar.pack.patches[level, shape]), place.matrix, size, flags=cv2.INTER_LINEAR
        )
        mask = cv2.warpAffine(avatar.mask, place.matrix, size, flags=cv2.INTER_LINEAR)[..., None]
        roi = image[place.y0 : place.y1, place.x0 : place.x1]
        base = roi.astype(np.float32)
        roi[...] = (base + (patch.astype(np.float32) - base) * mask + 0.5).astype(np.uint8)

    def _advance(self) -> None:
        self._index += 1
        self._idle_pos = (self._idle_pos + 1) % self.avatar.pack.clip_length("idle")
        if self._gesture is not None:
            self._gesture_pos += 1
            if self._gesture_pos >= self.avatar.pack.clip_length(self._gesture):
                self._gesture = None
                self._gesture_pos = 0


_SILENT_ROW = np.full(80, np.log(1e-10), np.float32)
