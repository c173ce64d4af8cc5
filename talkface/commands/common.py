"""The command-line grammar every command shares, and config loading.

The rule: what a command works on (a clip, an audio file, a workspace, files to convert) is
positional; what it writes is `--out`; a fine-tuned person is `--person NAME`; a config is
`--config YAML` plus repeatable `--set KEY=VALUE`; a training run continues with `--resume`.
Each command's help ends with example command lines (tests/test_cli.py parses every one).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any, Sequence

# The shipped configs/ folder beside the package (a source checkout or an editable install).
SHIPPED_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXAMPLES_HEADING = "examples:"


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that an `examples:` block keeps one command per line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES_HEADING):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


def add_command(subparsers: argparse._SubParsersAction, name: str, examples: Sequence[str],
                **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose help ends with `examples` (full command lines, `talkface ...`)."""
    epilog = "\n".join([EXAMPLES_HEADING, *(f"  {line}" for line in examples)]) if examples else None
    return subparsers.add_parser(name, epilog=epilog, formatter_class=HelpFormatter, **kwargs)


def add_config_arguments(parser: argparse.ArgumentParser, default_config: str | None, config_class: str,
                         example: str) -> None:
    """`--config YAML` (default: the shipped `configs/<default_config>`) and repeatable `--set KEY=VALUE`.

    config_class: "module:Class", the dataclass the config is parsed into (imported only when the
    command runs, so `--help` stays fast); example: one KEY=VALUE of that dataclass for the help.
    """
    parser.add_argument(
        "--config", default=None, metavar="YAML",
        help=f"config file (default: configs/{default_config})" if default_config else "config file",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help=f"override one config value, e.g. --set {example} (repeatable)",
    )
    parser.set_defaults(default_config=default_config, config_class=config_class)


def add_out_argument(parser: argparse.ArgumentParser, field: str, metavar: str, what: str, when_null: str = "") -> None:
    """`--out`: where the command writes, the config's `field` (the config's value when not given)."""
    null = f"; null there: {when_null}" if when_null else ""
    parser.add_argument("--out", default=None, metavar=metavar, help=f"{what} (default: the config's {field}{null})")
    parser.set_defaults(out_field=field)


def add_landmarks_argument(parser: argparse.ArgumentParser, preprocess_key: str) -> None:
    """--landmarks NPY: given landmarks instead of the detector; `preprocess_key` is where the preprocess
    config sits in the command's config (e.g. "preprocess." or "")."""
    parser.add_argument("--landmarks", default=None, metavar="NPY",
                        help="use these landmarks [T, 68, 2] instead of detecting them: frame pixels, pixel (i, j) "
                             "centred at (j+0.5, i+0.5), or at (j, i) with "
                             f"--set {preprocess_key}landmarks.file_convention=index")


def add_resume_argument(parser: argparse.ArgumentParser) -> None:
    """`--resume` of a training command."""
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in its run folder from its latest checkpoint (without it, a run "
                             "folder that already has checkpoints is an error)")


def add_training_arguments(parser: argparse.ArgumentParser, default_config: str, config_class: str, example: str,
                           run_when_null: str = "") -> None:
    """What every training command takes: its config, `--out` (the config's run_dir) and `--resume`."""
    add_config_arguments(parser, default_config, config_class, example)
    add_out_argument(parser, "run_dir", "DIR", "run folder: logs and checkpoints", run_when_null)
    add_resume_argument(parser)


def shipped_config(name: str) -> Path | None:
    """configs/<name> of this installation, wherever the command runs from; None if not shipped."""
    path = SHIPPED_CONFIGS / name
    return path if path.is_file() else None


def config_class(args: argparse.Namespace) -> type:
    """The dataclass a command's config is parsed into (its `config_class`, "module:Class")."""
    module, _, name = args.config_class.partition(":")
    return getattr(importlib.import_module(module), name)


def load_command_config(args: argparse.Namespace) -> Any:
    """The config a command runs with: --config when given (a missing file is an error), else the
    shipped default file, else the dataclass defaults; then the --set overrides, then --out."""
    import dataclasses

    from talkface.config import load_config

    path = args.config if args.config is not None else shipped_config(args.default_config or "")
    config = load_config(config_class(args), path, args.overrides)
    if getattr(args, "out_field", None) is not None and args.out is not None:
        config = dataclasses.replace(config, **{args.out_field: args.out})
    return config
