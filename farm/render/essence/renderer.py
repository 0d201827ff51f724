"""The per-session Essence renderer: queued speech in, one 40 ms ``AvatarFrame`` out per call.

Per frame it decodes one pre-built I420 base frame (idle loop or gesture clip, cross-faded for a few
frames at a gesture's start and end), reads the frame's visemes from the viseme model (fed the
segment's audio in order, with its look-ahead: ``farm.render.speech.mouth``), turns them into a
blend of the bank's mouth shapes (``visemes.ShapeSelector``) and, unless the mouth is closed, warps
the blended pre-rendered patches to the frame's head pose and blends them in with the feathered
mask. An unflushed segment holds a frame back (``pending_frames``) until the model's look-ahead
audio after it has arrived; ``mouth="loudness"`` selects the model before visemes (the bench
baseline). Everything heavy is shared (``LoadedAvatar``); a session holds only its queue
and a few numbers. Deterministic: the same calls give the same frames.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from farm.kernel.errors import InvalidAudio, UnknownGesture
from farm.render.audio import Resampler, frame_energy, log_mel
from farm.render.base import SAMPLES_PER_FRAME, AvatarFrame
from farm.render.essence.compose import Layers, nudge_head, paste_eyes, paste_mouth
from farm.render.essence.pack import EssencePack
from farm.render.essence.visemes import Blend, LoudnessSelector, ShapeSelector
from farm.render.life import Life, LifeState
from farm.render.speech.model import VisemeModel, load_model
from farm.render.speech.mouth import VisemeTrack

FADE_FRAMES = 4  # cross-fade length at a gesture's start and end
BEAT_NOD = 0.011  # head nudge at the peak of a speech beat, face widths (1.6 px for a 142-px face)


class LoadedAvatar:
    """A pack plus per-frame placements, shared read-only by every session in the process."""

    def __init__(self, pack: EssencePack) -> None:
        self.pack = pack
        self.layers = Layers(pack)
        self.placements = self.layers.mouth
        self.levels = pack.smile_levels
        self.level_of = {clip: self._levels(pack.smile[clip]) for clip in pack.frames}
        self.closed = int(np.argmin(np.abs(pack.centres).sum(axis=1)))
        self.mask = np.ascontiguousarray(pack.mask, dtype=np.float32)
        self.features = {k: float(v) for k, v in pack.manifest["features"].items() if k != "kind"}
        x0, _, x1, _ = pack.manifest["face"]["box"]
        self.beat_px = BEAT_NOD * (x1 - x0)  # a beat's head nudge, pixels

    def _levels(self, smiles: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(smiles)[:, None] - self.levels[None, :]).argmin(axis=1)

    def eye_state(self, life: Life) -> int:
        """The pack's eye state closest to ``life`` (0: the base frame's own open eyes)."""
        states = self.pack.eye_states
        if len(states) <= 1 or (life.blink < 0.15 and max(abs(g) for g in life.gaze) < 0.2):
            return 0
        if life.blink >= 0.15:
            return min(
                range(1, len(states)),
                key=lambda i: abs(states[i].blink - life.blink) + 9 * (states[i].blink == 0),
            )
        gazing = [i for i in range(1, len(states)) if states[i].blink == 0.0]
        if not gazing:
            return 0
        gx, gy = life.gaze
        return min(gazing, key=lambda i: (states[i].gaze[0] - gx) ** 2 + (states[i].gaze[1] - gy) ** 2)

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

    def frames_ready(self, hold: int = 0) -> int:
        """Frames that can be played; an unflushed segment keeps a frame back until ``hold`` samples
        after it are queued too (the mouth model's look-ahead)."""
        if not self.flushed:
            return max(0, self.length - hold) // SAMPLES_PER_FRAME
        full, rest = divmod(self.length, SAMPLES_PER_FRAME)
        if self.length == 0:
            return 1  # played out before its flush came: one silent frame carries segment_end
        return full + (1 if rest else 0)

    def peek(self, count: int) -> np.ndarray:
        """Up to ``count`` queued samples, not taken."""
        parts, total = [], 0
        for chunk in self.chunks:
            if total >= count:
                break
            parts.append(chunk[: count - total])
            total += parts[-1].shape[0]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def take(self) -> tuple[np.ndarray, int]:
        """The next 640 samples (zero-padded at a flushed tail) and how many of them are real."""
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
        return out, filled


MouthDriver = Literal["visemes", "loudness"]


@dataclass(frozen=True, slots=True)
class _Taken:
    """One frame's audio and where it sits in its segment (what the viseme track needs)."""

    audio: np.ndarray  # 640 samples
    segment_id: int | None
    segment_end: bool
    offset: int = 0  # samples of the segment played before this frame
    window: np.ndarray | None = None  # the frame's real samples + queued look-ahead of the segment
    complete: bool = False  # the window reaches the end of a flushed segment


class EssenceRenderer:
    """Implements ``farm.render.base.Renderer`` over a shared ``LoadedAvatar``."""

    def __init__(
        self,
        avatar: LoadedAvatar,
        session_id: str,
        *,
        mouth: MouthDriver = "visemes",
        model: VisemeModel | None = None,
    ) -> None:
        self.avatar = avatar
        self.session_id = session_id
        self._loudness = (
            LoudnessSelector(avatar.pack.centres, avatar.features) if mouth == "loudness" else None
        )
        self._track = VisemeTrack(model or load_model()) if mouth == "visemes" else None
        self._shapes = ShapeSelector(avatar.pack.shapes)
        self._hold = self._track.lookahead_samples if self._track is not None else 0
        self._segments: deque[_Segment] = deque()
        self._next_segment = 1
        self._index = 0
        self._idle_pos = 0
        self._gesture: str | None = None
        self._gesture_pos = 0
        self._closed = False
        self._life = LifeState(int(hashlib.sha256(session_id.encode()).hexdigest()[:8], 16))
        self._eyes = 0
        self._beat = 0.0

    # ------------------------------------------------------------------ Renderer protocol
    @property
    def gestures(self) -> tuple[str, ...]:
        return self.avatar.gestures

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.avatar.pack.frame_size

    @property
    def lookahead_samples(self) -> int:
        """Audio (16 kHz samples) after a frame that an unflushed segment waits for."""
        return self._hold

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
        if self._track is not None:
            self._track.reset()  # the stream forgets; the mouth relaxes over the next idle frames
        if self._loudness is not None:
            self._loudness.reset()
        self._life.reset()

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
        # A frame waits for the mouth model's look-ahead (or the flush), so a file render's frames do
        # not depend on how its audio was chunked; a live stream that runs dry takes it anyway.
        return sum(s.frames_ready(self._hold) for s in self._segments)

    def next_frame(self, render: bool = True) -> AvatarFrame:
        taken = self._take_audio()
        speaking = taken.segment_id is not None
        energy = float(frame_energy(taken.audio)[0]) if speaking else 0.0
        blend, mouth_open = self._mouth(taken, energy)
        self._live(speaking, energy)
        image: np.ndarray | None = None
        if render:
            image, clip, pos = self._base_frame()
            if blend != ((self._shapes.closed, 1.0),):
                self._paste_mouth(image, clip, pos, blend)
            paste_eyes(image, self.avatar.pack, self.avatar.layers, (clip, pos), self._eyes)
            nudge_head(image, self.avatar.layers, self._beat * self.avatar.beat_px)
        frame = AvatarFrame(
            index=self._index,
            image=image,
            audio=np.clip(np.round(taken.audio * 32768.0), -32768, 32767).astype(np.int16),
            speaking=speaking,
            segment_id=taken.segment_id,
            segment_end=taken.segment_end,
            gesture=self._gesture,
            mouth_open=mouth_open,
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

    def _take_audio(self) -> _Taken:
        if not self._segments or self._segments[0].frames_ready() == 0:
            return _Taken(np.zeros(SAMPLES_PER_FRAME, np.float32), None, False)
        segment = self._segments[0]
        offset = segment.played
        audio, real = segment.take()
        end = segment.flushed and segment.length == 0
        if end:
            self._segments.popleft()
        if self._track is None:
            return _Taken(audio, segment.segment_id, end)
        ahead = segment.peek(self._hold)
        complete = segment.flushed and segment.length <= self._hold
        return _Taken(audio, segment.segment_id, end, offset, np.concatenate([audio[:real], ahead]), complete)

    def _mouth(self, taken: _Taken, energy: float) -> tuple[Blend, float]:
        """The frame's shape blend and openness (steps the mouth state even for a skipped image)."""
        if self._track is not None:
            window = taken.window if taken.window is not None else taken.audio[:0]
            pose = self._track.step(taken.segment_id, taken.offset, window, taken.complete)
            return self._shapes.blend(pose), pose.open
        assert self._loudness is not None
        mel = log_mel(taken.audio)[0] if taken.segment_id is not None else _SILENT_ROW
        shape = self._loudness.step(energy, mel)
        return ((shape, 1.0),), float(self.avatar.pack.shapes[shape].open)

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

    def _paste_mouth(self, image: np.ndarray, clip: str, pos: int, blend: Blend) -> None:
        """Blend mouth shapes ``blend`` [(shape index, weight), ...] into base frame ``pos`` of ``clip``."""
        level = int(self.avatar.level_of[clip][pos])
        paste_mouth(image, self.avatar.pack, self.avatar.layers, (clip, pos, level), blend)

    def _live(self, speaking: bool, energy: float) -> None:
        """Step blinks, gaze and head beats (``farm.render.life``) for this frame."""
        life = self._life.step(speaking, energy)
        self._eyes = self.avatar.eye_state(life)
        self._beat = life.beat

    def _advance(self) -> None:
        self._index += 1
        self._idle_pos = (self._idle_pos + 1) % self.avatar.pack.clip_length("idle")
        if self._gesture is not None:
            self._gesture_pos += 1
            if self._gesture_pos >= self.avatar.pack.clip_length(self._gesture):
                self._gesture = None
                self._gesture_pos = 0


_SILENT_ROW = np.full(80, np.log(1e-10), np.float32)
