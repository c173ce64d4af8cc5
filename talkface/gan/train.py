"""Training the memory GAN: pretraining on many identities, fine-tuning on one person.

Both stages are one `GanTask` run by the shared `talkface.train.trainer.Trainer` (resume, DDP, bf16 on
CUDA, tensorboard); they differ in data and defaults (docs/method.md, memory-augmented GAN):

    pretrain   (composited render, real frame) pairs of every LRW clip (or synthetic LRW clip),
               prepared by pipelines/gan_pretrain.py: renders of each clip's own coefficients (pairs.py);
               lambda_mask 0.1; Adam(1e-4, betas 0.5/0.999), batch 1 as the original.
    finetune   one person workspace: its first 300 frames, lambda_mask 2, 60 epochs (an epoch counting
               at least 250 frames on a shorter clip, `epoch_frames`), starting from the pretrained
               checkpoint; validation on the clip's last frames.

One step: D on (window, real) vs (window, fake); G on GAN + 100 L1 + mask + mask TV; the key
encoder on the memory's threshold triplet loss; then the memory update with the step's
(key, identity) pairs. Validation (validation.py) runs the test-time path (model.IdentityStream: identity from
memory reads) and reports PSNR / SSIM of the GAN output and of the composited render against
the real frames.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from talkface.errors import TalkfaceError
from talkface.gan.data import MIN_CLIP_FRAMES, GanPairs, PairClip, load_pair_clip
from talkface.gan.generator import from_gan, to_gan
from talkface.gan.mouth_swap import LowerFaces, lower_faces
from talkface.gan.losses import (
    LAMBDA_L1, LAMBDA_MASK_FINETUNE, LAMBDA_MASK_GENERAL, LAMBDA_MASK_TV, discriminator_loss, generator_loss,
)
from talkface.gan.model import (
    DISCRIMINATOR, GENERATOR, IDENTITY, KEYS, GanNetworks, build_networks, default_levels, rebuild_networks,
)
from talkface.gan.validation import GanValidation
from talkface.render.rasterize import Rasterizer
from talkface.train.checkpoint import checkpoint_or_latest
from talkface.train.config import ADAM_BETAS, TrainConfig, with_epochs
from talkface.train.data import held_out_split
from talkface.train.rng import seed_everything
from talkface.train.task import StepContext, Task
from talkface.train.trainer import Trainer

if TYPE_CHECKING:
    from talkface.workspace import Workspace

log = logging.getLogger(__name__)

KEY_OPTIMIZER = "keys"  # the key encoder's optimiser (triplet loss); "G" and "D" for the GAN phases
# The paper fine-tunes on a person's first 300 frames; the default 50 validation frames leave 250.
PAPER_TRAIN_FRAMES = 300 - 50


# ------------------------------------------------------------------------------------------------
# configs


@dataclass
class GanModelConfig:
    """Network sizes and pretrained parts (defaults: docs/method.md, with the light mapping)."""

    ngf: int = 64
    levels: Optional[int] = None  # null: log2(window size), a 1x1 bottleneck (8 at 256 px)
    mapping: Literal["light", "original"] = "light"  # original: the ~204M-parameter identity MLP
    use_dropout: bool = True  # dropout 0.5 on the first 3 decoder levels while training (off at test)
    identity_encoder: Literal["learned", "arcface"] = "learned"
    identity_weights: Optional[str] = None  # arcface: backbone.pth (default checkpoints/arcface/backbone.pth)
    key_weights: Optional[str] = None  # ImageNet resnet18-f37072fd.pth (frozen backbone); null: trained
    train_key_backbone: bool = True  # without key_weights; false: random ResNet-18 features, only the projection trains
    memory_size: int = 30000
    ndf: int = 64

    def kwargs(self, window_size: int) -> dict[str, Any]:
        if window_size < 16:
            raise TalkfaceError(f"window_size must be at least 16 px, got {window_size}")
        levels = self.levels if self.levels is not None else default_levels(window_size)
        if window_size % 2**levels:
            raise TalkfaceError(f"the {window_size} px window is not divisible by 2**levels = {2**levels}")
        return {"ngf": self.ngf, "levels": levels, "mapping": self.mapping, "use_dropout": self.use_dropout,
                "identity_encoder": self.identity_encoder, "identity_weights": self.identity_weights,
                "key_weights": self.key_weights, "train_key_backbone": self.train_key_backbone,
                "memory_size": self.memory_size, "ndf": self.ndf}


@dataclass
class GanLossConfig:
    """Generator loss weights (losses.py); lambda_mask 0.1 general, 2 fine-tune (docs/method.md)."""

    lambda_l1: float = LAMBDA_L1
    lambda_mask: float = LAMBDA_MASK_GENERAL
    lambda_mask_tv: float = LAMBDA_MASK_TV


def _pretrain_defaults() -> TrainConfig:
    return TrainConfig(steps=100000, batch_size=1, eval_every=5000, image_every=1000, checkpoint_every=5000)


def _finetune_defaults() -> TrainConfig:
    return TrainConfig(batch_size=1, num_workers=0, eval_every=1000, image_every=1000, checkpoint_every=3000)


@dataclass
class GanPretrainConfig:
    """configs/gan_lrw.yaml."""

    lrw_root: str = "data/lrw"  # WORD/split/WORD_00001.mp4 (real LRW or `talkface synth lrw`)
    cache: str = "data/gan_lrw_cache"  # one workspace per clip, with its renders
    run_dir: str = "runs/gan_lrw"
    splits: tuple[str, ...] = ("train",)
    val_split: Optional[str] = "val"  # null: no validation
    val_clips: int = 16
    max_clips: Optional[int] = None  # per split, in sorted order; null: all
    window_size: int = 256
    morphable_model: str = "auto"  # auto: each workspace's own (synthetic truth / preprocess config)
    preprocess: str = "configs/preprocess.yaml"  # real clips (no truth .npz): preprocess with frames=29
    rasterizer: Rasterizer = "auto"
    epochs: Optional[int] = None  # null: train.steps as given
    lr: float = 1e-4
    model: GanModelConfig = field(default_factory=GanModelConfig)
    loss: GanLossConfig = field(default_factory=GanLossConfig)
    train: TrainConfig = field(default_factory=_pretrain_defaults)


@dataclass
class GanFinetuneConfig:
    """configs/gan_finetune.yaml."""

    pretrained: Optional[str] = None  # a GAN checkpoint or a pretraining run folder; null: from scratch
    run_dir: Optional[str] = None  # null: WORKSPACE/gan_finetune
    train_frames: int = 300  # the paper fine-tunes on the person's ~300 frames
    val_frames: int = 50  # the clip's last frames, never trained on
    morphable_model: str = "auto"  # auto: the workspace's own
    rasterizer: Rasterizer = "auto"
    epochs: Optional[int] = 60  # docs/method.md; null: train.steps as given
    # An epoch counts at least this many frames (the paper's 300 less 50 held out), so a 5 s real clip
    # gets the optimiser steps a 300-frame one gets instead of a third of them (docs/method.md,
    # "Memory-augmented GAN"), as the motion stage's epoch_sequences does.
    epoch_frames: int = PAPER_TRAIN_FRAMES
    lr: float = 1e-4
    # The fraction of training items whose lower face comes from another frame of nearly the same pose
    # (gan/mouth_swap.py): the GAN must read the mouth from the render, not recall it from the frame.
    swap_mouths: float = 1.0
    model: GanModelConfig = field(default_factory=GanModelConfig)  # only without a pretrained checkpoint
    loss: GanLossConfig = field(default_factory=lambda: GanLossConfig(lambda_mask=LAMBDA_MASK_FINETUNE))
    train: TrainConfig = field(default_factory=_finetune_defaults)

    def __post_init__(self) -> None:
        if self.train_frames < 2 or self.val_frames < 1:
            raise ValueError(f"need train_frames >= 2 and val_frames >= 1, got {self.train_frames}, {self.val_frames}")
        if self.epoch_frames < 1:
            raise ValueError(f"epoch_frames must be at least 1, got {self.epoch_frames}")


# ------------------------------------------------------------------------------------------------
# the task


class GanTask(Task):
    """Optimisers "G" (generator + learned identity encoder), "D" (discriminator), "keys" (key encoder)."""

    def __init__(self, networks: GanNetworks, lr: float, loss: GanLossConfig,
                 validation: GanValidation | None = None, seed: int = 0):
        assert networks.discriminator is not None
        self.net = networks
        self.loss = loss
        self.seed = seed
        self.validation = validation
        adam = {"lr": lr, "betas": ADAM_BETAS}
        g_params = list(networks.generator.parameters())
        if networks.learned_identity:
            g_params += list(networks.identity.parameters())
        self._optimizers = {
            "G": torch.optim.Adam(g_params, **adam),
            "D": torch.optim.Adam(networks.discriminator.parameters(), **adam),
            KEY_OPTIMIZER: torch.optim.Adam([p for p in networks.keys.parameters() if p.requires_grad], **adam),
        }
        self.device = torch.device("cpu")

    def models(self) -> dict[str, nn.Module]:
        return self.net.models()

    def model_args(self) -> dict[str, dict[str, Any]]:
        return self.net.args

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def to(self, device: torch.device) -> None:
        super().to(device)
        self.net.identity.to(device)  # a frozen ArcFace is not among the saved models
        self.device = device

    def _identity(self, frames: torch.Tensor, ctx: StepContext | None) -> torch.Tensor:
        if self.net.learned_identity and ctx is not None:
            return ctx.models[IDENTITY](frames)
        with torch.no_grad():
            return self.net.identity(frames)

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        window, real = to_gan(batch["window"]), to_gan(batch["real"])  # [B, 9, S, S], [B, 3, S, S]
        identity = self._identity(batch["identity_frame"], ctx)  # [B, 512]
        out = ctx.models[GENERATOR](window, identity)
        # One D call on real and fake together: a DDP module may run forward once per backward.
        logits = ctx.models[DISCRIMINATOR](window.repeat(2, 1, 1, 1), torch.cat([real, out.image.detach()]))
        d_terms = discriminator_loss(*logits.chunk(2))
        ctx.optimize(d_terms["total"], "D")
        g_terms = generator_loss(self.net.discriminator(window, out.image), out.image, real, out.mask,  # type: ignore[misc]
                                 **vars(self.loss))
        ctx.optimize(g_terms["total"], "G")
        query = ctx.models[KEYS](batch["window"][:, :3])  # [B, 512] the render's key
        value = identity.detach().float()
        triplet = self.net.memory.triplet_loss(query.float(), value)
        ctx.optimize(triplet + 0.0 * query.sum(), KEY_OPTIMIZER)  # 0 * sum: DDP needs a graph to every key parameter
        # The slot-replacement noise comes from (seed, step): every process makes the same update.
        noise = torch.Generator(device=query.device).manual_seed(self.seed * 1_000_003 + ctx.step)
        replaced = self.net.memory.update(*_gathered(query.detach().float(), value, ctx.world_size), noise)
        return {"d": d_terms["total"].detach(), "g": g_terms["total"].detach(), "g_gan": g_terms["gan"].detach(),
                "l1": g_terms["l1"].detach(), "mask": g_terms["mask"].detach(), "triplet": triplet.detach(),
                "memory_new": float(replaced)}

    def images(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        window = batch["window"]  # the fixed items are unrelated frames: each reads the memory itself
        identity = self.net.memory.read(self.net.keys(window[:, :3]).float())
        out = self.net.generator(to_gan(window), identity.to(window.dtype))
        return {"input": window[:, :3], "output": from_gan(out.image.float()),
                "mask": out.mask.float().expand(-1, 3, -1, -1), "target": batch["real"]}

    def evaluate(self) -> dict[str, float]:
        return self.validation(self.net, self.device) if self.validation is not None else {}


def _gathered(query: torch.Tensor, value: torch.Tensor, world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every process's (query, value) rows, so each process's memory makes the same update."""
    if world_size == 1:
        return query, value
    pair = torch.cat([query, value], dim=1).contiguous()  # [B, key_dim + value_dim]
    parts = [torch.empty_like(pair) for _ in range(world_size)]
    dist.all_gather(parts, pair)  # in rank order on every process (gloo and NCCL)
    out = torch.cat(parts)
    return out[:, :query.shape[1]], out[:, query.shape[1]:]


