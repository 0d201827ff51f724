"""Routers by area. Each module exposes ``router``; ``farm.api.app`` includes them.

Future areas (runtime tokens, dynamics) add their own module and one line in ``farm.api.app``.
"""
