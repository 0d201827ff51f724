"""``farm keys create|list|revoke`` against a real Redis: the secret is printed once and works."""

from __future__ import annotations

import re

import pytest
import redis

from farm.kernel.errors import Unauthorized
from farm.tenancy.api_keys import RedisKeyStore
from tests.integration.cli_support import farm_env, run_farm

pytestmark = pytest.mark.integration


def test_a_created_key_authenticates_is_listed_without_its_secret_and_can_be_revoked(
    redis_url: str, redis_client: redis.Redis
) -> None:
    env = farm_env(redis_url=redis_url)
    created = run_farm(
        "keys", "create", "--tenant", "acme", "--name", "ci", "--concurrency-limit", "3", env=env
    )
    assert created.returncode == 0, created.stderr
    secret = re.search(r"^secret\s+(\S+)$", created.stdout, re.M)
    key_id = re.search(r"^key_id\s+(\S+)$", created.stdout, re.M)
    assert secret and key_id
    key = RedisKeyStore(redis_client).authenticate(secret.group(1))
    assert (key.tenant, key.key_id, key.concurrency_limit) == ("acme", key_id.group(1), 3)

    listed = run_farm("keys", "list", env=env)
    assert listed.returncode == 0
    assert key_id.group(1) in listed.stdout and "active" in listed.stdout
    assert secret.group(1) not in listed.stdout

    assert run_farm("keys", "revoke", key_id.group(1), env=env).returncode == 0
    with pytest.raises(Unauthorized):
        RedisKeyStore(redis_client).authenticate(secret.group(1))
    assert "revoked" in run_farm("keys", "list", env=env).stdout


def test_keys_without_any_redis_fail_with_a_clear_message(tmp_path: object) -> None:
    result = run_farm("keys", "list", env=farm_env(data_dir=f"{tmp_path}/var"))
    assert result.returncode == 1
    assert "BACKEND_UNAVAILABLE" in result.stderr and "farm up" in result.stderr


def test_revoking_an_unknown_key_fails(redis_url: str) -> None:
    result = run_farm("keys", "revoke", "key_nope", env=farm_env(redis_url=redis_url))
    assert (result.returncode, "NOT_FOUND" in result.stderr) == (1, True)


def test_a_key_created_with_a_plan_puts_its_tenant_on_that_plan_and_tenants_manage_credits(
    redis_url: str, redis_client: redis.Redis
) -> None:
    from farm.tenancy.metering import Metering, RedisLedger

    env = farm_env(redis_url=redis_url)
    created = run_farm("keys", "create", "--tenant", "acme", "--plan", "free", env=env)
    assert created.returncode == 0, created.stderr
    assert re.search(r"^plan\s+free$", created.stdout, re.M)
    metering = Metering(RedisLedger(redis_client))
    assert metering.usage("acme").balance == 199  # the documented free tier: 199 credits a month
    topped = run_farm("tenants", "topup", "acme", "50", env=env)
    assert "balance  249 (top-up 50)" in topped.stdout
    moved = run_farm("tenants", "set-plan", "acme", "pro", env=env)
    assert "plan     pro" in moved.stdout and "balance  10050" in moved.stdout
    listed = run_farm("tenants", "list", env=env)
    assert re.search(r"^acme\s+pro\s+10050$", listed.stdout, re.M)
    shown = run_farm("tenants", "show", "acme", env=env)
    assert "essence     0 min used, 5025 min left" in shown.stdout
    refused = run_farm("keys", "create", "--tenant", "acme", "--plan", "platinum", env=env)
    assert refused.returncode == 1 and "unknown plan 'platinum'" in refused.stderr
    assert len(RedisKeyStore(redis_client).list()) == 1  # the refused create made no key
