"""The embedded Redis behind `farm up`: loopback only, append-only, data kept across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from farm.infra.embedded_redis import EmbeddedRedis, reachable, running_url
from farm.infra.procs import resolve_redis_url
from farm.kernel.settings import Settings

pytestmark = pytest.mark.integration


def test_data_written_before_a_stop_is_there_after_a_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        assert server.url is not None and server.url.startswith("redis://127.0.0.1:")
        client = redis.Redis.from_url(server.url)
        client.set("farm:probe", "kept")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.close()
    assert running_url(tmp_path) is None
    with EmbeddedRedis(tmp_path) as again:
        assert again.url is not None
        assert redis.Redis.from_url(again.url).get("farm:probe") == b"kept"


def test_other_commands_find_a_running_embedded_server_by_data_dir(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": tmp_path, "redis_url": None})
    assert resolve_redis_url(settings) is None
    with EmbeddedRedis(tmp_path) as server:
        assert resolve_redis_url(settings) == server.url
        explicit = settings.model_copy(update={"redis_url": "redis://elsewhere:6379/0"})
        assert resolve_redis_url(explicit) == "redis://elsewhere:6379/0"
    assert server.url is not None and not reachable(server.url)
