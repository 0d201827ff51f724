"""A LiveKit-protocol model server for tests — a model of the protocol, not livekit-server.

``LiveKitModel`` speaks the v0 signalling protocol (WebSocket + two peer connections per participant)
well enough for the real ``livekit`` SDK on every side: join with a verified token, publish, automatic
subscription with relayed media, data packets (RPC, byte/text streams) routed by destination identity,
participant joined/active/left updates, and two test controls, ``remove_participant`` and
``close_room``. Report results obtained with it as "against a LiveKit-protocol model".
"""

from farm.testing.lk_model.server import LiveKitModel

__all__ = ["LiveKitModel"]
