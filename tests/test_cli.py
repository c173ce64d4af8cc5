"""The command-line grammar: every command's --help examples parse, and their config overrides apply."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from talkface.cli import build_parser
from talkface.commands.common import EXAMPLES_HEADING, load_command_config

REPO = Path(__file__).resolve().parents[1]


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) of every leaf subcommand."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield path, parser
        return
    for name, sub in actions[0].choices.items():
        yield from _commands(sub, path + (name,))


COMMANDS = dict(_commands(build_parser()))


def _examples(help_text: str) -> list[list[str]]:
    """The example command lines of a help text, as the words after `talkface`."""
    block = help_text.split(EXAMPLES_HEADING, 1)[1] if EXAMPLES_HEADING in help_text else ""
    lines = [shlex.split(line) for line in block.splitlines() if line.strip()]
    return [words[words.index("talkface") + 1:] for words in lines]


def test_every_command_shows_examples():
    assert len(COMMANDS) > 20
    missing = [" ".join(path) for path, parser in COMMANDS.items() if not _examples(parser.format_help())]
    assert missing == []


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_help_examples_parse_and_their_config_overrides_apply(path, monkeypatch):
    monkeypatch.chdir(REPO)  # examples name shipped configs (configs/...) relative to the repository
    help_text = COMMANDS[path].format_help()
    for words in _examples(help_text):
        assert tuple(words[:len(path)]) == path, f"example {words} is not for {path}"
        args = build_parser().parse_args(words)  # argparse exits on a bad example
        if hasattr(args, "config_class"):
            load_command_config(args)  # its --config / --set keys exist and have the right types
    # The --set example of the option's own help applies to the command's shipped config.
    shown = re.findall(r"e\.g\. --set (\S+=\S+)", " ".join(help_text.split()))
    if "--set" in help_text:
        assert shown, f"{path}: --set has no example"
        args = build_parser().parse_args([*path, *_required_placeholders(path), "--set", shown[0]])
        load_command_config(args)


def _required_placeholders(path: tuple[str, ...]) -> list[str]:
    """Positional and required arguments that make `path` parse (values are never read)."""
    parser = COMMANDS[path]
    words = []
    for action in parser._actions:
        if not action.option_strings and action.nargs not in ("?", "*") and action.dest != "help":
            words.append("x")
        elif action.required:
            words += [action.option_strings[0], "x"]
    return words


def test_training_commands_resume_with_help():
    for path in [("recon", "train"), ("motion", "pretrain"), ("motion", "finetune"), ("gan", "pretrain"),
                 ("gan", "finetune")]:
        resume = next(a for a in COMMANDS[path]._actions if "--resume" in a.option_strings)
        assert resume.help, path


def test_out_overrides_the_run_folder_and_a_typo_stays_an_error(tmp_path):
    from talkface.errors import ConfigError

    args = build_parser().parse_args(["motion", "pretrain", "--out", str(tmp_path / "run"), "--set", "lr=1e-3"])
    config = load_command_config(args)
    assert config.run_dir == str(tmp_path / "run") and config.lr == pytest.approx(1e-3)
    args = build_parser().parse_args(["bench", "--set", "stages=[render,gan]"])
    assert load_command_config(args).stages == ("render", "gan")
    for bad in (["bench", "--set", "frame=50"], ["bench", "--set", "stages=[rendr]"], ["infer", "a.wav", "--person",
                                                                                      "p", "--out", "o.mp4", "--set",
                                                                                      "rasterizr=torch"]):
        with pytest.raises(ConfigError):
            load_command_config(build_parser().parse_args(bad))
