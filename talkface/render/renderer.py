"""Render 257 coefficients through the morphable model: a lit face image, its mask and landmarks.

The one render path: reconstruction renders in the aligned crop's camera, the animation through
an image map into the clip window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
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


def render(coeffs: Tensor, model: "MorphableModel", camera: Camera | None = None, backend: str = "auto",
           image_map: Tensor | np.ndarray | None = None, size: int | None = None) -> Rendered:
    """Render coefficients [B,257] with `model` seen by `camera` (default: the 224 px 3DMM camera).

    `image_map` [B, 2, 3] carries each camera image into the output image (scale + shift, e.g. a
    frame's aligned crop into the clip window: background/animation.py): screen positions are
    mapped and depths kept. The perspective-correct barycentrics are invariant under an affine map
    of the screen, so this is the render of a camera with focal and principal point scaled and
    shifted. `size`: the output side (default the camera's). Landmarks come back in output pixels.
    """
    camera = Camera() if camera is None else camera
    mesh = model(coeffs, camera)
    screen = mesh.screen  # [B, N, 2]
    if image_map is not None:
        affine = torch.as_tensor(image_map, dtype=coeffs.dtype, device=coeffs.device)  # [B, 2, 3]
        screen = screen @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]
    side = camera.image_size if size is None else size
    fragments = rasterize(screen, mesh.vertices[..., 2], model.triangles, (side, side), backend)
    colors = interpolate(mesh.colors, fragments, model.triangles)  # [B,H,W,3]
    # SH-lit colours can leave [0,1]; clamping keeps the image contract and passes gradients
    # wherever the colour is in range.
    image = colors.clamp(0.0, 1.0).permute(0, 3, 1, 2)
    return Rendered(image, fragments.mask.unsqueeze(1), screen[:, model.keypoints], fragments)
