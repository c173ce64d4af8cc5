"""The shared training loop: a stage supplies a `Task` (task.py), the `Trainer` (trainer.py) does the rest.

Import from the modules themselves: this package file imports nothing, so reading a checkpoint
(checkpoint.py) at inference does not load the training loop (docs/architecture.md, layer rules).
"""
