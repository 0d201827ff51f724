"""One typed, frozen settings object. The environment is read once, in entrypoints (``Settings.from_env``).

Every field maps to an environment variable with the ``FARM_`` prefix, e.g. ``FARM_REDIS_URL``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SENTINEL_SCHEME = "redis+sentinel"

DEFAULT_MODELS: dict[str, str] = {
    "essence": "essence",
    "essence-2": "essence",
    "expression": "expression",
    "expression-2": "expression-2",
}
"""Public model names (what livekit-plugins-bithuman sends) → engines (``farm.kernel.models``)."""


def sentinel_url(sentinels: Sequence[str], master: str, *, password: str | None = None, db: int = 0) -> str:
    """The ``redis+sentinel://`` URL of ``sentinels`` (``host:port`` each) watching ``master``."""
    if not sentinels:
        raise ValueError("at least one sentinel (host:port) is needed")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"{SENTINEL_SCHEME}://{auth}{','.join(sentinels)}/{db}?master={quote(master, safe='')}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FARM_", frozen=True, extra="ignore")

    # --- infrastructure
    redis_url: str | None = Field(
        None, description="Redis URL (broker, store, pub/sub). None: `farm up` starts an embedded server."
    )
    redis_sentinels: Annotated[list[str], NoDecode] = Field(  # NoDecode: the env value may be a CSV
        [],
        description="Redis Sentinel addresses (`host:port`, JSON list or comma-separated); when set, "
        "the farm asks them for the primary of `redis_sentinel_master` and follows failovers.",
    )
    redis_sentinel_master: str = Field("mymaster", description="Name of the master the sentinels monitor.")
    redis_sentinel_password: str | None = Field(
        None, description="Password of the sentinels and the Redis servers they watch (None: no AUTH)."
    )
    data_dir: Path = Field(Path("var"), description="Blobs (uploads, packs), embedded Redis data, outputs.")
    output_dir: Path = Field(Path("out"), description="Where MP4 sinks write session recordings.")

    # --- API
    api_host: str = Field("127.0.0.1", description="Bind address of the HTTP API.")
    api_port: int = Field(8000, description="Port of the HTTP API.")
    public_url: str | None = Field(
        None, description="Base URL used in status links; default http://host:port."
    )
    admin_tenants: Annotated[list[str], NoDecode] = Field(  # NoDecode: the env value may be a CSV
        [],
        description="Tenants whose keys see the operator views (`GET /v1/operators/overview`, the "
        "studio's Operators page); JSON list or comma-separated. Empty: nobody.",
    )
    max_image_mb: float = Field(10.0, description="Largest accepted image upload.")
    max_image_pixels: int = Field(25_000_000, description="Decompression-bomb guard: max width×height.")
    max_audio_mb: float = Field(50.0, description="Largest accepted audio upload.")
    max_audio_s: float = Field(
        600.0, description="Longest accepted audio clip; also the most speech a session queues unrendered."
    )
    max_audio_sample_rate_hz: int = Field(
        192_000, ge=8_000, description="Highest accepted audio sample rate (checked before decoding)."
    )
    api_decode_concurrency: int = Field(
        2, ge=1, description="Audio uploads the API decodes at once (off its event loop) to measure them."
    )
    api_max_header_bytes: int = Field(
        65_536, ge=4_096, description="Largest request line + headers the API reads (else 431)."
    )
    api_max_headers: int = Field(100, ge=16, description="Most headers a request may carry (else 431).")
    api_header_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a client has to send its request line and headers (else 408)."
    )
    api_redis_timeout_s: float = Field(
        2.0, gt=0, description="How long one Redis call of the API may wait (else 503 BACKEND_UNAVAILABLE)."
    )
    default_concurrency_limit: int = Field(
        50, description="Live sessions per tenant unless the key says otherwise."
    )

    # --- sessions and leases
    lease_ttl_s: float = Field(
        6.0, description="Lease TTL; a holder that misses renewals for this long loses it."
    )
    lease_renew_s: float = Field(2.0, description="How often a holder renews its lease.")
    reaper_interval_s: float = Field(
        0.5, description="How often (fleet-wide) the reaper looks for orphaned and stuck sessions."
    )
    orphan_scan_s: float = Field(
        3.0, description="How often (fleet-wide) the reaper scans every live session for an expired lease."
    )
    liveness_ttl_s: float = Field(
        1.5, description="TTL of a worker's liveness key; a dead worker's sessions resume after about this."
    )
    liveness_renew_s: float = Field(
        0.4, description="How often a worker's liveness thread renews its key (at most half the TTL)."
    )
    queue_resubmit_s: float = Field(
        60.0,
        description=(
            "A session QUEUED this long gets its message re-sent once (lost message; 0: off);"
            " after a Redis restart or failover, every QUEUED one at once."
        ),
    )
    queue_deadline_s: float = Field(
        300.0, description="A session QUEUED this long fails with QUEUE_TIMEOUT, freeing its slot (0: off)."
    )
    max_attempts: int = Field(3, description="Claims per session before a lost lease fails it for good.")
    max_session_s: float = Field(3600.0, description="Hard cap on a session's duration.")
    join_timeout_s: float = Field(
        20.0, description="A LiveKit room join slower than this fails the session (ROOM_JOIN_FAILED)."
    )
    start_timeout_s: float = Field(
        120.0, description="A session still starting (engine, avatar, join) this long gives its lease up."
    )
    stall_timeout_s: float = Field(
        10.0, description="A streaming session with no progress this long gives its lease up (re-queued)."
    )
    idle_timeout_s: float = Field(300.0, description="A room session with no agent audio for this long ends.")

    # --- workers
    # 0.65: on the 2-core Xeon (2026-12-06, BENCHMARKS "Density") the voice at the viewer held (speech
    # within 5 % of real time, every interrupt honoured) up to ~60 % of the worker's core and stretched
    # from ~75 %; 0.65 admits 5 sessions at 256², 4 at 384² and 512² there
    worker_cpu_target: float = Field(
        0.65,
        gt=0.0,
        le=1.0,
        description="Admission by measured cost: a worker takes another session only while one more of "
        "its measured average cost fits under this share of the cores it may use (affinity, cgroup quota).",
    )
    worker_late_share: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="A worker whose live sessions skipped more than this share of their pictures in the "
        "last heartbeat window (to keep their voices on the audio clock) takes new sessions only "
        "up to one fewer than it fell behind at (behind at N live sessions: N - 1 at most).",
    )
    worker_capacity: int = Field(
        4, description="Concurrent sessions per worker process (Celery concurrency)."
    )
    worker_ttl_s: float = Field(15.0, description="Registry entry TTL; refreshed by the worker heartbeat.")
    heartbeat_s: float = Field(5.0, description="Worker registry heartbeat interval.")
    prewarm: bool = Field(
        True, description="Load models and hot avatars before consuming (off = cold start)."
    )
    prewarm_timeout_s: float = Field(
        120.0, description="Bound on the prewarm phase; past it the worker is ERROR."
    )
    hot_avatars: int = Field(4, description="How many of the most used agents a worker preloads.")
    avatar_cache_mb: float = Field(512.0, description="LRU bound of the per-process avatar cache.")
    expression_max_batch: int = Field(16, description="Largest batch the Expression batcher forms.")
    expression_size: int = Field(512, description="Expression output frame size (square).")
    models: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_MODELS),
        description="Public model names → engines (JSON object). Engines: essence (CPU), expression "
        "(the analytic GPU engine), expression-2 (the learned GPU engine, served only with "
        "FARM_EXPRESSION_WEIGHTS).",
    )
    expression_weights: Path | None = Field(
        None,
        description="Directory of the learned Expression graphs the operator brings (`expression-2`); "
        "validated at prewarm. None: the learned model is not served.",
    )
    warm_route_max_wait_s: float = Field(
        5.0, description="A warm-routed session unclaimed this long is re-sent to the shared queue."
    )
    drain_grace_s: float = Field(
        30.0, description="On SIGTERM, how long live sessions may run before hand-back."
    )
    pod_capacity: dict[str, int] = Field(
        {"essence": 4, "expression": 8, "build": 1},
        description="Sessions one worker pod of each pool serves: the KEDA target per pod (JSON).",
    )
    warm_spares: dict[str, int] = Field(
        {"essence": 1, "expression": 1},
        description="Idle pods kept per pool on top of queued + live demand (JSON; GPU cold start: minutes).",
    )
    health_port: int = Field(
        8081, description="Port of a worker's /startupz, /readyz, /livez, /drainz endpoint (0: off)."
    )
    progress_stale_s: float = Field(
        60.0, description="Liveness fails when the worker runtime made no progress for this long."
    )
    log_format: str = Field("text", description="Log lines as `text` or `json` (one object per line).")

    # --- rendering and output
    video_codec: Literal["h264", "vp8"] = Field(
        "h264",
        description="Codec of the avatar's video track in rooms (one layer, 2 Mbps). H.264 decodes in "
        "every browser the farm was tested with; VP8 is the WebRTC baseline.",
    )
    video_encoder: Literal["sdk", "farm"] = Field(
        "sdk",
        description="Who encodes the avatar's video in rooms: `sdk` (the LiveKit SDK's own encoder) or "
        "`farm` (libx264 or libvpx in the worker, handed to LiveKit pre-encoded; a viewer's keyframe "
        "request is answered by the next picture). `farm` cost ~10 % more of a core at 3 sessions on a "
        "2 vCPU EPYC and did not start the browser's picture sooner (BENCHMARKS.md, 2026-12-08). Odd "
        "frame sides always use `sdk`.",
    )
    fps: int = Field(25, description="Frames per second of every session (40 ms ticks).")
    essence_size: int = Field(
        512,
        description="Essence output frame size for built packs (longer side); an agent's size overrides it.",
    )

    # --- LiveKit (native sessions the farm mints tokens for)
    livekit_url: str | None = Field(None, description="LiveKit server URL for farm-minted tokens.")
    livekit_url_allowlist: list[str] = Field(
        [],
        description="LiveKit servers a room-start request's `livekit_url` may name (URLs or bare hosts, JSON "
        "list); empty: `livekit_url` only.",
    )
    livekit_api_key: str | None = Field(None, description="LiveKit API key for farm-minted tokens.")
    livekit_api_secret: str | None = Field(None, description="LiveKit API secret for farm-minted tokens.")

    # --- text in: speech synthesis and answering
    tts_url: str | None = Field(
        None, description="OpenAI-compatible TTS base URL (`POST {url}/audio/speech`); None: local espeak-ng."
    )
    tts_api_key: str | None = Field(None, description="Bearer key for `tts_url` (None: no header).")
    tts_model: str = Field("tts-1", description="Model name sent to the OpenAI-compatible TTS.")
    tts_voice: str | None = Field(
        None, description="Default voice when the agent has none (espeak: `en`; OpenAI-compatible: `alloy`)."
    )
    chat_url: str | None = Field(
        None,
        description="OpenAI-compatible chat base URL for replies; None: the avatar speaks the text as given.",
    )
    chat_api_key: str | None = Field(None, description="Bearer key for `chat_url` (None: no header).")
    chat_model: str = Field("gpt-4o-mini", description="Model name sent to the OpenAI-compatible chat.")
    max_text_chars: int = Field(5000, description="Longest text accepted by generate, speak and TTS.")
    max_video_s: float = Field(
        120.0, description="Longest output of `POST /v1/video/generate` (speech length)."
    )

    # --- Flower
    flower_port: int = Field(5555, description="Port Flower listens on under `farm up`.")

    # --- supervision
    worker_memory_limit_mb: float = Field(
        8192.0, description="A worker process above this RSS turns ERROR, hands its sessions back (0: off)."
    )

    @field_validator("redis_sentinels", "admin_tenants", mode="before")
    @classmethod
    def _split_sentinels(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="before")
    @classmethod
    def _sentinel_url(cls, data: Any) -> Any:
        """With sentinels and no URL, ``redis_url`` becomes their ``redis+sentinel://`` URL, so every
        client the farm builds from ``redis_url`` (``farm.infra.redis_conn.connect``, Celery) follows the
        primary through failovers."""
        if not isinstance(data, dict) or data.get("redis_url") or not data.get("redis_sentinels"):
            return data
        url = sentinel_url(
            cls._split_sentinels(data["redis_sentinels"]),
            str(data.get("redis_sentinel_master") or "mymaster"),
            password=data.get("redis_sentinel_password"),
        )
        return {**data, "redis_url": url}

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        """Cross-field rules whose violation would make leases, heartbeats or timeouts misfire."""
        problems = []
        if self.lease_renew_s * 2 > self.lease_ttl_s:
            problems.append("lease_renew_s must be at most half of lease_ttl_s (two renewals per TTL)")
        if self.heartbeat_s * 2 > self.worker_ttl_s:
            problems.append("heartbeat_s must be at most half of worker_ttl_s (two heartbeats per TTL)")
        if self.liveness_renew_s * 2 > self.liveness_ttl_s:
            problems.append("liveness_renew_s must be at most half of liveness_ttl_s (two beats per TTL)")
        if 0 < self.queue_deadline_s <= self.queue_resubmit_s:
            problems.append("queue_resubmit_s must be below queue_deadline_s (re-submit before failing)")
        if self.stall_timeout_s <= self.lease_renew_s:
            problems.append("stall_timeout_s must exceed lease_renew_s (progress is checked per renewal)")
        if self.join_timeout_s > self.start_timeout_s:
            problems.append("join_timeout_s must not exceed start_timeout_s (the join is part of the start)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read the environment (entrypoints only) and apply explicit overrides."""
        return cls(**overrides)  # type: ignore[arg-type]

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def pack_dir(self) -> Path:
        return self.data_dir / "packs"
