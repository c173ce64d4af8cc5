"""Conditional PatchGAN discriminator (pix2pix `NLayerDiscriminator`, docs/method.md).

With 3 layers: conv 4x4 stride 2 (no norm) -> 2 x [conv 4x4 stride 2, norm] -> conv 4x4 stride 1,
norm -> conv 4x4 stride 1 to one logit per patch, LeakyReLU 0.2 between. Each logit sees a
70x70 input patch. Widths ndf, 2ndf, 4ndf, 8ndf (capped at 8ndf). The original memory_seq model
ran it with norm='batch' (its model defaults), so that is our default; convolutions followed by a
norm have no bias, as in pix2pix (a bias is kept for InstanceNorm, which has no affine shift).
The input is the 9-channel window and the 3-channel image, concatenated: 12 channels.
"""

from __future__ import annotations

import torch
from torch import nn

from talkface.errors import ConfigError

NORMS = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}
KERNEL = 4


class PatchDiscriminator(nn.Module):
    """(condition [B, 9, H, W], image [B, 3, H, W]) in [-1, 1] -> patch logits [B, 1, h, w].

    At 256 px and 3 layers, h = w = 30, and each logit sees a 70 x 70 px patch (`layers` stride-2
    convolutions, then two stride-1, kernel 4).
    """

    def __init__(self, in_channels: int = 12, ndf: int = 64, layers: int = 3, norm: str = "batch"):
        super().__init__()
        if norm not in NORMS:
            raise ConfigError(f"unknown discriminator norm {norm!r}; valid: {', '.join(NORMS)}")
        norm_layer = NORMS[norm]
        use_bias = norm == "instance"
        blocks: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, KERNEL, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        width = ndf
        for n in range(1, layers + 1):
            next_width = ndf * min(2**n, 8)
            stride = 2 if n < layers else 1
            blocks += [
                nn.Conv2d(width, next_width, KERNEL, stride=stride, padding=1, bias=use_bias),
                norm_layer(next_width),
                nn.LeakyReLU(0.2),
            ]
            width = next_width
        blocks.append(nn.Conv2d(width, 1, KERNEL, stride=1, padding=1))
        self.net = nn.Sequential(*blocks)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """pix2pix init: conv weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        pair = torch.cat([condition, image], dim=1)  # [B, 12, H, W]
        expected = self.net[0].in_channels
        if pair.shape[1] != expected:
            raise ValueError(f"condition + image must have {expected} channels, got {pair.shape[1]}")
        return self.net(pair)  # [B, 1, H/8 - 2, W/8 - 2] for 3 layers
