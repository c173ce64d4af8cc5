"""Validation of the memory GAN: held-out clips streamed through the test-time path, scored by PSNR and SSIM.

Each clip runs as one stream from its first frame (model.IdentityStream: identity from memory
reads, as at inference); the GAN output and the composited render are both scored against the
real frames, so the figures say what the GAN adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from talkface.gan.data import PairClip, render_window, to_float
from talkface.gan.model import GanNetworks, IdentityStream, enhance_windows


@dataclass
class GanValidation:
    """Held-out clips, each scored as one stream from its first frame (the test-time identity path)."""

    clips: Sequence[PairClip]
    batch_size: int = 16

    @torch.no_grad()
    def __call__(self, networks: GanNetworks, device: torch.device) -> dict[str, float]:
        outputs, renders, reals = [], [], []
        for clip in self.clips:
            stream = IdentityStream(networks.memory, networks.keys)
            frames = list(clip.frames)
            for start in range(0, len(frames), self.batch_size):
                index = frames[start:start + self.batch_size]
                windows = torch.stack([render_window(clip.renders, t) for t in index]).to(device)
                output, _ = enhance_windows(networks.generator, stream, windows)
                outputs.append(output.cpu().numpy())
                renders.append(windows[:, :3].cpu().numpy())
                reals.append(to_float(clip.reals[index]).numpy())
        return image_scores(np.concatenate(outputs), np.concatenate(renders), np.concatenate(reals))


def image_scores(output: np.ndarray, render: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of the GAN output and of the composited render against the real frames ([N, 3, S, S])."""
    from talkface.metrics import psnr, ssim

    return {"psnr_gan": psnr(output, real), "psnr_render": psnr(render, real),
            "ssim_gan": ssim(output, real), "ssim_render": ssim(render, real)}
