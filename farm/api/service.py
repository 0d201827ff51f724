"""The API's core: create, read and stop sessions; register agents. No HTTP in here.

Order of a session request, so that bad input leaves nothing behind: validate the avatar reference,
measure the audio (a streaming decode, never a whole-clip array; the routes run it off the event
loop with ``measure_audio``, at most ``api_decode_concurrency`` at once), validate the image, check
the tenant's concurrency limit; only then store the blobs, create the QUEUED session and submit it.
If the submit fails the session is marked FAILED (nothing half-created stays live) and the caller
gets BackendUnavailable.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.to_thread

from farm.infra import media
from farm.infra.blobs import BlobStore
from farm.kernel.characters import AvatarMode, BuildOptions
from farm.kernel.contracts import BuildAgentMessage, PreviewFaceMessage, RunSessionMessage
from farm.kernel.domain import TERMINAL_STATES, Agent, AgentStatus, ModelKind, Session, SessionState
from farm.kernel.errors import (
    AgentNotReady,
    BackendUnavailable,
    ConcurrencyLimit,
    Conflict,
    FarmError,
    IllegalTransition,
    InsufficientBalance,
    ModeNotSupported,
    PayloadTooLarge,
    ValidationError,
)
from farm.kernel.settings import Settings
from farm.sessions.agents import is_agent_id, new_agent_id
from farm.sessions.base import AgentStore, SessionQueue, SessionStore
from farm.sessions.warm import WarmRouter
from farm.tenancy.base import ApiKey
from farm.tenancy.metering import Metering
from farm.tenancy.plans import AGENT_BUILD_CREDITS, CREDITS_PER_MINUTE

from .schemas import SessionRequest

log = logging.getLogger(__name__)

STOPPED_BY_CLIENT = "stopped by client"
THUMBNAIL_PX = 160
THUMBNAILS_KEPT = 2048  # ~5 kB each: ~10 MB of an API process at most


class BuildQueue(Protocol):
    """Where agent builds and face previews go (Celery queue ``build`` in production)."""

    def submit(self, message: BuildAgentMessage | PreviewFaceMessage) -> None: ...


def _check_size(data: bytes, limit_mb: float, what: str) -> None:
    if len(data) > limit_mb * 1024 * 1024:
        raise PayloadTooLarge(f"the {what} is larger than the {limit_mb:g} MB limit")


def _refuse_unsupported_mode(model: ModelKind, mode: AvatarMode) -> None:
    if model is ModelKind.EXPRESSION and mode is AvatarMode.ANIMAL:
        raise ModeNotSupported(
            "the expression model animates human faces only (face and shoulders, no animal mode); "
            "use model 'essence' for animal mode"
        )


def _image_suffix(data: bytes) -> str:
    return ".png" if data.startswith(b"\x89PNG") else ".jpg" if data.startswith(b"\xff\xd8") else ".img"


@dataclass
class SessionService:
    """Session use-cases for one API process."""

    settings: Settings
    store: SessionStore
    queue: SessionQueue
    agents: AgentStore
    blobs: BlobStore
    router: WarmRouter | None = None  # warm routing; None: always the shared queue
    metering: Metering | None = None  # plans and credits; None: unmetered
    _decode_slots: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)

    def concurrency_limit(self, key: ApiKey) -> int:
        """The key's own limit, else the tenant's plan's, else the settings default."""
        plan_limit = self.metering.plan_of(key.tenant).concurrent_sessions if self.metering else None
        return key.concurrency_limit or plan_limit or self.settings.default_concurrency_limit

    def require_minute(self, key: ApiKey, model: ModelKind) -> None:
        """INSUFFICIENT_BALANCE when the tenant cannot pay a first minute of ``model``."""
        if self.metering is not None:
            self.metering.require_credits(key.tenant, CREDITS_PER_MINUTE[model], f"a {model.value} session")

    def create(self, key: ApiKey, request: SessionRequest, *, audio_s: float | None = None) -> Session:
        """Validate, store QUEUED, submit. Never waits for rendering.

        ``audio_s``: the clip's length from ``measure_audio`` (an async caller measures it first, off its
        event loop); None measures it here, on the calling thread.
        """
        agent = self._resolve_agent(key.tenant, request)
        audio_s = self._validate_media(request, audio_s)
        self._require_video(key, request.model, audio_s)
        limit = self.concurrency_limit(key)
        if self.store.count_live(key.tenant) >= limit:
            raise ConcurrencyLimit(f"the tenant already has {limit} live sessions (its limit)")
        image_ref = self._image_ref(request, agent)
        session = Session(
            id=uuid.uuid4().hex,
            tenant=key.tenant,
            model=request.model,
            engine=request.engine,
            model_name=request.model_name,
            avatar_id=request.avatar_id,
            image_ref=image_ref,
            audio_ref=self.blobs.put(request.audio, request.audio_suffix),
            routed_to=self._route(request, agent),
        )
        session, _ = self.store.create(session, max_live=limit)  # the check above, made atomic
        self._prepay(session, audio_s)
        self.enqueue(session)
        return session

    def _require_video(self, key: ApiKey, model: ModelKind, audio_s: float) -> None:
        """INSUFFICIENT_BALANCE unless the tenant can pay the clip's started minutes."""
        if self.metering is not None:
            minutes = max(1, math.ceil(audio_s / 60.0))
            cost = minutes * CREDITS_PER_MINUTE[model]
            self.metering.require_credits(key.tenant, cost, f"a {minutes}-minute {model.value} render")

    def _prepay(self, session: Session, audio_s: float) -> None:
        """Charge a file render's minutes before it is queued (a worker's per-minute hook then finds
        them paid). A balance spent meanwhile by a concurrent request ends the session unqueued."""
        if self.metering is None:
            return
        try:
            self.metering.prepay_video(session, audio_s)
        except InsufficientBalance:
            self.stop_queued(session.id, reason="out of credits")
            raise

    def get(self, key: ApiKey, session_id: str) -> Session:
        return self.store.get_for_tenant(key.tenant, session_id)

    def list(self, key: ApiKey, *, limit: int, offset: int) -> list[Session]:
        return self.store.list_for_tenant(key.tenant, limit=limit, offset=offset)

    def stop_queued(self, session_id: str, *, reason: str) -> None:
        """End a session that is still QUEUED (a claimed one sees its stop flag at the next tick)."""
        with contextlib.suppress(IllegalTransition):
            self.store.transition(session_id, SessionState.ENDED, reason=reason)

    def stop(self, key: ApiKey, session_id: str) -> Session:
        """Request a stop. QUEUED ends at once; a running session ends at the worker's next tick."""
        session = self.store.get_for_tenant(key.tenant, session_id)
        if session.state in TERMINAL_STATES:
            raise Conflict(f"session {session_id} already {session.state.value}")
        self.store.request_stop(session_id)
        if session.state is SessionState.QUEUED:
            try:
                return self.store.transition(session_id, SessionState.ENDED, reason=STOPPED_BY_CLIENT)
            except IllegalTransition:
                pass  # a worker claimed it meanwhile; it sees the stop flag
        return self.store.get(session_id)

    # ------------------------------------------------------------ steps
    def _resolve_agent(self, tenant: str, request: SessionRequest) -> Agent | None:
        if (request.avatar_id is None) == (request.avatar_image is None):
            raise ValidationError("give exactly one of avatar_id and avatar_image")
        if request.avatar_id is None:
            return None
        if not is_agent_id(request.avatar_id):
            raise ValidationError("avatar_id must be an agent code like A78WKV4515 (^[A-Z][A-Z0-9]{9}$)")
        agent = self.agents.get_for_tenant(tenant, request.avatar_id)
        _refuse_unsupported_mode(request.model, agent.build.mode)
        if agent.status is not AgentStatus.READY:
            raise AgentNotReady(f"agent {agent.id} is {agent.status.value}, not ready")
        return agent

    async def measure_audio(self, audio: bytes) -> float:
        """The clip's length in seconds, decoded as a stream on a worker thread: at most
        ``api_decode_concurrency`` uploads at once per process (the rest wait their turn without holding
        a thread), so the event loop keeps answering while large uploads are measured."""
        _check_size(audio, self.settings.max_audio_mb, "audio upload")
        if self._decode_slots is None:
            self._decode_slots = anyio.CapacityLimiter(self.settings.api_decode_concurrency)
        return await anyio.to_thread.run_sync(self.audio_seconds, audio, limiter=self._decode_slots)

    def audio_seconds(self, audio: bytes) -> float:
        """The clip's length in seconds (blocking; limits from the settings, checked before decoding)."""
        limits = media.AudioLimits(
            max_s=self.settings.max_audio_s,
            max_mb=self.settings.max_audio_mb,
            max_sample_rate_hz=self.settings.max_audio_sample_rate_hz,
        )
        return media.measure_audio(audio, limits)

    def _validate_media(self, request: SessionRequest, audio_s: float | None) -> float:
        """Check the uploads; the clip's length in seconds (``audio_s`` when already measured)."""
        seconds = self.audio_seconds(request.audio) if audio_s is None else audio_s
        if request.avatar_image is not None:
            _check_size(request.avatar_image, self.settings.max_image_mb, "image upload")
            media.validate_image(request.avatar_image, max_pixels=self.settings.max_image_pixels)
        return seconds

    def _image_ref(self, request: SessionRequest, agent: Agent | None) -> str | None:
        if request.avatar_image is not None:
            return self.blobs.put(request.avatar_image, _image_suffix(request.avatar_image))
        return agent.image_ref if agent is not None else None

    def _route(self, request: SessionRequest, agent: Agent | None) -> str | None:
        if agent is None or request.avatar_image is not None:
            return None
        return self.warm_worker(request.model, agent.id)

    # ------------------------------------------------------------ shared with the runtime-token door
    def warm_worker(self, model: ModelKind, agent_id: str | None) -> str | None:
        """The READY worker already holding this agent's avatar with a free slot, if any."""
        if self.router is None or agent_id is None:
            return None
        return self.router.pick(model, agent_id)

    def enqueue(self, session: Session) -> None:
        """Submit a stored QUEUED session (on ``routed_to``'s queue when set) and count the agent's use.

        A submit that fails leaves the session FAILED, never QUEUED with nothing in any queue.
        """
        self._submit(session)
        if session.avatar_id is not None:
            self._record_use(session.avatar_id)

    def _submit(self, session: Session) -> None:
        message = RunSessionMessage(session_id=session.id, model=session.model, worker_id=session.routed_to)
        try:
            self.queue.submit(message)
        except Exception as exc:
            log.warning("session submit failed", extra={"session_id": session.id})
            self.store.transition(session.id, SessionState.FAILED, reason="submit failed")
            if isinstance(exc, FarmError):
                raise
            raise BackendUnavailable("the session queue is unavailable") from exc

    def _record_use(self, agent_id: str) -> None:
        try:
            self.agents.record_use(agent_id)
        except Exception:  # usage only ranks hot avatars; never fail a created session for it
            log.warning("agent usage not recorded", extra={"agent_id": agent_id})


