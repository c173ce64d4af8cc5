"""The memory GAN's generator: an AdaIN U-Net with colour and attention heads (docs/method.md).

The original ("memory_seq", `unet_generator_ac_adain` in render-to-video/models/networks.py):

    encoder  e1 conv | e2..e7 LReLU-conv-AdaIN | e8 LReLU-conv        (4x4, stride 2 each)
    decoder  d1..d7 ReLU-convT-AdaIN (+ dropout 0.5 on d1..d3), skip-concatenated with e7..e1
    final    ReLU-convT-AdaIN-ReLU, then colour = tanh(conv7x7), mask = sigmoid(conv7x7)
    output   mask * current frame + (1 - mask) * colour

Every AdaIN's scale and shift come from a mapping network on the 512-d identity vector. The
original mapping is an MLP 512 -> 9984 -> 9984 -> 9984 (9984 = 2 x 4992 AdaIN channels at
ngf 64): ~204M of the generator's ~259M parameters. `mapping="light"` replaces it with one
512-wide hidden layer and one linear output (the same as one linear head per AdaIN layer):
~5M parameters at ngf 64. The U-Net is unchanged.

Value ranges: this module works at the GAN boundary in [-1, 1] (as pix2pix does); the package's
images are [0, 1], so callers convert with `to_gan` / `from_gan`.

Window layout: 9 channels = frames (t, t-1, t-2) as docs/method.md lists them, so the current
frame is channels 0:3. (The original's data loader stored (t-2, t-1, t) and blended with the
*last* 3 channels; our data pipeline keeps t, t-1, t-2: docs/formats.md, converted original models.)
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from talkface.errors import ConfigError

MAPPINGS = ("light", "original")
LIGHT_HIDDEN = 512  # width of the light mapping's one hidden layer
DROPOUT_LEVELS = 3  # the first 3 decoder levels use dropout 0.5 (pix2pix U-Net, docs/method.md)
FRAME_CHANNELS = 3


def to_gan(images: torch.Tensor) -> torch.Tensor:
    """Package images in [0, 1] -> the GAN's range [-1, 1]."""
    return images * 2.0 - 1.0


def from_gan(images: torch.Tensor) -> torch.Tensor:
    """GAN images in [-1, 1] -> the package's range [0, 1] (clamped)."""
    return ((images + 1.0) * 0.5).clamp(0.0, 1.0)


class GeneratorOutput(NamedTuple):
    image: torch.Tensor  # [B, 3, H, W] in [-1, 1]: mask * current frame + (1 - mask) * color
    mask: torch.Tensor  # [B, 1, H, W] in [0, 1]: 1 keeps the input render's pixel
    color: torch.Tensor  # [B, 3, H, W] in [-1, 1]: the colour head


