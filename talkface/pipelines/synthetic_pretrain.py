"""`talkface pretrain synthetic`: the general motion and GAN models from the synthetic world alone.

    world ─┬─ rendered synthetic LRW (many identities) ──────── GAN pretraining ───┐
           └─ truth-only synthetic LRW ── LRW cache ── motion pretraining ─────────┴─ checkpoints/general/

The same stages as the commands `talkface synth lrw`, `lrw preprocess --coeffs truth`, `motion
pretrain` and `gan pretrain` (and scripts/pretrain_lrw.sh on a real LRW), at sizes that fit about
10 minutes on 2 CPU cores (configs/pretrain_synthetic.yaml). `talkface demo` runs these stages too
(`general_models`), beside its person and R-Net. Stages are recorded in OUT/pretrain.json
(pipelines/stages.py): a re-run skips what is done and resumes what was interrupted. The final
checkpoints are copied to the files the person pipeline reads by default
(configs/motion_finetune.yaml and configs/gan_finetune.yaml `pretrained`).

These general models know only synthetic faces and voices: fine-tuning on a person's clip is what
makes them that person's; on real LRW (scripts/pretrain_lrw.sh) they generalise further.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from talkface.atomic import copy_file
from talkface.config import config_to_dict
from talkface.gan.train import GanPretrainConfig
from talkface.motion.train import PretrainConfig as MotionPretrainConfig
from talkface.keyed import StageResult
from talkface.pipelines.stages import StageBook, StageSequence

PRETRAIN_KIND = "talkface pretrain synthetic"
STAGES = ("world", "lrw_cache", "motion_pretrain", "gan_pretrain")
GENERAL_STAGES = ("lrw_cache", "motion_pretrain", "gan_pretrain")  # after the world, shared with the demo


@dataclass
class SyntheticLRWConfig:
    """The two synthetic LRW corpora the general models learn from (talkface/synth/world.py write_lrw)."""

    motion_words: int = 30  # truth-only clips for motion pretraining: words x clips x (train, val)
    motion_clips_per_word: int = 6
    render_words: int = 6  # rendered clips, each its own identity, for the GAN (and the demo's R-Net)
    render_clips_per_word: int = 2
    render_size: int = 128
    seed: int = 0
    engine: Literal["auto", "espeak", "builtin"] = "auto"


@dataclass
class PretrainSyntheticConfig:
    """configs/pretrain_synthetic.yaml. The stages' own paths (cache, run_dir, ...) are set under `out`."""

    out: str = "data/pretrain_synthetic"  # corpora, caches and training runs
    motion_model: str = "checkpoints/general/motion_lrw.pt"  # where person fine-tuning looks by default
    gan_model: str = "checkpoints/general/gan_lrw.pt"
    world: SyntheticLRWConfig = field(default_factory=SyntheticLRWConfig)
    motion_pretrain: MotionPretrainConfig = field(default_factory=MotionPretrainConfig)
    gan_pretrain: GanPretrainConfig = field(default_factory=GanPretrainConfig)


@dataclass(frozen=True)
class GeneralPaths:
    """Where the general-model stages write, under an output folder."""

    root: Path

    world = property(lambda self: self.root / "world")
    render_lrw = property(lambda self: self.world / "lrw_rendered")
    motion_lrw = property(lambda self: self.world / "lrw_truth_only")
    lrw_cache = property(lambda self: self.root / "runs/lrw_cache")
    motion_run = property(lambda self: self.root / "runs/motion_lrw")
    gan_cache = property(lambda self: self.root / "runs/gan_cache")
    gan_run = property(lambda self: self.root / "runs/gan_lrw")


def run_pretrain_synthetic(config: PretrainSyntheticConfig, progress: bool = True,
                           say: Callable[[str], None] = print) -> list[StageResult]:
    """Run (or finish) every stage, then copy the final checkpoints to the general-model files."""
    paths = GeneralPaths(Path(config.out))
    stage = StageSequence(StageBook(paths.root / "pretrain.json", PRETRAIN_KIND), STAGES, say)
    stage("world", config_to_dict(config.world), lambda: write_corpora(config.world, paths, progress), paths.world)
    motion, gan = general_models(stage, config.motion_pretrain, config.gan_pretrain, paths, progress)
    for checkpoint, target in ((motion, config.motion_model), (gan, config.gan_model)):
        copy_file(checkpoint, target)  # every run: a deleted or replaced general model comes back
        say(f"general model: {target} (from {checkpoint})")
    return stage.results


def general_models(stage: StageSequence, motion: MotionPretrainConfig, gan: GanPretrainConfig, paths: GeneralPaths,
                   progress: bool) -> tuple[str, str]:
    """The GENERAL_STAGES on the corpora of the finished stage 'world'; (motion, GAN) final checkpoints."""
    stage("lrw_cache", {}, lambda: cache_lrw(paths, progress), paths.lrw_cache, after=("world",))
    motion_out = stage("motion_pretrain", config_to_dict(motion), lambda: pretrain_motion(motion, paths),
                       paths.motion_run, after=("lrw_cache",))
    gan_out = stage("gan_pretrain", config_to_dict(gan), lambda: pretrain_gan(gan, paths), paths.gan_run,
                    after=("world",))
    return motion_out["checkpoint"], gan_out["checkpoint"]


# ------------------------------------------------------------------------------------------------
# the stages


def write_corpora(world: SyntheticLRWConfig, paths: GeneralPaths, progress: bool) -> dict[str, Any]:
    """The rendered and the truth-only synthetic LRW."""
    from talkface.synth.world import write_lrw

    write_lrw(paths.render_lrw, words=world.render_words, clips_per_word=world.render_clips_per_word,
              seed=world.seed, splits=("train",), size=world.render_size, engine=world.engine, progress=progress)
    write_lrw(paths.motion_lrw, words=world.motion_words, clips_per_word=world.motion_clips_per_word,
              seed=world.seed + 1, splits=("train", "val"), engine=world.engine, progress=progress,
              with_frames=False)
    return {"render_lrw": str(paths.render_lrw), "motion_lrw": str(paths.motion_lrw)}


def cache_lrw(paths: GeneralPaths, progress: bool) -> dict[str, Any]:
    from talkface.pipelines.lrw import preprocess_lrw

    result = preprocess_lrw(paths.motion_lrw, paths.lrw_cache, coeffs="truth", progress=progress)
    return {"records": result.written + result.skipped, "bad": result.bad}


def pretrain_motion(config: MotionPretrainConfig, paths: GeneralPaths) -> dict[str, Any]:
    from talkface.motion.train import pretrain

    config = dataclasses.replace(config, cache=str(paths.lrw_cache), run_dir=str(paths.motion_run))
    return {"checkpoint": str(pretrain(config, resume=True))}


def pretrain_gan(config: GanPretrainConfig, paths: GeneralPaths) -> dict[str, Any]:
    from talkface.pipelines.gan_pretrain import pretrain_on_lrw

    config = dataclasses.replace(config, lrw_root=str(paths.render_lrw), cache=str(paths.gan_cache),
                                 run_dir=str(paths.gan_run))
    return {"checkpoint": str(pretrain_on_lrw(config, resume=True))}
