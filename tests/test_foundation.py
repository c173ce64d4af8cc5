"""Package-level behaviour: the CLI entry point, the torchvision shim, atomic writes."""

from __future__ import annotations

import subprocess
import sys

import pytest

import talkface
from talkface.atomic import atomic_path
from talkface.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"talkface {talkface.__version__}"
    assert main([]) == 2  # no command: help and a non-zero exit
    assert "COMMAND" in capsys.readouterr().out


def test_console_script_runs():
    """The installed `talkface` script and `python -m talkface` both answer."""
    result = subprocess.run([sys.executable, "-m", "talkface", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: talkface" in result.stdout


def test_torchvision_imports_on_this_torch():
    """The CPU build of torch cannot load torchvision's CUDA ops; the shim must make import work."""
    code = "import talkface.tvcompat, torchvision.models as m; print(m.resnet18().fc.in_features)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.strip() == "512"


def test_atomic_path_success_and_failure(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".txt" and tmp.parent == target.parent
        tmp.write_text("done")
    assert target.read_text() == "done"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "done"  # the old file is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_path_replaces_a_directory(tmp_path):
    target = tmp_path / "workspace"
    target.mkdir()
    (target / "old").write_text("x")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["new"]


SHIPPED = {
    "recon.yaml": "talkface.recon.train:ReconConfig",
    "preprocess.yaml": "talkface.pipelines.preprocess:PreprocessConfig",
    "motion_lrw.yaml": "talkface.motion.train:PretrainConfig",
    "motion_finetune.yaml": "talkface.motion.train:FinetuneConfig",
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_load_into_their_dataclasses(name):
    import importlib

    from talkface.commands.common import shipped_config
    from talkface.config import load_config

    module, cls = SHIPPED[name].split(":")
    assert load_config(getattr(importlib.import_module(module), cls), shipped_config(name)) is not None


def test_commands_find_their_shipped_config_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["recon", "train", "--set", "data.clipz=[]"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("talkface: error: --set data.clipz=[]: unknown key 'data.clipz'")  # the file loaded
    assert main(["preprocess", "clip.mp4", "--out", "ws", "--config", "missing.yaml"]) == 1
    assert capsys.readouterr().err.strip() == "talkface: error: missing.yaml: config file not found"
