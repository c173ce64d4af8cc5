"""Keyed artifacts: the one way talkface decides whether something made earlier is still up to date.

An artifact (the files of a workspace step, a stage of a multi-stage job, a prepared corpus split,
one LRW motion record) has a key: `artifact_key` of everything that determines it, that is the
identities of its inputs (file hashes from `file_fingerprint`, the keys of the artifacts it reads)
and the config that matters. It is current when the key stored with it equals the key computed now.

- A `KeyBook` stores the keys of named artifacts in one JSON file, written atomically after every
  change. `run` does an artifact's work unless it is current: it records the key before the work
  (`begin`) and again, finished, after it (`finish`), so an interrupted artifact is found with its
  key and resumes when the key is the same, and starts afresh when the key changed.
- An artifact that is one file written atomically carries its key inside (an LRW record,
  motion/records.py): the file and its key appear together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from talkface.atomic import atomic_path
from talkface.errors import TalkfaceError


def artifact_key(parts: Any) -> str:
    """A short stable hash of JSON-able `parts` (key order does not matter; other objects go through str)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_fingerprint(path: str | Path, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """{path, size, mtime, sha256} of a file; the hash is reused from `previous` if size and mtime match."""
    path = Path(path)
    if not path.is_file():
        raise TalkfaceError("file not found", path)
    stat = path.stat()
    record = {"path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime}
    if previous and previous.get("size") == stat.st_size and previous.get("mtime") == stat.st_mtime \
            and previous.get("path") == record["path"]:
        return {**record, "sha256": previous["sha256"]}
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {**record, "sha256": digest.hexdigest()}


@dataclass(frozen=True)
class StageResult:
    """What `KeyBook.run` did for one artifact."""

    name: str
    ran: bool  # False: skipped, already current
    seconds: float  # how long the work took when it ran (the recorded time when skipped)
    outputs: dict[str, Any] = field(default_factory=dict)  # what the work returned (paths, figures)


class KeyBook:
    """The keys of named artifacts in the JSON file `path`, under `record[section]`.

    The file names its `kind` (a foreign file is refused) and may hold other fields of its owner.
    An entry is {"key", "done", ...what its owner recorded}.
    """

    def __init__(self, path: str | Path, kind: str, section: str, remedy: str = "delete it to start over"):
        self.path = Path(path)
        self.kind, self.section = kind, section
        self.record = self._read(remedy)

    def _read(self, remedy: str) -> dict[str, Any]:
        if not self.path.is_file():
            return {"kind": self.kind, self.section: {}}
        try:
            record = json.loads(self.path.read_text())
        except ValueError:
            raise TalkfaceError(f"is not valid JSON; {remedy}", self.path) from None
        if not isinstance(record, dict) or record.get("kind") != self.kind:
            raise TalkfaceError(f"is not a {self.kind} record", self.path)
        return record

    @property
    def entries(self) -> dict[str, dict[str, Any]]:
        return self.record[self.section]

    def entry(self, name: str) -> dict[str, Any] | None:
        return self.entries.get(name)

    def done(self, name: str) -> bool:
        return bool((self.entry(name) or {}).get("done"))

    def current(self, name: str, key: str) -> bool:
        """True when artifact `name` finished with `key`."""
        return self.done(name) and self.entries[name].get("key") == key

    def begin(self, name: str, key: str) -> None:
        """Record that artifact `name` is being made with `key` (not finished)."""
        self.entries[name] = {"key": key, "done": False}
        self.save()

    def finish(self, name: str, key: str, **fields: Any) -> None:
        """Record artifact `name` finished with `key` (call only once all of it is in place)."""
        self.entries[name] = {"key": key, "done": True, **fields}
        self.save()

    def forget(self, names: Iterable[str]) -> None:
        """Drop artifacts' entries before redoing them (what they left is then stale)."""
        for name in names:
            self.entries.pop(name, None)
        self.save()

    def outputs(self, name: str) -> dict[str, Any]:
        """What finished artifact `name` recorded by `run`; an error naming it when it has not finished."""
        if not self.done(name):
            raise TalkfaceError(f"stage '{name}' has not finished", self.path)
        return self.entries[name]["outputs"]

    def run(self, name: str, key: str, fn: Callable[[], dict[str, Any]], folder: Path | None = None) -> StageResult:
        """Run `fn` (returning JSON-able outputs) unless artifact `name` is current with `key`.

        An interrupted run with the same key runs `fn` again over what it left (`fn` resumes);
        with another key, `folder` (the artifact's own, if given) is removed first.
        """
        previous = self.entry(name) or {}
        if self.current(name, key):
            return StageResult(name, False, previous.get("seconds", 0.0), previous.get("outputs", {}))
        if previous.get("key") != key and folder is not None and folder.exists():
            shutil.rmtree(folder)
        self.begin(name, key)
        start = time.perf_counter()
        outputs = fn()
        seconds = round(time.perf_counter() - start, 2)
        self.finish(name, key, seconds=seconds, outputs=outputs)
        return StageResult(name, True, seconds, outputs)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.record, indent=2, default=str) + "\n")