# ------------------------------------------------------------------------------------------------
# stages


def finetune(workspace: str | Path, config: GanFinetuneConfig, resume: bool = False) -> tuple[Path, dict[str, float]]:
    """Fine-tune on a person workspace's first frames; return (final checkpoint, final validation figures)."""
    from talkface.workspace import Workspace

    ws = Workspace(workspace)
    total = len(ws.load_array("window_crops.npy", mmap=True))
    train_frames, held_out = held_out_split(total, config.train_frames, config.val_frames, MIN_CLIP_FRAMES)
    clip = load_pair_clip(ws.root, train_frames, config.morphable_model, config.rasterizer)
    val_clip = dataclasses.replace(clip, frames=range(total)[held_out])
    window_size = clip.renders.shape[1]
    networks = _initial_networks(config, window_size)
    task = GanTask(networks, config.lr, config.loss, GanValidation([val_clip]), config.train.seed)
    if config.swap_mouths:
        clip = dataclasses.replace(clip, lower_faces=_lower_faces(ws, clip.frames))
    dataset = GanPairs([clip], config.swap_mouths)
    train = with_epochs(config.train, config.epochs, max(len(dataset), config.epoch_frames), "training frames")
    run_dir = Path(config.run_dir) if config.run_dir is not None else ws.root / "gan_finetune"
    full = dataclasses.replace(config, train=train)
    start = time.perf_counter()
    final = Trainer(task, dataset, train, run_dir, full_config=full).fit(resume)
    log.info("GAN fine-tuning took %.1f s", time.perf_counter() - start)
    scores = _final_scores(final, GanValidation([val_clip]), task.device)
    return final, scores


