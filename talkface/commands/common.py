"""Arguments and config loading shared by many commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# The shipped configs/ folder beside the package (a source checkout or an editable install).
SHIPPED_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def add_config_arguments(parser: argparse.ArgumentParser, default_config: str | None) -> None:
    """`--config FILE` (default: the shipped `configs/<default_config>`) and repeatable `--set key.sub=value`."""
    parser.add_argument(
        "--config", default=None, metavar="YAML",
        help=f"config file (default: configs/{default_config})" if default_config else "config file",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config value, e.g. --set train.lr=1e-4 (repeatable)",
    )
    parser.set_defaults(default_config=default_config)


def shipped_config(name: str) -> Path | None:
    """configs/<name> of this installation, wherever the command runs from; None if not shipped."""
    path = SHIPPED_CONFIGS / name
    return path if path.is_file() else None


def load_command_config(cls: type[T], args: argparse.Namespace) -> T:
    """The config a command runs with: --config when given (a missing file is an error), else the
    shipped default file, else the dataclass defaults; then the --set overrides."""
    from talkface.config import load_config

    path = args.config if args.config is not None else shipped_config(args.default_config or "")
    return load_config(cls, path, args.overrides)
