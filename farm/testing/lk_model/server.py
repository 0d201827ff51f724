"""A model of the LiveKit signalling protocol (v0, two peer connections) for tests.

This is NOT livekit-server. It implements just enough of the protocol for the real ``livekit``
Python SDK to join rooms, publish audio/video, subscribe, exchange data packets (RPC, byte and text
streams) and see participants come and go; results obtained with it are "against a LiveKit-protocol
model". See ``/work/shared/reference/livekit-test-sfu.md`` for the flow it follows.

Per participant the model holds one WebSocket (binary ``SignalRequest``/``SignalResponse``), one
*publisher* peer connection (the client offers, aiortc answers) and one *subscriber* peer connection
(the model offers: data channels ``_reliable``/``_lossy`` and relayed tracks). Media is relayed by
aiortc, which decodes and re-encodes, so receivers must check content, never bit-exact frames or
exact sizes. libwebrtc ignores loopback: run the model and every client inside a private network
namespace with a veth address (``scripts/netns-run``).

With ``probe=True`` (benches; ``--probe`` on the command line) the model also logs each publisher
frame as the relay decodes it and serves that at ``GET /debug/ingress?room=NAME`` (see ``probe.py``).

Out of scope: reconnect/resume, mute, quality/speaker updates, dynacast, the Twirp RoomService API
(use ``remove_participant`` / ``close_room`` instead), v1 single-PC signalling, unpublish renegotiation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import urllib.parse
from http import HTTPStatus
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.rtp import RtpPacket
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame, VideoFrame
from livekit import api
from livekit.api.access_token import Claims
from livekit.protocol import models, rtc
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from farm.testing.lk_model import sdp
from farm.testing.lk_model.probe import IngressProbe
from farm.testing.lk_model.state import KINDS, Participant, Room, Track

log = logging.getLogger(__name__)


class LiveKitModel:
    """The model server: ``await start()`` → ``url``; ``await aclose()``. One process, many rooms."""

    def __init__(
        self,
        host: str,
        port: int = 0,
        *,
        api_key: str = "devkey",
        api_secret: str = "secret",
        probe: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.api_secret = api_secret
        self._verifier = api.TokenVerifier(api_key, api_secret)
        self._rooms: dict[str, Room] = {}
        self._ids = itertools.count(1)
        self._relay = MediaRelay()
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.probe = IngressProbe() if probe else None  # ingress timing for benches (probe.py)

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await serve(
            self._serve, self.host, self.port, process_request=self._process_request, max_size=None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("lk model listening", extra={"url": self.url})

    async def aclose(self) -> None:
        for name in list(self._rooms):
            await self.close_room(name)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------------ test controls
    def participants(self, room: str) -> list[str]:
        """Identities present in ``room`` (empty when the room does not exist)."""
        found = self._rooms.get(room)
        return list(found.participants) if found else []

    async def remove_participant(self, room: str, identity: str) -> None:
        """What RoomService.RemoveParticipant does: the participant is told to leave and dropped."""
        part = self._rooms[room].participants.get(identity) if room in self._rooms else None
        if part is not None:
            await self._kick(self._rooms[room], part, models.DisconnectReason.PARTICIPANT_REMOVED)

    async def close_room(self, room: str) -> None:
        """What RoomService.DeleteRoom does: every participant is told the room is gone, then dropped."""
        found = self._rooms.pop(room, None)
        if found is None:
            return
        everyone = list(found.participants.values())
        for part in everyone:  # tell everyone first, so nobody sees the others leave before the room goes
            await self._send(part, rtc.SignalResponse(leave=_leave(models.DisconnectReason.ROOM_DELETED)))
        for part in everyone:
            await self._drop(found, part, models.DisconnectReason.ROOM_DELETED)

    # ------------------------------------------------------------------ HTTP / join
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urllib.parse.urlparse(request.path).path.rstrip("/")
        if path.endswith("/validate"):
            return connection.respond(HTTPStatus.OK, "ok\n")
        if path == "/debug/ingress" and self.probe is not None:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(request.path).query)
            since = float(query.get("since", ["0"])[0])
            body = self.probe.snapshot(query.get("room", [""])[0], since)
            response = connection.respond(HTTPStatus.OK, json.dumps(body))
            response.headers["Content-Type"] = "application/json"
            return response
        if path != "/rtc":  # the SDK tries /rtc/v1 (single PC) first; a 404 makes it fall back to v0
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def _serve(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = urllib.parse.parse_qs(urllib.parse.urlparse(ws.request.path).query)
        bearer = ws.request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        try:  # the SDK sends the token as a Bearer header; older clients as ?access_token=
            claims = self._verifier.verify(bearer or query.get("access_token", [""])[0])
        except Exception:
            log.warning("lk model refused a token", exc_info=True, extra={"path": ws.request.path})
            await ws.close(code=4001, reason="invalid token")
            return
        if claims.video is None or not claims.video.room_join or not claims.video.room:
            await ws.close(code=4003, reason="no room_join grant")
            return
        room = self._rooms.setdefault(
            claims.video.room, Room(sid=f"RM_{next(self._ids)}", name=claims.video.room)
        )
        if claims.identity in room.participants:  # duplicate identity: the old one is kicked, like the server
            await self._kick(
                room, room.participants[claims.identity], models.DisconnectReason.DUPLICATE_IDENTITY
            )
        part = self._new_participant(
            room, claims, ws, query.get("auto_subscribe", ["1"])[0] not in ("0", "false")
        )
        try:
            await self._join(room, part)
            async for message in ws:
                if isinstance(message, bytes):
                    await self._on_signal(room, part, rtc.SignalRequest.FromString(message))
        except Exception:
            log.exception("lk model signalling failed", extra={"identity": part.identity})
        finally:
            await self._drop(room, part)

    def _new_participant(
        self, room: Room, claims: Claims, ws: ServerConnection, auto_subscribe: bool
    ) -> Participant:
        # no iceServers: aiortc would default to a public STUN server; max-bundle: one transport per PC,
        # as libwebrtc answers (the first subscriber offer carries only the data channels, see _join)
        config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        part = Participant(
            sid=f"PA_{next(self._ids)}",
            identity=claims.identity,
            name=claims.name or claims.identity,
            kind=KINDS.get(claims.kind or "", models.ParticipantInfo.Kind.STANDARD),
            attributes=dict(claims.attributes or {}),
            auto_subscribe=auto_subscribe,
            ws=ws,
            publisher=RTCPeerConnection(config),
            subscriber=RTCPeerConnection(config),
        )
        part.publisher.on(
            "datachannel", lambda ch: ch.on("message", lambda m: self._on_data(room, part, ch, m))
        )
        part.publisher.on("track", lambda track: self._on_media(room, part, track))
        part.subscriber.on("connectionstatechange", lambda: self._on_subscriber_state(room, part))
        room.participants[part.identity] = part
        return part

    async def _join(self, room: Room, part: Participant) -> None:
        others = [p for p in room.participants.values() if p is not part]
        join = rtc.JoinResponse(
            room=models.Room(sid=room.sid, name=room.name, creation_time=int(time.time())),
            participant=part.info(),
            other_participants=[p.info() for p in others],
            server_version="lk-model-1",
            subscriber_primary=True,  # as livekit-server does for participants that can subscribe
            ping_interval=5,
            ping_timeout=15,
            server_info=models.ServerInfo(version="lk-model-1", protocol=16),
        )
        await self._send(part, rtc.SignalResponse(join=join))
        await self._broadcast_update(room, part)
        part.channels["_reliable"] = part.subscriber.createDataChannel("_reliable", ordered=True)
        part.channels["_lossy"] = part.subscriber.createDataChannel("_lossy", ordered=False, maxRetransmits=0)
        for ch in part.channels.values():
            ch.on("open", lambda: self._flush_data(part))
        subscribe_to = [(p, t) for p in others for t in p.tracks.values() if t.source is not None]
        self._spawn(self._initial_subscriptions(part, subscribe_to if part.auto_subscribe else []))

    async def _initial_subscriptions(self, part: Participant, pairs: list[tuple[Participant, Track]]) -> None:
        """Offer the data channels alone first, then the existing tracks in a renegotiation: with
        max-bundle, a first offer that already carries relayed tracks never gets its transport up."""
        await self._subscribe(part, [])
        if pairs:
            await self._subscribe(part, pairs)

    # ------------------------------------------------------------------ signalling
    async def _on_signal(self, room: Room, part: Participant, req: rtc.SignalRequest) -> None:
        kind = req.WhichOneof("message")
        log.debug("signal in", extra={"identity": part.identity, "kind": kind})
        if kind == "offer":
            await self._answer_publisher(part, req.offer)
        elif kind == "answer":
            await part.subscriber.setRemoteDescription(RTCSessionDescription(req.answer.sdp, req.answer.type))
            if part.answer_waiter is not None and not part.answer_waiter.done():
                part.answer_waiter.set_result(None)
        elif kind == "trickle":
            await self._trickle(part, req.trickle)
        elif kind == "add_track":
            await self._add_track(room, part, req.add_track)
        elif kind == "ping_req":
            pong = rtc.Pong(last_ping_timestamp=req.ping_req.timestamp, timestamp=int(time.time() * 1000))
            await self._send(part, rtc.SignalResponse(pong_resp=pong))
        elif kind == "ping":
            await self._send(part, rtc.SignalResponse(pong=int(time.time() * 1000)))
        elif kind == "subscription" and req.subscription.subscribe:
            wanted = set(req.subscription.track_sids)
            pairs = [(p, t) for p in room.participants.values() for s, t in p.tracks.items() if s in wanted]
            self._spawn(self._subscribe(part, [(p, t) for p, t in pairs if t.source is not None]))
        elif kind == "leave":
            await part.ws.close()

    async def _answer_publisher(self, part: Participant, offer: rtc.SessionDescription) -> None:
        offered = sdp.simulcast_offers(offer.sdp)
        await part.publisher.setRemoteDescription(
            RTCSessionDescription(sdp.strip_simulcast(offer.sdp), "offer")
        )
        await part.publisher.setLocalDescription(await part.publisher.createAnswer())
        local = part.publisher.localDescription
        answer = rtc.SessionDescription(
            type="answer", sdp=sdp.accept_one_layer(local.sdp, offered), id=offer.id
        )
        await self._send(part, rtc.SignalResponse(answer=answer))

    async def _trickle(self, part: Participant, trickle: rtc.TrickleRequest) -> None:
        init = json.loads(trickle.candidateInit or "{}")
        line = init.get("candidate", "")
        if not line:
            return
        candidate = candidate_from_sdp(line.removeprefix("candidate:"))
        candidate.sdpMid = init.get("sdpMid")
        candidate.sdpMLineIndex = init.get("sdpMLineIndex")
        pc = part.subscriber if trickle.target == rtc.SignalTarget.SUBSCRIBER else part.publisher
        with contextlib.suppress(Exception):  # a candidate for a transceiver aiortc did not keep
            await pc.addIceCandidate(candidate)

    async def _add_track(self, room: Room, part: Participant, req: rtc.AddTrackRequest) -> None:
        info = models.TrackInfo(
            sid=f"TR_{next(self._ids)}",
            type=req.type,
            name=req.name,
            source=req.source,
            width=req.width,
            height=req.height,
            simulcast=False,
            stream=req.stream,
        )
        part.tracks[info.sid] = Track(info=info, cid=req.cid)
        part.version += 1
        await self._send(
            part, rtc.SignalResponse(track_published=rtc.TrackPublishedResponse(cid=req.cid, track=info))
        )
        await self._broadcast_update(room, part)

    # ------------------------------------------------------------------ media relay
    def _on_media(self, room: Room, part: Participant, track: MediaStreamTrack) -> None:
        wanted = models.TrackType.VIDEO if track.kind == "video" else models.TrackType.AUDIO
        pending = [t for t in part.tracks.values() if t.source is None and t.info.type == wanted]
        match = next((t for t in pending if t.cid == track.id), pending[0] if pending else None)
        if match is None:
            log.warning("lk model got media for no announced track", extra={"identity": part.identity})
            return
        match.source = track
        if self.probe is not None:
            self._tap_packets(room, part, match, track)
        log.debug("media arrived", extra={"identity": part.identity, "track": match.info.sid})
        self._spawn(self._drain(self._relay.subscribe(track, buffered=False), room, part, match.info.sid))
        for other in room.participants.values():
            if other is not part and other.auto_subscribe:
                self._spawn(self._subscribe(other, [(part, match)]))

    def _tap_packets(self, room: Room, part: Participant, match: Track, track: MediaStreamTrack) -> None:
        """Probe only: note each RTP packet's arrival before aiortc's jitter buffer holds it. This wraps
        the receiver's private ``_handle_rtp_packet`` (aiortc 1.x), the one place packets enter, and
        reads its private TimestampMapper origin (decoded frames' pts are RTP timestamps minus it)."""
        receiver = next((r for r in part.publisher.getReceivers() if r.track is track), None)
        if receiver is None or self.probe is None:
            return
        probe, original = self.probe, receiver._handle_rtp_packet

        async def tapped(packet: RtpPacket, arrival_time_ms: int) -> None:
            arrived = time.perf_counter()
            await original(packet, arrival_time_ms)  # may hand a frame to the decoder (sets the origin)
            mapper = getattr(receiver, "_RTCRtpReceiver__timestamp_mapper", None)
            origin = getattr(mapper, "_origin", None)
            probe.packet(
                room.name,
                part.identity,
                match.info.sid,
                track.kind,
                rtp=packet.timestamp,
                origin=origin,
                at=arrived,
            )

        receiver._handle_rtp_packet = tapped  # type: ignore[method-assign]

    async def _drain(self, track: MediaStreamTrack, room: Room, part: Participant, sid: str) -> None:
        """Keep the source consumed so that aiortc's receive queue never grows without a subscriber;
        with the probe on, log each frame as it is decoded here (before any re-encode)."""
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()
                if self.probe is not None and isinstance(frame, AudioFrame | VideoFrame):
                    self.probe.record(room.name, part.identity, sid, frame)

    async def _subscribe(self, sub: Participant, pairs: list[tuple[Participant, Track]]) -> None:
        """Add relayed tracks to ``sub``'s subscriber PC and (re)offer; confirm to each publisher."""
        async with sub.negotiation:
            if sub.closed:
                return
            added: list[tuple[Participant, Track]] = []
            for pub, track in pairs:
                if track.info.sid in sub.subscribed or track.source is None:
                    continue
                sender: RTCRtpSender = sub.subscriber.addTrack(
                    self._relay.subscribe(track.source, buffered=False)
                )
                # msid "PA_x|TR_y TR_y": how the client maps incoming media to a publication
                sender._stream_id = f"{pub.sid}|{track.info.sid}"
                sender._track_id = track.info.sid
                sub.subscribed.add(track.info.sid)
                added.append((pub, track))
            if not added and sub.subscriber.localDescription is not None:
                return
            sub.answer_waiter = asyncio.get_running_loop().create_future()
            await sub.subscriber.setLocalDescription(await sub.subscriber.createOffer())
            local = sub.subscriber.localDescription
            await self._send(
                sub, rtc.SignalResponse(offer=rtc.SessionDescription(type="offer", sdp=local.sdp))
            )
            log.debug("subscriber offer sent", extra={"identity": sub.identity, "tracks": len(added)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.answer_waiter, 10.0)
            for pub, track in added:
                await self._send(
                    pub, rtc.SignalResponse(track_subscribed=rtc.TrackSubscribed(track_sid=track.info.sid))
                )

    def _on_subscriber_state(self, room: Room, part: Participant) -> None:
        log.debug(
            "subscriber state", extra={"identity": part.identity, "kind": part.subscriber.connectionState}
        )
        if (
            part.subscriber.connectionState == "connected"
            and part.state != models.ParticipantInfo.State.ACTIVE
        ):
            part.state = models.ParticipantInfo.State.ACTIVE
            part.version += 1
            self._spawn(self._broadcast_update(room, part, include_self=True))

    # ------------------------------------------------------------------ data packets
    def _on_data(self, room: Room, part: Participant, channel: RTCDataChannel, message: bytes | str) -> None:
        if isinstance(message, str):
            return
        packet = models.DataPacket.FromString(message)
        packet.participant_identity = part.identity
        packet.participant_sid = part.sid
        targets = set(packet.destination_identities)
        payload = packet.SerializeToString()
        label = "_lossy" if channel.label == "_lossy" else "_reliable"
        for other in room.participants.values():
            if other is not part and (not targets or other.identity in targets):
                other.pending_data.append((label, payload))
                self._flush_data(other)

    def _flush_data(self, part: Participant) -> None:
        keep: list[tuple[str, bytes]] = []
        for label, payload in part.pending_data:
            channel = part.channels.get(label)
            if channel is not None and channel.readyState == "open":
                channel.send(payload)
            else:
                keep.append((label, payload))
        part.pending_data = keep

    # ------------------------------------------------------------------ leaving
    async def _kick(self, room: Room, part: Participant, reason: models.DisconnectReason) -> None:
        await self._send(part, rtc.SignalResponse(leave=_leave(reason)))
        await self._drop(room, part, reason)

    async def _drop(
        self,
        room: Room,
        part: Participant,
        reason: models.DisconnectReason = models.DisconnectReason.CLIENT_INITIATED,
    ) -> None:
        if part.closed:
            return
        part.closed = True
        part.disconnect_reason = reason
        if room.participants.get(part.identity) is part:
            del room.participants[part.identity]
        part.state = models.ParticipantInfo.State.DISCONNECTED
        part.version += 1
        await self._broadcast_update(room, part)
        part.tracks.clear()
        if self.probe is not None:
            self.probe.forget(room.name, part.identity)
        with contextlib.suppress(Exception):
            await part.ws.close()
        await part.publisher.close()
        await part.subscriber.close()

    # ------------------------------------------------------------------ helpers
    async def _broadcast_update(self, room: Room, part: Participant, include_self: bool = False) -> None:
        update = rtc.SignalResponse(update=rtc.ParticipantUpdate(participants=[part.info()]))
        for other in list(room.participants.values()):
            if (other is not part or include_self) and not other.closed:
                await self._send(other, update)

    async def _send(self, part: Participant, response: rtc.SignalResponse) -> None:
        with contextlib.suppress(Exception):  # a closing socket: the participant is being dropped
            await part.ws.send(response.SerializeToString())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _leave(reason: models.DisconnectReason) -> rtc.LeaveRequest:
    return rtc.LeaveRequest(can_reconnect=False, reason=reason, action=rtc.LeaveRequest.Action.DISCONNECT)
