"""Reconstruction without R-Net weights (direct fitting from the posed mean face) and `auto` model choices."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from talkface.cli import main
from talkface.face3d import model as face_model
from talkface.face3d.camera import Camera
from talkface.face3d.coeffs import ANGLES, EXPRESSION, TRANSLATION
from talkface.face3d.synthetic import EXPRESSION_DIRECTIONS
from talkface.recon.alignment import apply_transform
from talkface.recon.inference import keypoints_2d, posed_mean_face
from talkface.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 32


@pytest.fixture(scope="module")
def person(tmp_path_factory) -> Path:
    """A 1.28 s synthetic person clip (32 frames at 25 fps, 160 px) with its truth."""
    from talkface.synth.world import write_person

    return write_person(tmp_path_factory.mktemp("person") / "p", seconds=FRAMES / 25, seed=11, size=160,
                        engine="builtin", progress=False)


def preprocess(clip: Path, out: Path, *extra: str) -> int:
    """`talkface preprocess` with the shipped config (rnet and morphable_model auto) and a short refinement."""
    return main(["preprocess", str(clip), "--out", str(out), "--config", str(ROOT / "configs" / "preprocess.yaml"),
                 "--set", "refine.steps=150", "--set", "refine.photometric_frames=1",
                 "--set", "refine.photometric_size=32", *extra])


@pytest.fixture(scope="module")
def direct(person, tmp_path_factory) -> tuple[Path, list[str]]:
    """A workspace preprocessed with the shipped `auto` defaults where neither R-Net nor BFM exist."""
    home = tmp_path_factory.mktemp("fresh")  # a fresh checkout's working directory: checkpoints/ is empty
    caught: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: caught.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("talkface").addHandler(handler)
    logging.getLogger("talkface").setLevel(logging.INFO)
    face_model._say_auto_choice.cache_clear()  # "said once": once per process, and this test wants it
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(home)
        try:
            assert preprocess(person / "clip.mp4", home / "ws", "--landmarks", str(person / "truth" / "landmarks.npy"),
                              "--frames", str(FRAMES)) == 0
        finally:
            logging.getLogger("talkface").removeHandler(handler)
            logging.getLogger("talkface").setLevel(logging.NOTSET)
    return home / "ws", caught


def test_preprocess_without_rnet_runs_and_records_the_path_and_model(direct):
    workspace, log = direct
    ws = Workspace(workspace)
    assert ws.load_array("coeffs.npy").shape == (FRAMES, 257)
    coeffs = ws.step_record("coeffs")
    assert coeffs["init"] == "direct" and coeffs["rnet_file"] is None and coeffs["morphable_model"] == "synthetic"
    # What infer and the GAN read (gan/data.py): the model that ran, not "auto".
    assert json.loads((workspace / "manifest.json").read_text())["config"]["morphable_model"] == "synthetic"
    assert face_model.recorded_morphable_model(ws.manifest) == "synthetic"
    assert face_model.resolve_morphable_model("auto", face_model.recorded_morphable_model(ws.manifest)) == "synthetic"
    said = [line for line in log if "morphable model auto" in line]
    assert len(said) == 1 and "synthetic" in said[0]
    assert any("no R-Net weights, fitting the clip directly" in line for line in log)


def test_direct_fit_recovers_pose_and_mouth_opening(direct, person):
    ws = Workspace(direct[0])
    coeffs = ws.load_array("coeffs.npy")
    truth = np.load(person / "truth" / "coeffs.npy")
    # Head rotation means the same in the crop's camera (crops only zoom and shift). Measured at 150
    # steps: mean errors 1.5 / 0.9 / 0.3 degrees (pitch is off by a constant 1.5: the fitted identity's
    # profile), r 0.98 / 0.88 / 0.88, against truth stds of 4.2 / 2.1 / 0.8 degrees.
    error = np.degrees(np.abs(coeffs[:, ANGLES] - truth[:, ANGLES])).mean(axis=0)
    assert (error < [2.5, 1.5, 0.6]).all(), error
    correlation = [np.corrcoef(a, b)[0, 1] for a, b in zip(coeffs[:, ANGLES].T, truth[:, ANGLES].T)]
    assert correlation[0] >= 0.95 and correlation[1] >= 0.8, correlation
    model = face_model.load_morphable_model("synthetic")
    fitted = keypoints_2d(model, torch.from_numpy(coeffs), Camera()).numpy()
    seen = apply_transform(ws.load_array("transforms.npy"), np.load(person / "truth" / "landmarks.npy"))
    assert np.linalg.norm(fitted - seen, axis=-1).mean() <= 1.5  # px at 224

    def gap(points: np.ndarray) -> np.ndarray:  # inner-lip opening, 62 (upper) to 66 (lower)
        return np.linalg.norm(points[:, 66] - points[:, 62], axis=-1)

    assert gap(seen).std() > 3.0  # the mouth opens and closes in this clip
    assert np.abs(gap(fitted) - gap(seen)).mean() <= 0.8
    jaw = EXPRESSION.start + EXPRESSION_DIRECTIONS["jaw_open"]
    assert np.corrcoef(coeffs[:, jaw], truth[:, jaw])[0, 1] >= 0.95


def test_posed_mean_face_inverts_the_projection():
    model = face_model.load_morphable_model("synthetic")
    coeffs = torch.zeros(3, 257)
    coeffs[:, ANGLES] = torch.tensor([[0.1, -0.3, 0.05], [-0.2, 0.4, -0.1], [0.0, 0.0, 0.0]])
    coeffs[:, TRANSLATION] = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.1, -0.5], [0.0, 0.0, 0.0]])
    posed = posed_mean_face(keypoints_2d(model, coeffs, Camera()).numpy(), model)
    torch.testing.assert_close(posed, coeffs, atol=1e-4, rtol=0)


def test_a_named_rnet_that_is_missing_is_a_one_line_error(person, tmp_path, capsys):
    capsys.readouterr()
    assert preprocess(person / "clip.mp4", tmp_path / "ws", "--landmarks", str(person / "truth" / "landmarks.npy"),
                      "--frames", "4", "--set", f"rnet={tmp_path / 'mine.pth'}") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("talkface: error:") and "\n" not in err
    assert "mine.pth" in err and "missing R-Net weights" in err and "auto/null" in err
    assert not (tmp_path / "ws").exists() or not any((tmp_path / "ws").iterdir())


def test_direct_fitting_needs_the_refinement(person, tmp_path, capsys):
    capsys.readouterr()
    assert preprocess(person / "clip.mp4", tmp_path / "ws", "--landmarks", str(person / "truth" / "landmarks.npy"),
                      "--frames", "4", "--set", "rnet=none", "--set", "refine.enabled=false") == 1
    err = capsys.readouterr().err.strip()
    assert "without R-Net weights" in err and "\n" not in err


def test_morphable_model_auto_picks_bfm_when_present_else_synthetic(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert face_model.resolve_morphable_model("auto") == "synthetic"
    assert face_model.resolve_morphable_model("synthetic:600") == "synthetic:600"  # explicit choices stay
    bfm = tmp_path / "checkpoints" / "BFM" / "BFM_model_front.mat"
    bfm.parent.mkdir(parents=True)
    bfm.write_bytes(b"")
    assert face_model.resolve_morphable_model("auto") == "checkpoints/BFM/BFM_model_front.mat"
