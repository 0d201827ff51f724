"""Keyword rules: validation limits, whole-word matching and firing once per spoken occurrence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from farm.dynamics.base import TriggerResult
from farm.dynamics.router import LocalSessions
from farm.dynamics.rules import (
    MAX_RULES,
    DynamicsConfig,
    KeywordMatcher,
    MemoryRulesStore,
    validate_config,
)
from farm.dynamics.transcripts import TranscriptWatcher, watch_text_stream, watcher_for
from farm.kernel.errors import PayloadTooLarge, UnknownGesture, ValidationError

pytestmark = pytest.mark.unit

GESTURES = ["mini_wave_hello", "smile", "talk_head_nod_subtle"]


def test_phrases_match_whole_words_case_insensitively() -> None:
    matcher = KeywordMatcher({"hello": "mini_wave_hello", "Thank  you": "smile"})
    found = matcher.find("HELLO there, othello. Thank\nYOU!")
    assert [(m.phrase, m.gesture) for m in found] == [("hello", "mini_wave_hello"), ("thank you", "smile")]
    assert matcher.find("hellos and thank youth") == []


def test_validation_normalises_phrases_and_checks_gestures() -> None:
    config = validate_config(DynamicsConfig(rules={"  Good   Morning ": "mini_wave_hello"}), GESTURES)
    assert config.rules == {"good morning": "mini_wave_hello"}
    with pytest.raises(UnknownGesture, match="valid gestures: mini_wave_hello, smile"):
        validate_config(DynamicsConfig(rules={"hi": "backflip"}), GESTURES)


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        ({}, ValidationError),
        ({"   ": "smile"}, ValidationError),
        ({"x" * 65: "smile"}, ValidationError),
        ({"hi!": "smile"}, ValidationError),
        ({f"word{i}": "smile" for i in range(MAX_RULES + 1)}, PayloadTooLarge),
    ],
)
def test_empty_or_oversized_rule_sets_are_refused(rules: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        validate_config(DynamicsConfig(rules=rules), GESTURES)


def test_cooldown_overrides_are_bounded() -> None:
    with pytest.raises(ValidationError):
        validate_config(DynamicsConfig(rules={"hi": "smile"}, cooldowns_s={"smile": 600}), GESTURES)


def test_the_memory_store_returns_an_empty_config_for_an_unknown_agent() -> None:
    store = MemoryRulesStore()
    assert store.get("A000000000") == DynamicsConfig()
    store.put("A000000000", DynamicsConfig(rules={"hi": "smile"}))
    assert store.get("A000000000").rules == {"hi": "smile"}


def recording_watcher(rules: dict[str, str]) -> tuple[TranscriptWatcher, list[str]]:
    fired: list[str] = []

    def fire(gesture: str) -> TriggerResult:
        fired.append(gesture)
        return TriggerResult(gesture, True)

    return TranscriptWatcher(KeywordMatcher(rules), fire), fired


def test_interim_transcripts_of_one_segment_fire_a_keyword_once() -> None:
    watcher, fired = recording_watcher({"hello": "mini_wave_hello"})
    watcher.update("seg1", "well hello", complete=True)
    watcher.update("seg1", "well hello there", complete=True)
    watcher.update("seg1", "Well, hello there!", complete=True)
    assert fired == ["mini_wave_hello"]


def test_a_second_occurrence_and_a_new_segment_fire_again() -> None:
    watcher, fired = recording_watcher({"hello": "mini_wave_hello"})
    watcher.update("seg1", "hello", complete=True)
    watcher.update("seg1", "hello and hello", complete=True)
    watcher.update("seg2", "hello", complete=True)
    assert fired == ["mini_wave_hello"] * 3


def test_a_word_still_arriving_is_not_matched_until_complete() -> None:
    watcher, fired = recording_watcher({"smile": "smile"})
    watcher.update("s", "please smile", complete=False)
    assert fired == []
    watcher.update("s", "please smiles", complete=False)
    assert fired == []
    watcher.update("s", "please smiles now", complete=False)
    assert fired == []  # "smiles" is another word
    watcher.update("s", "please smiles now smile", complete=True)
    assert fired == ["smile"]


class FakeInfo:
    stream_id = "stream-1"
    attributes: ClassVar[dict[str, str]] = {"lk.segment_id": "SG_1", "lk.transcription_final": "true"}


class FakeReader:
    """A text stream delivering deltas, like the agent's own transcription."""

    info = FakeInfo()

    def __init__(self, chunks: list[str]) -> None:
        self._chunks = chunks

    async def _gen(self) -> AsyncIterator[str]:
        for chunk in self._chunks:
            yield chunk

    def __aiter__(self) -> AsyncIterator[str]:
        return self._gen()


async def test_a_delta_stream_fires_each_keyword_once_as_words_complete() -> None:
    watcher, fired = recording_watcher({"hello": "mini_wave_hello", "thank you": "smile"})
    results = await watch_text_stream(watcher, FakeReader(["He", "llo, I", " want to th", "ank y", "ou"]))
    assert fired == ["mini_wave_hello", "smile"]
    assert [r.action for r in results] == fired


def test_a_watcher_for_a_session_fires_through_its_debounced_trigger() -> None:
    played: list[str] = []
    session = LocalSessions("w").register("s1", "t", "A1", GESTURES, played.append)
    watcher = watcher_for(session, DynamicsConfig(rules={"hello": "mini_wave_hello"}))
    results = watcher.update("seg1", "hello", complete=True) + watcher.update(
        "seg2", "hello again", complete=True
    )
    assert [r.reason for r in results] == [None, "debounced"]
    assert played == ["mini_wave_hello"]
