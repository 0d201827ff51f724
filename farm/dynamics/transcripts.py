"""Keyword rules applied to a room's ``lk.transcription`` text streams, inside the session.

LiveKit agents publish transcriptions as text streams with the attribute ``lk.segment_id``: the
agent's own speech arrives as deltas within one stream, a user's interim transcripts as several
streams of the same segment, each with the whole text so far (``lk.transcription_final`` marks the
last). A ``TranscriptWatcher`` keeps, per segment, how many occurrences of each phrase already fired,
so a keyword fires its gesture once however many interim versions repeat it, and a word still being
typed out by a delta stream (``"wav"`` before ``"e"``) is not matched until it is complete.
Triggers go through ``LocalSession.trigger`` like every other source, so cooldowns apply.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Protocol

from farm.dynamics.base import TriggerResult
from farm.dynamics.router import LocalSession
from farm.dynamics.rules import DynamicsConfig, KeywordMatcher

log = logging.getLogger(__name__)

ATTR_SEGMENT_ID = "lk.segment_id"
ATTR_FINAL = "lk.transcription_final"
MAX_SEGMENT_CHARS = 16_384
"""Text of a segment beyond this is not matched (bounds the work per segment)."""

_TRAILING_WORD_RE = re.compile(r"\w+$")


class TranscriptWatcher:
    """Fires rule gestures for one session from the text of its transcription segments."""

    def __init__(
        self, matcher: KeywordMatcher, fire: Callable[[str], TriggerResult], *, max_segments: int = 256
    ) -> None:
        self._matcher = matcher
        self._fire = fire
        self._max_segments = max_segments
        self._fired: OrderedDict[str, dict[str, int]] = OrderedDict()  # segment → phrase → occurrences

    def update(self, segment_id: str, text: str, *, complete: bool) -> list[TriggerResult]:
        """Fire the rules for occurrences in ``text`` (the segment's whole text so far) not fired yet.

        ``complete=False`` leaves out a trailing word that may still grow.
        """
        if not self._matcher:
            return []
        text = text[:MAX_SEGMENT_CHARS]
        if not complete:
            text = _TRAILING_WORD_RE.sub("", text)
        fired = self._segment(segment_id)
        seen: dict[str, int] = {}
        results: list[TriggerResult] = []
        for match in self._matcher.find(text):
            seen[match.phrase] = seen.get(match.phrase, 0) + 1
            if seen[match.phrase] > fired.get(match.phrase, 0):
                fired[match.phrase] = seen[match.phrase]
                results.append(self._fire(match.gesture))
        return results

    def _segment(self, segment_id: str) -> dict[str, int]:
        fired = self._fired.get(segment_id)
        if fired is None:
            fired = self._fired[segment_id] = {}
            while len(self._fired) > self._max_segments:
                self._fired.popitem(last=False)
        else:
            self._fired.move_to_end(segment_id)
        return fired

    async def consume(self, chunks: AsyncIterable[str], segment_id: str) -> list[TriggerResult]:
        """Read one text stream (deltas) to its end, firing rules as words complete."""
        text = ""
        results: list[TriggerResult] = []
        async for chunk in chunks:
            if len(text) < MAX_SEGMENT_CHARS:
                text += chunk
                results += self.update(segment_id, text, complete=False)
        results += self.update(segment_id, text, complete=True)
        return results


class _StreamInfo(Protocol):
    @property
    def stream_id(self) -> str: ...

    @property
    def attributes(self) -> Mapping[str, str] | None: ...


class TextStream(Protocol):
    """What ``watch_text_stream`` needs of ``livekit.rtc.TextStreamReader``."""

    @property
    def info(self) -> _StreamInfo: ...

    def __aiter__(self) -> AsyncIterator[str]: ...


async def watch_text_stream(watcher: TranscriptWatcher, reader: TextStream) -> list[TriggerResult]:
    """Consume one ``lk.transcription`` text stream; never raises (a broken stream is logged)."""
    attributes = reader.info.attributes or {}
    segment_id = attributes.get(ATTR_SEGMENT_ID) or reader.info.stream_id
    try:
        return await watcher.consume(reader, segment_id)
    except Exception:
        log.warning("transcription stream ended abnormally", extra={"stream_id": reader.info.stream_id})
        return []


def watcher_for(session: LocalSession, config: DynamicsConfig) -> TranscriptWatcher:
    """A watcher that fires ``config.rules`` on ``session`` through ``LocalSession.trigger``."""
    return TranscriptWatcher(KeywordMatcher(config.rules), session.trigger)
