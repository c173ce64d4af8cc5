"""Losses of the memory GAN (docs/method.md, "Memory-augmented GAN"; the original's memory_seq_model.py).

All images are at the GAN boundary, in [-1, 1] (the L1 weight 100 was tuned there):

    D loss = 0.5 (BCE(D(window, real), 1) + BCE(D(window, fake), 0))
    G loss = BCE(D(window, fake), 1) + 100 L1(fake, real) + lambda_mask mean(mask) + 1e-5 TV(mask)

lambda_mask is 0.1 for the general model and 2 when fine-tuning on one person: the mask term
stops the attention mask from saturating at 1 (which would copy the render through). TV is the
original's *sum* of absolute horizontal and vertical neighbour differences of the mask, not a
mean, so its 1e-5 weight assumes 256 px masks at batch 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LAMBDA_L1 = 100.0
LAMBDA_MASK_GENERAL = 0.1
LAMBDA_MASK_FINETUNE = 2.0
LAMBDA_MASK_TV = 1e-5


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Vanilla GAN loss: BCE-with-logits of patch logits against all-real (1) or all-fake (0) labels."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))


def mask_tv(mask: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] -> scalar: summed absolute differences of horizontal and vertical neighbours."""
    return (mask[..., :, 1:] - mask[..., :, :-1]).abs().sum() + (mask[..., 1:, :] - mask[..., :-1, :]).abs().sum()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Terms "real", "fake" and their "total" = 0.5 (real + fake); fake logits from a detached image."""
    terms = {"real": gan_loss(real_logits, True), "fake": gan_loss(fake_logits, False)}
    terms["total"] = 0.5 * (terms["real"] + terms["fake"])
    return terms


def generator_loss(
    fake_logits: torch.Tensor,
    fake: torch.Tensor,
    real: torch.Tensor,
    mask: torch.Tensor,
    lambda_l1: float = LAMBDA_L1,
    lambda_mask: float = LAMBDA_MASK_GENERAL,
    lambda_mask_tv: float = LAMBDA_MASK_TV,
) -> dict[str, torch.Tensor]:
    """Unweighted terms "gan", "l1", "mask", "mask_tv" and their weighted "total".

    fake_logits: D(window, fake) [B, 1, h, w]; fake, real: [B, 3, H, W] in [-1, 1]; mask [B, 1, H, W].
    """
    if fake.shape != real.shape:
        raise ValueError(f"fake and real images differ in shape: {list(fake.shape)} vs {list(real.shape)}")
    terms = {
        "gan": gan_loss(fake_logits, True),
        "l1": F.l1_loss(fake, real),
        "mask": mask.mean(),
        "mask_tv": mask_tv(mask),
    }
    terms["total"] = (
        terms["gan"] + lambda_l1 * terms["l1"] + lambda_mask * terms["mask"] + lambda_mask_tv * terms["mask_tv"]
    )
    return terms
