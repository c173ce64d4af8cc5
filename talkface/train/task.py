"""What a training stage gives the shared loop: its models, optimisers and one step.

The trainer owns everything around the step (devices, DDP, autocast, logging, checkpoints,
resume); a stage only says what to compute. A GAN runs its phases inside one `train_step`:

    def train_step(self, batch, ctx):
        fake = ctx.models["G"](batch["input"])
        d_loss = d_loss_fn(ctx.models["D"](batch["real"]), ctx.models["D"](fake.detach()))
        ctx.optimize(d_loss, "D")
        g_loss = g_loss_fn(self.D(fake), fake, batch["real"])  # raw D: this loss trains only G
        ctx.optimize(g_loss, "G")
        return {"d": d_loss, "g": g_loss}

The trainer seeds only once it runs, so a stage calls `seed_everything(config.seed)` before it
builds the task's models: otherwise their initial weights differ from run to run.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn


@dataclass(frozen=True)
class StepContext:
    """What `Task.train_step` may use from the trainer for one step."""

    step: int  # optimisation steps completed before this one
    epoch: int
    # The task's models as the forward pass must call them to train them: wrapped in
    # DistributedDataParallel under torchrun (gradients are averaged across processes).
    # A forward pass whose loss does not train a model (D inside the G loss) should call the
    # task's own unwrapped module instead: DDP would wait for gradients that never come. For the
    # same reason every parameter of a wrapped model must get a gradient from the loss it trains.
    models: Mapping[str, nn.Module]
    # optimize(loss, optimizer_name): backward into that optimiser's parameters only,
    # clip their gradient norm (TrainConfig.grad_clip), step the optimiser, then its scheduler.
    optimize: Callable[[torch.Tensor, str], None]
    device: torch.device
    rank: int
    world_size: int


class Task(abc.ABC):
    """One training stage. `models`, `optimizers` and `schedulers` are called once per `fit`."""

    @abc.abstractmethod
    def models(self) -> dict[str, nn.Module]:
        """Named modules to save and restore; those with trainable parameters are DDP-wrapped."""

    @abc.abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers over the models' parameters (one per GAN phase, say)."""

    @abc.abstractmethod
    def train_step(self, batch: Any, ctx: StepContext) -> Mapping[str, torch.Tensor | float]:
        """Run one optimisation step via `ctx.optimize`; return scalar losses to log (as train/<key>)."""

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """LR schedulers keyed by optimiser name, stepped after every step of that optimiser."""
        return {}

    def model_args(self) -> dict[str, dict[str, Any]]:
        """Constructor keyword arguments per model name, saved so a checkpoint rebuilds its model."""
        return {}

    def to(self, device: torch.device) -> None:
        """Move everything the task computes with to `device` (override to add frozen helpers)."""
        for model in self.models().values():
            model.to(device)

    def images(self, batch: Any) -> dict[str, torch.Tensor]:
        """Named image batches [B, 3, H, W] in [0, 1] for a fixed `batch` (rank 0, eval mode, no grad)."""
        return {}

    def evaluate(self) -> dict[str, float]:
        """Validation scalars (rank 0 only, eval mode, no grad; must not use collectives)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Extra non-parameter state to checkpoint (a memory bank, an EMA copy): tensors and plain data."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
