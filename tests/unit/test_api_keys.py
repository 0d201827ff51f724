"""API keys: hashed at rest, secret shown once, revocation, for both the memory and Redis stores."""

from __future__ import annotations

import pytest
import redis

from farm.kernel import names
from farm.kernel.errors import NotFound, Unauthorized
from farm.tenancy.api_keys import MemoryKeyStore, RedisKeyStore, hash_secret
from farm.tenancy.base import KeyStore

pytestmark = pytest.mark.unit


@pytest.fixture(params=["memory", "redis"])
def keys(request: pytest.FixtureRequest) -> KeyStore:
    if request.param == "memory":
        return MemoryKeyStore()
    client: redis.Redis = request.getfixturevalue("redis_client")
    return RedisKeyStore(client)


def test_a_created_secret_authenticates_as_its_tenant(keys: KeyStore) -> None:
    key, secret = keys.create("acme", "ci", concurrency_limit=3)
    found = keys.authenticate(secret)
    assert (found.key_id, found.tenant, found.name, found.concurrency_limit) == (key.key_id, "acme", "ci", 3)


@pytest.mark.parametrize("secret", ["", "farm_wrong", "x" * 500])
def test_unknown_secrets_are_unauthorized(keys: KeyStore, secret: str) -> None:
    keys.create("acme", "ci")
    with pytest.raises(Unauthorized):
        keys.authenticate(secret)


def test_a_revoked_key_no_longer_authenticates_but_stays_listed(keys: KeyStore) -> None:
    key, secret = keys.create("acme", "ci")
    other, other_secret = keys.create("acme", "other")
    keys.revoke(key.key_id)
    with pytest.raises(Unauthorized):
        keys.authenticate(secret)
    assert keys.authenticate(other_secret).key_id == other.key_id
    assert {(k.key_id, k.revoked) for k in keys.list()} == {(key.key_id, True), (other.key_id, False)}


def test_revoking_an_unknown_key_is_not_found(keys: KeyStore) -> None:
    with pytest.raises(NotFound):
        keys.revoke("key_nope")


def test_secrets_differ_per_key(keys: KeyStore) -> None:
    secrets = {keys.create("acme", f"k{i}")[1] for i in range(20)}
    assert len(secrets) == 20


def test_redis_holds_only_the_hash_of_a_secret(redis_client: redis.Redis) -> None:
    _, secret = RedisKeyStore(redis_client).create("acme", "ci")
    dump = {k: redis_client.hgetall(k) for k in redis_client.keys("*") if redis_client.type(k) == "hash"}
    assert secret not in repr(dump)
    assert redis_client.hgetall(names.api_key_key(hash_secret(secret)))["tenant"] == "acme"
