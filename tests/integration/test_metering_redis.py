"""The metering tests of tests/unit/test_metering.py against Redis: the Lua charge script, the real
RedisSessionStore's claims and fencing tokens (a re-queued session's successor gets a newer token)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from farm.sessions.redis_store import RedisSessionStore
from farm.tenancy.metering import RedisLedger
from tests.unit.test_metering import (  # noqa: F401  (collected here against Redis)
    JAN_15,
    World,
    test_a_crashed_workers_minutes_are_not_charged_again_and_the_stale_holder_cannot_charge,
    test_a_video_is_prepaid_by_started_minute_and_its_worker_minutes_are_then_free,
    test_each_started_minute_is_charged_once_at_the_models_rate,
    test_one_time_charges_are_idempotent_per_item,
    test_out_of_credits_ends_at_the_minute_boundary_and_new_work_is_refused,
    test_plans_are_assigned_per_tenant_and_unknown_ones_refused,
    test_top_ups_are_spent_after_plan_credits_and_survive_the_month,
    test_unlimited_plans_are_metered_but_never_refused,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def world(redis_client: redis.Redis) -> Iterator[World]:
    yield World(RedisLedger(redis_client), RedisSessionStore(redis_client), [float(JAN_15)])
