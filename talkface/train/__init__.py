"""The shared training loop: a stage supplies a `Task`, the `Trainer` does the rest."""

from talkface.train.checkpoint import WeightsReport, latest_checkpoint, load_weights, read_checkpoint
from talkface.train.config import TrainConfig, with_epochs
from talkface.train.rng import seed_everything
from talkface.train.task import StepContext, Task
from talkface.train.trainer import Trainer

__all__ = [
    "StepContext", "Task", "TrainConfig", "Trainer", "WeightsReport",
    "latest_checkpoint", "load_weights", "read_checkpoint", "seed_everything", "with_epochs",
]
