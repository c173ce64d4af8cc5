"""A fine-tuned person: one folder that `talkface person` fills and `talkface infer` reads (person_folder.py).

    PEOPLE/NAME/            a person workspace (talkface/workspace.py: frames, audio, coefficients ...)
      person.json           the clip, the morphable model, and per stage its key, time and outputs
                            (checkpoint, validation figures): a stages.StageBook
      motion_finetune/      the audio -> motion fine-tuning run (talkface motion finetune)
      gan_finetune/         the GAN fine-tuning run (talkface gan finetune)

`finetune_person` runs preprocess -> motion fine-tune -> GAN fine-tune. Preprocess keeps its own
per-step keys in the workspace; each fine-tuning stage is skipped when done with the same config
and inputs, resumed from its latest checkpoint when interrupted, and redone when either changed.

A clip shorter than preprocess.frames is fine-tuned on all its frames (said), one shorter than
`minimum_frames` is refused in one line. A photo (`is_photo`) becomes a one-frame person that keeps
the general models; `talkface infer` animates the photo itself (background/single_image.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from talkface.atomic import new_folder_removed_on_error
from talkface.audio import VIDEO_FPS
from talkface.config import config_to_dict
from talkface.errors import TalkfaceError
from talkface.gan.train import GanFinetuneConfig
from talkface.motion.train import FinetuneConfig as MotionFinetuneConfig
from talkface.pipelines.person_folder import PERSON_FILE, PERSON_KIND, checkpoint_record, person_dir
from talkface.pipelines.preprocess import PreprocessConfig
from talkface.keyed import StageResult, artifact_key
from talkface.pipelines.stages import StageBook

# The workspace steps the fine-tuning stages read: redoing any of them makes the stages stale.
READ_STEPS = ("mfcc", "align", "coeffs")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
PHOTO_STEPS = ("frames", "landmarks", "align", "coeffs")  # a photo has no audio, hence no MFCC


@dataclass
class PersonConfig:
    """configs/person.yaml: each stage's section starts from that stage's own shipped config."""

    people_dir: str = "people"  # where fine-tuned people live (PEOPLE/NAME)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    motion: MotionFinetuneConfig = field(default_factory=MotionFinetuneConfig)
    gan: GanFinetuneConfig = field(default_factory=GanFinetuneConfig)


def finetune_person(clip: str | Path, name: str, config: PersonConfig, progress: bool = True,
                    say: Callable[[str], None] = print) -> list[StageResult]:
    """Preprocess `clip`, fine-tune the motion network and the GAN on it as person `name`; one result per stage.

    `clip` may be a photo (is_photo): the person is then that one image, animated, with the
    general models (a photo has no speech to fine-tune the motion on, and one frame is no set of
    GAN training pairs with held-out frames). A person folder this call created is removed again
    if it fails on bad input (atomic.py).
    """
    folder = person_dir(config.people_dir, name)
    check_general_models(config)  # before hours of work, not after the preprocessing
    photo = is_photo(clip)
    config = _photo_config(config) if photo else _clip_length_config(clip, config, say)
    with new_folder_removed_on_error(folder):
        return _finetune_stages(clip, photo, folder, config, progress, say)


def _finetune_stages(clip: str | Path, photo: bool, folder: Path, config: PersonConfig, progress: bool,
                     say: Callable[[str], None]) -> list[StageResult]:
    from talkface.pipelines.preprocess import preprocess
    from talkface.workspace import STEPS as ALL_STEPS
    from talkface.workspace import Workspace

    say(f"[1/3] preprocess {clip} -> {folder}")
    # Preprocess decides per step what to redo; the book records the keys the later stages read.
    result = preprocess(clip, folder, config.preprocess, progress=progress,
                        steps=PHOTO_STEPS if photo else tuple(ALL_STEPS))
    workspace = Workspace(folder)
    inputs = {step: workspace.step_record(step)["key"] for step in READ_STEPS if not (photo and step == "mfcc")}
    book = StageBook(folder / PERSON_FILE, PERSON_KIND)
    book.record.update(clip=str(Path(clip).resolve()), morphable_model=result.morphable_model, photo=photo)
    results = [book.run("preprocess", artifact_key(inputs),
                        lambda: {"ran": result.ran, "seconds": result.seconds})]
    if result.ran:  # the book's time for preprocess is this run's, not a skipped call's
        results[0] = replace(results[0], ran=True, seconds=round(sum(result.seconds.values()), 2))

    if photo:
        say("[2/3] audio -> motion: a photo has no speech to fine-tune on; the person keeps the general model")
        results.append(_fine_tune(book, folder, "motion", config.motion, inputs, _general_stage))
        say("[3/3] GAN: one photo has no held-out frames to fine-tune against; the person keeps the general GAN")
        results.append(_fine_tune(book, folder, "gan", config.gan, inputs, _general_stage))
        return results
    say("[2/3] audio -> motion fine-tuning")
    results.append(_fine_tune(book, folder, "motion", config.motion, inputs, _motion_stage))
    say("[3/3] GAN fine-tuning")
    results.append(_fine_tune(book, folder, "gan", config.gan, inputs, _gan_stage))
    return results


def is_photo(path: str | Path) -> bool:
    """Whether `path` names a still image (by its suffix) rather than a clip."""
    return Path(path).suffix.lower() in PHOTO_SUFFIXES


def minimum_frames(config: PersonConfig) -> int:
    """The fewest frames (at 25 fps) a clip needs to be fine-tuned on: the largest of what each stage needs.

    - motion: at least one 16-frame training sequence before its held-out tail of
      max(16 frames, val_fraction of the clip) (motion.data.person_split): 32 frames at 10 %;
    - GAN: its val_frames held-out frames after one whole training window, the frame and the two
      before it (background/composite.py N_WINDOW): 53 frames with the default 50;
    - inference: the frames background matching replays (background/keyframes.py, 1 s).
    Below that a stage would train on nothing or validate on frames it trained on.
    """
    from talkface.background.composite import N_WINDOW
    from talkface.background.keyframes import MIN_TRAIN_FRAMES
    from talkface.motion.data import person_split

    def motion_fits(frames: int) -> bool:
        try:
            person_split(frames, config.motion.train_frames, config.motion.val_fraction)
        except TalkfaceError:
            return False
        return True

    motion = next(frames for frames in itertools.count(1) if motion_fits(frames))
    return max(motion, config.gan.val_frames + N_WINDOW, MIN_TRAIN_FRAMES)


def frames_with_speech(clip: str | Path) -> int:
    """The frames (at 25 fps) preprocess can use: video frames that outlast the audio are dropped.

    A clip without audio counts all its frames (preprocess gives the one-line error).
    """
    from talkface.audio import n_video_frames
    from talkface.media import count_frames, probe_video, read_audio

    frames = count_frames(clip)
    if probe_video(clip).has_audio:
        frames = min(frames, n_video_frames(len(read_audio(clip))))
    return frames


def _clip_length_config(clip: str | Path, config: PersonConfig, say: Callable[[str], None]) -> PersonConfig:
    """`config` for the frames `clip` has: all of them when fewer than preprocess.frames; an error below the minimum."""
    available, wanted, needed = frames_with_speech(clip), config.preprocess.frames, minimum_frames(config)
    if available < needed:
        raise TalkfaceError(f"has {available} frames at {VIDEO_FPS} fps ({available / VIDEO_FPS:.1f} s); fine-tuning needs at least "
                            f"{needed} ({needed / VIDEO_FPS:.1f} s)", clip)
    used = min(available, wanted)
    note = f" (the clip is shorter than the {wanted} configured)" if available < wanted else ""
    say(f"fine-tuning on {used} frames ({used / VIDEO_FPS:.1f} s){note}")
    return replace(config, preprocess=replace(config.preprocess, frames=used))


def _photo_config(config: PersonConfig) -> PersonConfig:
    if config.motion.pretrained is None or config.gan.pretrained is None:
        raise TalkfaceError("a photo has nothing to train on: it needs the general models "
                            "(motion.pretrained and gan.pretrained)")
    return replace(config, preprocess=replace(config.preprocess, frames=1))


def check_general_models(config: PersonConfig) -> None:
    """The pretrained general models the config names exist (a run folder or a checkpoint file)."""
    from talkface.errors import MissingWeightsError

    how = "make the general models with `talkface pretrain synthetic` (~10 min on a CPU, no downloads), " \
          "or from LRW with scripts/pretrain_lrw.sh LRW_ROOT, or convert the original project's with " \
          "`talkface convert original` (checkpoints/README.md); or name another file with --set {key}=PATH"
    for key, what, source in (("motion.pretrained", "pretrained audio-to-motion", config.motion.pretrained),
                              ("gan.pretrained", "pretrained GAN", config.gan.pretrained)):
        if source is not None and not Path(source).exists():
            raise MissingWeightsError(source, what, how.format(key=key))


def _fine_tune(book: StageBook, folder: Path, name: str, stage_config: Any, inputs: dict[str, str],
               run: Callable[[Path, Any], dict[str, Any]]) -> StageResult:
    run_dir = folder / f"{name}_finetune"
    # The key names the run folder relative to the person, so a moved person is still up to date, and
    # the general model by its content: a new one at the same path fine-tunes the person again.
    key = artifact_key({"config": config_to_dict(replace(stage_config, run_dir=run_dir.name)), "inputs": inputs,
                        "general": _general_model_hash(stage_config.pretrained)})
    stage_config = replace(stage_config, run_dir=str(run_dir))
    return book.run(name, key, lambda: run(folder, stage_config), folder=run_dir)


def _general_model_hash(pretrained: str | None) -> str | None:
    """The sha256 of the general checkpoint `pretrained` names (a file or a run folder's latest)."""
    from talkface.keyed import file_fingerprint
    from talkface.train.checkpoint import checkpoint_or_latest

    if pretrained is None:
        return None
    return file_fingerprint(checkpoint_or_latest(pretrained, "talkface pretrain synthetic"))["sha256"]


def _general_stage(folder: Path, config: MotionFinetuneConfig | GanFinetuneConfig) -> dict[str, Any]:
    """A photo's stage: the general model itself, copied into the person (which then stays as it was made
    when the general models are replaced)."""
    from talkface.atomic import copy_file
    from talkface.train.checkpoint import checkpoint_or_latest

    assert config.pretrained is not None and config.run_dir is not None  # _photo_config and _fine_tune
    source = checkpoint_or_latest(config.pretrained, "talkface pretrain synthetic")
    copied = copy_file(source, Path(config.run_dir) / "general.pt")
    return {**checkpoint_record(folder, copied), "general": str(source)}


def _motion_stage(folder: Path, config: MotionFinetuneConfig) -> dict[str, Any]:
    from talkface.motion.train import finetune
    from talkface.train.runlog import last_evaluation

    final, _ = finetune(folder, config, resume=True)  # resume=True also starts a run that has no checkpoint
    return {**checkpoint_record(folder, final), "validation": last_evaluation(config.run_dir)}


def _gan_stage(folder: Path, config: GanFinetuneConfig) -> dict[str, Any]:
    from talkface.gan.train import finetune

    final, validation = finetune(folder, config, resume=True)
    return {**checkpoint_record(folder, final), "validation": {k: float(v) for k, v in validation.items()}}


def stage_figures(result: StageResult) -> dict[str, float]:
    """The validation figures a stage recorded (for stages.summary_table)."""
    return result.outputs.get("validation", {})
