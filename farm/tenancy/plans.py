"""Plans as data: monthly credits, concurrent sessions, rate tiers; credit prices by model and item.

Figures follow the reference pricing (bitHuman's cloud rates): Essence 2 credits per started minute,
Expression 4; an agent build 250 and a dynamics generation 250 one-time. ``custom`` is unlimited in
everything (credits, concurrency, rate) and is the default for tenants without a plan, so existing
deployments, tests and benches keep working until an operator assigns plans (``farm tenants``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from farm.kernel.domain import ModelKind
from farm.kernel.errors import ValidationError


class Tier(enum.StrEnum):
    """Rate-limit cost tiers of API routes."""

    GENERATE = "generate"  # agent / dynamics / video generation
    WRITE = "write"  # other POST/PUT/PATCH/DELETE, TTS
    READ = "read"  # GET


@dataclass(frozen=True, slots=True)
class Plan:
    """One plan. ``None`` means unlimited."""

    name: str
    monthly_credits: int | None
    concurrent_sessions: int | None
    requests_per_min: dict[Tier, int] | None

    @property
    def unlimited_credits(self) -> bool:
        return self.monthly_credits is None


def _rates(generate: int, write: int, read: int) -> dict[Tier, int]:
    return {Tier.GENERATE: generate, Tier.WRITE: write, Tier.READ: read}


PLANS: dict[str, Plan] = {
    p.name: p
    for p in (
        Plan("free", 199, 1, _rates(4, 30, 120)),  # the product's documented free tier: 199 credits a month
        Plan("creator", 1_800, 3, _rates(10, 60, 240)),
        Plan("pro", 10_000, 10, _rates(30, 180, 720)),
        Plan("business", 50_000, 50, _rates(60, 360, 1_440)),
        Plan("enterprise", 250_000, 200, _rates(120, 720, 2_880)),
        Plan("custom", None, None, None),
    )
}
DEFAULT_PLAN = "custom"

CREDITS_PER_MINUTE: dict[ModelKind, int] = {ModelKind.ESSENCE: 2, ModelKind.EXPRESSION: 4}
"""Cloud rate per started session minute, idle time included."""

AGENT_BUILD_CREDITS = 250
DYNAMICS_CREDITS = 250

FAILED_AUTH_PER_MIN = 30
"""Failed authentications allowed per client address per minute (any plan)."""


def plan_named(name: str) -> Plan:
    """The plan called ``name``; VALIDATION_ERROR listing the plans otherwise."""
    try:
        return PLANS[name]
    except KeyError:
        raise ValidationError(f"unknown plan {name!r}; plans: {', '.join(PLANS)}") from None
