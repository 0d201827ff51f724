"""Speech → visemes → mouth: the streaming viseme model both engines' mouths follow.

``load_model()`` reads the shipped weights once per process (``weights/``, trained by the project
with ``farm train visemes``); a ``VisemeStream`` turns 16 kHz audio into one probability row over
the 15 Oculus visemes (``VISEMES``) per 40 ms frame with 87.5 ms of look-ahead; a ``VisemeTrack``
(one per renderer) feeds it each speech segment in play order and coarticulates the rows into a
``MouthPose`` (open, width, press) that Essence turns into bank shapes and Expression into its
mouth warp. No torch here: Essence's CPU workers run it with numpy.
"""

from __future__ import annotations

from farm.render.speech.model import VisemeModel, VisemeStream, load_model
from farm.render.speech.mouth import Coarticulation, MouthPose, VisemeTrack
from farm.render.speech.visemes import VISEMES

__all__ = [
    "VISEMES",
    "Coarticulation",
    "MouthPose",
    "VisemeModel",
    "VisemeStream",
    "VisemeTrack",
    "load_model",
]
