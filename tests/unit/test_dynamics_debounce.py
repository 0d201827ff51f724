"""Per-gesture cooldowns and the message-id dedup window of one session."""

from __future__ import annotations

import pytest

from farm.dynamics.debounce import DEFAULT_COOLDOWN_S, Debouncer, cooldown_for

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_default_cooldowns_follow_the_reference_values() -> None:
    assert cooldown_for("mini_wave_hello") == 3.0
    assert cooldown_for("talk_head_nod_subtle") == 2.0
    assert cooldown_for("smile") == 1.5
    assert cooldown_for("head_tilt") == DEFAULT_COOLDOWN_S == 2.0


def test_a_gesture_named_after_a_kind_gets_that_kinds_cooldown() -> None:
    assert cooldown_for("big_wave") == 3.0
    assert cooldown_for("smile_wide") == 1.5
    assert cooldown_for("nodding_off") == 2.0  # "nodding" is not the word "nod"


def test_agent_overrides_win_over_defaults() -> None:
    assert cooldown_for("mini_wave_hello", {"mini_wave_hello": 0.5}) == 0.5
    assert cooldown_for("smile", {"mini_wave_hello": 0.5}) == 1.5


def test_a_repeat_within_the_cooldown_is_debounced_and_does_not_extend_it() -> None:
    clock = FakeClock()
    debouncer = Debouncer(clock=clock)
    assert debouncer.admit("mini_wave_hello") is None
    clock.now += 2.9
    assert debouncer.admit("mini_wave_hello") == "debounced"
    clock.now += 0.2  # 3.1 s after the one that played
    assert debouncer.admit("mini_wave_hello") is None


def test_cooldowns_are_per_gesture() -> None:
    debouncer = Debouncer(clock=FakeClock())
    assert debouncer.admit("smile") is None
    assert debouncer.admit("head_tilt") is None
    assert debouncer.admit("smile") == "debounced"


def test_a_message_seen_twice_plays_once_even_after_the_cooldown() -> None:
    clock = FakeClock()
    debouncer = Debouncer({"smile": 0.0}, clock=clock)
    assert debouncer.admit("smile", "m1") is None
    clock.now += 5
    assert debouncer.admit("smile", "m1") == "duplicate"
    assert debouncer.admit("smile", "m2") is None


def test_a_message_id_is_forgotten_after_the_dedup_window() -> None:
    clock = FakeClock()
    debouncer = Debouncer({"smile": 0.0}, dedup_window_s=10.0, clock=clock)
    assert debouncer.admit("smile", "m1") is None
    clock.now += 10.5
    assert debouncer.admit("smile", "m1") is None
