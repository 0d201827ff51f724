"""``GET /v1/usage`` (plan, balance, use by model, minutes left), ``GET /v1/usage/daily`` (credits and
minutes per UTC day, the studio's plot) and ``GET /v2/credit-summaries``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from farm.api.deps import Caller, Services
from farm.api.schemas import ERROR_RESPONSES
from farm.kernel.domain import ModelKind
from farm.tenancy.plans import CREDITS_PER_MINUTE

router = APIRouter(tags=["usage"], responses=ERROR_RESPONSES)


class PlanView(BaseModel):
    name: str
    monthly_credits: int | None  # null: unlimited
    concurrent_sessions: int | None
    requests_per_min: dict[str, int] | None


class ModelUse(BaseModel):
    minutes: int  # started minutes charged this period
    credits: int
    credits_per_minute: int
    minutes_left: int | None  # null: unlimited


class UsageView(BaseModel):
    """The caller's tenant this billing period (UTC month)."""

    tenant: str
    plan: PlanView
    period: str
    resets_at: float
    balance: int | None  # null: unlimited
    plan_credits_left: int | None
    topup_credits: int
    credits_used: int
    by_model: dict[str, ModelUse]
    one_time: dict[str, int]  # credits by item kind (agent_build, dynamics)


class DayUse(BaseModel):
    day: str  # YYYY-MM-DD, UTC
    credits: dict[str, int]  # by kind: essence, expression, agent_build, dynamics
    minutes: dict[str, int]  # started session minutes by model


class DailyUsage(BaseModel):
    tenant: str
    days: list[DayUse]  # oldest first, every day of the range (zeros included)


Days = Annotated[int, Query(ge=1, le=90, description="How many days back, today included.")]


class CreditSummary(BaseModel):
    """bitHuman's ``GET /v2/credit-summaries`` shape."""

    balance: int | None
    plan_credits: int | None
    topup_credits: int
    is_enterprise: bool
    minutes_estimate: dict[str, int | None]


@router.get("/v1/usage", response_model=UsageView)
def usage(farm: Services, key: Caller) -> UsageView:
    """Plan, balance, use by model and minutes left for your tenant."""
    u = farm.metering.usage(key.tenant)
    models = {m.value for m in ModelKind}
    by_model = {
        m.value: ModelUse(
            minutes=u.counters.get(f"units:{m.value}", 0),
            credits=u.counters.get(f"credits:{m.value}", 0),
            credits_per_minute=CREDITS_PER_MINUTE[m],
            minutes_left=u.minutes_left(m),
        )
        for m in ModelKind
    }
    spent = {k.split(":", 1)[1]: v for k, v in u.counters.items() if k.startswith("credits:")}
    one_time = {kind: v for kind, v in spent.items() if kind not in models}
    rates = u.plan.requests_per_min
    return UsageView(
        tenant=u.tenant,
        plan=PlanView(
            name=u.plan.name,
            monthly_credits=u.plan.monthly_credits,
            concurrent_sessions=u.plan.concurrent_sessions,
            requests_per_min={t.value: n for t, n in rates.items()} if rates else None,
        ),
        period=u.period,
        resets_at=u.resets_at,
        balance=u.balance,
        plan_credits_left=u.plan_credits_left,
        topup_credits=u.topup_credits,
        credits_used=sum(spent.values()),
        by_model=by_model,
        one_time=one_time,
    )


@router.get("/v1/usage/daily", response_model=DailyUsage)
def usage_daily(farm: Services, key: Caller, days: Days = 30) -> DailyUsage:
    """Credits (by kind) and session minutes (by model) per UTC day for your tenant."""
    models = {m.value for m in ModelKind}
    out = []
    for day, counters in farm.metering.daily(key.tenant, days):
        credits = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("credits:")}
        units = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("units:")}
        out.append(DayUse(day=day, credits=credits, minutes={k: v for k, v in units.items() if k in models}))
    return DailyUsage(tenant=key.tenant, days=out)


@router.get("/v2/credit-summaries", response_model=CreditSummary)
def credit_summary(farm: Services, key: Caller) -> CreditSummary:
    """bitHuman-compatible balance summary (``minutes_estimate`` per model, cloud rate)."""
    u = farm.metering.usage(key.tenant)
    return CreditSummary(
        balance=u.balance,
        plan_credits=u.plan_credits_left,
        topup_credits=u.topup_credits,
        is_enterprise=u.plan.name in ("enterprise", "custom"),
        minutes_estimate={
            "essence_1_cloud": u.minutes_left(ModelKind.ESSENCE),
            "expression_1_cloud": u.minutes_left(ModelKind.EXPRESSION),
        },
    )
