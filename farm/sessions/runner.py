"""SessionRunner: owns the state machine of one running session on a worker.

``ASSIGNED → STARTING`` (avatar through the ModelPool, input and sink opened) ``→ STREAMING`` (the
session's ``FramePump`` drives its renderer into its sink: audio is the clock for rooms, files render
every frame) ``→ ENDING → ENDED``; ``FAILED`` with ``failure = {code, message}`` on errors.
The lease is renewed in the background; once it is lost the runner stops writing at once and
touches the session no more (another worker owns it now). Stop requests and ``max_session_s`` end
the session cleanly; a draining worker hands it back (``→ QUEUED``, re-submitted) instead.

The runner only wires a session: the pump (``farm.stream.pump``) owns frames, speech and interrupts;
the runner owns the state machine, the lease, credits, stop and hand-back, which it hands the pump
as one ``should_end`` check per frame. Gestures go through the worker's dynamics router (debounce,
dedup) when one is attached. Timings (ms since the claim) are recorded for benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from farm.kernel.domain import Session, SessionState
from farm.kernel.errors import FarmError, LeaseLost, RoomJoinFailed
from farm.kernel.settings import Settings
from farm.render.base import AvatarSource
from farm.render.pool import ModelPool
from farm.sessions.base import Lease, SessionStore
from farm.sessions.charging import MinuteCharger, MinuteMeter
from farm.sessions.lease_keeper import LeaseKeeper
from farm.sessions.moves import LeasedMoves
from farm.sessions.timings import Milestones
from farm.stream.base import DynamicsAwareInput, RenderInfo, SessionDynamics, SessionIO
from farm.stream.lane import RenderLane
from farm.stream.pump import FramePump, PumpEnd, PumpStats

log = logging.getLogger(__name__)

_STALLED_CLOSE_S = 5.0  # how long a stalled session may take to leave its room


class EndReason(enum.StrEnum):
    INPUT_CLOSED = PumpEnd.INPUT_CLOSED.value
    STOP_REQUESTED = "stop requested"
    MAX_DURATION = "max session duration reached"
    HANDED_BACK = "worker draining: handed back"
    STALLED = "no progress: lease given up"
    OUT_OF_CREDITS = "out of credits"  # farm.tenancy.metering.OUT_OF_CREDITS_REASON


IoFactory = Callable[[Session, RenderInfo], SessionIO]
"""(session, the renderer's frame size and gestures) → the session's input and sink."""
ResolveAvatar = Callable[[Session], AvatarSource]
"""Session → the avatar it animates (``farm.worker.wiring.AvatarResolver`` in production)."""


class DynamicsAttachment(Protocol):
    """A running session as the dynamics layer sees it (``farm.dynamics.worker.AttachedSession``)."""

    def trigger(self, action: str) -> object:
        """Debounced gesture trigger; delivery reaches the renderer through ``deliver``."""
        ...

    def detach(self) -> None: ...


DynamicsAttach = Callable[[Session, Sequence[str], Callable[[str], None]], DynamicsAttachment | None]
"""(session, renderer gestures, deliver) → attachment, or None (no dynamics for this session);
``deliver`` is safe to call from any thread."""


@dataclass
class RunResult:
    session: Session | None  # None when the lease was lost (the session is no longer ours)
    frames: int
    lease_lost: bool = False
    handed_back: bool = False
    stalled: bool = False  # gave its lease up after no progress for ``stall_timeout_s``


class SessionRunner:
    """Run one claimed session to a terminal state (or until its lease is lost)."""

    def __init__(
        self,
        *,
        lease: Lease,
        store: SessionStore,
        pool: ModelPool,
        settings: Settings,
        io_factory: IoFactory,
        resolve_avatar: ResolveAvatar,
        claimed_at: float | None = None,
        timings_ms: dict[str, float] | None = None,
        on_handback: Callable[[Session], None] | None = None,
        attach_dynamics: DynamicsAttach | None = None,
        meter: MinuteMeter | None = None,
    ) -> None:
        self.lease = lease
        self._on_handback = on_handback
        self._handback = threading.Event()
        self.store = store
        self.pool = pool
        self.settings = settings
        self._io_factory = io_factory
        self._resolve_avatar = resolve_avatar
        self._timings = Milestones(time.perf_counter() if claimed_at is None else claimed_at, timings_ms)
        self._io: SessionIO | None = None
        self._pump: FramePump | None = None
        self._lane: RenderLane | None = None
        self._attach_dynamics = attach_dynamics
        self._attachment: DynamicsAttachment | None = None
        self._progress_at = time.monotonic()  # last proof of progress before streaming (start steps)
        self._stalled = False
        self._streaming = False
        self._main: asyncio.Task[RunResult] | None = None
        self._charger = MinuteCharger(meter, fps=settings.fps, token=lease.token)
        self._moves = LeasedMoves(
            store, lease, lease_ttl_s=settings.lease_ttl_s, check_lease=self._check_lease
        )
        self._stop_requested = False  # set by a stop notice or the lease renewer (renew_and_check_stop)
        self._keeper = LeaseKeeper(
            store,
            lease,
            settings,
            progress_at=lambda: self.progress_at,
            streaming=lambda: self._streaming,
            on_stall=self._on_stall,
            on_stop=self.request_stop,
        )
        self._abandoned = False  # the worker's liveness lapsed: its lease may have been revoked
        self._session: Session | None = None

    @property
    def progress_at(self) -> float:
        """``time.monotonic()`` of the session's last step forward (the worker's liveness reads it)."""
        return self._pump.progress_at if self._pump is not None else self._progress_at

    @property
    def stats(self) -> PumpStats:
        """What the session's pump did so far (frames, skipped images, render cost)."""
        return self._pump.stats if self._pump is not None else PumpStats()

    # ------------------------------------------------------------ public
    async def run(self) -> RunResult:
        """Run the session to a terminal state; see the module docstring."""
        self._main = asyncio.create_task(self._run(), name=f"session-{self.lease.session_id[:8]}")
        try:
            return await asyncio.shield(self._main)
        except asyncio.CancelledError:
            if not self._stalled:
                self._main.cancel()
                raise
            return await self._main  # the stall path inside _run returns a result

    async def _run(self) -> RunResult:
        renewer = asyncio.create_task(self._keeper.run(), name="lease-renew")
        try:
            session = await self._moves.move(SessionState.STARTING, "starting")
            io = await self._start(session)
            session = await self._moves.move(
                SessionState.STREAMING, "streaming", output=io.output, timings_ms=dict(self._timings.ms)
            )
            self._session = session
            assert self._pump is not None
            reason = await self._stream(io, self._pump)
            if reason is EndReason.HANDED_BACK:
                return await self._hand_back()
            session = await self._moves.move(SessionState.ENDING, str(reason))
            await self._charger.settle(self._session, self.stats.frames)
            await self._close(strict=True)
            session = await self._moves.move(
                SessionState.ENDED, str(reason), timings_ms=self._timings.final(self.stats)
            )
            return RunResult(session, self.stats.frames)
        except LeaseLost:
            log.warning("lease lost, stopping", extra=self._log_fields())
            await self._close(abandon=True)
            return RunResult(None, self.stats.frames, lease_lost=True)
        except asyncio.CancelledError:
            if not self._stalled:
                raise
            log.error("session stalled: giving its lease up for another worker", extra=self._log_fields())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_STALLED_CLOSE_S):
                    await self._close()
            return RunResult(None, self.stats.frames, lease_lost=True, stalled=True)
        except Exception as exc:
            await self._close()
            return RunResult(await self._moves.fail(exc, self._timings.final(self.stats)), self.stats.frames)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            self._close_renderer(wait=not self._stalled)
            with contextlib.suppress(FarmError):  # a stalled session is re-queued by the reaper at once
                await asyncio.to_thread(self.store.release, self.lease)

    def abandon(self) -> None:
        """Stop publishing now (any thread): this worker's liveness key lapsed, so the reaper may have
        revoked the lease and re-queued the session. The revoked lease already stops the runner at
        its next renewal; this is sooner, so no second publisher overlaps it."""
        self._abandoned = True

    def request_handback(self) -> None:
        """Ask the runner (from any thread) to stop and return the session to the queue (drain)."""
        self._handback.set()

    async def _hand_back(self) -> RunResult:
        """STREAMING → QUEUED, lease released, then re-submitted so another worker resumes it."""
        await self._close()
        session = await self._moves.move(SessionState.QUEUED, str(EndReason.HANDED_BACK))
        await asyncio.to_thread(self.store.release, self.lease)
        log.info("session handed back", extra=self._log_fields())
        if self._on_handback is not None:
            try:
                await asyncio.to_thread(self._on_handback, session)
            except Exception:
                log.exception("hand-back submit failed", extra=self._log_fields())
                failure = {"code": "BACKEND_UNAVAILABLE", "message": "the session could not be re-queued"}
                session = await asyncio.to_thread(
                    self.store.transition,
                    session.id,
                    SessionState.FAILED,
                    reason="hand-back failed",
                    failure=failure,
                )
        return RunResult(session, self.stats.frames, handed_back=True)

    # ------------------------------------------------------------ phases
    async def _start(self, session: Session) -> SessionIO:
        # Blocking steps (engine load, pack build or load) run off the event loop so the lease
        # renewer keeps running however long they take.
        await asyncio.to_thread(self.pool.engine, session.engine_name)
        self._timings.mark("model_ready")
        self._progress_at = time.monotonic()
        # the agent's record is read from Redis: a blip waits, as state changes do (a session failed
        # here could not record it either, and was rendered again after its lease ran out)
        source = await self._moves.wait_out(lambda: self._resolve_avatar(session), "avatar lookup")
        renderer = await asyncio.to_thread(self.pool.open_session, session.engine_name, source, session.id)
        lane = RenderLane(renderer, f"render-{session.id[:8]}")
        self._lane = lane
        self._timings.mark("avatar_ready")
        self._progress_at = time.monotonic()
        if self._attach_dynamics is not None:
            deliver = lambda action: lane.post(renderer.trigger, action)  # noqa: E731
            self._attachment = self._attach_dynamics(session, renderer.gestures, deliver)
        # a room shows the avatar at rest from the moment its video track is published
        poster = (await lane.call(renderer.next_frame)).image if session.livekit else None
        io = self._io_factory(session, RenderInfo(renderer.frame_size, tuple(renderer.gestures), poster))
        self._io = io
        if isinstance(self._attachment, SessionDynamics) and isinstance(io.input, DynamicsAwareInput):
            io.input.use_dynamics(self._attachment)  # RPC and keyword rules share the debounced path
        self._pump = FramePump(
            lane,
            io.sink,
            fps=self.settings.fps,
            max_queued_s=self.settings.max_audio_s,
            gesture_hook=self._attachment.trigger if self._attachment is not None else None,
            log_fields=self._log_fields(),
        )
        try:  # a room join that does not complete in join_timeout_s fails the session
            async with asyncio.timeout(self.settings.join_timeout_s if session.livekit else None):
                await io.input.start()
                await io.sink.start()
        except TimeoutError as exc:
            raise RoomJoinFailed(
                f"joining the LiveKit room did not complete within {self.settings.join_timeout_s:g} s"
            ) from exc
        self._timings.mark("sink_ready")
        self._progress_at = time.monotonic()
        self._check_lease()
        return io

    async def _stream(self, io: SessionIO, pump: FramePump) -> EndReason:
        self._streaming = True
        self._progress_at = time.monotonic()
        started = asyncio.get_running_loop().time()
        first_frame = False

        async def should_end() -> str | None:
            nonlocal first_frame
            if not first_frame and pump.stats.frames:
                first_frame = True
                self._timings.mark("first_frame")
            ended = self._ended_by_request(asyncio.get_running_loop().time() - started)
            if ended is not None:
                return ended
            self._check_lease()
            if not await self._charger.paid(self._session, pump.stats.frames):
                return EndReason.OUT_OF_CREDITS
            return None

        reason = await pump.run(io.input.events(), should_end)
        if not first_frame and pump.stats.frames:
            self._timings.mark("first_frame")
        return EndReason(reason)

    def _on_stall(self) -> None:
        """No progress for too long (the keeper stopped renewing): cancel the run, release the lease."""
        self._stalled = True
        if self._main is not None:
            self._main.cancel()

    def request_stop(self) -> None:
        """A stop notice for this session arrived (``names.STOP_TOPIC``): end at the next frame, as the
        stop flag read at the next lease renewal would. Call on the runner's event loop."""
        self._stop_requested = True

    def _ended_by_request(self, elapsed_s: float) -> EndReason | None:
        """Hand-back, the duration cap, or a stop request (its notice, or the flag at a lease renewal)."""
        if self._handback.is_set():
            return EndReason.HANDED_BACK
        if elapsed_s >= self.settings.max_session_s:
            return EndReason.MAX_DURATION
        if self._stop_requested:  # a stop notice, or the flag read with a lease renewal
            return EndReason.STOP_REQUESTED
        return None

    async def speak(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Play speech the farm was asked to say (``POST /v1/agent/{code}/speak``) as the next utterance."""
        if self._pump is not None:
            await self._pump.speak(pcm, sample_rate)

    async def _close(self, *, strict: bool = False, abandon: bool = False) -> None:
        """Close input and sink; ``strict`` re-raises a sink that fails to finalise its output;
        ``abandon`` (the lease is lost) discards a sink's unpublished output where it can (``abort``)."""
        io, self._io = self._io, None
        if io is None:
            return
        with contextlib.suppress(Exception):
            await io.input.aclose()
        abort = getattr(io.sink, "abort", None) if abandon else None
        if abort is not None:
            with contextlib.suppress(Exception):
                await abort()
            return
        try:
            await io.sink.aclose()
        except Exception:
            log.exception("closing the sink failed", extra=self._log_fields())
            if strict:
                raise

    def _close_renderer(self, *, wait: bool = True) -> None:
        if self._attachment is not None:
            with contextlib.suppress(Exception):
                self._attachment.detach()
            self._attachment = None
        lane, self._lane = self._lane, None
        if lane is not None:
            try:
                lane.close(wait=wait)
            except Exception:
                log.exception("closing renderer failed", extra=self._log_fields())

    # ------------------------------------------------------------ lease
    def _check_lease(self) -> None:
        if self._keeper.lost or self._abandoned:
            raise LeaseLost(f"lease on session {self.lease.session_id} was lost")

    def _log_fields(self) -> dict[str, object]:
        return {"session_id": self.lease.session_id, "worker_id": self.lease.worker_id}
