"""Every external name the farm uses: queues, task names, Redis keys, topics, LiveKit names.

Code builds keys only through this module, so that a grep here shows the whole footprint in Redis
and on the wire. Each Redis key documents its type and its TTL or its cleaner (what removes it); a
key with neither is durable on purpose (API keys, agents, accounts) and grows with what a user
creates, never with sessions or workers (``tests/integration/test_redis_footprint.py`` checks this).
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------- Celery queues and task names
QUEUE_ESSENCE: Final = "essence"
"""Celery queue of CPU (Essence) render sessions. In Redis: a LIST of that exact name (KEDA listName)."""
QUEUE_EXPRESSION: Final = "expression"
"""Celery queue of GPU (Expression) render sessions. In Redis: a LIST of that exact name."""
QUEUE_BUILD: Final = "build"
"""Celery queue of avatar pack builds (CPU, minutes of work, kept apart from real-time sessions)."""

RENDER_QUEUES: Final = (QUEUE_ESSENCE, QUEUE_EXPRESSION)

TASK_RUN_SESSION: Final = "farm.session.run"
"""Thin task: claim a session under a lease and run it. Body: contracts.RunSessionMessage."""
TASK_BUILD_AGENT: Final = "farm.agent.build"
"""Thin task: build an Essence pack from an uploaded portrait. Body: contracts.BuildAgentMessage."""
TASK_PREVIEW_FACE: Final = "farm.agent.preview"
"""Thin task (queue ``build``): find the face and framing of a photo before an agent is built, so API
pods never load a face model. Body: contracts.PreviewFaceMessage; result in ``preview_key``."""

# ---------------------------------------------------------------- Redis keys
PREFIX: Final = "farm"


def session_key(session_id: str) -> str:
    """STRING (JSON of domain.Session). No TTL while live; ``SESSION_RETENTION_S`` after it ends.
    Every live session reaches an end: its runner, the reaper (dead or wedged holder, max attempts)
    or the queue deadline (settings.queue_deadline_s)."""
    return f"{PREFIX}:session:{session_id}"


SESSION_RETENTION_S: Final = 7 * 24 * 3600


def session_lease_key(session_id: str) -> str:
    """STRING ``"<worker_id>|<token>"``. TTL = settings.lease_ttl_s, renewed by the holder."""
    return f"{PREFIX}:lease:{session_id}"


def session_fence_key(session_id: str) -> str:
    """STRING counter (INCR): the fencing token of the latest claim. Same retention as the session."""
    return f"{PREFIX}:fence:{session_id}"


def session_stop_key(session_id: str) -> str:
    """STRING ``"1"``: a stop was requested (DELETE /v1/sessions/{id}). TTL ``SESSION_RETENTION_S``."""
    return f"{PREFIX}:stop:{session_id}"


WARM_PENDING_KEY: Final = f"{PREFIX}:sessions:warm-pending"
"""ZSET session_id → updated_at: warm-routed QUEUED sessions not yet claimed (the stranded rescuer's
index; kept in step by the session store's writes, so its size is the sends of the last seconds,
not the live sessions). No TTL: every claim or terminal write removes the member."""

RESCUER_LOCK_KEY: Final = f"{PREFIX}:rescuer:lock"
"""STRING worker_id, PX ~1 s: one worker in the fleet runs the stranded-session rescue per interval."""

LIVE_SESSIONS_KEY: Final = f"{PREFIX}:sessions:live"
"""ZSET session_id → created_at: every session not yet ENDED/FAILED. Scanned by the reaper. No TTL;
cleaner: the terminal write of each session removes its member."""


QUEUED_SESSIONS_KEY: Final = f"{PREFIX}:sessions:queued"
"""ZSET session_id → when it (last) entered QUEUED: the reaper's index of waiting sessions (lost
broker messages are re-submitted, sessions past settings.queue_deadline_s fail with QUEUE_TIMEOUT).
No TTL: every write that moves a session out of QUEUED removes the member."""


def session_resubmitted_key(session_id: str, queued_at_ms: int) -> str:
    """STRING ``"1"``: the reaper re-submitted this QUEUED session's message (its broker message may be
    lost) once for the QUEUED episode that began at ``queued_at_ms``. SET NX; TTL
    settings.queue_deadline_s (the episode cannot outlive it)."""
    return f"{PREFIX}:resubmitted:{session_id}:{queued_at_ms}"


def tenant_sessions_key(tenant: str) -> str:
    """ZSET session_id → created_at: the sessions a tenant owns (listing). Cleaner: each create trims
    entries older than the longest a session record can live (``SESSION_RETENTION_S`` + max session
    + queue deadline) and refreshes the key's TTL to that span; listings drop ids whose record
    expired. A tenant that stops creating sessions loses the whole key with its last record."""
    return f"{PREFIX}:tenant:{tenant}:sessions"


def idempotency_key(tenant: str, scope: str) -> str:
    """STRING session_id: one session per (tenant, room, identity). TTL = max session duration."""
    return f"{PREFIX}:idem:{tenant}:{scope}"


def api_key_key(secret_hash: str) -> str:
    """HASH {key_id, tenant, name, created_at, revoked}: an API key, found by the SHA-256 of its secret."""
    return f"{PREFIX}:apikey:{secret_hash}"


API_KEYS_INDEX_KEY: Final = f"{PREFIX}:apikeys"
"""HASH key_id → secret_hash: every key, for ``farm keys list|revoke``. No TTL (durable)."""

RUNTIME_KEY_SIGNING_KEY: Final = f"{PREFIX}:runtime-key-signing"
"""STRING (hex, 256 bits): the HMAC key that signs runtime keys; created once (SET NX), no TTL.
Deleting it invalidates every runtime key minted so far."""


def agent_key(agent_id: str) -> str:
    """STRING (JSON of domain.Agent). No TTL (durable; deleted with the agent)."""
    return f"{PREFIX}:agent:{agent_id}"


def tenant_agents_key(tenant: str) -> str:
    """SET of agent ids a tenant owns. No TTL (durable; the member is removed with the agent)."""
    return f"{PREFIX}:tenant:{tenant}:agents"


AGENT_USAGE_KEY: Final = f"{PREFIX}:agents:usage"
"""ZSET agent_id → sessions started: the hot set a worker preloads. No TTL (one member per agent,
removed with the agent)."""

AGENT_LAST_USED_KEY: Final = f"{PREFIX}:agents:last-used"
"""ZSET agent_id → epoch seconds of its latest session (the studio's "last used"). No TTL (one member
per agent, removed with the agent)."""


def preview_key(preview_id: str) -> str:
    """STRING (JSON contracts.FacePreview): a photo's face/framing preview, pending until a build worker
    writes its result. TTL ``PREVIEW_TTL_S``."""
    return f"{PREFIX}:preview:{preview_id}"


PREVIEW_TTL_S: Final = 15 * 60

RECENT_SESSIONS_KEY: Final = f"{PREFIX}:sessions:recent"
"""ZSET session_id → ended_at: the farm's latest finished sessions, every tenant (the operators' TTFF
and fps histograms). Trimmed to ``RECENT_SESSIONS_MAX`` members on every write; no TTL."""
RECENT_SESSIONS_MAX: Final = 500


def worker_key(worker_id: str) -> str:
    """STRING (JSON of contracts.WorkerInfo). TTL = settings.worker_ttl_s, refreshed by heartbeat."""
    return f"{PREFIX}:worker:{worker_id}"


def worker_alive_key(worker_id: str) -> str:
    """STRING ``"1"``: the worker process is alive. TTL = settings.liveness_ttl_s, beaten every
    settings.liveness_renew_s by the process's liveness thread; deleted on a clean stop. A live
    session whose lease holder has no such key is re-queued by the reaper (fast resume)."""
    return f"{PREFIX}:alive:{worker_id}"


def worker_leases_key(worker_id: str) -> str:
    """SET of the session ids whose lease ``worker_id`` took (added by the claim, removed by its
    release or a revoke): the reaper reads it only for holders whose liveness key is gone, so its
    fast pass costs O(workers), not O(live sessions). No TTL. Cleaner: the reaper deletes it (and
    the ``LEASE_HOLDERS_KEY`` member) once the holder is dead and its leases are dealt with."""
    return f"{PREFIX}:worker:{worker_id}:leases"


LEASE_HOLDERS_KEY: Final = f"{PREFIX}:lease-holders"
"""SET of worker ids that claimed a lease and are not yet forgotten by the reaper (see
``worker_leases_key``). No TTL; cleaner: the reaper removes dead holders."""

WORKERS_INDEX_KEY: Final = f"{PREFIX}:workers"
"""ZSET worker_id → last heartbeat (unix s). Entries whose worker key expired are pruned on read."""

REAPER_LOCK_KEY: Final = f"{PREFIX}:reaper:lock"
"""STRING worker_id, SET NX with TTL = reaper interval: one reaper pass at a time across the fleet."""

REAPER_SCAN_LOCK_KEY: Final = f"{PREFIX}:reaper:scan-lock"
"""STRING worker_id, SET NX with TTL = settings.orphan_scan_s: one scan of every live session's lease
per interval across the fleet."""

REDIS_RUN_ID_KEY: Final = f"{PREFIX}:redis:run-id"
"""STRING: the ``run_id`` of the Redis server the reaper last saw (GETSET each pass). No TTL: one key
per farm, durable on purpose. A value other than the server's own means Redis restarted or failed
over since: writes in flight then (broker messages among them) may be lost, so the reaper
re-submits every QUEUED session at once."""

# ---------------------------------------------------------------- pub/sub topics
DYNAMICS_TOPIC: Final = f"{PREFIX}:dynamics"
"""Redis pub/sub channel of contracts.DynamicsMessage: gesture triggers fanned out to every worker."""

# ---------------------------------------------------------------- LiveKit names
LK_ATTR_PUBLISH_ON_BEHALF: Final = "lk.publish_on_behalf"
LK_TOPIC_AUDIO_STREAM: Final = "lk.audio_stream"
LK_TOPIC_TRANSCRIPTION: Final = "lk.transcription"
LK_TOPIC_AGENT_SESSION: Final = "lk.agent.session"
LK_RPC_CLEAR_BUFFER: Final = "lk.clear_buffer"
LK_RPC_PLAYBACK_STARTED: Final = "lk.playback_started"
LK_RPC_PLAYBACK_FINISHED: Final = "lk.playback_finished"
RPC_TRIGGER_DYNAMICS: Final = "trigger_dynamics"
DEFAULT_AVATAR_IDENTITY: Final = "bithuman-avatar-agent"
TRACK_AUDIO_NAME: Final = "avatar_audio"
TRACK_VIDEO_NAME: Final = "avatar_video"

# ---------------------------------------------------------------- HTTP
HEADER_API_SECRET: Final = "api-secret"


def tenant_live_key(tenant: str) -> str:
    """SET of a tenant's session ids not yet ENDED/FAILED (concurrency limit). No TTL; cleaner: the
    terminal write of each session removes its member (an empty SET is no key)."""
    return f"{PREFIX}:tenant:{tenant}:live"


# ---------------------------------------------------------------- dynamics (gestures)
def dynamics_ack_key(message_id: str) -> str:
    """LIST of JSON ``farm.dynamics.base.DynamicsAck``: one entry per worker process that received the
    DynamicsMessage ``message_id``; the API pops them for a best-effort accepted-sessions count.
    TTL ``DYNAMICS_ACK_TTL_S`` (set by each pushing worker)."""
    return f"{PREFIX}:dynamics:ack:{message_id}"


DYNAMICS_ACK_TTL_S: Final = 10


def dynamics_rules_key(agent_id: str) -> str:
    """STRING (JSON of ``farm.dynamics.rules.DynamicsConfig``): an agent's keyword rules and gesture
    cooldowns. No TTL; deleted with the agent."""
    return f"{PREFIX}:dynamics:rules:{agent_id}"


# ---------------------------------------------------------------- warm routing
def worker_queue(worker_id: str) -> str:
    """Celery queue private to one render worker process (warm routing): sessions for an avatar it
    already holds. In Redis: a LIST of that name, declared with its own direct exchange and routing
    key; deleted when the worker deregisters, or by the reaper pass once a dead worker's registry
    entry expired (``WORKER_QUEUES_KEY``). Not a KEDA listName: KEDA scales on the shared queues."""
    return f"render.w.{worker_id}"


WORKER_QUEUES_KEY: Final = f"{PREFIX}:workers:broker"
"""ZSET worker_id → boot time: every worker process that may hold broker state (its private queue,
kombu's ``_kombu.binding.<queue>`` SET, its ``_kombu.binding.celery.pidbox`` member). No TTL.
Cleaner: the reaper pass (``tasks.janitor``) removes that state, its ``WORKERS_INDEX_KEY`` member
and this member for every worker without a registry entry (``worker_key`` expired: it died); a
clean stop removes its own."""


def session_rerouted_key(session_id: str) -> str:
    """STRING worker_id: a warm-routed QUEUED session was re-submitted to its shared queue (its target
    worker is gone or kept it waiting). SET NX so it happens once. TTL ``SESSION_RETENTION_S``."""
    return f"{PREFIX}:rerouted:{session_id}"


# ---------------------------------------------------------------- text in (generate, speak)
def idempotent_response_key(tenant: str, scope: str, key_digest: str) -> str:
    """STRING (JSON response body) of the first POST with this ``Idempotency-Key`` (``scope``: the
    route, e.g. ``video.generate``; the key is stored as a SHA-256 prefix). SET NX, TTL
    ``IDEMPOTENT_RESPONSE_TTL_S``."""
    return f"{PREFIX}:idemresp:{tenant}:{scope}:{key_digest}"


IDEMPOTENT_RESPONSE_TTL_S: Final = 24 * 3600

STOP_TOPIC: Final = f"{PREFIX}:stop"
"""Redis pub/sub channel of contracts.StopMessage: a client's stop request, fanned out to every worker
so the holder stops within a frame instead of at its next lease renewal (the flag stays the truth)."""

SPEAK_TOPIC: Final = f"{PREFIX}:speak"
"""Redis pub/sub channel of contracts.SpeakMessage: ``POST /v1/agent/{code}/speak`` speech for a live
room session, fanned out to every worker; the worker holding that session plays it."""


# ---------------------------------------------------------------- plans, credits, metering
def account_key(tenant: str) -> str:
    """HASH {plan, topup}: a tenant's plan assignment and its top-up credits (never expire). No TTL."""
    return f"{PREFIX}:account:{tenant}"


ACCOUNTS_INDEX_KEY: Final = f"{PREFIX}:accounts"
"""SET of tenants with an account record (``farm tenants list``). No TTL."""


def usage_key(tenant: str, period: str) -> str:
    """HASH of one tenant's use in one billing period (``YYYY-MM``, UTC): ``used`` (plan credits
    spent), ``credits:<kind>`` and ``units:<kind>`` (kind: essence, expression, agent_build, …).
    A new month is a new key, which is the monthly reset. TTL ``USAGE_RETENTION_S``."""
    return f"{PREFIX}:usage:{tenant}:{period}"


USAGE_RETENTION_S: Final = 400 * 24 * 3600


def daily_usage_key(tenant: str, day: str) -> str:
    """HASH of one tenant's use on one UTC day (``YYYY-MM-DD``): ``credits:<kind>`` and ``units:<kind>``
    (the studio's per-day plot). Written in the same atomic step as the period's counters. TTL
    ``USAGE_RETENTION_S``."""
    return f"{PREFIX}:usage-day:{tenant}:{day}"


def meter_key(scope: str) -> str:
    """HASH item → credits: what has been charged for one metered thing, so each item is charged
    exactly once (``scope`` ``session:<id>`` with items = minute indexes, or ``once:<tenant>`` with
    items like ``agent_build:<id>``). TTL ``SESSION_RETENTION_S`` for sessions, none for one-time."""
    return f"{PREFIX}:meter:{scope}"


def rate_bucket_key(subject: str, tier: str) -> str:
    """HASH {tokens, at}: a token bucket (``subject``: ``tenant:<t>`` or ``ip:<addr>``; ``tier``:
    generate | write | read | auth_failed). TTL 120 s (refreshed on use; a full bucket needs no key)."""
    return f"{PREFIX}:ratelimit:{subject}:{tier}"
