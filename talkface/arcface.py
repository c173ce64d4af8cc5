"""ArcFace: a frozen insightface IResNet that maps a face to a unit-norm identity embedding.

Shared by the R-Net's identity loss (recon/losses.py) and the memory GAN's "arcface" identity
encoder (gan/identity.py). The network is arcface_torch's `backbone.pth`, its layout and depth
(18/34/50/100) read from the file; faces are cut to ArcFace's 112 px 5-point crop first.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from talkface.errors import TalkfaceError
from talkface.train.checkpoint import load_strict, load_weight_file, strip_wrapper_prefixes

ARCFACE_DIM = 512  # the embedding size of every arcface_torch IResNet
ARCFACE_WEIGHTS = Path("checkpoints/arcface/backbone.pth")
ARCFACE_SOURCE = (
    "download an IResNet-50/100 backbone.pth from the insightface arcface_torch model zoo "
    "(https://github.com/deepinsight/insightface/tree/master/recognition/arcface_torch, e.g. "
    "ms1mv3_arcface_r100_fp16/backbone.pth) and place it at {path}"
)
ARCFACE_SIZE = 112
# insightface's 5-point ArcFace template for 112x112 crops (eyes, nose tip, mouth corners; the
# same order as talkface.recon.alignment.five_points). It is given in OpenCV's convention (pixel
# centres on integers); +0.5 moves it to ours (docs/formats.md, pixel convention: centres at j + 0.5).
ARCFACE_TEMPLATE = torch.tensor(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
) + 0.5


class FrozenModule(nn.Module):
    """A module with fixed weights: no gradients to its parameters, BatchNorm always in eval mode."""

    def freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenModule:
        return super().train(False)


class IBasicBlock(nn.Module):
    """insightface's pre-activation residual block: BN, conv3x3, BN, PReLU, conv3x3 (stride), BN."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes, eps=1e-5)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes, eps=1e-5)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """insightface arcface_torch IResNet (module names as in backbones/iresnet.py): 112 px -> [B, 512].

    `blocks` per stage: (2, 2, 2, 2) r18, (3, 4, 6, 3) r34, (3, 4, 14, 3) r50, (3, 13, 30, 3) r100.
    Input RGB normalised to [-1, 1]; output the un-normalised embedding.
    """

    def __init__(self, blocks: tuple[int, int, int, int], dim: int = ARCFACE_DIM):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        in_planes = 64
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
            layer = [IBasicBlock(in_planes if i == 0 else planes, planes, 2 if i == 0 else 1) for i in range(count)]
            self.add_module(f"layer{stage}", nn.Sequential(*layer))
            in_planes = planes
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.fc = nn.Linear(512 * 7 * 7, dim)  # 112 px / 2**4 = 7
        self.features = nn.BatchNorm1d(dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))  # [B, 64, 112, 112]
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # [B, 512, 7, 7]
        return self.features(self.fc(self.bn2(x).flatten(1)))  # [B, dim]


def iresnet_blocks(state: dict[str, torch.Tensor]) -> tuple[int, int, int, int]:
    """Blocks per stage of an IResNet state dict, from its `layerN.i.` keys."""
    counts = [0, 0, 0, 0]
    for key in state:
        match = re.match(r"layer([1-4])\.(\d+)\.", key)
        if match:
            stage = int(match.group(1)) - 1
            counts[stage] = max(counts[stage], int(match.group(2)) + 1)
    return tuple(counts)  # type: ignore[return-value]


def align_arcface(images: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
    """[B, 3, H, W] -> [B, 3, 112, 112] ArcFace crops.

    With 5 points [B, 5, 2] (pixel coordinates, order of `five_points`): the least-squares
    similarity from the ArcFace template onto the points, sampled bilinearly. Without: the
    central square, resized (for crops already framed like ArcFace's, e.g. the GAN's 256 px crops).
    """
    height, width = images.shape[-2:]
    if points is None:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        square = images[..., top:top + side, left:left + side]
        return F.interpolate(square, size=(ARCFACE_SIZE, ARCFACE_SIZE), mode="bilinear",
                             align_corners=False, antialias=True)
    if points.shape != (images.shape[0], 5, 2):
        raise ValueError(f"expected points [{images.shape[0]}, 5, 2], got {list(points.shape)}")
    # Downscale first when the face is large, so that the bilinear warp does not alias.
    template = ARCFACE_TEMPLATE.to(points)
    shrink = float((points[:, 1] - points[:, 0]).norm(dim=-1).min() / (template[1] - template[0]).norm())
    if shrink > 1.5:
        size = (round(height / shrink), round(width / shrink))
        points = points * torch.tensor([size[1] / width, size[0] / height]).to(points)
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        height, width = size
    # x = a u - b v + tx, y = b u + a v + ty maps template (u, v) into the image.
    u, v = template[:, 0], template[:, 1]
    one, zero = torch.ones_like(u), torch.zeros_like(u)
    design = torch.stack([torch.stack([u, -v, one, zero], 1), torch.stack([v, u, zero, one], 1)], 1)  # [5, 2, 4]
    a, b, tx, ty = (points.reshape(-1, 10) @ torch.linalg.pinv(design.reshape(10, 4)).T).unbind(1)  # [B] each
    centres = torch.arange(ARCFACE_SIZE, dtype=points.dtype, device=points.device) + 0.5
    gv, gu = torch.meshgrid(centres, centres, indexing="ij")  # output pixel centres [112, 112]
    x = a[:, None, None] * gu - b[:, None, None] * gv + tx[:, None, None]  # [B, 112, 112]
    y = b[:, None, None] * gu + a[:, None, None] * gv + ty[:, None, None]
    grid = torch.stack([2.0 * x / width - 1.0, 2.0 * y / height - 1.0], dim=-1)  # align_corners=False
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False)


class ArcFaceEncoder(FrozenModule):
    """Frozen insightface IResNet: [B, 3, H, W] in [0, 1] (+ optional 5 points) -> unit-norm [B, 512]."""

    def __init__(self, blocks: tuple[int, int, int, int] = (3, 13, 30, 3)):
        super().__init__()
        self.backbone = IResNet(blocks)
        self.freeze()

    def forward(self, images: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        crops = align_arcface(images, points)  # [B, 3, 112, 112] in [0, 1]
        return F.normalize(self.backbone(crops * 2.0 - 1.0), dim=1)  # arcface_torch: (x - 0.5) / 0.5

    @classmethod
    def from_file(cls, path: str | Path) -> ArcFaceEncoder:
        """Load insightface's `backbone.pth` (an IResNet state dict of any depth)."""
        path = Path(path)
        state = strip_wrapper_prefixes(load_weight_file(path, "ArcFace", ARCFACE_SOURCE.format(path=path)))
        blocks = iresnet_blocks(state)
        if not all(blocks):
            raise TalkfaceError(f"not an insightface IResNet state dict (blocks per stage {blocks})", path)
        encoder = cls(blocks)
        for name, buffer in encoder.backbone.state_dict().items():
            if name.endswith("num_batches_tracked"):  # older torch did not save these counters
                state.setdefault(name, buffer)
        load_strict(encoder.backbone, state, "insightface IResNet", path)
        encoder.freeze()
        return encoder
