"""Colour matching of GAN faces to the frames under them (background/color_match.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab

from talkface.background.color_match import MAX_GAIN, lab_to_rgb, match_colors, rgb_to_lab


def test_lab_agrees_with_scikit_image_and_inverts():
    images = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    images[0, :, 0, :3] = torch.tensor([0.0, 1.0, 0.002])[None]  # black, white, the curve's linear part
    reference = np.stack([rgb2lab(image.permute(1, 2, 0).double().numpy()) for image in images])
    lab = rgb_to_lab(images)
    assert np.abs(lab.permute(0, 2, 3, 1).numpy() - reference).max() < 0.01  # L in [0, 100]
    assert torch.allclose(lab_to_rgb(lab), images, atol=1e-5)


def lab_statistics(images: torch.Tensor, region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lab = rgb_to_lab(images).permute(0, 2, 3, 1)[region[:, 0]]  # [n, 3]
    return lab.mean(0), lab.std(0, unbiased=False)


def test_matched_face_takes_the_targets_lab_statistics_inside_the_region():
    generator = torch.Generator().manual_seed(1)
    target = 0.3 + 0.4 * torch.rand(1, 3, 24, 24, generator=generator)
    face = (0.8 * target + torch.tensor([0.15, -0.05, -0.1])[None, :, None, None]).clamp(0, 1)  # a colour cast
    region = torch.zeros(1, 1, 24, 24, dtype=torch.bool)
    region[..., 4:20, 6:18] = True
    matched = match_colors(face, target, region)
    for got, want in zip(lab_statistics(matched, region), lab_statistics(target, region)):
        assert torch.allclose(got, want, atol=0.05)
    assert (matched - target).abs()[region.expand_as(target)].mean() < 0.25 * (face - target).abs().mean()


def test_a_flat_target_limits_the_gain_and_an_empty_region_changes_nothing():
    face = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    flat = torch.full_like(face, 0.5)
    region = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    region[1] = False
    matched = match_colors(face, flat, region)
    face_std = lab_statistics(face[:1], region[:1])[1]
    assert torch.allclose(lab_statistics(matched[:1], region[:1])[1], face_std / MAX_GAIN, rtol=0.05)
    assert torch.equal(matched[1], face[1])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_the_cpu():
    generator = torch.Generator().manual_seed(3)
    face, target = torch.rand(2, 4, 3, 32, 32, generator=generator)
    region = torch.rand(4, 1, 32, 32, generator=generator) > 0.3
    on_cpu = match_colors(face, target, region)
    on_cuda = match_colors(face.cuda(), target.cuda(), region.cuda()).cpu()
    assert torch.allclose(on_cpu, on_cuda, atol=1e-4)
