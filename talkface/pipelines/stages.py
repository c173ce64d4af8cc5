"""A multi-stage job's record of its stages, so a re-run does only what is missing or stale.

A stage is a keyed artifact (talkface/keyed.py): its key is a hash of everything that determines
its result (its config, the keys of the stages it reads). `StageBook.run` then

- skips the stage when the record says it finished with the same key (returning what it recorded);
- runs it again when it was interrupted with the same key: the stage resumes itself (a training
  run from its latest checkpoint, preprocess from its completed steps);
- removes the stage's folder and runs it afresh when the key changed (a different config or
  different inputs: its partial results would be wrong to resume).

The record is one JSON file written atomically after every change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from talkface.keyed import KeyBook, StageResult, artifact_key


class StageBook(KeyBook):
    """The stages of one job, recorded in the JSON file `path` (which may hold other fields too)."""

    def __init__(self, path: str | Path, kind: str):
        super().__init__(path, kind, "stages", remedy="delete it to start the job over")


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
        self.keys[name] = artifact_key({"parts": parts, "after": [self.keys[a] for a in after]})
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
