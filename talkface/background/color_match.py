"""Colour matching of the GAN's faces to the frames under them, a batch at a time on the faces' device.

docs/method.md, "Compositing and paste-back": the face is shifted and scaled in CIE Lab so that its
mean and standard deviation inside the pasted region match the frame's there. The frame under the
face is the same person in the same light, so matching statistics removes the GAN's colour drift
without touching the content. It runs in torch, a chunk at a time at the GAN's resolution, not in
OpenCV per frame at the window's: on a GPU it runs beside the GAN instead of on the CPU threads
that paste the frames back, which bounded end to end there; on one CPU thread OpenCV's version took
25 of paste-back's 41 ms a frame at a 300 px window (benchmarks/README.md, "CUDA").
"""

from __future__ import annotations

import torch
from torch import Tensor

# sRGB (D65) <-> CIE XYZ, and the D65 white point: the constants OpenCV documents for RGB <-> Lab.
RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                           [0.212671, 0.715160, 0.072169],
                           [0.019334, 0.119193, 0.950227]])
WHITE = torch.tensor([0.950456, 1.0, 1.088754])
EPSILON = 0.008856  # (6/29)^3: where the Lab curve turns linear
KAPPA = 7.787  # its slope there, (29/6)^2 / 3
# The face's Lab contrast is scaled by at most this factor either way: a nearly flat region (a tiny
# or clipped window) must not blow up the face's contrast.
MAX_GAIN = 2.0


def rgb_to_lab(images: Tensor) -> Tensor:
    """sRGB [B, 3, H, W] in [0, 1] -> CIE Lab (L in [0, 100]), as OpenCV's float COLOR_RGB2Lab."""
    linear = torch.where(images > 0.04045, ((images + 0.055) / 1.055) ** 2.4, images / 12.92)
    xyz = torch.einsum("ij,bjhw->bihw", RGB_TO_XYZ.to(images), linear) / WHITE.to(images)[:, None, None]
    f = torch.where(xyz > EPSILON, xyz.clamp(min=EPSILON) ** (1 / 3), KAPPA * xyz + 16 / 116)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIE Lab [B, 3, H, W] -> sRGB, unclamped (the inverse of rgb_to_lab)."""
    lightness, a, b = lab.unbind(1)
    fy = (lightness + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=1)
    xyz = torch.where(f > 6 / 29, f**3, (f - 16 / 116) / KAPPA) * WHITE.to(lab)[:, None, None]
    linear = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(RGB_TO_XYZ).to(lab), xyz)
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)


def match_colors(faces: Tensor, targets: Tensor, regions: Tensor, max_gain: float = MAX_GAIN) -> Tensor:
    """Faces [B, 3, H, W] with their Lab mean and std inside `regions` (bool [B, 1, H, W]) moved to the targets'.

    All RGB in [0, 1], float32; a face whose region is empty comes back unchanged.
    """
    weight = regions.to(faces.dtype)
    count = weight.sum((2, 3)).clamp(min=1)  # [B, 1]

    def statistics(lab: Tensor) -> tuple[Tensor, Tensor]:
        mean = (lab * weight).sum((2, 3)) / count  # [B, 3]
        spread = (((lab - mean[..., None, None]) ** 2 * weight).sum((2, 3)) / count).sqrt()
        return mean, spread

    face_lab = rgb_to_lab(faces)
    face_mean, face_std = statistics(face_lab)
    target_mean, target_std = statistics(rgb_to_lab(targets))
    gain = (target_std / face_std.clamp(min=1e-6)).clamp(1 / max_gain, max_gain)
    matched = (face_lab - face_mean[..., None, None]) * gain[..., None, None] + target_mean[..., None, None]
    has_region = regions.flatten(1).any(dim=1)[:, None, None, None]
    return torch.where(has_region, lab_to_rgb(matched).clamp(0, 1), faces)
