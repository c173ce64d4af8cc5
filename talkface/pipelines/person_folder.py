"""A fine-tuned person's folder: its name, its stage record (person.json) and its checkpoints.

`talkface person` (person.py) fills PEOPLE/NAME; `talkface infer` reads it through this module
alone, so inference never imports the fine-tuning code.
"""

from __future__ import annotations

import re
from pathlib import Path

from talkface.errors import TalkfaceError
from talkface.pipelines.stages import StageBook

PERSON_FILE = "person.json"
PERSON_KIND = "talkface person"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
STAGES = ("preprocess", "motion", "gan")


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
        listing = ", ".join(known) if known else "none yet; make one with `talkface person CLIP --person NAME`"
        raise TalkfaceError(f"no fine-tuned person {name!r} (known people: {listing})", people_dir)
    return StageBook(folder / PERSON_FILE, PERSON_KIND)


def person_checkpoint(people_dir: str | Path, name: str, stage: str) -> Path:
    """The checkpoint finished stage `stage` ("motion", "gan") of person `name` recorded, inside the
    person's own folder; refused when its content is not the recorded one (a swapped file).

    person.json names it relative to the folder, so a copied or moved person uses its own files.
    """
    from talkface.keyed import file_fingerprint

    folder = person_dir(people_dir, name)
    outputs = load_person_book(people_dir, name).outputs(stage)
    path = folder / outputs["checkpoint"]
    if Path(outputs["checkpoint"]).is_absolute() or "sha256" not in outputs:
        raise TalkfaceError(f"records its {stage} checkpoint in an older form; run `talkface person` for "
                            f"{name!r} again to update it", folder / PERSON_FILE)
    if not path.is_file():
        raise TalkfaceError(f"the {stage} checkpoint person.json records is missing; run `talkface person` "
                            f"for {name!r} again", path)
    if file_fingerprint(path)["sha256"] != outputs["sha256"]:
        raise TalkfaceError(f"is not the {stage} checkpoint person.json records (its sha256 differs); run "
                            f"`talkface person` for {name!r} again", path)
    return path


def checkpoint_record(folder: Path, checkpoint: str | Path) -> dict[str, str]:
    """{checkpoint: path relative to the person folder, sha256}: what person_checkpoint checks."""
    from talkface.keyed import file_fingerprint

    path = Path(checkpoint).resolve()
    return {"checkpoint": str(path.relative_to(folder.resolve())), "sha256": file_fingerprint(path)["sha256"]}
