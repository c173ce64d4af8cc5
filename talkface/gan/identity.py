"""Identity features for the memory GAN, and the memory's key encoder (docs/method.md, "Memory-augmented GAN").

Identity encoders map real frames [B, 3, H, W] in [0, 1] to L2-normalised features [B, 512]:
the generator's AdaIN input during training and the memory's values. Two, behind
`make_identity_encoder(name, weights)`:

- "learned": a small CNN with no external weights, trained with the GAN.
- "arcface": the frozen ArcFace network (talkface/arcface.py), as the original used one.

`KeyEncoder` turns the rendered input into the memory's query: ImageNet ResNet-18 features
(frozen when loaded from torchvision's file, as in the original), Linear(512, 512), L2 norm.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from talkface import tvcompat  # noqa: F401, I001 - must precede torchvision on CPU torch
import torchvision  # isort: skip
from talkface.arcface import ARCFACE_DIM, ARCFACE_WEIGHTS, ArcFaceEncoder
from talkface.errors import ConfigError
from talkface.train.checkpoint import load_strict, load_weight_file, strip_wrapper_prefixes

IDENTITY_DIM = ARCFACE_DIM  # the identity code is an ArcFace embedding, whichever encoder makes it
ENCODERS = ("learned", "arcface")

RESNET18_FILE = "resnet18-f37072fd.pth"
RESNET18_URL = f"https://download.pytorch.org/models/{RESNET18_FILE}"
RESNET18_WEIGHTS = Path("checkpoints") / RESNET18_FILE  # the documented place for KeyEncoder(pretrained=...)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LearnedIdentityEncoder(nn.Module):
    """[B, 3, H, W] in [0, 1] -> unit-norm [B, dim]: five stride-2 convs, mean pool, linear.

    No normalisation layers: the GAN trains at batch 1 (docs/method.md), where BatchNorm misbehaves.
    """

    def __init__(self, dim: int = IDENTITY_DIM, width: int = 32):
        super().__init__()
        widths = [3] + [width * 2**i for i in range(5)]  # 3 -> 32 -> ... -> 512
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(fan_in, fan_out, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.project = nn.Linear(widths[-1], dim)

    def forward(self, images: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """`points` keeps the interface of ArcFaceEncoder; this encoder reads the whole crop."""
        x = self.features(images * 2.0 - 1.0)  # [B, 16w, H/32, W/32]
        return F.normalize(self.project(x.mean(dim=(2, 3))), dim=1)  # [B, dim]


def make_identity_encoder(name: str, weights: str | Path | None = None) -> nn.Module:
    """The identity encoder called `name` ("learned" or "arcface"); see the module docstring.

    "arcface" reads `weights` (default checkpoints/arcface/backbone.pth); "learned" takes none.
    """
    if name == "learned":
        if weights is not None:
            raise ConfigError(f"the learned identity encoder has no weights file (got {weights}); "
                              "it trains with the GAN and is saved in the GAN's checkpoint")
        return LearnedIdentityEncoder()
    if name == "arcface":
        return ArcFaceEncoder.from_file(ARCFACE_WEIGHTS if weights is None else weights)
    raise ConfigError(f"unknown identity encoder {name!r}; valid: {', '.join(ENCODERS)}")


class KeyEncoder(nn.Module):
    """The memory's query: [B, 3, H, W] render in [0, 1] -> unit-norm key [B, dim].

    ResNet-18 pooled features (ImageNet-normalised input, as the original) -> Linear -> L2 norm.
    `pretrained`: torchvision's ImageNet file (resnet18-f37072fd.pth, under checkpoints/); the
    backbone is then frozen, as in the original, and only the linear layer trains. None: the
    whole encoder trains from scratch.
    """

    def __init__(self, pretrained: str | Path | None = None, dim: int = 512):
        super().__init__()
        self.backbone = torchvision.models.resnet18(weights=None)
        self.backbone.fc = nn.Identity()  # pooled [B, 512]
        self.frozen = pretrained is not None
        if pretrained is not None:
            path = Path(pretrained)
            state = strip_wrapper_prefixes(
                load_weight_file(path, "ImageNet ResNet-18", f"download {RESNET18_URL} and place it at {path}")
            )
            load_strict(self.backbone, {k: v for k, v in state.items() if not k.startswith("fc.")},
                         "torchvision ResNet-18", path)
            self.backbone.requires_grad_(False)
        self.project = nn.Linear(512, dim)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[:, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[:, None, None], persistent=False)
        self.train()

    def train(self, mode: bool = True) -> KeyEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # frozen BatchNorm keeps ImageNet statistics
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone((images - self.mean) / self.std)  # [B, 512]
        return F.normalize(self.project(features), dim=1)  # [B, dim]