class AdaIN(nn.Module):
    """Instance norm whose per-sample scale and shift come from outside (style [B, 2C])."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        shift, scale = style.split(self.channels, dim=1)  # [B, C] each; the original's order (mean, std)
        x = F.instance_norm(x, eps=1e-5)
        return x * scale[:, :, None, None] + shift[:, :, None, None]


class EncoderBlock(nn.Module):
    """[LeakyReLU 0.2 ->] conv 4x4 stride 2 [-> AdaIN]: halves H and W."""

    def __init__(self, in_channels: int, out_channels: int, activate: bool, adain: bool):
        super().__init__()
        self.activate = activate
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
        self.norm = AdaIN(out_channels) if adain else None

    def forward(self, x: torch.Tensor, styles: Iterator[torch.Tensor]) -> torch.Tensor:
        if self.activate:
            x = F.leaky_relu(x, 0.2)
        x = self.conv(x)
        return self.norm(x, next(styles)) if self.norm is not None else x


class DecoderBlock(nn.Module):
    """ReLU -> transposed conv 4x4 stride 2 -> AdaIN [-> dropout 0.5]: doubles H and W."""

    def __init__(self, in_channels: int, out_channels: int, dropout: bool):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
        self.norm = AdaIN(out_channels)
        self.dropout = nn.Dropout(0.5) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor, styles: Iterator[torch.Tensor]) -> torch.Tensor:
        x = self.norm(self.conv(F.relu(x)), next(styles))
        return self.dropout(x)


def mapping_network(kind: str, identity_dim: int, n_params: int) -> nn.Sequential:
    """Identity [B, identity_dim] -> all AdaIN parameters [B, n_params]."""
    if kind == "original":  # 3 linear layers of width n_params (the original's MLP(..., n_blk=3))
        widths = [identity_dim, n_params, n_params, n_params]
    elif kind == "light":
        widths = [identity_dim, LIGHT_HIDDEN, n_params]
    else:
        raise ConfigError(f"unknown generator mapping {kind!r}; valid: {', '.join(MAPPINGS)}")
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no ReLU after the output layer


class MemoryGenerator(nn.Module):
    """(window [B, 9, H, W], identity [B, 512]) -> GeneratorOutput; H, W divisible by 2**levels.

    `levels` counts the stride-2 encoder convolutions (8 at 256 px gives a 1x1 bottleneck);
    encoder level i has ngf * min(2**i, 8) channels.
    """

    def __init__(
        self,
        in_channels: int = 9,
        out_channels: int = 3,
        ngf: int = 64,
        levels: int = 8,
        identity_dim: int = 512,
        mapping: str = "light",
        use_dropout: bool = True,
    ):
        super().__init__()
        if levels < 2:
            raise ConfigError(f"the generator needs at least 2 levels, got {levels}")
        if in_channels < FRAME_CHANNELS:
            raise ConfigError(f"the window needs at least {FRAME_CHANNELS} channels, got {in_channels}")
        self.levels = levels
        self.identity_dim = identity_dim
        widths = [ngf * min(2**i, 8) for i in range(levels)]  # encoder outputs, outermost first
        self.encoder = nn.ModuleList(
            EncoderBlock(in_channels if i == 0 else widths[i - 1], widths[i], activate=i > 0,
                         adain=0 < i < levels - 1)  # no AdaIN on the first and the innermost level
            for i in range(levels)
        )
        # decoder k maps level levels-1-k to levels-2-k; from k = 1 on, its input has the skip
        self.decoder = nn.ModuleList(
            DecoderBlock(widths[-1] if k == 0 else 2 * widths[levels - 1 - k], widths[levels - 2 - k],
                         dropout=use_dropout and k < DROPOUT_LEVELS)
            for k in range(levels - 1)
        )
        self.final = DecoderBlock(2 * widths[0], ngf, dropout=False)
        self.color_head = nn.Conv2d(ngf, out_channels, kernel_size=7, padding=3)
        self.mask_head = nn.Conv2d(ngf, 1, kernel_size=7, padding=3)
        self.style_sizes = [2 * m.channels for m in self.modules() if isinstance(m, AdaIN)]
        self.mapping = mapping_network(mapping, identity_dim, sum(self.style_sizes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """pix2pix init (weights N(0, 0.02), biases 0); AdaIN scales start at 1, not at ~0."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                nn.init.zeros_(module.bias)
        # The original's raw MLP outputs made every AdaIN scale ~0 at the start; a bias of 1 on
        # the scale half of each layer's style starts from plain instance norm instead.
        with torch.no_grad():
            for style in self.mapping[-1].bias.split(self.style_sizes):
                style[style.numel() // 2:] = 1.0

    def forward(self, window: torch.Tensor, identity: torch.Tensor) -> GeneratorOutput:
        self._check_inputs(window, identity)
        styles = iter(self.mapping(identity).split(self.style_sizes, dim=1))  # [B, 2C] per AdaIN
        skips = []
        x = window  # [B, 9, H, W]
        for block in self.encoder:
            x = block(x, styles)
            skips.append(x)  # level i: [B, ngf*min(2^i, 8), H/2^(i+1), W/2^(i+1)]
        x = skips.pop()  # innermost [B, 8ngf, H/2^levels, W/2^levels]
        for block in self.decoder:
            x = torch.cat([block(x, styles), skips.pop()], dim=1)
        features = F.relu(self.final(x, styles))  # [B, ngf, H, W]
        color = torch.tanh(self.color_head(features))  # [B, 3, H, W]
        mask = torch.sigmoid(self.mask_head(features))  # [B, 1, H, W]
        current = window[:, :FRAME_CHANNELS]  # frame t
        image = mask * current + (1.0 - mask) * color
        return GeneratorOutput(image=image, mask=mask, color=color)

    def _check_inputs(self, window: torch.Tensor, identity: torch.Tensor) -> None:
        step = 2**self.levels
        in_channels = self.encoder[0].conv.in_channels
        if window.ndim != 4 or window.shape[1] != in_channels:
            raise ValueError(f"expected window [B, {in_channels}, H, W], got {list(window.shape)}")
        if window.shape[2] % step or window.shape[3] % step:
            raise ValueError(f"window H and W must be multiples of 2**levels = {step}, got {list(window.shape[2:])}")
        if identity.shape != (window.shape[0], self.identity_dim):
            raise ValueError(f"expected identity [{window.shape[0]}, {self.identity_dim}], got {list(identity.shape)}")
