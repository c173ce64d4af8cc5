"""`talkface demo`: the whole method on the synthetic world, from nothing, on a laptop.

    world ─┬─ rendered synthetic LRW ──┬─ R-Net training (recon) ────────────┐
           │                           └─ GAN pretraining ──────────────────┐ │
           ├─ truth-only synthetic LRW ── LRW cache ── motion pretraining ─┐ │ │
           └─ a synthetic person speaking: the first 300 frames are the    │ │ │
              clip to fine-tune on, the rest is held-out speech ──────── person fine-tune
                                                                            (preprocess, motion, GAN)
                                                          held-out speech ── infer ── demo.mp4
                                                                                  └─ report

Every stage runs the same code as its command (talkface synth / recon train / lrw preprocess /
motion pretrain / gan pretrain / finetune / infer) at tiny sizes (configs/demo.yaml). Stages are
recorded in OUT/demo.json (pipelines/stages.py): a re-run skips what is done and resumes what was
interrupted. Nothing of the person's clip comes from the synthetic truth: its landmarks are detected
(the `auto` backend: FAN when its weights are present, else dlib, which pip installs with its
weights) and everything else is estimated; the truth only scores the result in the report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from talkface.audio import SAMPLE_RATE, VIDEO_FPS
from talkface.config import config_to_dict
from talkface.gan.train import GanPretrainConfig
from talkface.motion.train import PretrainConfig as MotionPretrainConfig
from talkface.pipelines.infer import InferConfig
from talkface.pipelines.person import PersonConfig
from talkface.keyed import StageResult
from talkface.pipelines.stages import StageBook, StageSequence
from talkface.pipelines.synthetic_pretrain import (
    GENERAL_STAGES,
    GeneralPaths,
    SyntheticLRWConfig,
    general_models,
    write_corpora,
)
from talkface.recon.train import ReconConfig

DEMO_KIND = "talkface demo"
STAGES = ("world", "recon", *GENERAL_STAGES, "person", "reference", "infer", "report")
SYNTHETIC = "synthetic"


@dataclass
class DemoWorldConfig(SyntheticLRWConfig):
    """The synthetic data the demo makes (talkface/synth): the general models' corpora and a person."""

    person_seed: int = 7  # the person's identity, look, voice and head style
    person_seconds: float = 16.0  # the first clip_frames are the clip, the rest held-out speech
    clip_frames: int = 300  # the paper's ~10 s clip
    frame_size: int = 256

    def __post_init__(self) -> None:
        if self.person_seconds * VIDEO_FPS < self.clip_frames + VIDEO_FPS:
            raise ValueError(f"person_seconds must leave at least 1 s of held-out speech after {self.clip_frames} frames")


@dataclass
class DemoConfig:
    """configs/demo.yaml. Paths inside the stage sections (run_dir, cache, ...) are set under `out`."""

    out: str = "demo_out"
    name: str = "demo_person"
    world: DemoWorldConfig = field(default_factory=DemoWorldConfig)
    recon: ReconConfig = field(default_factory=ReconConfig)
    motion_pretrain: MotionPretrainConfig = field(default_factory=MotionPretrainConfig)
    gan_pretrain: GanPretrainConfig = field(default_factory=GanPretrainConfig)
    person: PersonConfig = field(default_factory=PersonConfig)
    infer: InferConfig = field(default_factory=InferConfig)


@dataclass(frozen=True)
class DemoPaths(GeneralPaths):
    """Where each stage writes, under the demo's output folder (the general models' stages: GeneralPaths)."""

    book = property(lambda self: self.root / "demo.json")
    person_clip = property(lambda self: self.world / "person")  # talkface synth person: clip.mp4 + truth/
    heldout_audio = property(lambda self: self.world / "heldout.wav")
    recon_run = property(lambda self: self.root / "runs/recon")
    people = property(lambda self: self.root / "people")
    heldout_clip = property(lambda self: self.root / "runs/heldout/clip.mp4")  # the clip's held-out frames
    heldout_workspace = property(lambda self: self.root / "runs/heldout/workspace")
    video = property(lambda self: self.root / "demo.mp4")
    report_frames = property(lambda self: self.root / "report_frames.npz")
    report = property(lambda self: self.root / "report.html")
    report_image = property(lambda self: self.root / "report.png")
    metrics = property(lambda self: self.root / "metrics.json")


def run_demo(config: DemoConfig, progress: bool = True, say: Callable[[str], None] = print) -> list[StageResult]:
    """Run (or finish) every stage of the demo; the results in order."""
    paths = DemoPaths(Path(config.out))
    stage = StageSequence(StageBook(paths.book, DEMO_KIND), STAGES, say)
    world = config.world
    stage("world", config_to_dict(world), lambda: make_world(world, paths, progress), folder=paths.world)
    recon = stage("recon", config_to_dict(config.recon), lambda: train_recon(config.recon, paths),
                  paths.recon_run, after=("world",))
    motion, gan = general_models(stage, config.motion_pretrain, config.gan_pretrain, paths, progress)
    person = person_config(config.person, paths, recon["checkpoint"], motion, gan)
    stage("person", config_to_dict(person), lambda: finetune(config.name, person, paths, progress),
          paths.people / config.name, after=("recon", "motion_pretrain", "gan_pretrain"))
    stage("reference", {}, lambda: reconstruct_heldout(config.world, person, paths, progress),
          paths.heldout_clip.parent, after=("person",))
    infer = dataclasses.replace(config.infer, people_dir=str(paths.people))
    stage("infer", config_to_dict(infer), lambda: infer_heldout(config.name, infer, paths, progress),
          after=("person",))
    from talkface.pipelines.demo_report import write_report

    stage("report", {}, lambda: write_report(config, paths, stage.book, motion), after=("infer",))
    return stage.results


