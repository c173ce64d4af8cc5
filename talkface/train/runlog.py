"""The run directory's logs, written by rank 0: tensorboard events and stats.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch

from talkface.atomic import atomic_path

STATS = "stats.jsonl"
TENSORBOARD = "tensorboard"


class RunLog:
    """Scalars to tensorboard and one JSON line per log step; images to tensorboard."""

    def __init__(self, run_dir: Path, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.stats_path = run_dir / STATS
        _drop_lines_after(self.stats_path, start_step)  # a resumed run rewrites what came after
        # purge_step hides events a crashed run logged after the checkpoint we resume from
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD), purge_step=start_step or None)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        with self.stats_path.open("a") as stream:
            stream.write(json.dumps({"step": step, **values}) + "\n")

    def images(self, step: int, images: Mapping[str, torch.Tensor]) -> None:
        for key, batch in images.items():
            self.writer.add_images(f"images/{key}", batch.detach().float().clamp(0, 1).cpu(), step)

    def close(self) -> None:
        self.writer.close()


def _drop_lines_after(path: Path, step: int) -> None:
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        with atomic_path(path) as tmp:
            tmp.write_text("".join(kept))


def last_evaluation(run_dir: str | Path) -> dict[str, float]:
    """The newest `eval/...` scalars a run logged (keys without the prefix); {} when it logged none."""
    path = Path(run_dir) / STATS
    if not path.is_file():
        return {}
    for line in reversed(path.read_text().splitlines()):
        record = json.loads(line) if line.strip() else {}
        found = {key[len("eval/"):]: value for key, value in record.items() if key.startswith("eval/")}
        if found:
            return found
    return {}