@dataclass
class AgentService:
    """Agent registration: store the portrait, create the agent (processing), submit its build."""

    settings: Settings
    agents: AgentStore
    builds: BuildQueue
    blobs: BlobStore
    metering: Metering | None = None
    _thumbs: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)

    def create(
        self,
        key: ApiKey,
        image: bytes,
        options: BuildOptions | None = None,
        *,
        model: ModelKind = ModelKind.ESSENCE,
        system_prompt: str | None = None,
        voice: str | None = None,
    ) -> Agent:
        """Validate image and options (points inside the image), check credits, store, submit the build."""
        options = options or BuildOptions()
        _refuse_unsupported_mode(model, options.mode)
        _check_size(image, self.settings.max_image_mb, "image upload")
        width, height = media.validate_image(image, max_pixels=self.settings.max_image_pixels)
        options.check_image(width, height)
        if self.metering is not None:
            self.metering.require_credits(key.tenant, AGENT_BUILD_CREDITS, "an agent build")
        agent = Agent(
            id=new_agent_id(),
            tenant=key.tenant,
            image_ref=self.blobs.put(image, _image_suffix(image)),
            build=options,
            model=model.value,
            system_prompt=system_prompt,
            voice=voice,
        )
        self.agents.create(agent)
        try:
            self.builds.submit(BuildAgentMessage(agent_id=agent.id))
        except Exception as exc:
            log.warning("agent build submit failed", extra={"agent_id": agent.id})
            self.agents.update(agent.id, AgentStatus.FAILED, error_message="build could not be queued")
            if isinstance(exc, FarmError):
                raise
            raise BackendUnavailable("the build queue is unavailable") from exc
        if self.metering is not None:  # charged at submit, once per agent (bitHuman charges at submit too)
            self.metering.charge_once(
                key.tenant, f"agent_build:{agent.id}", "agent_build", AGENT_BUILD_CREDITS
            )
        return agent

    def list(
        self,
        key: ApiKey,
        *,
        limit: int,
        offset: int,
        status: AgentStatus | None = None,
        search: str | None = None,
    ) -> tuple[list[Agent], int, dict[str, float]]:
        """One page of the tenant's agents (newest first; optionally one status, and ``search`` in the
        id or name, any case), the total that matched, and when each agent of the page was last used."""
        wanted = (search or "").strip().casefold()
        own = [
            a
            for a in reversed(self.agents.list_for_tenant(key.tenant))
            if status in (None, a.status)
            and (not wanted or wanted in a.id.casefold() or wanted in (a.name or "").casefold())
        ]
        page = own[offset : offset + limit]
        return page, len(own), self.agents.last_used([a.id for a in page])

    def thumbnail(self, key: ApiKey, agent_id: str) -> bytes:
        """A small JPEG of the agent's portrait (for cards), made once per portrait and kept in memory."""
        agent = self.get(key, agent_id)
        cached = self._thumbs.get(agent.image_ref)
        if cached is None:
            cached = media.thumbnail_jpeg(self.blobs.get(agent.image_ref), THUMBNAIL_PX)
            self._thumbs[agent.image_ref] = cached
            while len(self._thumbs) > THUMBNAILS_KEPT:
                self._thumbs.pop(next(iter(self._thumbs)))
        return cached

    def get(self, key: ApiKey, agent_id: str) -> Agent:
        if not is_agent_id(agent_id):
            raise ValidationError("agent_id must be an agent code like A78WKV4515 (^[A-Z][A-Z0-9]{9}$)")
        return self.agents.get_for_tenant(key.tenant, agent_id)

    def update(self, key: ApiKey, agent_id: str, changes: dict[str, str | None]) -> Agent:
        """Set the agent's ``name``, ``system_prompt`` and/or ``voice`` (None clears); nothing else is
        editable."""
        agent = self.get(key, agent_id)
        return self.agents.update(agent.id, agent.status, **changes)

    def delete(self, key: ApiKey, agent_id: str, store: SessionStore) -> None:
        """Forget the agent; CONFLICT while any of the tenant's live sessions uses it."""
        agent = self.get(key, agent_id)
        live = [s.id for s in store.live_for_tenant(key.tenant) if s.avatar_id == agent.id]
        if live:
            raise Conflict(f"agent {agent.id} has {len(live)} live session(s); stop them first")
        self.agents.delete(agent.id)