def _lower_faces(ws: Workspace, frames: range) -> LowerFaces:
    """The workspace's lower faces (landmarks in the window, partners of nearly the same pose)."""
    from talkface.recon.window import read_window

    return lower_faces(ws.load_array("landmarks.npy").astype(np.float64), read_window(ws.root).transform,
                       ws.load_array("coeffs.npy"), frames)


def _final_scores(checkpoint: Path, validation: GanValidation, device: torch.device) -> dict[str, float]:
    """Validation figures of the saved final model (so a resumed, already finished run reports them too)."""
    networks = rebuild_networks(checkpoint, discriminator=False)
    for module in (networks.generator, networks.keys, networks.memory):
        module.to(device).eval()
    return validation(networks, device)


def _initial_networks(config: GanFinetuneConfig, window_size: int) -> GanNetworks:
    if config.pretrained is None:
        log.warning("no pretrained GAN checkpoint given: fine-tuning starts from random weights")
        seed_everything(config.train.seed)
        return build_networks(**config.model.kwargs(window_size))
    path = checkpoint_or_latest(config.pretrained, "talkface gan pretrain")
    networks = rebuild_networks(path)
    levels = networks.args[GENERATOR]["levels"]
    if window_size % 2**levels:
        raise TalkfaceError(f"the generator has {levels} levels, which do not divide the workspace's "
                            f"{window_size} px window", path)
    return networks


def pretrain(config: GanPretrainConfig, clips: Sequence[PairClip], validation_clips: Sequence[PairClip] = (),
             resume: bool = False) -> Path:
    """Pretrain on the prepared pairs of many clips (pipelines/gan_pretrain.py makes them from LRW),
    validating on `validation_clips` (none: no validation); return the final checkpoint."""
    model_kwargs = config.model.kwargs(config.window_size)
    seed_everything(config.train.seed)  # the initial weights are a function of the seed
    networks = build_networks(**model_kwargs)
    validation = GanValidation(validation_clips) if validation_clips else None
    task = GanTask(networks, config.lr, config.loss, validation, config.train.seed)
    dataset = GanPairs(clips)
    train = with_epochs(config.train, config.epochs, len(dataset), "training frames")
    full = dataclasses.replace(config, train=train)
    return Trainer(task, dataset, train, config.run_dir, full_config=full).fit(resume)
