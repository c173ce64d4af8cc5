"""R-Net losses (docs/method.md, "Reconstruction"; Deng et al. 2019, Sec. 3 and Deep3DFaceRecon_pytorch).

All terms compare coefficients [B, 257] with the aligned 224 px crop they were predicted from:
images [B, 3, 224, 224] in [0, 1] and landmarks [B, 68, 2] in that crop's pixels. Landmark errors
are in 224 px units, so the weights below mean what they mean in the original.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from talkface.face3d.camera import Camera
from talkface.face3d.coeffs import split_coeffs
from talkface.render.rasterize import interpolate
from talkface.render.renderer import Rendered, render

if TYPE_CHECKING:
    from talkface.face3d.model import MorphableModel

# Landmarks that count 20x (Deep3DFaceRecon_pytorch models/losses.py `landmark_loss`:
# weight[28:31] = 20, weight[-8:] = 20): three nose-bridge points and the 8 inner-lip points
# 60-67, which carry the mouth opening the audio network later learns.
HEAVY_LANDMARKS = (28, 29, 30, 60, 61, 62, 63, 64, 65, 66, 67)
HEAVY_WEIGHT = 20.0


@dataclass(frozen=True)
class LossWeights:
    """Weights of each term (docs/method.md, "Reconstruction": losses and weights)."""

    photometric: float = 1.92
    landmark: float = 1.6e-3
    regularization: float = 3e-4
    id_reg: float = 1.0  # inside the regulariser: 1.0|id|² + 0.8|exp|² + 0.017|tex|²
    exp_reg: float = 0.8
    tex_reg: float = 0.017
    gamma: float = 10.0
    reflectance: float = 5.0
    identity: float = 0.2  # used only with an identity encoder (ArcFace weights)


def landmark_weights(device: torch.device | None = None) -> Tensor:
    """[68] per-point weights: 1, and 20 on the nose bridge and inner lips."""
    weights = torch.ones(68, device=device)
    weights[list(HEAVY_LANDMARKS)] = HEAVY_WEIGHT
    return weights


def landmark_loss(predicted: Tensor, target: Tensor) -> Tensor:
    """Weighted squared distance, summed over points and divided by B·68 (as the original)."""
    squared = ((predicted - target) ** 2).sum(dim=-1)  # [B, 68]
    return (squared * landmark_weights(predicted.device)).sum() / squared.numel()


def photometric_loss(rendered: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean over `mask` [B, 1, H, W] of the per-pixel colour distance sqrt(1e-6 + |Δrgb|²)."""
    distance = torch.sqrt(1e-6 + ((rendered - target) ** 2).sum(dim=1, keepdim=True))  # [B, 1, H, W]
    return (distance * mask).sum() / mask.sum().clamp_min(1.0)


def gamma_loss(gamma: Tensor) -> Tensor:
    """Variance of the SH coefficients across R, G, B: pulls the light towards white."""
    per_channel = gamma.reshape(-1, 3, 9)
    return ((per_channel - per_channel.mean(dim=1, keepdim=True)) ** 2).mean()


def reflectance_loss(albedo: Tensor, skin: Tensor) -> Tensor:
    """Variance of the albedo [B, N, 3] over skin vertices (weights `skin` [N]): a flat skin tone."""
    weights = skin[None, :, None]  # [1, N, 1]
    mean = (albedo * weights).sum(dim=1, keepdim=True) / weights.sum()
    return (((albedo - mean) * weights) ** 2).sum() / (albedo.shape[0] * weights.sum())


def regularization_loss(coeffs: Tensor, weights: LossWeights) -> Tensor:
    """Ridge prior on shape, expression and texture, per frame: w_id|id|² + w_exp|exp|² + w_tex|tex|²."""
    c = split_coeffs(coeffs)
    total = weights.id_reg * (c.identity**2).sum() + weights.exp_reg * (c.expression**2).sum() \
        + weights.tex_reg * (c.texture**2).sum()
    return total / coeffs.shape[0]


def reconstruction_losses(
    coeffs: Tensor,
    images: Tensor,
    landmarks: Tensor,
    model: "MorphableModel",
    weights: LossWeights = LossWeights(),
    camera: Camera | None = None,
    identity_encoder: nn.Module | None = None,
    rendered: Rendered | None = None,
) -> dict[str, Tensor]:
    """Weighted loss terms of coefficients [B, 257] against images [B, 3, 224, 224] and landmarks [B, 68, 2].

    The photometric (and identity) terms render the face unless their weights are 0; pass
    `rendered` to reuse a render of `coeffs`. Returns {name: weighted scalar}; their sum is the loss.
    """
    camera = Camera() if camera is None else camera
    mesh = model(coeffs, camera)
    c = split_coeffs(coeffs)
    terms = {
        "landmark": weights.landmark * landmark_loss(mesh.landmarks, landmarks),
        "regularization": weights.regularization * regularization_loss(coeffs, weights),
        "gamma": weights.gamma * gamma_loss(c.gamma),
        "reflectance": weights.reflectance * reflectance_loss(mesh.albedo, model.skin_mask),
    }
    use_identity = identity_encoder is not None and weights.identity > 0
    if weights.photometric > 0 or use_identity:
        rendered = render(coeffs, model, camera) if rendered is None else rendered
        skin = interpolate(model.skin_mask.expand(coeffs.shape[0], -1)[..., None], rendered.fragments, model.triangles)
        mask = rendered.mask * skin.permute(0, 3, 1, 2)  # [B, 1, H, W]: covered skin pixels
        if weights.photometric > 0:
            terms["photometric"] = weights.photometric * photometric_loss(rendered.image, images, mask)
        if use_identity:
            terms["identity"] = weights.identity * identity_loss(rendered, images, landmarks, identity_encoder)
    return terms


def identity_loss(rendered: Rendered, images: Tensor, landmarks: Tensor, encoder: nn.Module) -> Tensor:
    """1 - cos between identity features of the input and the render pasted over it (both 5-point aligned)."""
    composite = rendered.image * rendered.mask + images * (1 - rendered.mask)
    points = torch.stack([
        landmarks[:, [36, 39]].mean(dim=1), landmarks[:, [42, 45]].mean(dim=1),
        landmarks[:, 30], landmarks[:, 48], landmarks[:, 54],
    ], dim=1)  # [B, 5, 2]: alignment.five_points, on tensors
    with torch.no_grad():
        target = encoder(images, points)
    return (1 - (encoder(composite, points) * target).sum(dim=-1)).mean()
