"""Configs: YAML -> typed dataclasses, overrides, errors that name the key and the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from talkface.config import config_to_dict, load_config, save_config
from talkface.errors import ConfigError


@dataclass
class Optim:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)


@dataclass
class Example:
    name: str = "run"
    steps: int = 10
    clip: Optional[float] = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    optim: Optim = field(default_factory=Optim)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_file_and_overrides_in_order(tmp_path):
    path = write(tmp_path, "a.yaml", "steps: 20\noptim:\n  lr: 1e-4\n")  # YAML 1.1 reads 1e-4 as a string
    config = load_config(Example, path, ["optim.betas=[0.9, 0.99]", "clip=1.5", "steps=30"])
    assert config.steps == 30 and config.clip == 1.5
    assert config.optim.lr == pytest.approx(1e-4) and isinstance(config.optim.lr, float)
    assert config.optim.betas == (0.9, 0.99)
    assert config.name == "run" and config.sizes == [1, 2]


def test_int_is_accepted_for_float_but_not_the_reverse(tmp_path):
    assert load_config(Example, None, ["optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(ConfigError, match=r"steps: expected int, got 1.5"):
        load_config(Example, None, ["steps=1.5"])


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "typo.yaml", "optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(Example, path)
    message = str(info.value)
    assert "typo.yaml" in message and "'optim.lrr'" in message and "lr" in message
    assert "\n" not in message


def test_wrong_type_names_key_and_file(tmp_path):
    path = write(tmp_path, "bad.yaml", "steps: many\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: steps: expected int, got 'many'"):
        load_config(Example, path)


def test_literal_and_tuple_length_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"device: expected one of \['auto', 'cpu', 'cuda'\], got 'tpu'"):
        load_config(Example, None, ["device=tpu"])
    with pytest.raises(ConfigError, match=r"optim.betas: expected 2 values, got 3"):
        load_config(Example, None, ["optim.betas=[1, 2, 3]"])


def test_override_errors_name_the_override():
    with pytest.raises(ConfigError, match=r"--set optim.nope=1: unknown key 'optim.nope'"):
        load_config(Example, None, ["optim.nope=1"])
    with pytest.raises(ConfigError, match=r"expected KEY=VALUE"):
        load_config(Example, None, ["steps"])
    with pytest.raises(ConfigError, match=r"'steps' has no sub-keys"):
        load_config(Example, None, ["steps.x=1"])


def test_base_inheritance_and_loops(tmp_path):
    write(tmp_path, "base.yaml", "steps: 5\noptim:\n  lr: 0.5\n  betas: [0.1, 0.2]\n")
    child = write(tmp_path, "child.yaml", "_base_: base.yaml\noptim:\n  lr: 0.25\n")
    config = load_config(Example, child)
    assert config.steps == 5 and config.optim.lr == 0.25 and config.optim.betas == (0.1, 0.2)
    write(tmp_path, "loop_a.yaml", "_base_: loop_b.yaml\n")
    loop_b = write(tmp_path, "loop_b.yaml", "_base_: loop_a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(Example, loop_b)


def test_a_section_takes_its_base_from_another_file(tmp_path):
    # A pipeline config builds each stage's section on that stage's own shipped file.
    write(tmp_path, "optim.yaml", "lr: 0.5\nbetas: [0.1, 0.2]\n")
    pipeline = write(tmp_path, "pipeline.yaml", "steps: 7\noptim:\n  _base_: optim.yaml\n  lr: 0.25\n")
    config = load_config(Example, pipeline, ["optim.betas=[0.3, 0.4]"])
    assert config.steps == 7 and config.optim.lr == 0.25 and config.optim.betas == (0.3, 0.4)
    typo = write(tmp_path, "typo_base.yaml", "optim:\n  _base_: optim.yaml\n  lrr: 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'optim.lrr'"):
        load_config(Example, typo)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match=r"nothere\.yaml: config file not found"):
        load_config(Example, tmp_path / "nothere.yaml")
    bad = write(tmp_path, "broken.yaml", "steps: [1,\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_config(Example, bad)
    listing = write(tmp_path, "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(Example, listing)


def test_save_round_trip(tmp_path):
    config = load_config(Example, None, ["clip=0.5", "optim.betas=[0.3, 0.4]"])
    out = tmp_path / "run" / "config.yaml"
    save_config(config, out)
    assert load_config(Example, out) == config
    assert config_to_dict(config)["optim"]["betas"] == [0.3, 0.4]
    assert [p.name for p in out.parent.iterdir()] == ["config.yaml"]  # no temp files left
