"""The face rig: MediaPipe's face detection, 468-point mesh and iris models (Apache-2.0) run through
Google's LiteRT interpreter, with MediaPipe's pre- and post-processing rewritten in numpy/OpenCV.

``FaceRig`` (``rig.py``) finds faces and their 478 points; ``topology`` names the mesh's point groups and maps
them to the 68 iBUG points; ``loader`` checks each model file against its provenance record
(``models/models.json``, licence in ``models/LICENSE``) before it runs; ``readback`` reads the lip
gap and mouth width back from rendered frames. ``farm.render.landmarks.detect_face`` is the entry
point the builders use.
"""

from __future__ import annotations

from farm.render.facerig.rig import Face, FaceRig

__all__ = ["Face", "FaceRig"]
