"""The R-Net training stage: a Task for the shared Trainer, its dataset, and `train_rnet`.

Data (configs/recon.yaml `data.clips`): a list of paths, each one of
  - a person workspace written by `talkface preprocess` (crops.npy + crop_landmarks.npy);
  - a clip folder with clip.mp4 and a landmarks .npy [T, 68, 2] in frame pixels (`data.landmarks`,
    default truth/landmarks.npy: the synthetic person clips of `talkface synth person`);
  - an LRW-layout clip WORD_00001.mp4 with WORD_00001.npz beside it holding `landmarks`
    (`talkface synth lrw`), or a folder searched recursively for such clips.
Clips are aligned here with the same 5-point crop as preprocess; the frames of all entries form
one set of aligned 224 px crops with their crop-pixel landmarks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from talkface.errors import TalkfaceError
from talkface.recon.losses import LossWeights, reconstruction_losses
from talkface.recon.rnet import ReconNet
from talkface.train import StepContext, Task, TrainConfig, Trainer, seed_everything
from talkface.workspace import KIND as WORKSPACE_KIND


@dataclass
class ReconDataConfig:
    clips: list[str] = field(default_factory=list)  # workspaces or clip folders (module docstring)
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
    lr: float = 1e-4  # Adam (REFERENCE.md)
    lr_decay_steps: Optional[int] = None  # x0.2 every this many steps (the original: every 10 epochs)
    train: TrainConfig = field(default_factory=TrainConfig)


class AlignedFrames(Dataset):
    """Aligned crops uint8 [N, 224, 224, 3] + crop landmarks [N, 68, 2] -> items for the R-Net."""

    def __init__(self, crops: np.ndarray, landmarks: np.ndarray):
        if len(crops) != len(landmarks) or len(crops) == 0:
            raise TalkfaceError(f"need as many crops as landmark sets (>0), got {len(crops)} and {len(landmarks)}")
        self.crops, self.landmarks = crops, landmarks.astype(np.float32)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(np.ascontiguousarray(self.crops[index])).permute(2, 0, 1).float() / 255.0
        return {"image": image, "landmarks": torch.from_numpy(self.landmarks[index])}  # [3, 224, 224], [68, 2]

    @classmethod
    def from_folders(cls, folders: list[str], landmarks_name: str = "truth/landmarks.npy",
                     max_frames: int = 300) -> "AlignedFrames":
        if not folders:
            raise TalkfaceError("no training data: list workspaces or clip folders under data.clips")
        parts = [_read_folder(Path(folder), landmarks_name, max_frames) for folder in folders]
        return cls(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def _read_folder(folder: Path, landmarks_name: str, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(crops [T, 224, 224, 3] uint8, crop landmarks [T, 68, 2]) of one entry of data.clips."""
    manifest = folder / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("kind") == WORKSPACE_KIND:
        from talkface.workspace import Workspace

        workspace = Workspace(folder)
        return workspace.load_array("crops.npy")[:max_frames], workspace.load_array("crop_landmarks.npy")[:max_frames]
    if (folder / "clip.mp4").is_file():
        from talkface.recon.landmarks import FileLandmarks

        return _aligned_clip(folder / "clip.mp4", FileLandmarks(folder / landmarks_name).detect(), max_frames)
    lrw = [folder] if folder.suffix == ".mp4" else sorted(folder.rglob("*.mp4")) if folder.is_dir() else []
    lrw = [clip for clip in lrw if clip.with_suffix(".npz").is_file()]
    if not lrw:
        raise TalkfaceError("is neither a person workspace, a clip folder with clip.mp4, nor LRW clips with .npz "
                            "landmarks", folder)
    parts = [_aligned_clip(clip, _npz_landmarks(clip.with_suffix(".npz")), max_frames) for clip in lrw]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _npz_landmarks(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as truth:
        if "landmarks" not in truth:
            raise TalkfaceError("has no 'landmarks' array", path)
        return truth["landmarks"].astype(np.float32)


def _aligned_clip(clip: Path, track: np.ndarray, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    from talkface.media import read_video
    from talkface.recon.alignment import align_faces
    from talkface.recon.track import clean_track

    frames = read_video(clip, max_frames=max_frames)
    if len(track) < len(frames):
        raise TalkfaceError(f"has landmarks for {len(track)} frames, the clip has {len(frames)}", clip)
    faces = align_faces(frames, clean_track(track[: len(frames)], smooth_window=1))  # fill gaps, no smoothing
    return faces.crops, faces.landmarks


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
    from talkface.recon.rnet import load_rnet

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
