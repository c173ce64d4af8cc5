"""Held-out evaluation on one clip (`talkface heldout`): fine-tune on its first frames, score the rest.

    CLIP ─┬─ frames [0, N) ── finetune_person (preprocess, motion, GAN) ── OUT/people/NAME
          └─ frames [N, T) + their audio ── OUT/heldout/clip.mp4 ── preprocess ── OUT/heldout/workspace
                                            (the real frames, their landmarks, their own reconstruction)

N is `train_frames`, by default 300 or 75 % of a shorter clip. On the held-out frames:

- audio-driven: the held-out speech through the fine-tuned person (talkface infer) and three
  baselines through the same background matching, render, GAN and paste-back: the person's mean
  expression (the expression held at the training clip's mean), the general motion model's
  expression before fine-tuning, and the clip's first frame held still (a real frame, not
  rendered). Every rendered one is drawn on the fine-tuned prediction's head pose over the same
  background frames (pose matching alone, without infer's mouth matching), so that they differ in
  the mouth alone; beside them, not a baseline, the held-out frames' own reconstructed
  expression on that pose: the best an audio-to-expression model can score. Each is scored (talkface.evaluation.evaluate) against the real frames: mouth LMD
  of landmarks found by the preprocess landmark backend in both videos, in frame pixels and scaled
  to the 224 px aligned face; PSNR / SSIM in the person's window; pose statistics of the rendered
  pose against the person's training clip; and the correlation of the inner-lip gap with the real one.
- reconstruction (the paper's GAN protocol): the held-out frames' own coefficients rendered and
  composited over themselves (gan/pairs.py), then the fine-tuned GAN; PSNR / SSIM of the GAN
  output and of the composited render against the real window crops.
- identity: how much the reconstructed identity varies over the training clip, and how far the
  held-out frames' own fit lands from it.

With the 'file' landmark backend (landmarks given, e.g. the synthetic world's truth) there is no
detector to run on generated frames: they are scored by the landmarks the renderer drew, which
are their truth as the file is the real frames'. `rescore` scores such a run's generated videos
with a detector later, elsewhere. heldout_report.py writes the JSON and the report.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from talkface.atomic import atomic_path
from talkface.audio import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME
from talkface.config import apply_override
from talkface.errors import TalkfaceError
from talkface.pipelines.infer import InferConfig
from talkface.pipelines.person import PersonConfig

# Less than a second of held-out speech says little about lip sync or head-motion rhythm.
MIN_HELDOUT_FRAMES = 25
MM_PER_UNIT = 100.0  # the morphable models' units are decimetres
# The fine-tuned prediction and the baselines it must beat: every generated one is drawn on the
# fine-tuned prediction's head pose, so that mouth LMD compares mouths, not head turns (a head
# turned or rolled differently changes the projected mouth's shape; pose has its own statistics).
VARIANTS = ("finetuned", "mean_expression", "general", "still")
# Not a baseline: the held-out frames' own reconstructed expression on the same pose, the best any
# audio-to-expression model can score through this render, GAN and detector.
CEILING = "own_expression"
# What `--seeds` varies: the person's motion and GAN fine-tuning (data order, initial draws, noise).
SEED_KEYS = ("person.motion.train.seed", "person.gan.train.seed")


@dataclass
class HeldoutConfig:
    """configs/heldout.yaml: the person's fine-tuning and inference configs, and the split."""

    name: str = "person"  # the fine-tuned person's folder under OUT/people
    train_frames: Optional[int] = None  # null: min(max_train_frames, train_fraction of the clip)
    max_train_frames: int = 300  # the paper fine-tunes on ~300 frames
    train_fraction: float = 0.75
    sheet_rows: int = 4  # held-out frames shown in the contact sheet
    sheet_tile: int = 192  # its tile side, px
    person: PersonConfig = field(default_factory=PersonConfig)
    infer: InferConfig = field(default_factory=InferConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if self.sheet_rows < 1 or self.sheet_tile < 32 or self.max_train_frames < 1 or (self.train_frames is not None and self.train_frames < 1):
            raise ValueError("sheet_rows, sheet_tile (>= 32), max_train_frames and train_frames must be at least 1")


@dataclass(frozen=True)
class HeldoutPaths:
    """Where the evaluation writes, under its output folder."""

    root: Path

    people = property(lambda self: self.root / "people")
    heldout_clip = property(lambda self: self.root / "heldout" / "clip.mp4")
    heldout_landmarks = property(lambda self: self.root / "heldout" / "landmarks.npy")
    heldout_workspace = property(lambda self: self.root / "heldout" / "workspace")
    videos = property(lambda self: self.root / "videos")
    results = property(lambda self: self.root / "heldout.json")
    report = property(lambda self: self.root / "report.md")
    sheet = property(lambda self: self.root / "contact_sheet.png")
    arrays = property(lambda self: self.root / "heldout_arrays.npz")  # the landmarks and motion scored


def train_frame_count(total: int, config: HeldoutConfig, clip: str | Path | None = None) -> int:
    """Frames to fine-tune on; the rest (at least MIN_HELDOUT_FRAMES) are held out."""
    count = config.train_frames if config.train_frames is not None else \
        min(config.max_train_frames, math.floor(config.train_fraction * total))
    if total - count < MIN_HELDOUT_FRAMES:
        raise TalkfaceError(f"has {total} frames at 25 fps; fine-tuning on {count} leaves {total - count} "
                            f"held-out frames, fewer than the {MIN_HELDOUT_FRAMES} (1 s) needed to score them", clip)
    return count


def run_heldout(clip: str | Path, out: str | Path, config: HeldoutConfig, progress: bool = True,
                say: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune on the clip's first frames, generate and score the rest; write OUT/heldout.json and the report."""
    from talkface.media import count_frames, read_audio
    from talkface.pipelines.heldout_report import write_report
    from talkface.pipelines.person import finetune_person

    paths = HeldoutPaths(Path(out))
    seconds: dict[str, float] = {}
    audio = read_audio(clip)  # a clip without audio fails here, before any work
    total = count_frames(clip)
    count = train_frame_count(total, config, clip)
    first, held = heldout_frames(clip, count)
    say(f"{clip}: {total} frames; fine-tuning on frames 0-{count - 1}, scoring {count}-{total - 1}")
    person = person_config(config, paths, count)

    start = time.perf_counter()
    stages = finetune_person(clip, config.name, person, progress=progress, say=say)
    seconds["finetune"] = time.perf_counter() - start
    # Each stage's own time, also when this call skipped it (the time recorded when it ran).
    seconds.update({f"finetune_{stage.name}": stage.seconds for stage in stages})
    start = time.perf_counter()
    say("[heldout] preprocess the held-out frames (their real landmarks and own reconstruction)")
    write_heldout_clip(paths, held, audio, count, person)
    _preprocess_heldout(paths, person, len(held), progress)
    seconds["heldout_preprocess"] = time.perf_counter() - start

    start = time.perf_counter()
    say("[heldout] generate and score")
    scored = score(paths, config, person, first, progress)
    seconds["score"] = time.perf_counter() - start
    result = {"clip": str(Path(clip).resolve()), "frames": count + len(held), "train_frames": count,
              "heldout_frames": len(held), "frame_size": list(first.shape[:2]),
              **fit_record(person, config.name), **scored["figures"], "seconds": seconds}
    write_report(paths, result, scored["sheet"], config.sheet_tile)
    with atomic_path(paths.arrays) as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, **scored["arrays"])
    return result


def run_heldout_seeds(clip: str | Path, out: str | Path, config: HeldoutConfig, seeds: Sequence[int],
                      progress: bool = True, say: Callable[[str], None] = print) -> dict[str, Any]:
    """run_heldout once per fine-tuning seed into OUT/seed_N; OUT/seeds.json sums the runs up.

    One run's pass or fail is weak evidence: on a short clip's 30-50 held-out frames the fine-tuning
    seed alone moves the figures more than the margins they are judged by (benchmarks/README.md,
    "Held-out scores"). The seed is the motion's and the GAN's (SEED_KEYS).
    """
    results = {}
    for seed in seeds:
        say(f"[heldout] fine-tuning seed {seed}")
        results[seed] = run_heldout(clip, Path(out) / f"seed_{seed}", with_seed(config, seed), progress, say)
    summary = seed_summary(results)
    with atomic_path(Path(out) / "seeds.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def with_seed(config: HeldoutConfig, seed: int) -> HeldoutConfig:
    """The config with the person's motion and GAN fine-tuning seeded by `seed`, as `--set` would set it."""
    for key in SEED_KEYS:
        config = apply_override(config, f"{key}={seed}")
    return config


def seed_summary(results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per figure the mean, min and max over the seeds' runs; each run's checks and the checks of the means."""
    names = [*VARIANTS, CEILING]
    spread = {name: {key: _spread([run["audio_driven"].get(name, {}).get(key) for run in results.values()])
                     for key in ("lmd", "lmd_224", "mouth_open_r")} for name in names}
    gain = _spread([run["reconstruction"]["psnr_gain_db"] for run in results.values()])
    means = {"audio_driven": {name: {"lmd": figures["lmd"]["mean"]} for name, figures in spread.items()},
             "reconstruction": {"psnr_gain_db": gain["mean"]}}
    return {"seeds": list(results), "audio_driven": spread, "gan_psnr_gain_db": gain,
            "checks_per_seed": {str(seed): run["checks"] for seed, run in results.items()},
            "passing_seeds": [seed for seed, run in results.items() if all(run["checks"].values())],
            "checks_of_the_means": checks(means)}


def _spread(values: list[float | None]) -> dict[str, float | None]:
    """Mean, min and max; None where any run lacks the figure (a video scored without a detector)."""
    if not values or any(value is None for value in values):
        return {"mean": None, "min": None, "max": None}
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def heldout_frames(clip: str | Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(frame 0, frames [count, T) [H, h, w, 3]) of the clip, streamed: the training frames are not kept."""
    from talkface.media import iter_video_frames

    first, held = None, []
    for index, frame in enumerate(iter_video_frames(clip)):
        first = frame if index == 0 else first
        if index >= count:
            held.append(frame)
    return first, np.stack(held)


def person_config(config: HeldoutConfig, paths: HeldoutPaths, count: int) -> PersonConfig:
    """The person's config with its own people folder and the clip cut to its first `count` frames."""
    person = config.person
    preprocess = dataclasses.replace(person.preprocess, frames=count)
    return dataclasses.replace(person, people_dir=str(paths.people), preprocess=preprocess)


def fit_record(person: PersonConfig, name: str) -> dict[str, Any]:
    """How the person's clip was reconstructed: landmark backend, morphable model and initialisation as run."""
    from talkface.pipelines.person_folder import load_person_book, person_dir
    from talkface.workspace import Workspace

    steps = Workspace(person_dir(person.people_dir, name)).manifest["steps"]
    return {"landmarks": steps["landmarks"]["config"]["backend"],
            "morphable_model": load_person_book(person.people_dir, name).record["morphable_model"],
            "fit_init": steps["coeffs"].get("init", "rnet")}


def write_heldout_clip(paths: HeldoutPaths, frames: np.ndarray, audio: np.ndarray, start: int,
                       person: PersonConfig) -> None:
    """OUT/heldout/clip.mp4: the held-out frames (x264 near-lossless) with their stretch of audio.

    With the 'file' landmark backend, the file's rows for these frames go beside it.
    """
    from talkface.media import VideoWriter

    stretch = np.zeros(len(frames) * SAMPLES_PER_VIDEO_FRAME, np.float32)
    piece = audio[start * SAMPLES_PER_VIDEO_FRAME:][: len(stretch)]
    stretch[: len(piece)] = piece
    paths.heldout_clip.parent.mkdir(parents=True, exist_ok=True)
    # crf 0: the real frames scored against are the clip's own pixels, not a second lossy copy.
    with VideoWriter(paths.heldout_clip, audio=(stretch, SAMPLE_RATE), crf=0) as writer:
        for frame in frames:
            writer.write(frame)
    landmarks = person.preprocess.landmarks
    if landmarks.backend == "file":  # the file's own rows, unconverted: preprocess reads them as it reads the file
        try:
            track = np.load(landmarks.file, mmap_mode="r", allow_pickle=False)[start:start + len(frames)]
        except (OSError, ValueError) as error:
            raise TalkfaceError(f"not a readable .npy file ({error})", landmarks.file) from None
        if len(track) < len(frames):
            raise TalkfaceError(f"has no landmarks for frames {start}-{start + len(frames) - 1}", landmarks.file)
        np.save(paths.heldout_landmarks, np.asarray(track))


def _preprocess_heldout(paths: HeldoutPaths, person: PersonConfig, count: int, progress: bool) -> None:
    from talkface.pipelines.preprocess import preprocess

    landmarks = person.preprocess.landmarks
    if landmarks.backend == "file":
        landmarks = dataclasses.replace(landmarks, file=str(paths.heldout_landmarks))
    config = dataclasses.replace(person.preprocess, frames=count, landmarks=landmarks)
    preprocess(paths.heldout_clip, paths.heldout_workspace, config, progress=progress)


# ------------------------------------------------------------------------------------------------
# scoring


@dataclass
class Models:
    """The loaded parts: morphable model, GAN enhancer, fine-tuned and general motion networks."""

    face: Any
    enhancer: Any
    finetuned: Any
    general: Any  # None when the person was fine-tuned from scratch
    device: Any


def load_models(person: PersonConfig, infer: InferConfig, name: str) -> Models:
    from talkface.face3d.model import load_morphable_model
    from talkface.gan.inference import load_enhancer
    from talkface.motion.model import load_motion_model
    from talkface.pipelines.person_folder import load_person_book, person_checkpoint
    from talkface.train.checkpoint import checkpoint_or_latest
    from talkface.train.distributed import resolve_device

    book = load_person_book(person.people_dir, name)
    device = resolve_device(infer.device)
    enhancer = load_enhancer(person_checkpoint(person.people_dir, name, "gan"), device=device,
                             batch_size=infer.gan_batch_size)
    general = None
    if person.motion.pretrained is not None:
        general = load_motion_model(checkpoint_or_latest(person.motion.pretrained, "talkface motion pretrain"))
        general = general.to(device)
    return Models(load_morphable_model(book.record["morphable_model"]).to(device), enhancer,
                  load_motion_model(person_checkpoint(person.people_dir, name, "motion")).to(device), general, device)


def score(paths: HeldoutPaths, config: HeldoutConfig, person: PersonConfig, first_frame: np.ndarray,
          progress: bool) -> dict[str, Any]:
    """Every figure (JSON-ready), the contact sheet's images and the arrays scored."""
    from talkface.background.animation import load_target
    from talkface.motion.data import load_person
    from talkface.pipelines.person_folder import person_dir
    from talkface.workspace import Workspace

    models = load_models(person, config.infer, config.name)
    train = Workspace(person_dir(person.people_dir, config.name))
    held = Workspace(paths.heldout_workspace)
    real = {"frames": held.load_array("frames.npy", mmap=True), "landmarks": held.load_array("landmarks.npy"),
            "scale": aligned_scale(held.load_array("transforms.npy")), "window": load_target(train.root).window,
            "person_motion": load_person(train.root).motion}
    reconstruction, sheet = score_reconstruction(held.root, models, config.infer)
    variants = audio_driven(paths, train.root, held, models, config, person, first_frame, progress)
    figures: dict[str, Any] = {
        "reconstruction": reconstruction,
        "audio_driven": {name: variant_figures(variant, real) for name, variant in variants.items()},
        "identity": identity_figures(models.face, train.load_array("coeffs.npy"), held.load_array("coeffs.npy")),
        # What the person's fine-tuning chose for the mouth (docs/method.md, "Viseme mouth").
        "viseme_mouth": {"recogniser": models.finetuned.viseme_recogniser_name,
                         "weight": float(models.finetuned.viseme_weight)},
    }
    figures["checks"] = checks(figures)
    sheet.update(audio=variants["finetuned"]["frames"], audio_landmarks=variants["finetuned"]["landmarks"],
                 offset=len(real["person_motion"]), rows=config.sheet_rows)
    arrays = {"real_landmarks": real["landmarks"],
              **{f"{name}_{key}": v[key] for name, v in variants.items() for key in ("landmarks", "motion")
                 if v[key] is not None}}
    return {"figures": _json_ready(figures), "sheet": sheet, "arrays": arrays}


def aligned_scale(transforms: np.ndarray) -> float:
    """Mean zoom of frame px -> aligned 224 px crop transforms [T, 2, 3]: frame-px LMD times this is 224-px LMD."""
    return float(np.sqrt(np.abs(np.linalg.det(np.asarray(transforms, np.float64)[:, :, :2]))).mean())


def score_reconstruction(workspace: Path, models: Models, infer: InferConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """The paper's protocol on the held-out frames: their own coefficients rendered over themselves, then the GAN.

    Returns the figures and the images (uint8 window crops [H, S, S, 3] real / render / gan, with
    the real frames' landmarks and the rendered ones in window px) for the contact sheet.
    """
    from talkface.background.animation import animate, load_target
    from talkface.evaluation import evaluate
    from talkface.gan.pairs import own_pose_plan
    from talkface.media import to_uint8_frame
    from talkface.recon.alignment import apply_transform
    from talkface.workspace import Workspace

    target = load_target(workspace)
    models.enhancer.reset()
    kept: dict[str, list] = {"render": [], "gan": [], "render_landmarks": []}
    for chunk in animate(target, own_pose_plan(target), models.face, chunk_frames=infer.chunk_frames,
                         backend=infer.rasterizer):
        faces = models.enhancer.enhance(chunk.gan_input)[0].float().cpu()
        kept["render"] += [to_uint8_frame(image) for image in chunk.composited]
        kept["gan"] += [to_uint8_frame(image) for image in faces]
        kept["render_landmarks"].append(chunk.landmarks.cpu().numpy())
    images = {"render": np.stack(kept["render"]), "gan": np.stack(kept["gan"]),
              "render_landmarks": np.concatenate(kept["render_landmarks"]),
              "real": np.asarray(target.backgrounds), "window": target.window,
              "real_landmarks": apply_transform(target.window.transform,  # frame px -> window px
                                                Workspace(workspace).load_array("landmarks.npy"))}
    gan, render = (evaluate(images[name], images["real"]) for name in ("gan", "render"))
    figures = {"psnr_gan": gan["psnr"], "psnr_render": render["psnr"], "ssim_gan": gan["ssim"],
               "ssim_render": render["ssim"], "psnr_gain_db": gan["psnr"] - render["psnr"]}
    return figures, images


def audio_driven(paths: HeldoutPaths, folder: Path, held: Any, models: Models, config: HeldoutConfig,
                 person: PersonConfig, first_frame: np.ndarray, progress: bool) -> dict[str, dict[str, Any]]:
    """Per variant: its frames [H, h, w, 3], landmarks [H, 68, 2] (frame px), rendered motion [H, 70], misses."""
    from talkface.face3d.coeffs import MOTION_EXPRESSION, expression_on_pose, motion_from_coeffs
    from talkface.media import read_audio
    from talkface.motion.data import load_person
    from talkface.pipelines.infer import predict_person_motion

    infer = dataclasses.replace(config.infer, output="full")
    audio = read_audio(held.path("audio.wav"))
    training = load_person(folder)
    finetuned = predict_person_motion(folder, models.finetuned, audio, infer)
    expressions = {"finetuned": finetuned[:, MOTION_EXPRESSION],
                   "mean_expression": training.motion[:, MOTION_EXPRESSION].mean(axis=0),
                   CEILING: motion_from_coeffs(held.load_array("coeffs.npy"))[:, MOTION_EXPRESSION]}
    if models.general is not None:
        expressions["general"] = predict_person_motion(folder, models.general, audio, infer)[:, MOTION_EXPRESSION]
    motions = {name: expression_on_pose(finetuned, expression) for name, expression in expressions.items()}
    detector = landmark_detector(person, models.device)
    variants = {name: _render_variant(paths.videos / f"{name}.mp4", folder, motion, audio, models, infer, detector,
                                      progress) for name, motion in motions.items()}
    variants["still"] = _still_variant(folder, first_frame, len(audio) // SAMPLES_PER_VIDEO_FRAME)
    return variants


def _render_variant(out: Path, folder: Path, motion: np.ndarray, audio: np.ndarray, models: Models,
                    infer: InferConfig, detector: Any, progress: bool) -> dict[str, Any]:
    from talkface.background.animation import load_target
    from talkface.face3d.coeffs import motion_from_coeffs
    from talkface.media import read_video
    from talkface.pipelines.infer import render_video
    from talkface.recon.alignment import apply_transform, invert_transform

    rendered: dict[str, list] = {"coeffs": [], "landmarks": []}

    def observe(chunk, faces) -> None:
        rendered["coeffs"].append(chunk.coeffs.cpu().numpy())
        rendered["landmarks"].append(chunk.landmarks.cpu().numpy())

    models.enhancer.reset()
    # One background plan for every variant, from the shared pose alone: with mouth matching each
    # variant's mouth would choose its own background frames, and so its own head pose (VARIANTS).
    same_plan = dataclasses.replace(infer, mouth_match_radius=0)
    render_video(folder, motion, models.enhancer, models.face, audio, out, same_plan, progress, observe)
    frames = read_video(out)  # what a user gets: the encoded video
    drawn = apply_transform(invert_transform(load_target(folder).window.transform),
                            np.concatenate(rendered["landmarks"]))  # window px -> frame px
    landmarks, missed = detect_generated(detector, frames, drawn)
    return {"frames": frames, "landmarks": landmarks, "missed": missed, "video": str(out),
            "motion": motion_from_coeffs(np.concatenate(rendered["coeffs"]))}


def _still_variant(folder: Path, first_frame: np.ndarray, count: int) -> dict[str, Any]:
    """The clip's first frame held for `count` frames, with the landmarks and pose preprocess found in it."""
    from talkface.motion.data import load_person
    from talkface.workspace import Workspace

    landmarks = Workspace(folder).load_array("landmarks.npy")[:1]
    return {"frames": np.broadcast_to(first_frame, (count, *first_frame.shape)),
            "landmarks": np.repeat(landmarks, count, axis=0), "missed": 0,
            "motion": np.repeat(load_person(folder).motion[:1], count, axis=0)}


def landmark_detector(person: PersonConfig, device: Any) -> Any:
    """The preprocess landmark backend, to run on generated frames; None for the 'file' backend."""
    from talkface.recon.landmarks import make_landmark_backend

    c = person.preprocess.landmarks
    if c.backend == "file":
        return None
    return make_landmark_backend(c.backend, checkpoints_dir=c.checkpoints_dir, device=str(device))


def detect_generated(detector: Any, frames: np.ndarray, drawn: np.ndarray) -> tuple[np.ndarray | None, int]:
    """(landmarks [T, 68, 2] frame px or None when no frame has a face, frames without a face).

    Gaps are interpolated whatever their length (the evaluation reports them instead of failing),
    then smoothed like preprocess smooths the real frames' track. Without a detector, the drawn ones.
    """
    from talkface.recon.track import fill_gaps, smooth_track

    if detector is None:
        return drawn.astype(np.float32), 0
    track = detector.detect(frames)
    missed = int(np.isnan(track).all(axis=(1, 2)).sum())
    if missed == len(track):
        return None, missed
    return smooth_track(fill_gaps(track, max_gap=len(track))), missed


def variant_figures(variant: dict[str, Any], real: dict[str, Any]) -> dict[str, float]:
    """evaluate() of one variant against the real held-out frames, in the person's window."""
    from talkface.evaluation import evaluate

    count, window = len(real["frames"]), real["window"]
    generated = np.stack([window.crop(np.asarray(frame)) for frame in variant["frames"][:count]])
    reference = np.stack([window.crop(np.asarray(frame)) for frame in real["frames"]])
    figures = evaluate(generated, reference, generated_motion=variant["motion"], reference_motion=real["person_motion"])
    figures["frames_without_face"] = float(variant["missed"])
    if variant["landmarks"] is not None:
        figures.update(landmark_figures(variant["landmarks"], real["landmarks"], real["scale"]))
    return figures


# What `landmark_figures` gives, in its order.
LANDMARK_FIGURES = ("lmd", "face_lmd", "lmd_224", "mouth_open_r")


def rescore(out: str | Path, detector: Any) -> dict[str, Any]:
    """heldout.json of a finished run, its generated videos' mouth figures from `detector`, checks recomputed.

    For a run whose generated frames were scored by the landmarks the renderer drew (the 'file'
    backend), e.g. made on a machine that could not hold the detector's weights. Writes nothing.
    """
    from talkface.media import read_video

    paths = HeldoutPaths(Path(out))
    result = json.loads(paths.results.read_text())
    real = np.load(paths.arrays)["real_landmarks"]
    driven = result["audio_driven"]
    scale = driven["finetuned"]["lmd_224"] / driven["finetuned"]["lmd"]  # aligned_scale of the held-out frames
    videos = sorted(paths.videos.glob("*.mp4"))
    for video in videos:
        landmarks, missed = detect_generated(detector, read_video(video), drawn=None)
        figures = driven[video.stem]
        for key in LANDMARK_FIGURES:  # a video with no face found keeps none of the drawn landmarks' figures
            figures.pop(key, None)
        if landmarks is not None:
            figures.update(_json_ready(landmark_figures(landmarks, real, scale)))
        figures["frames_without_face"] = float(missed)
    result["checks"] = checks(result)
    result["rescored"] = {"detector": type(detector).__name__, "videos": [video.stem for video in videos]}
    return result


def landmark_figures(generated: np.ndarray, real: np.ndarray, scale: float) -> dict[str, float]:
    """Mouth and face LMD (frame px), mouth LMD at 224 (`scale`: aligned_scale) and the lip gap's r, over the real frames."""
    from talkface.evaluation import check_lengths
    from talkface.metrics import face_lmd, lmd, mouth_opening

    count = check_lengths(len(generated), len(real), "landmarks")
    generated, real = generated[:count], real[:count]
    mouth = lmd(generated, real)
    gap_r = _correlation(mouth_opening(generated), mouth_opening(real))
    values = (mouth, face_lmd(generated, real), mouth * scale, gap_r)
    return dict(zip(LANDMARK_FIGURES, values, strict=True))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r, NaN when either is constant (a mouth held still)."""
    if any(x.std() <= 1e-6 * max(1.0, float(np.abs(x).mean())) for x in (a, b)):  # float rounding of a constant
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def identity_figures(face: Any, train_coeffs: np.ndarray, heldout_coeffs: np.ndarray) -> dict[str, float]:
    """The reconstructed identity as neutral face shapes (identity only), RMS vertex distances in mm.

    train_spread_mm: the training frames' identities around their mean shape (0 when one identity is
    fitted to the whole clip); heldout_change_mm: the held-out frames' own fit against the training one.
    """
    import torch

    from talkface.face3d.coeffs import IDENTITY, N_EXPRESSION

    ids = np.concatenate([np.asarray(train_coeffs, np.float32)[:, IDENTITY],
                          np.asarray(heldout_coeffs, np.float32)[:, IDENTITY].mean(0, keepdims=True)])
    device = face.mean_shape.device
    with torch.no_grad():
        shapes = face.shape(torch.as_tensor(ids, device=device),
                            torch.zeros(len(ids), N_EXPRESSION, device=device)).double().cpu().numpy()  # [K+1, N, 3]
    train, held = shapes[:-1], shapes[-1]
    mean = train.mean(axis=0)
    return {"train_spread_mm": _largest_rms_mm(train, mean), "heldout_change_mm": _largest_rms_mm(held[None], mean)}


def _largest_rms_mm(shapes: np.ndarray, reference: np.ndarray) -> float:
    """The largest RMS vertex distance (mm) of shapes [K, N, 3] from reference [N, 3]."""
    return float(np.sqrt(((shapes - reference) ** 2).sum(-1).mean(-1)).max()) * MM_PER_UNIT


def checks(figures: dict[str, Any]) -> dict[str, bool]:
    """What the held-out scores must show (issue 12): fine-tuned LMD below each baseline, the GAN +3 dB."""
    variants = figures["audio_driven"]
    ours = variants["finetuned"].get("lmd")
    result = {}
    for name in VARIANTS[1:]:
        theirs = variants.get(name, {}).get("lmd")
        if ours is not None and theirs is not None:
            result[f"mouth lmd: fine-tuned < {name}"] = bool(ours < theirs)
    recon = figures["reconstruction"]
    result["gan psnr >= composited render + 3 dB"] = bool(recon["psnr_gain_db"] >= 3.0)
    return result


def _json_ready(value: Any) -> Any:
    """Floats as floats, NaN and inf as None (JSON has neither)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
