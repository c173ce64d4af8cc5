"""Arguments shared by many commands."""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser, default_config: str | None) -> None:
    """`--config FILE` and repeatable `--set key.sub=value` overrides."""
    parser.add_argument(
        "--config", default=default_config, metavar="YAML",
        help=f"config file (default: {default_config or 'built-in defaults'})",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config value, e.g. --set train.lr=1e-4 (repeatable)",
    )
