"""Rendering: rasterizer backends (pure PyTorch anywhere, nvdiffrast on CUDA) and the face renderer."""

from talkface.render.rasterize import BACKENDS, Fragments, interpolate, rasterize
from talkface.render.renderer import Rendered, render

__all__ = ["BACKENDS", "Fragments", "Rendered", "interpolate", "rasterize", "render"]
