"""`talkface bench`: per-stage throughput and peak memory of the whole pipeline on this device.

The stages run the package's own code at the paper's sizes on a synthetic person (no data or
weights needed; networks are randomly initialised, which costs the same as trained ones):

    preprocess   talkface preprocess on the clip (landmarks from the synthetic truth, R-Net
                 ResNet-50, whole-clip refinement) -> frames/s of clip
    motion       streamed audio -> motion, paper-size network, 60 s of audio
    render       3D render + composite into the window (keyframe-matched backgrounds)
    gan          the memory GAN generator on those windows (bf16 on CUDA)
    end_to_end   audio -> mp4 (motion, matching, render, GAN, paste-back, encoding)

Peak memory: on CUDA torch's peak allocation during the stage; on the CPU the rise of the
process's peak resident memory (VmHWM, reset before the stage) over its resident memory before it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch

from talkface.audio import SAMPLE_RATE, VIDEO_FPS

# The BFM's vertex count, so the synthetic face costs the renderer what the real one does.
BFM_VERTICES = 35709
MOTION_SECONDS = 60.0


@dataclass(frozen=True)
class BenchConfig:
    frames: int = 100  # frames of the person's clip (and of the end-to-end video unless video_frames)
    video_frames: int | None = None  # the end-to-end video's length: a long video amortises per-video costs
    window_size: int = 256  # the GAN's resolution (docs/method.md)
    frame_size: int = 512
    refine_steps: int = 800  # preprocess's whole-clip refinement (configs/preprocess.yaml)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    stages: tuple[str, ...] = ("preprocess", "motion", "render", "gan", "end_to_end")

    def __post_init__(self) -> None:
        if self.frames < 25 or self.window_size < 64 or (self.video_frames is not None and self.video_frames < 1):
            raise ValueError("frames must be at least 25, window_size at least 64 and video_frames at least 1")
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; valid: {', '.join(STAGES)}")


STAGES = BenchConfig.stages


def run_bench(config: BenchConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every stage in `config.stages`; the result (JSON-able)."""
    from talkface.benchmarking import machine_info
    from talkface.train.distributed import resolve_device

    device = resolve_device(config.device)
    result: dict[str, Any] = {"device": _device_name(device), "config": dataclasses.asdict(config), "stages": {}}
    with tempfile.TemporaryDirectory(prefix="talkface-bench-") as tmp:
        parts = _Parts(Path(tmp), config, device)
        for stage in config.stages:
            say(f"bench: {stage}")
            result["stages"][stage] = getattr(parts, stage)()
            say(f"  {_summary(result['stages'][stage])}")
    result["machine"] = machine_info()
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from talkface.benchmarking import cpu_model

    return f"CPU: {cpu_model()} ({torch.get_num_threads()} threads)"


def _summary(stage: dict[str, Any]) -> str:
    return f"{stage['frames_per_second']:.1f} frames/s, peak memory +{stage['peak_memory_mib']:.0f} MiB"


