"""A wired in-memory API for unit tests: stores, a recording queue and a TestClient.

Not a conftest: test modules build a harness explicitly (``ApiHarness.build(tmp_path)``), so every
test reads as what it sets up.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from farm.api.app import create_app
from farm.infra.blobs import BlobStore
from farm.kernel.contracts import BuildAgentMessage, RunSessionMessage
from farm.kernel.domain import Agent, AgentStatus
from farm.kernel.errors import BackendUnavailable
from farm.kernel.settings import Settings
from farm.sessions.agents import MemoryAgentStore, new_agent_id
from farm.sessions.memory import MemorySessionStore
from farm.sessions.registry import MemoryWorkerRegistry
from farm.tenancy.api_keys import MemoryKeyStore
from tests.support.helpers import wav_bytes


@dataclass
class RecordingQueue:
    """A SessionQueue / BuildQueue that records what was submitted, or fails when told to."""

    messages: list[RunSessionMessage | BuildAgentMessage] = field(default_factory=list)
    fail: bool = False

    def submit(self, message: RunSessionMessage | BuildAgentMessage) -> None:
        if self.fail:
            raise BackendUnavailable("broker down (test)")
        self.messages.append(message)


def png_bytes(width: int = 64, height: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 150, 120)).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class ApiHarness:
    settings: Settings
    store: MemorySessionStore
    queue: RecordingQueue
    builds: RecordingQueue
    keys: MemoryKeyStore
    agents: MemoryAgentStore
    registry: MemoryWorkerRegistry
    blobs: BlobStore
    client: TestClient
    secret_a: str
    secret_b: str
    ping_ok: list[bool]

    @classmethod
    def build(cls, tmp_path: Path, **settings: object) -> ApiHarness:
        config = Settings.model_validate(
            {"data_dir": tmp_path / "var", "output_dir": tmp_path / "out", **settings}
        )
        store, keys, agents = MemorySessionStore(), MemoryKeyStore(), MemoryAgentStore()
        queue, builds, registry = RecordingQueue(), RecordingQueue(), MemoryWorkerRegistry()
        blobs = BlobStore(config.blob_dir)
        ping_ok = [True]
        app = create_app(
            config,
            store=store,
            queue=queue,
            keys=keys,
            agents=agents,
            registry=registry,
            builds=builds,
            blobs=blobs,
            ping=lambda: ping_ok[0],
        )
        _, secret_a = keys.create("tenant-a", "a")
        _, secret_b = keys.create("tenant-b", "b")
        client = TestClient(app, raise_server_exceptions=False)
        return cls(
            config, store, queue, builds, keys, agents, registry, blobs, client, secret_a, secret_b, ping_ok
        )

    def headers(self, secret: str | None = None) -> dict[str, str]:
        return {"api-secret": secret or self.secret_a}

    def agent(self, tenant: str = "tenant-a", status: AgentStatus = AgentStatus.READY) -> Agent:
        ref = "sha256/" + "0" * 64 + ".png"  # a ref only: no blob written, so stored_nothing() holds
        return self.agents.create(Agent(id=new_agent_id(), tenant=tenant, status=status, image_ref=ref))

    def session_body(self, **overrides: object) -> dict[str, object]:
        body: dict[str, object] = {"audio": b64(wav_bytes()), "model": "essence"}
        body.update(overrides)
        return body

    def stored_nothing(self) -> bool:
        """No session stored for either tenant, nothing enqueued, no blob written."""
        sessions = self.store.list_for_tenant("tenant-a") + self.store.list_for_tenant("tenant-b")
        blob_files = (
            [p for p in self.blobs.root.rglob("*") if p.is_file()] if self.blobs.root.exists() else []
        )
        return not sessions and not self.queue.messages and not blob_files
