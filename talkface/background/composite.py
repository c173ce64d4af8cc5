"""Compositing the rendered face over its background frame, and the GAN's 3-frame input windows.

docs/method.md, "Compositing and paste-back" and "Memory-augmented GAN" (its input).
The render is drawn over the background crop through its alpha. The face mesh leaves holes in that
alpha (the gap between open lips, pixel specks where no triangle covers a pixel centre); without
filling them the background frame's own mouth would show through the rendered one. Filled holes
take the render's pixels (the rasterizer's empty colour: a dark mouth interior, as the original's).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

CLOSE_RADIUS = 2  # px at 256x256: bridges one-to-three-pixel cracks at the mask's edge
N_WINDOW = 3  # frames t, t-1, t-2 (docs/method.md, memory_seq input)


def shift_images(images: Tensor, offset: tuple[int, int] | Tensor) -> Tensor:
    """Move [B, C, H, W] images by whole pixels, out[y, x] = in[y - dy, x - dx]; zeros come in.

    `offset` is one (dx, dy) for the batch or an integer tensor [B, 2] of per-image (dx, dy); each
    image is one slice copy.
    """
    b, _, h, w = images.shape
    offset = torch.as_tensor(offset)
    if offset.is_floating_point() or offset.shape[-1] != 2:
        raise ValueError(f"offset must be whole pixels (dx, dy) or [B, 2] integers, got {offset}")
    out = torch.zeros_like(images)
    for i, (dx, dy) in enumerate(offset.reshape(-1, 2).expand(b, 2).tolist()):
        dx, dy = min(max(dx, -w), w), min(max(dy, -h), h)
        out[i, :, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = images[
            i, :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
        ]
    return out


def fill_mask_holes(mask: Tensor, close_radius: int = CLOSE_RADIUS) -> Tensor:
    """Bool [B, 1, H, W] -> the mask closed with a disk of `close_radius` and its enclosed holes filled.

    scipy.ndimage on the CPU over the whole batch at once: the structuring elements have no extent
    along the batch axis, so images never leak into each other. A flood fill in torch would need one
    dilation per pixel of the longest path, far slower than scipy's single pass.
    """
    m = mask[:, 0].detach().cpu().numpy().astype(bool)  # [B, H, W]
    yy, xx = np.mgrid[-close_radius : close_radius + 1, -close_radius : close_radius + 1]
    disk = (xx**2 + yy**2 <= close_radius**2)[None]  # [1, k, k]
    # Closing can erode at the image edge (scipy pads the erosion with zeros): keep the original.
    closed = ndimage.binary_closing(m, disk) | m
    cross = ndimage.generate_binary_structure(2, 1)[None]  # 4-connected holes, per image
    filled = ndimage.binary_fill_holes(closed, cross)
    return torch.from_numpy(filled)[:, None].to(mask.device)


def composite(
    render: Tensor,
    alpha: Tensor,
    background: Tensor,
    offset: tuple[int, int] | Tensor = (0, 0),
    close_radius: int = CLOSE_RADIUS,
    filled: Tensor | None = None,
) -> Tensor:
    """Render [B, 3, H, W] with alpha [B, 1, H, W], moved by the crop offset, over background [B, 3, H, W].

    `offset` (dx, dy) moves the render right by dx and down by dy (see shift_images). Inside the
    hole-filled mask the render is blended by its alpha, filled pixels counting as opaque; every
    pixel outside it is exactly the background's. All in [0, 1]. `filled`: that mask (bool
    [B, 1, H, W], fill_mask_holes of the moved alpha) when the caller has it already.
    """
    if render.shape != background.shape or alpha.shape != (render.shape[0], 1, *render.shape[2:]):
        shapes = [list(x.shape) for x in (render, alpha, background)]
        raise ValueError(f"expected render [B,3,H,W], alpha [B,1,H,W], background [B,3,H,W]; got {shapes}")
    moved = shift_images(torch.cat([render, alpha], dim=1), offset)
    render, alpha = moved[:, :3], moved[:, 3:]
    covered = alpha > 0
    inside = fill_mask_holes(covered, close_radius) if filled is None else filled
    weight = torch.where(covered, alpha, torch.ones_like(alpha))  # filled pixels are opaque
    return torch.where(inside, weight * render + (1 - weight) * background, background)


def gan_input_windows(frames: Tensor) -> Tensor:
    """[T, 3, H, W] -> [T, 9, H, W]: channels of frames t, t-1, t-2; before frame 0 it repeats frame 0."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected frames [T, 3, H, W], got {list(frames.shape)}")
    t = torch.arange(len(frames), device=frames.device)
    index = (t[:, None] - torch.arange(N_WINDOW, device=frames.device)).clamp(min=0)  # [T, 3]
    return frames[index].flatten(1, 2)  # [T, 3, 3, H, W] -> [T, 9, H, W]
