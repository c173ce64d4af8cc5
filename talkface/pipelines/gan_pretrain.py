"""`talkface gan pretrain`: per-clip workspaces of an LRW-layout corpus, then GAN pretraining on them.

Each clip WORD/split/WORD_00001.mp4 of `lrw_root` becomes the workspace cache/WORD/split/WORD_00001:

- a synthetic clip (a truth .npz beside it, talkface.synth.world.write_lrw) is written from its
  truth (synth/truth_workspace.py), in seconds and without any weights;
- a real LRW clip is preprocessed (talkface.pipelines.preprocess) with all its 29 frames and the
  preprocess config named in the GAN config: that needs the landmark and R-Net weights, and a
  missing file stops with a one-line error naming it before any workspace is written.

Then each workspace's renders are brought up to date (gan/pairs.py). A prepared split is a keyed
artifact (talkface/keyed.py) in cache/prepared.json, keyed by its clips (names, sizes, times), the
window size, the morphable model and the preprocess config: a second run with the same key only
reads, an interrupted or changed one goes through the clips again, each workspace redoing only
what is stale. Under torchrun, rank 0 prepares and the other ranks wait until the book says the
split is current. The GAN (gan/train.py) then trains on the prepared pairs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from talkface.config import config_to_dict, load_config
from talkface.errors import TalkfaceError
from talkface.gan.data import PairClip, load_pair_clip
from talkface.gan.train import GanPretrainConfig
from talkface.keyed import artifact_key
from talkface.pipelines.preprocess import PreprocessConfig, preprocess
from talkface.pipelines.stages import StageBook
from talkface.train.distributed import torchrun_ranks
from talkface.synth.truth_workspace import truth_key, truth_workspace_current, write_lrw_truth_workspace

LRW_FRAMES = 29
WAIT_SECONDS = 5.0  # poll interval of ranks waiting for rank 0's cache
BOOK = "prepared.json"
BOOK_KIND = "talkface GAN LRW cache"


def pretrain_on_lrw(config: GanPretrainConfig, resume: bool = False) -> Path:
    """Prepare the clips of `config.splits` (and the validation split), then pretrain; the final checkpoint."""
    from talkface.gan.train import pretrain

    config.model.kwargs(config.window_size)  # an unusable window fails before the cache is built
    clips = [clip for split in config.splits for clip in prepare_split(config, split)]
    validation: list[PairClip] = []
    if config.val_split is not None and torchrun_ranks().is_main:
        validation = prepare_split(config, config.val_split, config.val_clips, required=False)
    return pretrain(config, clips, validation, resume)


def split_clips(lrw_root: str | Path, split: str, max_clips: int | None = None) -> list[Path]:
    """The split's clips root/WORD/split/*.mp4, sorted, the first `max_clips` (None: all)."""
    root = Path(lrw_root)
    if not root.is_dir():
        raise TalkfaceError("LRW root folder not found", root)
    return sorted(root.glob(f"*/{split}/*.mp4"))[:max_clips]


def clip_workspace(cache: str | Path, clip: Path) -> Path:
    """cache/WORD/split/WORD_00001 for clip .../WORD/split/WORD_00001.mp4."""
    return Path(cache) / clip.parent.parent.name / clip.parent.name / clip.stem


def prepare_clip(clip: Path, out: Path, window_size: int, preprocess_config: PreprocessConfig | None) -> None:
    """Make `out` a complete workspace of `clip` (see the module docstring); real clips need `preprocess_config`."""
    if clip.with_suffix(".npz").is_file():
        if not truth_workspace_current(out, truth_key(clip.with_suffix(".npz"), window_size)):
            write_lrw_truth_workspace(clip, out, window_size)
        return
    assert preprocess_config is not None  # prepare_split loads it when a clip has no truth
    preprocess(clip, out, preprocess_config, progress=False)


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
    real = [clip for clip in clips if not clip.with_suffix(".npz").is_file()]  # no truth: preprocessed
    preprocess_config = _preprocess_config(config) if real else None
    key = _split_key(config, clips, preprocess_config)
    book_path = Path(config.cache) / BOOK

    def prepare() -> dict[str, Any]:
        for clip, workspace in zip(clips, workspaces):
            prepare_clip(clip, workspace, config.window_size, preprocess_config)
            load_pair_clip(workspace, slice(None), config.morphable_model, config.rasterizer)
        return {"clips": len(clips)}

    if torchrun_ranks().is_main:
        StageBook(book_path, BOOK_KIND).run(split, key, prepare)
    else:
        while not (book_path.is_file() and StageBook(book_path, BOOK_KIND).current(split, key)):
            time.sleep(WAIT_SECONDS)
    return [load_pair_clip(w, slice(None), config.morphable_model, config.rasterizer) for w in workspaces]


def _preprocess_config(config: GanPretrainConfig) -> PreprocessConfig:
    return load_config(PreprocessConfig, config.preprocess,
                       [f"frames={LRW_FRAMES}", f"window_size={config.window_size}"])


def _split_key(config: GanPretrainConfig, clips: list[Path], preprocess_config: PreprocessConfig | None) -> str:
    """What determines a prepared split: its clips (and truth files) by name, size and time, the window,
    the morphable model and the preprocess config of its real clips."""
    root = Path(config.lrw_root)
    identities = [[str(path.relative_to(root)), path.stat().st_size, path.stat().st_mtime]
                  for clip in clips for path in (clip, clip.with_suffix(".npz")) if path.is_file()]
    return artifact_key({"clips": identities, "window_size": config.window_size,
                         "morphable_model": config.morphable_model,
                         "preprocess": config_to_dict(preprocess_config) if preprocess_config else None})
