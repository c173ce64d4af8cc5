"""A fine-tuned person: one folder that `talkface finetune` fills and `talkface infer` reads.

    PEOPLE/NAME/            a person workspace (talkface/workspace.py: frames, audio, coefficients ...)
      person.json           the clip, the morphable model, and per stage its key, time and outputs
                            (checkpoint, validation figures): a stages.StageBook
      motion_finetune/      the audio -> motion fine-tuning run (talkface motion finetune)
      gan_finetune/         the GAN fine-tuning run (talkface gan finetune)

`finetune_person` runs preprocess -> motion fine-tune -> GAN fine-tune. Preprocess keeps its own
per-step keys in the workspace; each fine-tuning stage is skipped when done with the same config
and inputs, resumed from its latest checkpoint when interrupted, and redone when either changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from talkface.atomic import new_folder_removed_on_error
from talkface.config import config_to_dict
from talkface.errors import TalkfaceError
from talkface.gan.train import GanFinetuneConfig
from talkface.motion.train import FinetuneConfig as MotionFinetuneConfig
from talkface.pipelines.preprocess import PreprocessConfig
from talkface.pipelines.stages import StageBook, StageResult, stage_key

PERSON_FILE = "person.json"
PERSON_KIND = "talkface person"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
STAGES = ("preprocess", "motion", "gan")
# The workspace steps the fine-tuning stages read: redoing any of them makes the stages stale.
READ_STEPS = ("mfcc", "align", "coeffs")


@dataclass
class PersonConfig:
    """configs/person.yaml: each stage's section starts from that stage's own shipped config."""

    people_dir: str = "people"  # where fine-tuned people live (PEOPLE/NAME)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    motion: MotionFinetuneConfig = field(default_factory=MotionFinetuneConfig)
    gan: GanFinetuneConfig = field(default_factory=GanFinetuneConfig)


def person_dir(people_dir: str | Path, name: str) -> Path:
    """PEOPLE/NAME after checking that NAME is a plain folder name."""
    if not NAME_PATTERN.match(name):
        raise TalkfaceError(f"person name {name!r} must be letters, digits, '.', '_' or '-' (no spaces or slashes)")
    return Path(people_dir) / name


def known_people(people_dir: str | Path) -> list[str]:
    """Names of the people in `people_dir` whose fine-tuning finished."""
    root = Path(people_dir)
    if not root.is_dir():
        return []
    return sorted(folder.name for folder in root.iterdir() if _finished(folder))


def _finished(folder: Path) -> bool:
    if not (folder / PERSON_FILE).is_file():
        return False
    book = StageBook(folder / PERSON_FILE, PERSON_KIND)
    return all(book.done(name) for name in STAGES)


def load_person_book(people_dir: str | Path, name: str) -> StageBook:
    """The stage record of a finished person; an unknown name lists the known ones."""
    folder = person_dir(people_dir, name)
    if not _finished(folder):
        known = known_people(people_dir)
        listing = ", ".join(known) if known else "none yet; make one with `talkface finetune CLIP --name NAME`"
        raise TalkfaceError(f"no fine-tuned person {name!r} (known people: {listing})", people_dir)
    return StageBook(folder / PERSON_FILE, PERSON_KIND)


def finetune_person(clip: str | Path, name: str, config: PersonConfig, progress: bool = True,
                    say: Callable[[str], None] = print) -> list[StageResult]:
    """Preprocess `clip`, fine-tune the motion network and the GAN on it as person `name`; one result per stage.

    A person folder this call created is removed again if it fails on bad input (atomic.py).
    """
    folder = person_dir(config.people_dir, name)
    check_general_models(config)  # before hours of work, not after the preprocessing
    with new_folder_removed_on_error(folder):
        return _finetune_stages(clip, folder, config, progress, say)


def _finetune_stages(clip: str | Path, folder: Path, config: PersonConfig, progress: bool,
                     say: Callable[[str], None]) -> list[StageResult]:
    from talkface.pipelines.preprocess import preprocess
    from talkface.workspace import Workspace

    say(f"[1/3] preprocess {clip} -> {folder}")
    # Preprocess decides per step what to redo; the book records the keys the later stages read.
    result = preprocess(clip, folder, config.preprocess, progress=progress)
    workspace = Workspace(folder)
    inputs = {step: workspace.step_record(step)["key"] for step in READ_STEPS}
    book = StageBook(folder / PERSON_FILE, PERSON_KIND)
    book.record.update(clip=str(Path(clip).resolve()), morphable_model=result.morphable_model)
    results = [book.run("preprocess", stage_key(inputs),
                        lambda: {"ran": result.ran, "seconds": result.seconds})]
    if result.ran:  # the book's time for preprocess is this run's, not a skipped call's
        results[0] = replace(results[0], ran=True, seconds=round(sum(result.seconds.values()), 2))

    say("[2/3] audio -> motion fine-tuning")
    results.append(_fine_tune(book, folder, "motion", config.motion, inputs, _motion_stage))
    say("[3/3] GAN fine-tuning")
    results.append(_fine_tune(book, folder, "gan", config.gan, inputs, _gan_stage))
    return results


def person_checkpoint(people_dir: str | Path, name: str, stage: str) -> Path:
    """The checkpoint finished stage `stage` ("motion", "gan") of person `name` recorded, inside the
    person's own folder; refused when its content is not the recorded one (a swapped file).

    person.json names it relative to the folder, so a copied or moved person uses its own files.
    """
    from talkface.workspace import file_fingerprint

    folder = person_dir(people_dir, name)
    outputs = load_person_book(people_dir, name).outputs(stage)
    path = folder / outputs["checkpoint"]
    if Path(outputs["checkpoint"]).is_absolute() or "sha256" not in outputs:
        raise TalkfaceError(f"records its {stage} checkpoint in an older form; run `talkface finetune` for "
                            f"{name!r} again to update it", folder / PERSON_FILE)
    if not path.is_file():
        raise TalkfaceError(f"the {stage} checkpoint person.json records is missing; run `talkface finetune` "
                            f"for {name!r} again", path)
    if file_fingerprint(path)["sha256"] != outputs["sha256"]:
        raise TalkfaceError(f"is not the {stage} checkpoint person.json records (its sha256 differs); run "
                            f"`talkface finetune` for {name!r} again", path)
    return path


def _checkpoint_record(folder: Path, checkpoint: str | Path) -> dict[str, str]:
    """{checkpoint: path relative to the person folder, sha256}: what person_checkpoint checks."""
    from talkface.workspace import file_fingerprint

    path = Path(checkpoint).resolve()
    return {"checkpoint": str(path.relative_to(folder.resolve())), "sha256": file_fingerprint(path)["sha256"]}


def check_general_models(config: PersonConfig) -> None:
    """The pretrained general models the config names exist (a run folder or a checkpoint file)."""
    from talkface.errors import MissingWeightsError

    how = "make the general models with scripts/pretrain_lrw.sh LRW_ROOT (or on a synthetic LRW from " \
          "`talkface synth lrw`), convert the original project's with `talkface convert original` " \
          "(checkpoints/README.md), or name another file with --set {key}=PATH"
    for key, what, source in (("motion.pretrained", "pretrained audio-to-motion", config.motion.pretrained),
                              ("gan.pretrained", "pretrained GAN", config.gan.pretrained)):
        if source is not None and not Path(source).exists():
            raise MissingWeightsError(source, what, how.format(key=key))


def _fine_tune(book: StageBook, folder: Path, name: str, stage_config: Any, inputs: dict[str, str],
               run: Callable[[Path, Any], dict[str, Any]]) -> StageResult:
    run_dir = folder / f"{name}_finetune"
    # The key names the run folder relative to the person, so a moved person is still up to date.
    key = stage_key({"config": config_to_dict(replace(stage_config, run_dir=run_dir.name)), "inputs": inputs})
    stage_config = replace(stage_config, run_dir=str(run_dir))
    return book.run(name, key, lambda: run(folder, stage_config), folder=run_dir)


def _motion_stage(folder: Path, config: MotionFinetuneConfig) -> dict[str, Any]:
    from talkface.motion.train import finetune
    from talkface.train.runlog import last_evaluation

    final, _ = finetune(folder, config, resume=True)  # resume=True also starts a run that has no checkpoint
    return {**_checkpoint_record(folder, final), "validation": last_evaluation(config.run_dir)}


def _gan_stage(folder: Path, config: GanFinetuneConfig) -> dict[str, Any]:
    from talkface.gan.train import finetune

    final, validation = finetune(folder, config, resume=True)
    return {**_checkpoint_record(folder, final), "validation": {k: float(v) for k, v in validation.items()}}


def stage_figures(result: StageResult) -> dict[str, float]:
    """The validation figures a stage recorded (for stages.summary_table)."""
    return result.outputs.get("validation", {})
