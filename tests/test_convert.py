"""The original project's released models -> talkface checkpoints, against the original code's own outputs.

tests/data/original/ was made by tests/data/make_original_fixtures.py from the public reference
code (commits in its manifest.json) with seeded random weights; tests/original_fixture.py rebuilds
the same files here, so these tests need neither the reference code nor its weights.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import original_fixture as fx
from talkface.cli import main
from talkface.convert.original import (
    convert_audio, convert_discriminator, convert_generator, convert_memory, convert_original, read_original,
    reverse_window,
)
from talkface.gan.model import rebuild_networks
from talkface.face3d.coeffs import MOTION_TRANSLATION_Z
from talkface.motion.model import load_motion_model

TOLERANCE = 1e-4
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return fx.write_original_files(tmp_path_factory.mktemp("original"))


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(fx.DATA / "reference.npz"))


@pytest.fixture(scope="module")
def inputs():
    return {k: torch.from_numpy(v) for k, v in fx.fixture_inputs().items()}


def talkface_window(window: torch.Tensor) -> torch.Tensor:
    """The original's (t-2, t-1, t) stack [B, 9, H, W] in talkface's order (t, t-1, t-2)."""
    return window.reshape(window.shape[0], 3, 3, *window.shape[2:]).flip(1).reshape(window.shape)


def max_error(a: torch.Tensor, b: np.ndarray) -> float:
    return float((a.detach().float() - torch.from_numpy(b)).abs().max())


def test_reverse_window_swaps_frame_blocks_and_keeps_the_image_channels():
    weight = torch.arange(12.0).reshape(1, 12, 1, 1)
    assert reverse_window(weight).flatten().tolist() == [6, 7, 8, 3, 4, 5, 0, 1, 2, 9, 10, 11]
    assert torch.equal(reverse_window(reverse_window(weight)), weight)


def test_audio_network_matches_the_original(files, reference, inputs):
    net = convert_audio(read_original(files["audio"])).eval()
    with torch.no_grad():
        prediction, _ = net(inputs["mfcc"])
    assert max_error(prediction, reference["motion"]) < TOLERANCE
    # the original was trained on translation z - 0.5 and adds it back when rendering
    motion = net.decode_prediction(prediction)
    shifted = reference["motion"].copy()
    shifted[..., MOTION_TRANSLATION_Z] += 0.5
    assert net.target_mean[MOTION_TRANSLATION_Z] == 0.5
    assert max_error(motion, shifted) < TOLERANCE


def generator_error(generator, reference, inputs) -> tuple[float, float]:
    with torch.no_grad():
        out = generator.eval()(talkface_window(inputs["window"]), inputs["identity"])
    return max_error(out.image, reference["image"]), max_error(out.mask, reference["mask"])


def test_generator_matches_the_original_and_fails_with_the_window_in_the_wrong_order(files, reference, inputs):
    original = read_original(files["G"])
    assert any(".body." in key for key in original.contents)  # the copies and AdaIN stats that are dropped
    assert any(key.endswith("body.2.running_mean") for key in original.contents)
    generator, args = convert_generator(original)
    assert args["ngf"] == fx.load_manifest()["sizes"]["ngf"] and args["mapping"] == "original"
    image_error, mask_error = generator_error(generator, reference, inputs)
    assert image_error < TOLERANCE and mask_error < TOLERANCE
    first = generator.encoder[0].conv.weight
    with torch.no_grad():
        first.copy_(reverse_window(first))  # as a plain rename would load it
    assert min(generator_error(generator, reference, inputs)) > 100 * TOLERANCE  # measured: 0.12 image, 0.056 mask


def discriminator_error(discriminator, reference, inputs) -> float:
    pair = inputs["pair"]
    with torch.no_grad():
        logits = discriminator.eval()(talkface_window(pair[:, :9]), pair[:, 9:])
    return max_error(logits, reference["patches"])


def test_discriminator_matches_the_original_and_fails_with_the_window_in_the_wrong_order(files, reference, inputs):
    discriminator, args = convert_discriminator(read_original(files["D"]))
    assert args == {"in_channels": 12, "ndf": fx.load_manifest()["sizes"]["ndf"], "layers": 3, "norm": "batch"}
    assert discriminator_error(discriminator, reference, inputs) < TOLERANCE
    first = discriminator.net[0].weight
    with torch.no_grad():
        first.copy_(reverse_window(first))
    assert discriminator_error(discriminator, reference, inputs) > 100 * TOLERANCE  # measured: 0.51


def test_memory_reads_the_original_slots(files, reference, inputs):
    keys, memory, args = convert_memory(read_original(files["mem"]))
    assert args["size"] == fx.load_manifest()["sizes"]["memory_slots"]
    with torch.no_grad():
        query = keys.eval()(inputs["render"])
        _, top5 = torch.topk(query @ memory.keys.T, 5, dim=1)
    assert max_error(query, reference["query"]) < TOLERANCE
    assert top5.tolist() == reference["top5_index"].tolist()
    assert max_error(memory.read(query), reference["top1_value"]) == 0.0
    assert keys.frozen and not any(p.requires_grad for p in keys.backbone.parameters())


def test_converted_checkpoints_load_as_general_models_and_record_their_sources(files, tmp_path, inputs, reference):
    paths = convert_original([str(files[k]) for k in ("mem", "audio", "D", "G")], tmp_path / "general")
    assert [p.name for p in paths] == ["motion_lrw.pt", "gan_lrw.pt"]
    net = load_motion_model(paths[0])
    with torch.no_grad():
        assert max_error(net(inputs["mfcc"])[0], reference["motion"]) < TOLERANCE
    networks = rebuild_networks(paths[1])  # what GAN fine-tuning does with `pretrained`
    assert networks.learned_identity and networks.discriminator is not None
    assert generator_error(networks.generator, reference, inputs)[0] < TOLERANCE
    for path, kinds in zip(paths, (["audio"], ["G", "D", "mem"])):
        sources = torch.load(path, weights_only=True)["provenance"]["converted_from"]
        assert [s["sha256"] for s in sources] == [hashlib.sha256(files[k].read_bytes()).hexdigest() for k in kinds]


def test_cli_converts_and_names_a_file_that_is_not_an_original_one(files, tmp_path, capsys):
    assert main(["convert", "original", str(files["audio"]), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "motion_lrw.pt").is_file() and not (tmp_path / "gan_lrw.pt").exists()
    capsys.readouterr()
    stray = tmp_path / "notes.pth"
    torch.save({"weight": torch.zeros(3)}, stray)
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    for bad in (stray, text, tmp_path / "motion_lrw.pt"):
        assert main(["convert", "original", str(bad), "--out", str(tmp_path / "x")]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(bad) in err and "not one of the original project's files" in err
    assert main(["convert", "original", str(files["G"]), str(files["mem"]), "--out", str(tmp_path / "x")]) == 1
    assert "missing: discriminator" in capsys.readouterr().err
    assert main(["convert", "original", str(files["G"]), str(files["G"])]) == 1
    assert "two generator" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_an_expression_only_audio_network_is_refused(files, tmp_path):
    state = torch.load(files["audio"], weights_only=True)
    state["lstm_fc.0.weight"], state["lstm_fc.0.bias"] = state["lstm_fc.0.weight"][:64], state["lstm_fc.0.bias"][:64]
    torch.save(state, tmp_path / "atcnet_pose0.pth")
    with pytest.raises(Exception, match="64 outputs; talkface needs the pose variant"):
        convert_audio(read_original(tmp_path / "atcnet_pose0.pth"))


def test_deep3d_crops_equal_the_reference_pixel_for_pixel():
    from talkface.recon.alignment import align_face, apply_transform, invert_transform

    data = np.load(fx.DATA / "crops.npz")
    for frame, theirs, crop in zip(fx.crop_frames(), data["landmarks"], data["crops"]):
        ours = theirs.astype(np.float64) + 0.5  # their pixel centres are integers, ours at +0.5
        face = align_face(frame, ours, mode="deep3d")
        assert np.array_equal(face.crop, crop)
        # the transform is the one the pixels follow: a frame point and its crop point round-trip
        assert np.allclose(apply_transform(invert_transform(face.transform), face.landmarks), ours, atol=1e-3)
        exact = align_face(frame, ours)
        offset = np.abs(apply_transform(exact.transform, ours) - face.landmarks).max()
        assert 0.2 < offset < 3.0  # its rounding and half-pixel shift, in crop px (measured 1.5, 0.4, 2.5)
        assert np.abs(exact.crop.astype(int) - crop).mean() > 1.0  # so the exact crop is a different image


def test_the_crop_mode_follows_the_rnet(tmp_path):
    from talkface.pipelines.preprocess import PreprocessConfig, _Runner
    from talkface.recon.model import ReconNet, is_deep3d_checkpoint
    from talkface.workspace import Workspace

    net = ReconNet(backbone="resnet18")
    torch.save({"net_recon": net.state_dict()}, tmp_path / "epoch_20.pth")
    torch.save({"format": "talkface-checkpoint-v1", "models": {"rnet": net.state_dict()}}, tmp_path / "own.pt")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    assert is_deep3d_checkpoint(tmp_path / "epoch_20.pth") and not is_deep3d_checkpoint(tmp_path / "own.pt")
    assert not is_deep3d_checkpoint(tmp_path / "garbage.pth")  # loading it as the R-Net says why, later
    modes = {}
    for rnet, crop in (("epoch_20.pth", "auto"), ("own.pt", "auto"), (None, "auto"), ("own.pt", "deep3d")):
        config = PreprocessConfig(rnet=None if rnet is None else str(tmp_path / rnet), crop=crop)  # None: direct fit
        runner = _Runner(Workspace(tmp_path / "ws"), tmp_path / "clip.mp4", config, progress=False)
        modes[rnet, crop] = runner._crop_mode()
    assert list(modes.values()) == ["deep3d", "exact", "exact", "deep3d"]


def test_the_arcface_identity_option_names_its_file(files, tmp_path, capsys):
    from talkface.arcface import IResNet

    gan_files = [str(files[k]) for k in ("G", "D", "mem")]
    missing = tmp_path / "no_backbone.pth"
    assert main(["convert", "original", *gan_files, "--identity-encoder", "arcface", "--identity-weights",
                 str(missing), "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and not (tmp_path / "a").exists()
    torch.save(IResNet((2, 2, 2, 2)).state_dict(), tmp_path / "backbone.pth")  # an arcface_torch r18 layout
    (path,) = convert_original(gan_files, tmp_path / "b", "arcface", tmp_path / "backbone.pth")
    networks = rebuild_networks(path)  # fine-tuning reloads the ArcFace the checkpoint names
    assert networks.args["identity"] == {"name": "arcface", "weights": str((tmp_path / "backbone.pth").resolve())}
    assert "identity" not in torch.load(path, weights_only=True)["models"]  # a frozen ArcFace is not saved
