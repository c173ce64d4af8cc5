"""The R-Net training stage: a Task for the shared Trainer and `train_rnet`; its data is data.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import torch
from torch import nn

from talkface.errors import TalkfaceError
from talkface.recon.data import AlignedFrames
from talkface.recon.losses import LossWeights, reconstruction_losses
from talkface.recon.model import ReconNet
from talkface.train.config import TrainConfig
from talkface.train.rng import seed_everything
from talkface.train.task import StepContext, Task
from talkface.train.trainer import Trainer


@dataclass
class ReconDataConfig:
    clips: list[str] = field(default_factory=list)  # workspaces or clip folders (data.py's docstring)
    landmarks: str = "truth/landmarks.npy"  # inside a clip folder
    max_frames: int = 300  # per clip folder


@dataclass
class ReconModelConfig:
    backbone: Literal["resnet50", "resnet18"] = "resnet50"  # resnet50 = Deep3DFaceRecon's layout
    imagenet: Optional[str] = None  # torchvision ImageNet weights of the backbone (e.g. checkpoints/resnet50-0676ba61.pth)
    weights: Optional[str] = None  # start from an R-Net checkpoint (Deep3DFaceRecon epoch_20.pth or a talkface run)


@dataclass
class ReconConfig:
    """configs/recon.yaml."""

    run_dir: str = "runs/recon"
    morphable_model: str = "auto"  # the BFM file when present, else "synthetic"; or a .mat path, or "synthetic"
    data: ReconDataConfig = field(default_factory=ReconDataConfig)
    model: ReconModelConfig = field(default_factory=ReconModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    arcface: Optional[str] = None  # ArcFace backbone.pth: enables the identity loss
    lr: float = 1e-4  # Adam (docs/method.md)
    lr_decay_steps: Optional[int] = None  # x0.2 every this many steps (the original: every 10 epochs)
    train: TrainConfig = field(default_factory=TrainConfig)


def draw_points(images: torch.Tensor, points: torch.Tensor, colour: tuple[float, float, float]) -> torch.Tensor:
    """Copy of images [B, 3, H, W] with 3x3 dots at points [B, K, 2] (continuous pixel coordinates)."""
    out = images.clone()
    height, width = images.shape[-2:]
    cols = points[..., 0].floor().long()
    rows = points[..., 1].floor().long()
    value = torch.tensor(colour, dtype=images.dtype, device=images.device)[:, None]
    for b in range(len(images)):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                r, c = rows[b] + dy, cols[b] + dx
                keep = (r >= 0) & (r < height) & (c >= 0) & (c < width)
                out[b, :, r[keep], c[keep]] = value
    return out


class ReconTask(Task):
    """Self-supervised R-Net training (Deng et al. 2019): render the predicted face, compare with the crop."""

    def __init__(self, net: ReconNet, model: nn.Module, weights: LossWeights, lr: float,
                 lr_decay_steps: int | None = None, identity_encoder: nn.Module | None = None,
                 backbone: str = "resnet50"):
        self.net, self.model, self.weights, self.identity_encoder = net, model, weights, identity_encoder
        self.backbone = backbone
        self.optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        self.scheduler = None if lr_decay_steps is None else \
            torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=lr_decay_steps, gamma=0.2)

    def models(self) -> dict[str, nn.Module]:
        return {"rnet": self.net}

    def model_args(self) -> dict[str, dict[str, Any]]:
        return {"rnet": {"backbone": self.backbone}}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"rnet": self.optimizer}

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return {} if self.scheduler is None else {"rnet": self.scheduler}

    def to(self, device: torch.device) -> None:
        self.net.to(device)
        self.model.to(device)
        if self.identity_encoder is not None:
            self.identity_encoder.to(device)

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        coeffs = ctx.models["rnet"](batch["image"])  # [B, 257]
        terms = reconstruction_losses(coeffs, batch["image"], batch["landmarks"], self.model, self.weights,
                                      identity_encoder=self.identity_encoder)
        loss = sum(terms.values())
        ctx.optimize(loss, "rnet")
        return {"loss": loss, **terms}

    def images(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Input crops, the render pasted over them, and landmarks (target green, predicted red)."""
        from talkface.render.renderer import render

        coeffs = self.net(batch["image"])
        rendered = render(coeffs, self.model)
        overlay = rendered.image * rendered.mask + batch["image"] * (1 - rendered.mask)
        marked = draw_points(batch["image"], batch["landmarks"], (0.0, 1.0, 0.0))
        marked = draw_points(marked, rendered.landmarks, (1.0, 0.0, 0.0))
        return {"input": batch["image"], "render": overlay, "landmarks": marked}


def build_rnet(config: ReconModelConfig) -> ReconNet:
    """A ReconNet as configured: from a checkpoint, from ImageNet weights, or from scratch."""
    from talkface.recon.model import load_rnet

    net = ReconNet(pretrained_backbone=config.imagenet, backbone=config.backbone)
    if config.weights is not None:
        source = load_rnet(config.weights)
        if source.final_layers[0].in_channels != net.final_layers[0].in_channels:
            raise TalkfaceError(f"holds an R-Net of another backbone than model.backbone={config.backbone}",
                                config.weights)
        net.load_state_dict(source.state_dict())
    return net


def train_rnet(config: ReconConfig, resume: bool = False) -> Path:
    """Train the R-Net as `config` says; return the final checkpoint (run_dir/checkpoints/step_*.pt)."""
    from talkface.face3d.model import load_morphable_model

    dataset = AlignedFrames.from_folders(config.data.clips, config.data.landmarks, config.data.max_frames)
    seed_everything(config.train.seed)  # the initial weights are a function of the seed
    encoder = None
    if config.arcface is not None and config.loss.identity > 0:
        from talkface.arcface import ArcFaceEncoder

        encoder = ArcFaceEncoder.from_file(config.arcface)
    task = ReconTask(build_rnet(config.model), load_morphable_model(config.morphable_model), config.loss, config.lr,
                     config.lr_decay_steps, encoder, config.model.backbone)
    return Trainer(task, dataset, config.train, config.run_dir, full_config=config).fit(resume=resume)
