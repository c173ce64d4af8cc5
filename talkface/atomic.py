"""Write files so that a crash never leaves a half-written result under the final name.

The temporary file sits beside the result as `.STEM.PID.RANDOM.tmpSUFFIX`. A run killed outright
(kill -9, power loss) cannot remove its own; the next write to the same result removes those
whose process is gone, and never one that a live process (a concurrent run) is still writing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the final suffix (tools such as ffmpeg pick the format from it).
    Works for files and for directories created at the yielded path. An OSError about the
    temporary name (a read-only folder, a full disk) is raised naming `path`, the file the user asked for.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=f".tmp{path.suffix}",
                                        dir=path.parent)
    except OSError as error:
        raise _naming(error, path) from None
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # let the writer create it (some writers refuse an existing file)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as error:
        raise _naming(error, path) from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def copy_file(source: str | Path, target: str | Path) -> Path:
    """Copy `source` to `target` atomically (a reader never sees half a file); returns `target`."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return Path(target)


@contextlib.contextmanager
def new_folder_removed_on_error(folder: str | Path) -> Iterator[Path]:
    """Run a block that fills `folder`; if the block created it and fails on bad input (a
    TalkfaceError or an OSError), remove it, so a failed run leaves nothing behind.

    An interrupted run (Ctrl-C, kill) keeps the folder: its finished steps are what a re-run resumes from.
    """
    from talkface.errors import TalkfaceError

    folder = Path(folder)
    created = not folder.exists()
    try:
        yield folder
    except (TalkfaceError, OSError):
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries of earlier writes to `path` whose process no longer runs; those removed."""
    path = Path(path)
    removed = []
    for candidate in path.parent.glob(f".{glob_escape(path.stem)}.*.*.tmp{glob_escape(path.suffix)}"):
        pid = candidate.name[len(path.stem) + 2:].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(candidate) if candidate.is_dir() else candidate.unlink()
            removed.append(candidate)
    return removed


def glob_escape(text: str) -> str:
    """`text` matched literally by Path.glob (brackets, '*' and '?' escaped)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _naming(error: OSError, path: Path) -> OSError:
    """`error` naming `path` when it was about the temporary file (or named no file)."""
    name = None if error.filename is None else Path(error.filename)
    if name is not None and not (name.parent == path.parent and name.name.startswith(f".{path.stem}.")):
        return error  # about another file (a parent that is a file, say): keep its name
    return type(error)(error.errno, error.strerror, str(path))
