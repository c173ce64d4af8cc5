"""A multi-stage job's record of its stages, so a re-run does only what is missing or stale.

A stage has a key: a hash of everything that determines its result (its config, the keys of the
stages it reads). `StageBook.run` then

- skips the stage when the record says it finished with the same key (returning what it recorded);
- runs it again when it was interrupted with the same key: the stage resumes itself (a training
  run from its latest checkpoint, preprocess from its completed steps);
- removes the stage's folder and runs it afresh when the key changed (a different config or
  different inputs: its partial results would be wrong to resume).

The record is one JSON file written atomically after every change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from talkface.atomic import atomic_path
from talkface.errors import TalkfaceError


def stage_key(parts: Any) -> str:
    """A short stable hash of JSON-able `parts` (dataclasses go through config_to_dict first)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StageResult:
    name: str
    ran: bool  # False: skipped, already done with the same key
    seconds: float  # how long the stage took when it ran (the recorded time when skipped)
    outputs: dict[str, Any] = field(default_factory=dict)  # what the stage returned (paths, figures)


class StageBook:
    """The stages of one job, recorded in the JSON file `path` (which may hold other fields too)."""

    def __init__(self, path: str | Path, kind: str):
        self.path = Path(path)
        self.kind = kind
        self.record = self._read()

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"kind": self.kind, "stages": {}}
        try:
            record = json.loads(self.path.read_text())
        except ValueError:
            raise TalkfaceError("is not valid JSON; delete it to start the job over", self.path) from None
        if record.get("kind") != self.kind:
            raise TalkfaceError(f"is not a {self.kind} record", self.path)
        return record

    def done(self, name: str) -> bool:
        return bool(self.record["stages"].get(name, {}).get("done"))

    def outputs(self, name: str) -> dict[str, Any]:
        """What finished stage `name` returned; an error naming the stage when it has not finished."""
        if not self.done(name):
            raise TalkfaceError(f"stage '{name}' has not finished", self.path)
        return self.record["stages"][name]["outputs"]

    def run(self, name: str, key: str, fn: Callable[[], dict[str, Any]], folder: Path | None = None) -> StageResult:
        """Run `fn` (returning JSON-able outputs) unless stage `name` already finished with `key`."""
        previous = self.record["stages"].get(name, {})
        if previous.get("done") and previous.get("key") == key:
            return StageResult(name, False, previous.get("seconds", 0.0), previous.get("outputs", {}))
        if previous.get("key") != key and folder is not None and folder.exists():
            shutil.rmtree(folder)
        self.record["stages"][name] = {"key": key, "done": False}
        self.save()
        start = time.perf_counter()
        outputs = fn()
        seconds = round(time.perf_counter() - start, 2)
        self.record["stages"][name] = {"key": key, "done": True, "seconds": seconds, "outputs": outputs}
        self.save()
        return StageResult(name, True, seconds, outputs)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.record, indent=2, default=str) + "\n")


class StageSequence:
    """Named stages run in order through one StageBook, each announced with a numbered line.

    A stage's key folds in the keys of the stages it reads (`after`), so redoing a stage redoes
    everything downstream of it. Call it like `book.run`; it returns the stage's outputs and keeps
    every StageResult in `results`.
    """

    def __init__(self, book: StageBook, names: tuple[str, ...], say: Callable[[str], None] = print):
        self.book, self.names, self.say = book, names, say
        self.results: list[StageResult] = []
        self.keys: dict[str, str] = {}

    def __call__(self, name: str, parts: Any, fn: Callable[[], dict[str, Any]], folder: Path | None = None,
                 after: tuple[str, ...] = ()) -> dict[str, Any]:
        self.keys[name] = stage_key({"parts": parts, "after": [self.keys[a] for a in after]})
        self.say(f"[{len(self.results) + 1}/{len(self.names)}] {name}")
        self.results.append(self.book.run(name, self.keys[name], fn, folder))
        return self.results[-1].outputs


def summary_table(results: list[StageResult], figures: Callable[[StageResult], dict[str, float]] | None = None) -> str:
    """The printed end-of-job table: status and time per stage, and its figures."""
    lines = [f"{'stage':<16}{'status':<9}{'seconds':>9}  figures"]
    for result in results:
        shown = figures(result) if figures else {}
        text = ", ".join(f"{k} {v:.4g}" for k, v in sorted(shown.items())) or "-"
        status = "ran" if result.ran else "skipped"
        lines.append(f"{result.name:<16}{status:<9}{result.seconds:>9.1f}  {text}")
    return "\n".join(lines)
