"""What the LiveKit-protocol model keeps per room, participant and track (tests only)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection
from livekit.protocol import models
from websockets.asyncio.server import ServerConnection

KINDS = {
    "agent": models.ParticipantInfo.Kind.AGENT,
    "ingress": models.ParticipantInfo.Kind.INGRESS,
    "egress": models.ParticipantInfo.Kind.EGRESS,
    "sip": models.ParticipantInfo.Kind.SIP,
}


@dataclass
class Track:
    info: models.TrackInfo
    cid: str
    source: MediaStreamTrack | None = None  # the aiortc remote track once media arrived


@dataclass
class Participant:
    sid: str
    identity: str
    name: str
    kind: int
    attributes: dict[str, str]
    auto_subscribe: bool
    ws: ServerConnection
    publisher: RTCPeerConnection
    subscriber: RTCPeerConnection
    state: int = models.ParticipantInfo.State.JOINED
    version: int = 1
    tracks: dict[str, Track] = field(default_factory=dict)  # by track sid
    channels: dict[str, RTCDataChannel] = field(default_factory=dict)  # subscriber side, by label
    pending_data: list[tuple[str, bytes]] = field(default_factory=list)
    negotiation: asyncio.Lock = field(default_factory=asyncio.Lock)
    answer_waiter: asyncio.Future[None] | None = None
    subscribed: set[str] = field(default_factory=set)
    closed: bool = False
    disconnect_reason: models.DisconnectReason = models.DisconnectReason.UNKNOWN_REASON

    def info(self) -> models.ParticipantInfo:
        return models.ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            state=self.state,  # type: ignore[arg-type]
            kind=self.kind,  # type: ignore[arg-type]
            attributes=self.attributes,
            version=self.version,
            is_publisher=bool(self.tracks),
            joined_at=int(time.time()),
            permission=models.ParticipantPermission(
                can_subscribe=True, can_publish=True, can_publish_data=True
            ),
            tracks=[t.info for t in self.tracks.values()],
            disconnect_reason=self.disconnect_reason,
        )


@dataclass
class Room:
    sid: str
    name: str
    participants: dict[str, Participant] = field(default_factory=dict)  # by identity
