"""Render 257 coefficients through the morphable model: a lit face image, its mask and landmarks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

from talkface.face3d.camera import Camera
from talkface.render.rasterize import Fragments, interpolate, rasterize

if TYPE_CHECKING:
    from talkface.face3d.model import MorphableModel


@dataclass
class Rendered:
    """One rendered batch; the image is black where the face does not cover a pixel centre."""

    image: Tensor  # [B,3,H,W] RGB in [0,1] (0 where empty)
    mask: Tensor  # [B,1,H,W] float32 coverage {0,1}
    landmarks: Tensor  # [B,68,2] pixel coordinates, x right, y down
    fragments: Fragments


def render(coeffs: Tensor, model: "MorphableModel", camera: Camera | None = None, backend: str = "auto") -> Rendered:
    """Render coefficients [B,257] with `model` seen by `camera` (default: the 224 px 3DMM camera)."""
    camera = Camera() if camera is None else camera
    mesh = model(coeffs, camera)
    size = (camera.image_size, camera.image_size)
    fragments = rasterize(mesh.screen, mesh.vertices[..., 2], model.triangles, size, backend)
    colors = interpolate(mesh.colors, fragments, model.triangles)  # [B,H,W,3]
    # SH-lit colours can leave [0,1]; clamping keeps the image contract and passes gradients
    # wherever the colour is in range.
    image = colors.clamp(0.0, 1.0).permute(0, 3, 1, 2)
    return Rendered(image, fragments.mask.unsqueeze(1), mesh.landmarks, fragments)