# ------------------------------------------------------------------------------------------------
# the stages


def make_world(world: DemoWorldConfig, paths: DemoPaths, progress: bool) -> dict[str, Any]:
    """The person (clip + held-out speech, with truth) and the general models' two synthetic LRW corpora."""
    from talkface.audio import SAMPLES_PER_VIDEO_FRAME
    from talkface.media import read_audio, write_wav
    from talkface.synth.world import write_person

    write_person(paths.person_clip, seconds=world.person_seconds, seed=world.person_seed, size=world.frame_size,
                 engine=world.engine, progress=progress)
    speech = read_audio(paths.person_clip / "truth" / "audio.wav")
    write_wav(paths.heldout_audio, speech[world.clip_frames * SAMPLES_PER_VIDEO_FRAME:])
    write_corpora(world, paths, progress)
    return {"person": str(paths.person_clip), "heldout_audio": str(paths.heldout_audio)}


def train_recon(config: ReconConfig, paths: DemoPaths) -> dict[str, Any]:
    """The R-Net, from scratch, on the rendered synthetic LRW (its truth landmarks)."""
    from talkface.recon.train import train_rnet

    data = dataclasses.replace(config.data, clips=[str(paths.render_lrw)])
    config = dataclasses.replace(config, run_dir=str(paths.recon_run), data=data, morphable_model=SYNTHETIC)
    return {"checkpoint": str(train_rnet(config, resume=True))}


def person_config(person: PersonConfig, paths: DemoPaths, rnet: str, motion: str, gan: str) -> PersonConfig:
    """The demo's person config: its own people folder, the general models just trained."""
    preprocess = dataclasses.replace(person.preprocess, rnet=rnet, morphable_model=SYNTHETIC)
    return dataclasses.replace(
        person, people_dir=str(paths.people), preprocess=preprocess,
        motion=dataclasses.replace(person.motion, pretrained=motion, morphable_model=SYNTHETIC),
        gan=dataclasses.replace(person.gan, pretrained=gan),
    )


def finetune(name: str, person: PersonConfig, paths: DemoPaths, progress: bool) -> dict[str, Any]:
    from talkface.pipelines.person import finetune_person

    results = finetune_person(paths.person_clip / "clip.mp4", name, person, progress=progress, say=lambda _: None)
    return {r.name: {"seconds": r.seconds, **r.outputs} for r in results}


def reconstruct_heldout(world: DemoWorldConfig, person: PersonConfig, paths: DemoPaths,
                        progress: bool) -> dict[str, Any]:
    """The held-out frames through the person's preprocess: the reference the report's LMD uses."""
    from talkface.media import read_audio, read_video, write_video
    from talkface.pipelines.preprocess import preprocess

    video = read_video(paths.person_clip / "clip.mp4")[world.clip_frames:]
    paths.heldout_clip.parent.mkdir(parents=True, exist_ok=True)
    write_video(paths.heldout_clip, video, audio=(read_audio(paths.heldout_audio), SAMPLE_RATE))
    config = dataclasses.replace(person.preprocess, frames=len(video))  # the same landmark detector as the clip's
    preprocess(paths.heldout_clip, paths.heldout_workspace, config, progress=progress)
    return {"workspace": str(paths.heldout_workspace), "frames": len(video)}


def infer_heldout(name: str, config: InferConfig, paths: DemoPaths, progress: bool) -> dict[str, Any]:
    """demo.mp4 for the held-out speech; keeps render / GAN output pairs of a few frames for the report."""
    import torch

    from talkface.atomic import atomic_path
    from talkface.media import to_uint8_frame
    from talkface.pipelines.infer import generate

    kept: dict[str, list] = {"frame": [], "render": [], "output": [], "landmarks": []}

    def observe(chunk, faces: torch.Tensor) -> None:
        for i in range(len(faces)):
            kept["frame"].append(chunk.start + i)
            kept["render"].append(to_uint8_frame(chunk.composited[i]))
            kept["output"].append(to_uint8_frame(faces[i]))
            kept["landmarks"].append(chunk.landmarks[i].cpu().numpy())

    result = generate(name, paths.heldout_audio, paths.video, config, progress=progress, observe=observe)
    with atomic_path(paths.report_frames) as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, motion=result.motion, indices=result.background_indices,
                     **{k: np.stack(v) for k, v in kept.items()})
    return {"video": str(result.path), "frames": result.frames, "seconds": result.seconds}
