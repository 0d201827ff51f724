"""Learned Expression (``expression-2``): published talking-head graphs (Ditto-class) on the GPU queue.

The operator brings the weights (``FARM_EXPRESSION_WEIGHTS``: a directory of ONNX graphs, checked
with ``farm models check DIR``); the farm validates them against declared signatures
(``signatures.py``), prepares each avatar once, streams audio into motion with bounded look-ahead,
and batches every live session's graphs through its batchers. Importing this package is cheap
(numpy only); onnxruntime and torch are imported when the engine prewarms.
"""

from farm.render.learned.engine import LearnedExpressionEngine
from farm.render.learned.renderer import LearnedRenderer

__all__ = ["LearnedExpressionEngine", "LearnedRenderer"]
