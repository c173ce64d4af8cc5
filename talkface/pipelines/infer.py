"""Speech + a fine-tuned person -> a talking video (docs/architecture.md, "Data flow: infer").

    audio ── MFCC ── motion network ── keyframe background matching ── render + composite
          ── GAN ── paste-back into the matched real frame ── mp4 with the audio muxed

Only the motion (70 floats a frame) is held for the whole audio; images flow through in chunks of
`chunk_frames` (animation.animate streams, the GAN enhancer keeps its memory-read state across
chunks, the writer pipes each frame to ffmpeg), so memory does not grow with the audio's length.
The video has exactly one frame per 40 ms of audio (talkface.audio.n_video_frames).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from talkface.background.animation import AnimationChunk
from talkface.errors import TalkfaceError
from talkface.render.rasterize import Rasterizer
from talkface.train.distributed import resolve_device

# The pasted region: the render's filled silhouette grown by this fraction of the window, so the
# GAN's jaw line and the skin it blends around the face come along (the seam then lies on skin).
PASTE_GROW = 0.04


@dataclass
class InferConfig:
    """configs/infer.yaml (the command's flags override the matching fields)."""

    people_dir: str = "people"
    pose_source: Literal["predicted", "reference", "still"] = "predicted"
    background: Literal["reassign", "predicted", "pingpong"] = "reassign"  # keyframes.py modes
    # Background frames up to this many clip frames from the pose-matched ones, chosen for real mouths
    # like the drawn one (background/mouth_match.py; 0: pose alone). 12 (half a second) took talk5's
    # video from r 0.09 to 0.37 with the phones heard (benchmarks/README.md, "What the video's mouth follows").
    mouth_match_radius: int = 12
    head_motion_scale: float = 1.0
    expression_scale: float = 1.0
    output: Literal["full", "face"] = "full"  # the whole frame (pasted back) or the face window crop
    enhance: bool = True  # false: the composited render, without the GAN (to see what the GAN adds)
    paste: Literal["feather", "poisson"] = "feather"
    chunk_frames: int = 32  # frames rendered and enhanced at a time
    motion_chunk_frames: int = 250  # frames per motion-network call
    gan_batch_size: int = 16
    gan_channels_last: bool = False  # CUDA: NHWC convolutions (often faster with bf16 on tensor cores)
    gan_compile: bool = False  # torch.compile the generator (pays a compile once per process)
    seed: int = 0  # the sampled head rhythm (same seed, same video)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    rasterizer: Rasterizer = "auto"

    def __post_init__(self) -> None:
        if self.chunk_frames < 1 or self.motion_chunk_frames < 1 or self.gan_batch_size < 1:
            raise ValueError("chunk_frames, motion_chunk_frames and gan_batch_size must be at least 1")
        if self.mouth_match_radius < 0:
            raise ValueError(f"mouth_match_radius must be >= 0, got {self.mouth_match_radius}")


@dataclass(frozen=True)
class InferResult:
    path: Path
    frames: int
    seconds: dict[str, float]  # wall time per stage: motion, video (render + GAN + paste + encode)
    motion: np.ndarray  # float32 [T, 70] the predicted motion that was rendered
    background_indices: np.ndarray  # int64 [T] the real frame behind each output frame


def generate(name: str, audio_path: str | Path, out: str | Path, config: InferConfig, progress: bool = True,
             observe: Callable[[AnimationChunk, torch.Tensor], None] | None = None) -> InferResult:
    """Write `out` (.mp4): person `name` (talkface person) saying the speech in `audio_path`.

    `observe(chunk, faces)` sees every chunk with its output faces [B, 3, S, S] (the demo's report
    keeps a few frames of each stage this way).
    """
    from talkface.face3d.model import load_morphable_model
    from talkface.media import read_audio
    from talkface.motion.model import load_motion_model
    from talkface.pipelines.person_folder import load_person_book, person_checkpoint, person_dir

    book = load_person_book(config.people_dir, name)
    device = resolve_device(config.device)
    audio = read_audio(audio_path)
    net = load_motion_model(person_checkpoint(config.people_dir, name, "motion")).to(device)
    enhancer = None
    if config.enhance:
        from talkface.gan.inference import load_enhancer

        enhancer = load_enhancer(person_checkpoint(config.people_dir, name, "gan"), device=device,
                                 batch_size=config.gan_batch_size, channels_last=config.gan_channels_last,
                                 compile=config.gan_compile)
    model = load_morphable_model(book.record["morphable_model"]).to(device)
    return synthesize_video(person_dir(config.people_dir, name), net, enhancer, model, audio, out, config,
                            progress, observe)


def synthesize_video(folder: Path, net: torch.nn.Module, enhancer, model: torch.nn.Module, audio: np.ndarray,
                     out: str | Path, config: InferConfig, progress: bool = True,
                     observe: Callable[[AnimationChunk, torch.Tensor], None] | None = None) -> InferResult:
    """The pipeline on loaded parts: motion net, GAN enhancer (None: composited render), morphable model.

    `folder` is the person workspace (frames, coefficients, window); everything runs on the
    morphable model's device.
    """
    start = time.perf_counter()
    motion = predict_person_motion(folder, net, audio, config)
    motion_seconds = time.perf_counter() - start
    result = render_video(folder, motion, enhancer, model, audio, out, config, progress, observe)
    return replace(result, seconds={"motion": motion_seconds, **result.seconds})


def render_video(folder: Path, motion: np.ndarray, enhancer, model: torch.nn.Module, audio: np.ndarray,
                 out: str | Path, config: InferConfig, progress: bool = True,
                 observe: Callable[[AnimationChunk, torch.Tensor], None] | None = None) -> InferResult:
    """The video of a given motion [T, 70] (predicted, or a baseline's): background matching, render, GAN, mp4."""
    from talkface.background.animation import animate, load_target, plan_animation
    from talkface.background.single_image import plan_single_image
    from talkface.workspace import Workspace

    start = time.perf_counter()
    target = load_target(folder)
    if target.n_frames == 1:  # a photo (talkface person PHOTO): every frame over it, the head near its pose
        plan = plan_single_image(target, motion)
    else:
        plan = plan_animation(target, motion, mode=config.background, silent=_silent_frames(audio, len(motion)),
                              mouth_match=(model, config.mouth_match_radius))
    chunks = animate(target, plan, model, chunk_frames=config.chunk_frames, backend=config.rasterizer)
    backgrounds = Workspace(folder).load_array("frames.npy", mmap=True) if config.output == "full" else None
    frames = output_frames(chunks, enhancer, backgrounds, target.window, config.paste, observe)
    written = write_frames(out, frames, audio, total=len(motion), progress=progress)
    return InferResult(Path(out), written, {"video": time.perf_counter() - start}, motion, plan.indices)


def _silent_frames(audio: np.ndarray, frames: int) -> np.ndarray:
    """bool [frames]: the frames of 16 kHz `audio` where the speech-activity gate is shut."""
    from talkface.motion.activity import speech_activity

    gate = speech_activity(audio)[:frames]
    return np.pad(gate, (0, frames - len(gate))) == 0  # frames past the audio count as silent


def predict_person_motion(folder: Path, net: torch.nn.Module, audio: np.ndarray, config: InferConfig) -> np.ndarray:
    """The motion network on `audio` -> [T, 70], with the config's pose controls (reference: the clip's poses)."""
    from talkface.face3d.coeffs import motion_from_coeffs
    from talkface.motion.inference import predict_motion
    from talkface.workspace import Workspace

    reference = None
    if config.pose_source != "predicted":  # the clip's own motion (a photo's one frame); a photo has no MFCC
        reference = motion_from_coeffs(np.asarray(Workspace(folder).load_array("coeffs.npy"), np.float32))
    return predict_motion(net, audio, chunk_frames=config.motion_chunk_frames, pose_source=config.pose_source,
                          reference_motion=reference, head_motion_scale=config.head_motion_scale,
                          expression_scale=config.expression_scale, seed=config.seed)


def output_frames(chunks: Iterator[AnimationChunk], enhancer, frames: np.ndarray | None, window,
                  paste: str = "feather",
                  observe: Callable[[AnimationChunk, torch.Tensor], None] | None = None) -> Iterator[np.ndarray]:
    """uint8 output frames, at most two chunks of images alive at a time: each chunk's faces (the GAN's,
    or the composited render without an `enhancer`) pasted into the clip's `frames` [N, H, W, 3] under
    `window`, or the faces [S, S, 3] themselves when `frames` is None. `observe(chunk, faces)` sees each
    chunk's faces before paste-back.

    Colour matching runs on the chunk's device; paste-back (resizing, feathering: numpy and OpenCV,
    which release the GIL) runs on a thread per torch thread while the next chunk renders and
    enhances, so the frames' CPU work overlaps the GPU's instead of following it
    (benchmarks/README.md, "CUDA": it bounded end to end).
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    from talkface.background.color_match import match_colors
    from talkface.background.paste import paste_back
    from talkface.media import to_uint8_frame

    def pasted(face: torch.Tensor, region: torch.Tensor, index: int) -> np.ndarray:
        return paste_back(face, np.asarray(frames[index]), (window.x0, window.y0, window.size), region[0],
                          method=paste)

    pasting: list[Future] = []  # the previous chunk's frames, in order
    with ThreadPoolExecutor(max_workers=torch.get_num_threads()) as pool:
        for chunk in chunks:
            faces = enhancer.enhance(chunk.gan_input)[0] if enhancer is not None else chunk.composited  # [B,3,S,S]
            faces = faces.float()
            host = faces.cpu() if observe is not None or frames is None else None  # one copy off the device
            if observe is not None:
                observe(chunk, host)
            if frames is None:
                yield from (to_uint8_frame(face) for face in host)
                continue
            regions = paste_region(chunk.filled.float())  # [B, 1, S, S], grown where the chunk lies
            faces = match_colors(faces, chunk.background, regions >= 0.5).cpu()  # on the GPU when there is one
            started = [pool.submit(pasted, face, region, index)
                       for face, region, index in zip(faces, regions.cpu(), chunk.indices)]
            yield from (future.result() for future in pasting)
            pasting = started
        yield from (future.result() for future in pasting)


def paste_region(mask: torch.Tensor, grow: float = PASTE_GROW) -> torch.Tensor:
    """Filled render silhouettes [B, 1, S, S] grown by `grow` x S pixels (a square max filter)."""
    radius = max(1, round(grow * mask.shape[-1]))
    return F.max_pool2d(mask, 2 * radius + 1, stride=1, padding=radius)


def write_frames(out: str | Path, frames: Iterator[np.ndarray], audio: np.ndarray, total: int,
                 progress: bool = True) -> int:
    """Encode `frames` to `out` at 25 fps with `audio` (16 kHz) muxed, atomically; the number written."""
    from tqdm import tqdm

    from talkface.audio import SAMPLE_RATE
    from talkface.media import VideoWriter

    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise TalkfaceError("the output must be an .mp4 file", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(out, audio=(audio, SAMPLE_RATE)) as writer:
        for frame in tqdm(frames, total=total, desc="video", unit="frame", disable=not progress):
            writer.write(frame)
    return writer.frames_written
