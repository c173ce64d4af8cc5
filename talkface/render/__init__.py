"""Rendering: rasterizer backends (pure PyTorch anywhere, nvdiffrast on CUDA) and the face renderer.

No network and no training: `render` (renderer.py) is the one path from coefficients to a face image,
for reconstruction (the aligned crop's camera) and the animation (mapped into the clip window).
"""

from talkface.render.rasterize import BACKENDS, Fragments, interpolate, rasterize
from talkface.render.renderer import Rendered, render

__all__ = ["BACKENDS", "Fragments", "Rendered", "interpolate", "rasterize", "render"]
