"""The training section every stage's config embeds (parsed by `talkface.config`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Optional

# Adam's betas for every network talkface trains, as the original's (not a config knob: no stage
# has a reason to differ).
ADAM_BETAS = (0.5, 0.999)


@dataclass
class TrainConfig:
    """How the shared loop runs; the stage's own config says what it trains."""

    steps: int = 1000  # total optimisation steps (one `train_step` call each), counted across resumes
    batch_size: int = 16  # per process: the global batch is batch_size x world size
    num_workers: int = 2  # DataLoader worker processes per training process
    seed: int = 0  # data order, per-sample augmentation seeds and the training RNG derive from it
    grad_clip: Optional[float] = None  # max global L2 norm of each optimiser's gradients; None = no clipping
    log_every: int = 50  # steps between scalar logs (means over the interval, across processes)
    image_every: Optional[int] = None  # steps between image grids of a fixed batch; None = never
    checkpoint_every: int = 1000  # steps between checkpoints (one is always written at the end)
    eval_every: Optional[int] = None  # steps between `Task.evaluate` calls; None = never
    keep_checkpoints: int = 3  # the newest K step_*.pt files are kept, older ones deleted
    amp: Literal["none", "bf16"] = "bf16"  # bf16 autocast on CUDA; CPU always runs float32
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = CUDA when present

    def __post_init__(self) -> None:
        positive = {
            "steps": self.steps, "batch_size": self.batch_size, "log_every": self.log_every,
            "checkpoint_every": self.checkpoint_every, "keep_checkpoints": self.keep_checkpoints,
            "image_every": self.image_every or 1, "eval_every": self.eval_every or 1,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive or null, got {self.grad_clip}")


def steps_for_epochs(epochs: int, items: int, batch_size: int, what: str = "training items") -> int:
    """Optimisation steps for `epochs` passes over `items` at this run's global batch (WORLD_SIZE processes)."""
    from talkface.errors import TalkfaceError
    from talkface.train.distributed import torchrun_ranks

    world_size = torchrun_ranks().world_size
    per_epoch = items // (batch_size * world_size)
    if per_epoch == 0:
        raise TalkfaceError(f"{items} {what} are fewer than one global batch "
                            f"({batch_size} x {world_size} processes); lower train.batch_size")
    return epochs * per_epoch


def with_epochs(train: TrainConfig, epochs: int | None, items: int, what: str = "training items") -> TrainConfig:
    """`train` with its steps set from `epochs` over `items` (unchanged when epochs is None)."""
    if epochs is None:
        return train
    return dataclasses.replace(train, steps=steps_for_epochs(epochs, items, train.batch_size, what))