class _Parts:
    """The synthetic person and randomly initialised networks the stages share (made on first use)."""

    def __init__(self, root: Path, config: BenchConfig, device: torch.device):
        self.root, self.config, self.device = root, config, device
        self._cache: dict[str, Any] = {}

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    # ---- shared parts

    @property
    def person(self) -> Path:
        from talkface.synth.world import write_person

        seconds = self.config.frames / VIDEO_FPS + 0.5
        return self._once("person", lambda: write_person(self.root / "person", seconds=seconds, seed=0,
                                                         size=self.config.frame_size, engine="builtin",
                                                         progress=False))

    @property
    def workspace(self) -> Path:
        from talkface.synth.truth_workspace import write_truth_workspace

        return self._once("workspace", lambda: write_truth_workspace(
            self.person, self.root / "workspace", frames=self.config.frames,
            window_size=self.config.window_size).root)

    @property
    def morphable_model(self) -> torch.nn.Module:
        from talkface.face3d.model import load_morphable_model

        return self._once("model", lambda: load_morphable_model(f"synthetic:{BFM_VERTICES}").to(self.device))

    @property
    def motion_net(self) -> torch.nn.Module:
        from talkface.motion.network import AudioToMotion

        return self._once("motion", lambda: AudioToMotion().to(self.device).eval())

    @property
    def enhancer(self) -> Any:
        def make() -> Any:
            from talkface.gan.inference import FrameEnhancer
            from talkface.gan.model import IdentityStream, build_networks, default_levels

            networks = build_networks(levels=default_levels(self.config.window_size), memory_size=1000)
            generator = networks.generator.to(self.device).eval()
            stream = IdentityStream(networks.memory.to(self.device).eval(), networks.keys.to(self.device).eval())
            return FrameEnhancer(generator, stream, self.device, batch_size=16)

        return self._once("enhancer", make)

    def _audio(self, seconds: float) -> np.ndarray:
        rng = np.random.default_rng(0)
        return (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)

    # ---- stages

    def preprocess(self) -> dict[str, Any]:
        from talkface.pipelines.preprocess import LandmarkConfig, PreprocessConfig, preprocess
        from talkface.recon.model import ReconNet

        rnet = self.root / "rnet.pth"
        torch.save({"net_recon": ReconNet(backbone="resnet50").state_dict()}, rnet)
        config = PreprocessConfig(
            frames=self.config.frames, window_size=self.config.window_size,
            landmarks=LandmarkConfig(backend="file", file=str(self.person / "truth" / "landmarks.npy")),
            rnet=str(rnet), morphable_model=f"synthetic:{BFM_VERTICES}", device=self.device.type,
        )
        config.refine = dataclasses.replace(config.refine, steps=self.config.refine_steps)
        with measured(self.device) as stats:
            result = preprocess(self.person / "clip.mp4", self.root / "preprocessed", config, progress=False)
        return stats.result(self.config.frames, seconds_per_step={k: round(v, 2) for k, v in result.seconds.items()})

    def motion(self) -> dict[str, Any]:
        from talkface.audio import n_video_frames
        from talkface.motion.inference import predict_motion

        audio = self._audio(MOTION_SECONDS)
        net = self.motion_net
        predict_motion(net, audio[:SAMPLE_RATE])  # warm-up
        with measured(self.device) as stats:
            predict_motion(net, audio)
        return stats.result(n_video_frames(len(audio)), audio_seconds=MOTION_SECONDS)

    def _plan(self) -> tuple[Any, Any]:
        from talkface.background.animation import load_target, plan_animation
        from talkface.motion.inference import predict_motion

        motion = predict_motion(self.motion_net, self._audio(self.config.frames / VIDEO_FPS))
        target = load_target(self.workspace)
        return target, plan_animation(target, motion)

    def render(self) -> dict[str, Any]:
        from talkface.background.animation import animate

        target, plan = self._plan()
        model = self.morphable_model
        next(animate(target, plan, model))  # warm-up
        with measured(self.device) as stats:
            frames = sum(len(chunk.indices) for chunk in animate(target, plan, model))
        return stats.result(frames)

    def gan(self) -> dict[str, Any]:
        from talkface.background.animation import animate

        target, plan = self._plan()
        windows = torch.cat([chunk.gan_input for chunk in animate(target, plan, self.morphable_model)])
        enhancer = self.enhancer
        enhancer.enhance(windows[:16])  # warm-up
        with measured(self.device) as stats:
            enhancer.reset()
            enhancer.enhance(windows)
        return stats.result(len(windows), batch_size=enhancer.batch_size,
                            bf16=self.device.type == "cuda")

    def end_to_end(self) -> dict[str, Any]:
        from talkface.pipelines.infer import InferConfig, synthesize_video

        audio = self._audio((self.config.video_frames or self.config.frames) / VIDEO_FPS)
        config = InferConfig(device=self.device.type)
        workspace, net, enhancer, model = self.workspace, self.motion_net, self.enhancer, self.morphable_model
        enhancer.reset()
        with measured(self.device) as stats:
            result = synthesize_video(workspace, net, enhancer, model, audio, self.root / "video.mp4", config,
                                      progress=False)
        return stats.result(result.frames, seconds_per_part={k: round(v, 2) for k, v in result.seconds.items()})


class _Measurement:
    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0
        self.peak_mib = 0.0

    def result(self, frames: int, **extra: Any) -> dict[str, Any]:
        return {"frames": frames, "seconds": round(self.seconds, 3),
                "frames_per_second": round(frames / max(self.seconds, 1e-9), 2),
                "peak_memory_mib": round(self.peak_mib, 1), **extra}


@contextlib.contextmanager
def measured(device: torch.device) -> Iterator[_Measurement]:
    """Wall time (synchronised on CUDA) and peak memory of the block."""
    from talkface.benchmarking import reset_peak_rss, rss_kib

    stats = _Measurement(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = rss_kib("VmRSS")
        reset_peak_rss()
    start = time.perf_counter()
    yield stats
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        stats.peak_mib = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    else:
        stats.peak_mib = (rss_kib("VmHWM") - before) / 1024
    stats.seconds = time.perf_counter() - start
