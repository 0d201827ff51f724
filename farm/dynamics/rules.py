"""Server-side keyword rules: ``{keyword or phrase: gesture}`` per agent, matched in transcriptions.

Matching is on whole words, case-insensitive, with any run of whitespace between the words of a
phrase (``"hello  THERE"`` matches the rule ``"hello there"``; ``"othello"`` does not match
``"hello"``). Rules live with the agent's gesture cooldowns in a ``DynamicsConfig``, stored by a
``RulesStore`` (Redis in production, memory in unit tests). ``validate_config`` enforces the limits.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, Field

from farm.infra.redis_conn import redis_errors
from farm.kernel import names
from farm.kernel.errors import PayloadTooLarge, UnknownGesture, ValidationError

if TYPE_CHECKING:
    from redis import Redis

MAX_RULES = 100
MAX_PHRASE_CHARS = 64
MAX_PHRASE_WORDS = 8
MAX_COOLDOWN_S = 60.0
MAX_BODY_BYTES = 32 * 1024
"""Largest PUT body the API reads (413 beyond it)."""

_WORD_RE = re.compile(r"\w+", re.UNICODE)


class DynamicsConfig(BaseModel):
    """An agent's keyword rules (normalised phrase → gesture) and cooldown overrides (gesture → s)."""

    rules: dict[str, str] = Field(default_factory=dict)
    cooldowns_s: dict[str, float] = Field(default_factory=dict)


def normalise_phrase(phrase: str) -> str:
    """Lower-case words separated by single spaces: the stored form of a rule's phrase."""
    return " ".join(phrase.casefold().split())


def validate_config(config: DynamicsConfig, gestures: Iterable[str]) -> DynamicsConfig:
    """Check limits and names; return the config with normalised phrases.

    Empty rules: ValidationError (400). More than MAX_RULES: PayloadTooLarge (413). A phrase that is
    empty, too long or not made of words: ValidationError. A gesture the agent lacks: UnknownGesture.
    """
    valid = sorted(set(gestures))
    if not config.rules:
        raise ValidationError("rules must map at least one keyword or phrase to a gesture")
    if len(config.rules) > MAX_RULES:
        raise PayloadTooLarge(f"at most {MAX_RULES} rules per agent", count=len(config.rules))
    rules: dict[str, str] = {}
    for phrase, gesture in config.rules.items():
        normal = normalise_phrase(phrase)
        if not normal or len(normal) > MAX_PHRASE_CHARS or len(normal.split()) > MAX_PHRASE_WORDS:
            raise ValidationError(
                f"each phrase needs 1 to {MAX_PHRASE_WORDS} words and at most {MAX_PHRASE_CHARS} characters"
            )
        if not all(_WORD_RE.fullmatch(word) for word in normal.split()):
            raise ValidationError("phrases are made of words (letters, digits, underscores)")
        _check_gesture(gesture, valid)
        rules[normal] = gesture
    for gesture, seconds in config.cooldowns_s.items():
        _check_gesture(gesture, valid)
        if not 0 <= seconds <= MAX_COOLDOWN_S:
            raise ValidationError(f"cooldowns are between 0 and {MAX_COOLDOWN_S:g} seconds")
    return DynamicsConfig(rules=rules, cooldowns_s=dict(config.cooldowns_s))


def _check_gesture(gesture: str, valid: list[str]) -> None:
    if gesture not in valid:
        raise UnknownGesture(f"unknown gesture {gesture!r}; valid gestures: {', '.join(valid) or 'none'}")


@dataclass(frozen=True, slots=True)
class RuleMatch:
    phrase: str
    gesture: str
    start: int
    end: int


class KeywordMatcher:
    """Finds rule phrases in text: whole words, case-insensitive, in order of appearance."""

    def __init__(self, rules: Mapping[str, str]) -> None:
        self._rules = {normalise_phrase(p): g for p, g in rules.items() if normalise_phrase(p)}
        self._patterns = [
            (phrase, re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, phrase.split())) + r"(?!\w)", re.I))
            for phrase in self._rules
        ]

    def __bool__(self) -> bool:
        return bool(self._rules)

    def find(self, text: str) -> list[RuleMatch]:
        """Every occurrence of every phrase in ``text``, sorted by position."""
        found = [
            RuleMatch(phrase, self._rules[phrase], m.start(), m.end())
            for phrase, pattern in self._patterns
            for m in pattern.finditer(text)
        ]
        return sorted(found, key=lambda m: (m.start, -m.end))


class RulesStore(Protocol):
    def get(self, agent_id: str) -> DynamicsConfig:
        """The agent's config; an empty one when none was stored."""
        ...

    def put(self, agent_id: str, config: DynamicsConfig) -> None: ...

    def delete(self, agent_id: str) -> None: ...


class MemoryRulesStore:
    """RulesStore in memory (unit tests)."""

    def __init__(self) -> None:
        self._configs: dict[str, DynamicsConfig] = {}
        self._lock = threading.Lock()

    def get(self, agent_id: str) -> DynamicsConfig:
        with self._lock:
            return self._configs.get(agent_id, DynamicsConfig()).model_copy(deep=True)

    def put(self, agent_id: str, config: DynamicsConfig) -> None:
        with self._lock:
            self._configs[agent_id] = config.model_copy(deep=True)

    def delete(self, agent_id: str) -> None:
        with self._lock:
            self._configs.pop(agent_id, None)


class RedisRulesStore:
    """RulesStore in Redis: STRING ``names.dynamics_rules_key(agent_id)`` (JSON)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @redis_errors
    def get(self, agent_id: str) -> DynamicsConfig:
        raw = self._redis.get(names.dynamics_rules_key(agent_id))
        return DynamicsConfig() if raw is None else DynamicsConfig.model_validate_json(raw)

    @redis_errors
    def put(self, agent_id: str, config: DynamicsConfig) -> None:
        self._redis.set(names.dynamics_rules_key(agent_id), config.model_dump_json())

    @redis_errors
    def delete(self, agent_id: str) -> None:
        self._redis.delete(names.dynamics_rules_key(agent_id))
