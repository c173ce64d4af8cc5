"""R-Net: aligned face crop -> 257 coefficients (docs/method.md, "Reconstruction"; Deng et al. 2019).

A torchvision ResNet-50 whose pooled 2048 features feed seven 1x1 convolutions, one per block of
the coefficient layout. Module names follow Deep3DFaceRecon_pytorch's `ReconNetWrapper`
(models/networks.py): `backbone.*` is a torchvision ResNet-50 without `fc`, `final_layers.0..6`
are the heads (id 80, exp 64, tex 80, angles 3, gamma 27, tx/ty 2, tz 1). Their outputs are
concatenated in that order, which is exactly our layout (talkface/face3d/coeffs.py), so a public
checkpoint's 'net_recon' state dict loads with `load_state_dict` and needs no reordering.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from talkface import tvcompat  # noqa: F401, I001 - must precede torchvision on CPU torch
import torchvision  # isort: skip
from talkface.errors import TalkfaceError
from talkface.face3d.coeffs import N_ANGLES, N_EXPRESSION, N_GAMMA, N_IDENTITY, N_TEXTURE, N_TRANSLATION
from talkface.train.checkpoint import FORMAT, load_weight_file, strip_wrapper_prefixes

# id, exp, tex, angles, gamma, (tx, ty), tz: the coefficient layout, translation in two heads.
HEAD_SIZES = (N_IDENTITY, N_EXPRESSION, N_TEXTURE, N_ANGLES, N_GAMMA, N_TRANSLATION - 1, 1)
N_FEATURES = 2048  # ResNet-50 pooled features
# Pooled feature size per backbone. resnet50 is the default and the public checkpoint's layout;
# resnet18 is a small net for CPU tests and from-scratch experiments (no public weights).
BACKBONES = {"resnet50": N_FEATURES, "resnet18": 512}

IMAGENET_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
RNET_SOURCE = (
    "download Deep3DFaceRecon_pytorch's released model (epoch_20.pth, linked from "
    "https://github.com/sicxu/Deep3DFaceRecon_pytorch#inference-with-a-pre-trained-model) "
    "and place it at checkpoints/recon/epoch_20.pth"
)


class ReconNet(nn.Module):
    """RGB [B, 3, 224, 224] in [0, 1] (aligned as in alignment.py) -> coefficients [B, 257].

    All head weights and biases start at zero, so an untrained net predicts zero coefficients:
    the mean face, frontal, at the default distance, under ambient light (docs/method.md).
    `pretrained_backbone`: torchvision's ImageNet file of `backbone` (resnet50-0676ba61.pth), as
    Deep3DFaceRecon initialises training; None starts from random backbone weights.
    """

    def __init__(self, pretrained_backbone: str | Path | None = None, backbone: str = "resnet50"):
        super().__init__()
        if backbone not in BACKBONES:
            raise TalkfaceError(f"unknown R-Net backbone {backbone!r}; valid: {', '.join(BACKBONES)}")
        self.backbone = getattr(torchvision.models, backbone)(weights=None)
        self.backbone.fc = nn.Identity()  # no parameters: the state dict has no fc keys, like the original
        if pretrained_backbone is not None:
            self._load_backbone(Path(pretrained_backbone))
        self.final_layers = nn.ModuleList(nn.Conv2d(BACKBONES[backbone], size, kernel_size=1) for size in HEAD_SIZES)
        for head in self.final_layers:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def _load_backbone(self, path: Path) -> None:
        where = f"download {IMAGENET_URL} and place it at {path}"
        state = load_weight_file(path, "ImageNet ResNet-50", where)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        try:
            self.backbone.load_state_dict(state)
        except RuntimeError as error:
            raise TalkfaceError(f"not a torchvision ResNet-50 state dict ({str(error).splitlines()[0]})", path) from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {list(images.shape)}")
        features = self.backbone(images)[:, :, None, None]  # [B, 2048 (resnet50), 1, 1]
        coeffs = torch.cat([head(features) for head in self.final_layers], dim=1)  # [B, 257, 1, 1]
        return coeffs.flatten(1)  # [B, 257]


def load_rnet(path: str | Path, model_name: str | None = None) -> ReconNet:
    """A ReconNet from a Deep3DFaceRecon checkpoint ('net_recon') or a talkface checkpoint.

    A talkface checkpoint may hold several models; `model_name` picks one (default: its only one).
    The returned net is on the CPU in eval mode.
    """

    path = Path(path)
    backbone = "resnet50"  # Deep3DFaceRecon's; a talkface checkpoint records its own
    checkpoint = load_weight_file(path, "R-Net", RNET_SOURCE)
    if "net_recon" in checkpoint:
        state = checkpoint["net_recon"]
    elif checkpoint.get("format") == FORMAT:
        models = checkpoint["models"]
        if model_name is None and len(models) == 1:
            (model_name,) = models
        if model_name not in models:
            raise TalkfaceError(f"holds models {sorted(models)}; name the R-Net with model_name", path)
        state = strip_wrapper_prefixes(models[model_name])
        backbone = checkpoint.get("model_args", {}).get(model_name, {}).get("backbone", backbone)
    else:
        raise TalkfaceError(f"neither a Deep3DFaceRecon checkpoint ('net_recon') nor a {FORMAT} file", path)
    net = ReconNet(backbone=backbone)
    _load_exact(net, state, path)
    return net.eval()


def is_deep3d_checkpoint(path: str | Path) -> bool:
    """Whether `path` is a Deep3DFaceRecon checkpoint (its net under 'net_recon'), memory-mapped, not read.

    A file that cannot be read is not one; `load_rnet` says why when the R-Net is loaded.
    """
    for mmap in (True, False):  # the legacy (non-zip) format cannot be memory-mapped
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, OSError):
            continue
        return isinstance(checkpoint, dict) and "net_recon" in checkpoint
    return False


def _load_exact(net: ReconNet, state: dict, path: Path) -> None:
    """load_state_dict(strict=True), reporting missing, unexpected and mis-shaped keys in one line."""
    expected = net.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    mismatched = sorted(k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape)
    problems = {"missing": missing, "unexpected": unexpected, "wrong shape": mismatched}
    if any(problems.values()):
        detail = "; ".join(f"{kind}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for kind, keys in problems.items() if keys)
        raise TalkfaceError(f"R-Net weights do not match ReconNet ({detail})", path)
    net.load_state_dict(state, strict=True)
