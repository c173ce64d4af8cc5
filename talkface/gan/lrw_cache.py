"""Per-clip workspaces of an LRW-layout corpus for GAN pretraining, with their renders.

Each clip WORD/split/WORD_00001.mp4 of `lrw_root` becomes the workspace cache/WORD/split/WORD_00001:

- a synthetic clip (a truth .npz beside it, talkface.synth.world.write_lrw) is written from its
  truth (synth/truth_workspace.py), in seconds and without any weights;
- a real LRW clip is preprocessed (talkface.pipelines.preprocess) with all its 29 frames and the
  preprocess config named in the GAN config: that needs the landmark and R-Net weights, and a
  missing file stops with a one-line error naming it before anything is written.

Then each workspace's renders are brought up to date (pairs.py). Everything is incremental: a
second run only reads. Under torchrun, rank 0 prepares and the other ranks wait for its marker.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from talkface.atomic import atomic_path
from talkface.errors import TalkfaceError
from talkface.gan.data import PairClip, load_pair_clip
from talkface.workspace import STEPS, Workspace

if TYPE_CHECKING:
    from talkface.gan.train import GanPretrainConfig

LRW_FRAMES = 29
WAIT_SECONDS = 5.0  # poll interval of ranks waiting for rank 0's cache


def split_clips(lrw_root: str | Path, split: str, max_clips: int | None = None) -> list[Path]:
    """The split's clips root/WORD/split/*.mp4, sorted, the first `max_clips` (None: all)."""
    root = Path(lrw_root)
    if not root.is_dir():
        raise TalkfaceError("LRW root folder not found", root)
    return sorted(root.glob(f"*/{split}/*.mp4"))[:max_clips]


def clip_workspace(cache: str | Path, clip: Path) -> Path:
    """cache/WORD/split/WORD_00001 for clip .../WORD/split/WORD_00001.mp4."""
    return Path(cache) / clip.parent.parent.name / clip.parent.name / clip.stem


def prepare_clip(clip: Path, out: Path, window_size: int, preprocess_config: str) -> None:
    """Make `out` a complete workspace of `clip` (see the module docstring)."""
    if clip.with_suffix(".npz").is_file():
        if not _truth_workspace_current(out, window_size):
            from talkface.synth.truth_workspace import write_lrw_truth_workspace

            write_lrw_truth_workspace(clip, out, window_size)
        return
    from talkface.config import load_config
    from talkface.pipelines.preprocess import PreprocessConfig, preprocess

    config = load_config(PreprocessConfig, preprocess_config, [f"frames={LRW_FRAMES}", f"window_size={window_size}"])
    preprocess(clip, out, config, progress=False)


def _truth_workspace_current(out: Path, window_size: int) -> bool:
    if not (out / "window.json").is_file():
        return False
    ws = Workspace(out)
    complete = all(ws.step_record(name) is not None and ws.is_current(name, ws.step_record(name)["key"])
                   for name in STEPS)
    return complete and json.loads((out / "window.json").read_text()).get("out_size") == window_size


def prepare_split(config: GanPretrainConfig, split: str, max_clips: int | None = None,
                  required: bool = True) -> list[PairClip]:
    """The split's clips as PairClips (all frames), workspaces and renders made first where needed."""
    limit = max_clips if max_clips is not None else config.max_clips
    clips = split_clips(config.lrw_root, split, limit)
    if not clips:
        if required:
            raise TalkfaceError(f"has no {split} clips (WORD/{split}/*.mp4)", Path(config.lrw_root))
        return []
    workspaces = [clip_workspace(config.cache, clip) for clip in clips]
    marker = Path(config.cache) / f".{split}.ready"
    stamp = hashlib.sha256(json.dumps([str(w) for w in workspaces] + [config.window_size]).encode()).hexdigest()
    if int(os.environ.get("RANK", "0")) == 0:
        for clip, workspace in zip(clips, workspaces):
            prepare_clip(clip, workspace, config.window_size, config.preprocess)
            load_pair_clip(workspace, slice(None), config.morphable_model, config.rasterizer)
        with atomic_path(marker) as tmp:
            tmp.write_text(stamp)
    else:
        while not (marker.is_file() and marker.read_text() == stamp):
            time.sleep(WAIT_SECONDS)
    return [load_pair_clip(w, slice(None), config.morphable_model, config.rasterizer) for w in workspaces]
