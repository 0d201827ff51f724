"""Expression: the image-driven model (any face image, animated from audio), batched across sessions.

Importing this package is cheap (no torch); the engine imports torch and its backend at prewarm.
"""

from farm.render.expression.engine import ExpressionEngine
from farm.render.expression.renderer import ExpressionRenderer

__all__ = ["ExpressionEngine", "ExpressionRenderer"]
