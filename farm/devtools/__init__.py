"""Developer tools shipped with the farm: the demo, the room demo and its agent, and the
livekit-server finder/builder used by local runs and tests.
"""
