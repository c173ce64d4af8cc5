"""The fixed pinhole camera of Deep3DFaceRecon and the Euler-angle head rotation (docs/method.md).

Spaces:
- model space: the morphable model's units (decimetres), x right, y up, z towards the camera;
- world space: model space after the head rotation and translation;
- camera space: world with z replaced by `distance - z`, so depth = z > 0 (x right, y up kept);
- image space: continuous pixel coordinates, x right, y DOWN; the pixel in row i, column j covers
  [j, j+1) x [i, i+1) and its centre is (j + 0.5, i + 0.5).

Deep3DFaceRecon projects to (f x / z + c, f y / z + c) with y up and compares with detected
landmarks flipped as y_up = H - 1 - y. Its renderer (nvdiffrast, pixel centres at half-integers)
places a projected point at our continuous coordinates with y_down = H - y_up, so renders agree;
only its landmark flip (H - 1 - y) differs from ours (H - y) by half a pixel. Landmark
detectors report pixel-index coordinates (centre of pixel j at j); every landmark backend adds the
0.5 on the way in (talkface/recon/landmarks.py, `to_pixel_centres`), so all landmarks in the
package are already in these image coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking down -z of world space from (0, 0, distance); defaults from docs/method.md."""

    focal: float = 1015.0  # pixels
    center: float = 112.0  # principal point (x and y, pixels)
    image_size: int = 224  # square image side, pixels
    distance: float = 10.0  # camera position on the world z axis (model units)
    near: float = 5.0
    far: float = 15.0

    @property
    def fov(self) -> float:
        """Full field of view in radians (2·atan(112/1015) ≈ 12.59° by default)."""
        return 2.0 * math.atan(self.center / self.focal)

    def to_camera(self, points: Tensor) -> Tensor:
        """[..., 3] world -> camera space (z <- distance - z; a new tensor, the input is untouched)."""
        return torch.cat([points[..., :2], self.distance - points[..., 2:]], dim=-1)

    def project(self, points_cam: Tensor) -> Tensor:
        """[..., 3] camera space -> [..., 2] continuous pixel coordinates, x right, y down."""
        xy = self.focal * points_cam[..., :2] / points_cam[..., 2:]
        x = xy[..., 0] + self.center
        y_up = xy[..., 1] + self.center
        return torch.stack([x, self.image_size - y_up], dim=-1)

    def resized(self, image_size: int) -> "Camera":
        """The same field of view rendered at `image_size` pixels."""
        scale = image_size / self.image_size
        return Camera(self.focal * scale, self.center * scale, image_size, self.distance, self.near, self.far)


def rotation_matrix(angles: Tensor) -> Tensor:
    """[..., 3] Euler angles (x, y, z radians) -> [..., 3, 3] R = Rz @ Ry @ Rx (column vectors: p' = R p).

    Deep3DFaceRecon returns the transpose and multiplies row vectors (p @ R^T); same rotation.
    """
    cos, sin = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(angles[..., 0]), torch.zeros_like(angles[..., 0])
    cx, cy, cz = cos.unbind(-1)
    sx, sy, sz = sin.unbind(-1)
    rx = _matrix(one, zero, zero, zero, cx, -sx, zero, sx, cx)
    ry = _matrix(cy, zero, sy, zero, one, zero, -sy, zero, cy)
    rz = _matrix(cz, -sz, zero, sz, cz, zero, zero, zero, one)
    return rz @ ry @ rx


def _matrix(*entries: Tensor) -> Tensor:
    """Nine [...] tensors in row-major order -> [..., 3, 3]."""
    return torch.stack(entries, dim=-1).reshape(*entries[0].shape, 3, 3)
