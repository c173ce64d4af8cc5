"""The `talkface` command: one entry point whose subcommands call the pipelines.

Each command group lives in `talkface/commands/<group>.py` and exposes `register(subparsers)`.
Group modules import only argparse-level code at the top, so `talkface --help` stays fast; the
heavy imports (torch, models) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
from typing import Sequence

from talkface import __version__
from talkface.errors import TalkfaceError
from talkface.threads import configure_threads

# Only groups whose commands work are listed here.
COMMAND_GROUPS: tuple[str, ...] = (
    "talkface.commands.media",
    "talkface.commands.audio",
    "talkface.commands.bfm",
    "talkface.commands.synth",
    "talkface.commands.recon",
    "talkface.commands.preprocess",
    "talkface.commands.lrw",
    "talkface.commands.motion",
    "talkface.commands.gan",
    "talkface.commands.convert",
    "talkface.commands.eval",
    "talkface.commands.pretrain",
    "talkface.commands.person",
    "talkface.commands.demo",
    "talkface.commands.heldout",
    "talkface.commands.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talkface",
        description="Audio-driven talking-face video with personalized head pose.",
    )
    parser.add_argument("--version", action="version", version=f"talkface {__version__}")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for torch (default: the cores the current load leaves idle, "
                             "or OMP_NUM_THREADS when set)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        importlib.import_module(group).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    configure_threads(args.threads)
    # The library reports its choices (e.g. which morphable model `auto` picked) as INFO log lines.
    logging.basicConfig(level=logging.INFO, format="talkface: %(message)s")
    try:
        result = args.handler(args)
    except TalkfaceError as error:
        # Expected failures: one line, no traceback, non-zero exit.
        print(f"talkface: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        # The system refused a file (an output in a read-only folder, below a file, a full disk):
        # the same one line, naming the path, from every command.
        print(f"talkface: error: {os_error_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("talkface: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def os_error_line(error: OSError) -> str:
    """'PATH: what went wrong' for an OSError, in words a user can act on."""
    reason = {
        FileExistsError: "exists and is not a folder",  # mkdir where a file is
        NotADirectoryError: "a file stands where a folder should be",
        IsADirectoryError: "is a folder, expected a file",
        PermissionError: "permission denied (the folder or file is not writable here)",
    }.get(type(error), error.strerror or str(error))
    if error.errno == errno.EROFS:
        reason = "read-only file system"
    names = [name for name in (error.filename, error.filename2) if name is not None]
    return f"{' -> '.join(map(str, names))}: {reason}" if names else reason


if __name__ == "__main__":
    sys.exit(main())
