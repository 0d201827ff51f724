"""Where the farm's Redis clients and its Celery broker point: one server or a Sentinel set.

Settings compose a ``redis+sentinel://`` URL from the sentinel settings; ``farm.infra.redis_conn`` parses it
for redis-py's Sentinel and ``tasks.app`` turns it into kombu's ``sentinel://`` broker list. The
Celery configuration keeps no task results and never gives up on the broker.
"""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from farm.infra.backoff import Backoff, capped_delay_s
from farm.infra.redis_conn import SentinelTarget, connect, parse_sentinel_url
from farm.kernel.settings import Settings, sentinel_url
from tasks.app import celery_config, create_app
from tasks.broker import (
    REDIS_TRANSPORT,
    SENTINEL_TRANSPORT,
    Channel,
    RedisTransport,
    SentinelChannel,
    SentinelTransport,
)

pytestmark = pytest.mark.unit


def test_sentinel_settings_become_a_sentinel_url_that_parses_back() -> None:
    settings = Settings(
        redis_sentinels="10.0.0.1:26379, 10.0.0.2:26380",
        redis_sentinel_master="farm",
        redis_sentinel_password="p@ss word",
    )

    assert settings.redis_url == "redis+sentinel://:p%40ss%20word@10.0.0.1:26379,10.0.0.2:26380/0?master=farm"
    assert parse_sentinel_url(settings.redis_url) == SentinelTarget(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380)), master="farm", db=0, password="p@ss word"
    )


@pytest.mark.parametrize("value", ["s1:26379,s2:26379", '["s1:26379", "s2:26379"]'])
def test_sentinels_come_from_the_environment_as_csv_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FARM_REDIS_SENTINELS", value)
    monkeypatch.setenv("FARM_REDIS_SENTINEL_MASTER", "farm")
    monkeypatch.delenv("FARM_REDIS_URL", raising=False)

    settings = Settings.from_env()

    assert settings.redis_sentinels == ["s1:26379", "s2:26379"]
    assert settings.redis_url == "redis+sentinel://s1:26379,s2:26379/0?master=farm"


def test_an_explicit_redis_url_wins_over_sentinels() -> None:
    settings = Settings(redis_url="redis://cache:6379/2", redis_sentinels=["s:26379"])
    assert settings.redis_url == "redis://cache:6379/2"
    assert parse_sentinel_url(settings.redis_url) is None


def test_a_sentinel_url_without_a_master_is_refused() -> None:
    with pytest.raises(ValueError, match="master"):
        parse_sentinel_url("redis+sentinel://s1:26379/0")
    with pytest.raises(ValueError, match="sentinel"):
        sentinel_url([], "farm")


def test_a_sentinel_client_asks_the_sentinels_for_its_primary() -> None:
    client = connect(sentinel_url(["127.0.0.1:1", "127.0.0.1:2"], "farm", db=3))

    assert isinstance(client.connection_pool, SentinelConnectionPool)
    assert client.connection_pool.service_name == "farm"
    assert client.get_connection_kwargs()["decode_responses"] is True
    assert client.get_connection_kwargs()["db"] == 3


def test_a_plain_url_gives_a_plain_broker_with_the_guarded_transport() -> None:
    config = celery_config(Settings(redis_url="redis://r:6379/1"))

    assert config["broker_url"] == "redis://r:6379/1"
    assert config["broker_transport"] == REDIS_TRANSPORT
    assert "master_name" not in config["broker_transport_options"]


def test_a_sentinel_url_gives_kombus_sentinel_broker_with_the_master_name() -> None:
    settings = Settings(redis_sentinels=["s1:26379", "s2:26379"], redis_sentinel_master="farm")
    config = celery_config(settings)

    assert config["broker_url"] == "sentinel://s1:26379/0;sentinel://s2:26379/0"
    assert config["broker_transport"] == SENTINEL_TRANSPORT
    assert config["broker_transport_options"]["master_name"] == "farm"
    assert config["broker_transport_options"]["visibility_timeout"] > settings.max_session_s


def test_a_sentinel_password_reaches_the_broker_urls_and_the_sentinels() -> None:
    config = celery_config(Settings(redis_sentinels=["s1:26379"], redis_sentinel_password="pw"))

    assert config["broker_url"] == "sentinel://:pw@s1:26379/0"
    assert config["broker_transport_options"]["sentinel_kwargs"] == {"password": "pw"}


def test_celery_keeps_no_results_and_never_gives_up_on_the_broker() -> None:
    config = celery_config(Settings(redis_url="redis://r:6379/1"))

    assert config["task_ignore_result"] is True
    assert "result_backend" not in config
    assert config["broker_connection_retry"] is True
    assert config["broker_connection_max_retries"] is None
    assert config["worker_cancel_long_running_tasks_on_connection_loss"] is False


def test_heartbeat_calls_back_off_while_redis_fails_and_recover_at_once() -> None:
    backoff = Backoff(first_s=0.5, max_s=5.0)

    assert backoff.after(True, floor_s=0.5) == 0.5
    assert [backoff.after(False, floor_s=0.5) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.after(True, floor_s=0.5) == 0.5
    assert Backoff(first_s=10.0, max_s=5.0).after(False, floor_s=10.0) == 10.0  # never below the interval


def test_one_capped_exponential_backoff_serves_every_retry_loop() -> None:
    assert [capped_delay_s(n, first_s=0.05, max_s=1.0) for n in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
    backoff = Backoff(first_s=1.0, max_s=4.0)
    assert [backoff.next_s() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_s() == 1.0
    with pytest.raises(ValueError):
        capped_delay_s(-1, first_s=1.0, max_s=2.0)


@pytest.mark.parametrize(
    ("settings", "transport"),
    [
        (Settings(redis_url="redis://r:6379/1"), RedisTransport),
        (Settings(redis_sentinels=["s1:26379"], redis_sentinel_master="farm"), SentinelTransport),
    ],
)
def test_celery_connects_through_the_farms_transport(settings: Settings, transport: type) -> None:
    with create_app(settings).connection_for_write() as connection:  # lazy: nothing is dialled
        assert isinstance(connection.transport, transport)
        assert issubclass(connection.transport.Channel, (Channel, SentinelChannel))
