"""Second-order spherical-harmonics (9-band) Lambertian lighting, as in Deep3DFaceRecon (docs/method.md)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Lambertian attenuation a_n and SH normalisation c_n for bands 0, 1, 2 (docs/method.md, the 3D morphable model).
_A = (math.pi, 2.0 * math.pi / math.sqrt(3.0), 2.0 * math.pi / math.sqrt(8.0))
_C = (
    1.0 / math.sqrt(4.0 * math.pi),
    math.sqrt(3.0) / math.sqrt(4.0 * math.pi),
    3.0 * math.sqrt(5.0) / math.sqrt(12.0 * math.pi),
)

# Ambient light added to band 0 of every channel, so zero gamma means a uniform white light of 0.8.
AMBIENT = 0.8


def sh_basis(normals: Tensor) -> Tensor:
    """[..., 3] unit normals -> [..., 9] SH basis with the constants and signs of docs/method.md."""
    x, y, z = normals.unbind(-1)
    k0, k1, k2 = _A[0] * _C[0], _A[1] * _C[1], _A[2] * _C[2]
    return torch.stack(
        [
            torch.full_like(x, k0),
            -k1 * y,
            k1 * z,
            -k1 * x,
            k2 * x * y,
            -k2 * y * z,
            0.5 * k2 / math.sqrt(3.0) * (3.0 * z * z - 1.0),
            -k2 * x * z,
            0.5 * k2 * (x * x - y * y),
        ],
        dim=-1,
    )


def shade(normals: Tensor, albedo: Tensor, gamma: Tensor) -> Tensor:
    """Lit colours [B, N, 3] from unit normals [B, N, 3], albedo [B, N, 3] and SH gamma [B, 27].

    gamma is laid out channel-major (R's 9 bands, then G's, then B's), as in the coefficients.
    """
    gamma = gamma.reshape(gamma.shape[0], 3, 9)  # [B, 3 channels, 9 bands]
    ambient = torch.zeros_like(gamma[:1])
    ambient[..., 0] = AMBIENT
    irradiance = sh_basis(normals) @ (gamma + ambient).transpose(1, 2)  # [B, N, 9] @ [B, 9, 3]
    return irradiance * albedo
