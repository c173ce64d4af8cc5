"""R-Net losses and training stage, whole-clip fitting, and the person workspace (`talkface preprocess`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from talkface.cli import main
from talkface.config import load_config
from talkface.errors import TalkfaceError
from talkface.face3d.camera import Camera
from talkface.face3d.coeffs import EXPRESSION, IDENTITY, TEXTURE
from talkface.face3d.model import load_morphable_model
from talkface.face3d.synthetic import EXPRESSION_DIRECTIONS
from talkface.recon import losses
from talkface.recon.alignment import alignment_transform, apply_transform
from talkface.recon.inference import RefineConfig, common_crop_translation, fit_clip, keypoints_2d, refine_clip
from talkface.recon.model import ReconNet, load_rnet
from talkface.recon.data import AlignedFrames
from talkface.recon.train import ReconConfig, draw_points
from talkface.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 32


@pytest.fixture(scope="module")
def model():
    return load_morphable_model("synthetic")


@pytest.fixture(scope="module")
def person(tmp_path_factory) -> Path:
    """A 1.28 s synthetic person clip (32 frames at 25 fps, 160 px) with its truth."""
    from talkface.synth.world import write_person

    return write_person(tmp_path_factory.mktemp("person") / "p", seconds=FRAMES / 25, seed=11, size=160,
                        engine="builtin", progress=False)


@pytest.fixture(scope="module")
def rnet_checkpoint(person, tmp_path_factory) -> Path:
    """A resnet18 R-Net trained from scratch for 3 steps through `talkface recon train`."""
    run = tmp_path_factory.mktemp("run") / "recon"
    code = main(["recon", "train", "--config", str(ROOT / "configs" / "recon.yaml"),
                 "--set", f"run_dir={run}", "--set", "morphable_model=synthetic",
                 "--set", f"data.clips=[{person}]", "--set", "model.backbone=resnet18",
                 "--set", "train.steps=3", "--set", "train.batch_size=4", "--set", "train.num_workers=0",
                 "--set", "train.log_every=1", "--set", "train.image_every=3", "--set", "lr=1e-3"])
    assert code == 0
    return run / "checkpoints" / "step_0000003.pt"


# ---------------------------------------------------------------- losses


def test_landmark_weights_are_20_on_nose_bridge_and_inner_lips():
    weights = losses.landmark_weights()
    assert weights.shape == (68,)
    assert torch.equal(torch.nonzero(weights == 20).flatten(), torch.tensor([28, 29, 30, *range(60, 68)]))
    assert (weights[weights != 20] == 1).all()
    target = torch.zeros(1, 68, 2)
    moved = target.clone()
    moved[0, 62, 0] = 2.0  # one inner-lip point off by 2 px: 20 * 4 / 68
    assert losses.landmark_loss(moved, target).item() == pytest.approx(80 / 68)


def test_losses_vanish_where_the_prior_is_met(model):
    coeffs = torch.zeros(2, 257)
    white = torch.zeros(2, 27)
    white[:, [0, 9, 18]] = 0.3
    assert losses.gamma_loss(white).item() == 0.0
    assert losses.gamma_loss(torch.randn(2, 27)).item() > 0
    flat = torch.full((1, model.n_vertices, 3), 0.5)
    assert losses.reflectance_loss(flat, model.skin_mask).item() == pytest.approx(0.0, abs=1e-12)
    assert losses.regularization_loss(coeffs, losses.LossWeights()).item() == 0.0


def test_reconstruction_losses_of_a_render_against_itself(model):
    coeffs = torch.zeros(2, 257)
    coeffs[:, EXPRESSION.start + EXPRESSION_DIRECTIONS["jaw_open"]] = 0.5
    coeffs[:, 225] = 0.2
    from talkface.render.renderer import render

    rendered = render(coeffs, model)
    weights = losses.LossWeights()
    terms = losses.reconstruction_losses(coeffs, rendered.image, rendered.landmarks, model, weights)
    assert set(terms) == {"landmark", "regularization", "gamma", "reflectance", "photometric"}
    assert terms["landmark"].item() == 0.0
    assert terms["photometric"].item() == pytest.approx(1.92 * 1e-3, rel=1e-3)  # sqrt(1e-6) per pixel
    assert terms["regularization"].item() == pytest.approx(3e-4 * 0.8 * 0.25)
    off = losses.reconstruction_losses(coeffs, 1 - rendered.image, rendered.landmarks + 1, model, weights)
    assert off["landmark"] > 0 and off["photometric"] > terms["photometric"]
    no_photo = losses.reconstruction_losses(coeffs, rendered.image, rendered.landmarks, model,
                                            losses.LossWeights(photometric=0.0))
    assert "photometric" not in no_photo


def test_identity_term_only_with_an_encoder(model):
    from talkface.gan.identity import make_identity_encoder

    coeffs = torch.zeros(1, 257, requires_grad=True)
    images, points = torch.rand(1, 3, 224, 224), keypoints_2d(model, torch.zeros(1, 257), Camera())
    terms = losses.reconstruction_losses(coeffs, images, points, model, identity_encoder=make_identity_encoder("learned"))
    assert "identity" in terms and 0 <= terms["identity"].item() <= 0.4
    terms["identity"].backward()
    assert coeffs.grad is not None and coeffs.grad.abs().sum() > 0


def test_keypoints_2d_matches_the_full_model(model):
    coeffs = torch.randn(3, 257) * 0.3
    np.testing.assert_allclose(keypoints_2d(model, coeffs, Camera()), model(coeffs).landmarks, atol=1e-3)


# ---------------------------------------------------------------- R-Net and its training stage


def test_resnet18_option_keeps_resnet50_the_default_layout():
    assert ReconNet().final_layers[0].in_channels == 2048
    small = ReconNet(backbone="resnet18")
    assert small.final_layers[0].in_channels == 512
    assert small(torch.rand(1, 3, 224, 224)).abs().max() == 0  # zero heads: the mean face
    with pytest.raises(TalkfaceError, match="valid: resnet50, resnet18"):
        ReconNet(backbone="vgg")


def test_recon_train_writes_a_checkpoint_that_load_rnet_rebuilds(rnet_checkpoint):
    net = load_rnet(rnet_checkpoint)
    assert net.final_layers[0].in_channels == 512
    run = rnet_checkpoint.parents[1]
    assert (run / "config.yaml").is_file() and any((run / "tensorboard").iterdir())
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    keys = set().union(*(s.keys() for s in stats))
    assert {"train/landmark", "train/photometric"} <= keys, keys


def test_recon_config_file_parses_with_public_defaults():
    config = load_config(ReconConfig, ROOT / "configs" / "recon.yaml")
    assert config.model.backbone == "resnet50" and config.loss == losses.LossWeights()
    assert config.lr == 1e-4


def test_dataset_reads_clip_folders_lrw_clips_and_draws_points(person, tmp_path):
    from talkface.synth.world import write_lrw

    data = AlignedFrames.from_folders([str(person)], max_frames=5)
    item = data[0]
    assert len(data) == 5 and item["image"].shape == (3, 224, 224) and item["landmarks"].shape == (68, 2)
    write_lrw(tmp_path / "lrw", words=["HELLO"], clips_per_word=1, splits=("train",), size=64, engine="builtin",
              progress=False)
    lrw = AlignedFrames.from_folders([str(tmp_path / "lrw")], max_frames=3)
    assert len(lrw) == 3 and 90 < float(lrw[0]["landmarks"][:, 0].mean()) < 134  # a face near the crop centre
    dotted = draw_points(torch.zeros(1, 3, 8, 8), torch.tensor([[[4.5, 2.5]]]), (0.0, 1.0, 0.0))
    assert dotted[0, 1, 1:4, 3:6].eq(1).all() and dotted.sum() == 9
    with pytest.raises(TalkfaceError, match="neither a person workspace, a clip folder with clip.mp4, nor LRW"):
        AlignedFrames.from_folders([str(person / "truth")])


# ---------------------------------------------------------------- fitting and the workspace


def preprocess(clip: Path, out: Path, *extra: str, steps: int = 5) -> int:
    return main(["preprocess", str(clip), "--out", str(out), "--config", str(ROOT / "configs" / "preprocess.yaml"),
                 "--set", "morphable_model=synthetic", "--set", f"refine.steps={steps}",
                 "--set", "refine.photometric_frames=1", "--set", "refine.photometric_size=32", *extra])


@pytest.fixture(scope="module")
def workspace(person, rnet_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ws") / "ws"
    # 150 refinement steps: the phone-driven synthetic mouth (lip closures, rounding) left 1.55 px after 100.
    assert preprocess(person / "clip.mp4", out, "--landmarks", str(person / "truth" / "landmarks.npy"),
                      "--frames", str(FRAMES), "--rnet", str(rnet_checkpoint), steps=150) == 0
    return out


def test_preprocess_writes_every_artifact_with_its_contract(workspace):
    ws = Workspace(workspace)
    shapes = {"frames.npy": (FRAMES, 160, 160, 3), "landmarks.npy": (FRAMES, 68, 2), "transforms.npy": (FRAMES, 2, 3),
              "crops.npy": (FRAMES, 224, 224, 3), "crop_landmarks.npy": (FRAMES, 68, 2),
              "window_crops.npy": (FRAMES, 256, 256, 3), "coeffs.npy": (FRAMES, 257), "mfcc.npy": (FRAMES, 28, 12)}
    for name, shape in shapes.items():
        assert ws.load_array(name).shape == shape, name
    assert ws.load_array("coeffs.npy").dtype == np.float32
    from talkface.media import read_audio

    assert len(read_audio(workspace / "audio.wav")) == FRAMES * 640
    manifest = json.loads((workspace / "manifest.json").read_text())
    assert manifest["source"]["sha256"] and manifest["config"]["frames"] == FRAMES
    assert set(manifest["steps"]) == {"frames", "audio", "mfcc", "landmarks", "align", "coeffs"}
    assert all("talkface" in step["made"] and step["version"] >= 1 for step in manifest["steps"].values())
    window = json.loads((workspace / "window.json").read_text())
    assert window["out_size"] == 256 and window["size"] <= 160


def test_fitted_clip_matches_the_truth(workspace, person, model):
    """Small version of benchmarks/bench_recon.py: landmarks within 1.5 px at 224, mouth r >= 0.8, one identity."""
    ws = Workspace(workspace)
    coeffs = ws.load_array("coeffs.npy")
    truth_landmarks = apply_transform(ws.load_array("transforms.npy"), np.load(person / "truth" / "landmarks.npy"))
    error = np.linalg.norm(keypoints_2d(model, torch.from_numpy(coeffs), Camera()).numpy() - truth_landmarks, axis=-1)
    assert error.mean() <= 1.5, error.mean()
    truth = np.load(person / "truth" / "coeffs.npy")
    for name in ("jaw_open", "lip_spread"):
        column = EXPRESSION.start + EXPRESSION_DIRECTIONS[name]
        assert np.corrcoef(coeffs[:, column], truth[:, column])[0, 1] >= 0.8, name
    assert np.ptp(coeffs[:, IDENTITY], axis=0).max() == 0 and np.ptp(coeffs[:, TEXTURE], axis=0).max() == 0


def test_rerun_skips_and_changed_config_redoes_what_depends_on_it(person, rnet_checkpoint, tmp_path, capsys):
    args = ("--landmarks", str(person / "truth" / "landmarks.npy"), "--frames", "6", "--rnet", str(rnet_checkpoint))
    workspace = tmp_path / "ws"
    assert preprocess(person / "clip.mp4", workspace, *args) == 0
    assert "up to date: none" in capsys.readouterr().out
    stamp = (workspace / "coeffs.npy").stat().st_mtime_ns
    assert preprocess(person / "clip.mp4", workspace, *args) == 0
    assert "ran nothing (up to date)" in capsys.readouterr().out
    assert (workspace / "coeffs.npy").stat().st_mtime_ns == stamp
    frames_stamp = (workspace / "frames.npy").stat().st_mtime_ns
    assert preprocess(person / "clip.mp4", workspace, *args, steps=4) == 0
    out = capsys.readouterr().out
    assert "ran coeffs" in out and "up to date: frames, audio, mfcc, landmarks, align" in out
    assert (workspace / "frames.npy").stat().st_mtime_ns == frames_stamp
    (workspace / "crops.npy").unlink()  # a missing output is redone, and what depends on it
    assert preprocess(person / "clip.mp4", workspace, *args, steps=4) == 0
    assert "ran align" in capsys.readouterr().out
    assert preprocess(person / "clip.mp4", workspace, *args[:2], "--frames", "5", *args[4:], steps=4) == 0
    assert "ran frames" in capsys.readouterr().out and len(np.load(workspace / "coeffs.npy")) == 5
    moved = tmp_path / "moved.npy"  # a changed input: landmarks and everything after them are redone
    np.save(moved, np.load(person / "truth" / "landmarks.npy") + 0.5)
    assert preprocess(person / "clip.mp4", workspace, "--landmarks", str(moved), "--frames", "5", *args[4:], steps=4) == 0
    out = capsys.readouterr().out
    assert "ran landmarks" in out and "align" in out and "up to date: frames, audio, mfcc\n" in out


def test_common_crop_translation_puts_the_head_where_the_mean_crop_sees_it():
    camera = Camera()
    generator = torch.Generator().manual_seed(0)
    translation = torch.randn(5, 3, generator=generator, dtype=torch.float64) * 0.2
    transforms = torch.zeros(5, 2, 3, dtype=torch.float64)
    transforms[:, 0, 0] = transforms[:, 1, 1] = 0.9 + 0.05 * torch.rand(5, generator=generator, dtype=torch.float64)
    transforms[:, :, 2] = 10 * torch.randn(5, 2, generator=generator, dtype=torch.float64)
    common = common_crop_translation(translation, transforms, camera)
    # independently: frame t's crop -> mean crop is crop t -> frame -> mean crop, q' = Z (q - b_t) / z_t + B
    zoom, offset = transforms[:, 0, 0], transforms[:, :, 2]
    seen = camera.project(camera.to_camera(translation))  # [5, 2] the head centre in each crop
    expected = zoom.mean() * (seen - offset) / zoom[:, None] + offset.mean(dim=0)
    torch.testing.assert_close(camera.project(camera.to_camera(common)), expected)
    depth = camera.distance - translation[:, 2]  # nearer by the zoom ratio: the same apparent size
    torch.testing.assert_close(camera.distance - common[:, 2], depth * zoom / zoom.mean())
    same = transforms[:1].expand(5, 2, 3)
    torch.testing.assert_close(common_crop_translation(translation, same, camera), translation)


def test_refinement_recovers_the_mouth_through_per_frame_crops(person, model):
    """Landmark-only refinement of the truth seen through per-frame 5-point crops, whose zoom follows the mouth."""
    truth = np.load(person / "truth" / "coeffs.npy")
    canonical = keypoints_2d(model, torch.from_numpy(truth), Camera()).double().numpy()
    transforms = alignment_transform(canonical)
    no_images = np.zeros((len(truth), 1, 1, 3), np.uint8)  # photometric_frames=0 renders nothing
    coeffs = refine_clip(torch.zeros(len(truth), 257), no_images, apply_transform(transforms, canonical), model,
                         RefineConfig(steps=400, photometric_frames=0), progress=False, transforms=transforms).numpy()
    for name in ("jaw_open", "lip_spread", "lip_round"):  # lip_round: 0.56 when the crop zoom was smoothed too
        column = EXPRESSION.start + EXPRESSION_DIRECTIONS[name]
        r = np.corrcoef(coeffs[:, column], truth[:, column])[0, 1]
        assert r >= 0.9, (name, r)


def test_fit_clip_without_refinement_is_the_rnet_prediction(workspace):
    ws = Workspace(workspace)
    crops = ws.load_array("crops.npy")[:2]
    coeffs = fit_clip(crops, ws.load_array("crop_landmarks.npy")[:2], ReconNet(backbone="resnet18"),
                      load_morphable_model("synthetic"), refine=RefineConfig(enabled=False))
    assert coeffs.shape == (2, 257) and not coeffs.any()


def test_bad_inputs_are_one_line_errors_and_write_nothing(person, rnet_checkpoint, tmp_path, capsys):
    landmarks = str(person / "truth" / "landmarks.npy")
    clip = person / "clip.mp4"
    capsys.readouterr()

    assert preprocess(clip, tmp_path / "short", "--landmarks", landmarks, "--rnet", str(rnet_checkpoint)) == 1
    err = capsys.readouterr().err.strip()
    assert f"has only {FRAMES} frames" in err and "\n" not in err
    assert not (tmp_path / "short" / "frames.npy").exists()

    assert preprocess(clip, tmp_path / "norn", "--landmarks", landmarks, "--frames", "4", "--rnet", str(tmp_path / "x.pth")) == 1
    err = capsys.readouterr().err.strip()
    assert "talkface recon train" in err and "epoch_20.pth" in err and "\n" not in err
    assert not (tmp_path / "norn").exists() or not any((tmp_path / "norn").iterdir())

    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((FRAMES, 68, 2), np.nan, np.float32))
    assert preprocess(clip, tmp_path / "noface", "--landmarks", str(nan), "--frames", "4", "--rnet", str(rnet_checkpoint)) == 1
    err = capsys.readouterr().err.strip()
    assert "no face found in any of the 4 frames" in err and "\n" not in err
    assert not (tmp_path / "noface" / "landmarks.npy").exists()

    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("mine")
    assert preprocess(clip, tmp_path / "foreign", "--landmarks", landmarks, "--frames", "4", "--rnet", str(rnet_checkpoint)) == 1
    assert "not a person workspace" in capsys.readouterr().err


def test_a_workspace_missing_a_step_says_which_to_run(tmp_path):
    with pytest.raises(TalkfaceError, match=r"no coeffs.npy \(preprocess step 'coeffs'\); run `talkface preprocess"):
        Workspace(tmp_path).load_array("coeffs.npy")
