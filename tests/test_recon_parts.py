"""Landmark backends and clean-up, 5-point alignment, and the R-Net's checkpoint layout."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from talkface.errors import MissingWeightsError, TalkfaceError
from talkface.face3d import coeffs
from talkface.recon import landmarks as lmk
from talkface.recon import track as lmk_track
from talkface.recon.alignment import (
    TEMPLATE_5PT,
    align_face,
    align_faces,
    apply_transform,
    five_points,
    invert_transform,
    pos_fit,
)
from talkface.recon.model import HEAD_SIZES, ReconNet, load_rnet
from talkface.recon.window import WINDOW_FILE, clip_window, read_window, write_window


def rotation(yaw: float, roll: float) -> np.ndarray:
    cy, sy, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    about_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return about_z @ about_y


def project(points3d: np.ndarray, scale: float, translation, yaw: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Scaled orthographic image of template-space points [N, 3]; image y points down."""
    rotated = points3d @ rotation(yaw, roll).T
    return scale * rotated[:, :2] * [1, -1] + np.asarray(translation, float)


def face68(scale: float, translation, yaw: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """A [68, 2] set whose five_points are exactly the projected template (other points filler)."""
    five = project(TEMPLATE_5PT, scale, translation, yaw, roll)
    points = np.tile(five.mean(axis=0), (68, 1))
    points[[36, 39]] = five[0] + [[-3, 0], [3, 0]]
    points[[42, 45]] = five[1] + [[-3, 0], [3, 0]]
    points[30], points[48], points[54] = five[2], five[3], five[4]
    return points


# ---------------------------------------------------------------- alignment


def test_five_points_picks_eye_corners_nose_and_mouth_corners():
    points = np.arange(68 * 2, dtype=np.float64).reshape(68, 2)
    five = five_points(points)
    np.testing.assert_array_equal(five[0], (points[36] + points[39]) / 2)
    np.testing.assert_array_equal(five[1], (points[42] + points[45]) / 2)
    np.testing.assert_array_equal(five[2:], points[[30, 48, 54]])
    assert five_points(np.stack([points, points + 1])).shape == (2, 5, 2)


def test_pos_fit_recovers_scale_and_translation():
    truth = [(3.7, (410.0, 233.0), 0.3, 0.1), (250.0, (-20.5, 700.25), -0.2, -0.05), (90.0, (120, 90), 0, 0)]
    points = np.stack([project(TEMPLATE_5PT, s, t, yaw, roll) for s, t, yaw, roll in truth])
    translation, scale = pos_fit(points)  # batched over the three
    np.testing.assert_allclose(scale, [s for s, *_ in truth], rtol=1e-9)
    np.testing.assert_allclose(translation, [t for _, t, *_ in truth], atol=1e-7)


def test_align_face_centres_template_origin_at_zoom_102_over_s():
    points = face68(scale=300.0, translation=(321.0, 205.0))
    image = np.zeros((480, 640, 3), np.uint8)
    face = align_face(image, points)
    assert face.crop.shape == (224, 224, 3) and face.crop.dtype == np.uint8
    expected = 112 + 102 * TEMPLATE_5PT[:, :2] * [1, -1]  # frontal: template x, -y in crop pixels
    np.testing.assert_allclose(five_points(face.landmarks), expected, atol=1e-3)
    np.testing.assert_allclose(face.transform[:, :2], np.eye(2) * 102 / 300, atol=1e-9)


@pytest.mark.parametrize("scale", [70.0, 300.0])  # zoom 1.46 (upsampling) and 0.34 (pre-blurred)
def test_warp_moves_a_marked_pixel_where_the_transform_sends_it(scale):
    image = np.zeros((240, 320, 3), np.uint8)
    row, col = 101, 157
    image[row - 1 : row + 2, col - 1 : col + 2] = 255  # a 3x3 mark centred on pixel (row, col)
    face = align_face(image, face68(scale, (150.3, 110.8), roll=0.2))
    target = apply_transform(face.transform, np.array([[col + 0.5, row + 0.5]]))[0]
    crop = face.crop[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:224, :224] + 0.5
    centroid = np.array([(crop * xs).sum(), (crop * ys).sum()]) / crop.sum()
    assert np.abs(centroid - target).max() < 0.15, (centroid, target)
    peak = np.unravel_index(crop.argmax(), crop.shape)
    assert np.abs(np.array([peak[1], peak[0]]) + 0.5 - target).max() <= 1.0


def test_float_chw_input_gives_float_chw_crop_matching_uint8():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (180, 200, 3), dtype=np.uint8)
    points = face68(100.0, (95.0, 88.0), yaw=0.1)
    from_uint8 = align_face(image, points).crop.astype(np.float32) / 255
    chw = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    from_float = align_face(chw, points).crop
    assert isinstance(from_float, torch.Tensor) and from_float.shape == (3, 224, 224)
    assert np.abs(from_float.permute(1, 2, 0).numpy() - from_uint8).max() <= 1 / 255 + 1e-6


def test_transform_inverse_round_trips():
    points = face68(140.0, (260.0, 180.0), yaw=0.2, roll=-0.1)
    face = align_face(np.zeros((360, 480, 3), np.uint8), points)
    np.testing.assert_allclose(apply_transform(face.inverse, face.landmarks), points, atol=1e-3)
    matrices = np.random.default_rng(1).normal(size=(4, 2, 3)) + [[1, 0, 0], [0, 1, 0]]
    xy = np.random.default_rng(2).normal(size=(4, 7, 2)) * 50
    np.testing.assert_allclose(apply_transform(invert_transform(matrices), apply_transform(matrices, xy)), xy, atol=1e-9)


def test_align_faces_batched_matches_single():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 160, 160, 3), dtype=np.uint8)
    points = np.stack([face68(90.0, (80.0, 75.0)), face68(110.0, (85.0, 82.0), roll=0.1)])
    batch = align_faces(images, points)
    assert batch.crops.shape == (2, 224, 224, 3) and batch.transforms.shape == (2, 2, 3)
    single = align_face(images[1], points[1])
    np.testing.assert_array_equal(batch.crops[1], single.crop)
    np.testing.assert_allclose(batch.inverses[1], single.inverse)


def test_clip_window_is_square_centred_on_the_median_face_and_clamped():
    frames = np.stack([face68(150.0, (300.0 + dx, 200.0)) for dx in (-4, 0, 40, 1, 2)])  # one outlier
    window = clip_window(frames, (480, 640), out_size=256)
    size = round(150.0 * 224 / 102)
    assert (window.size, window.out_size) == (size, 256)
    assert (window.x0, window.y0) == (round(301 - size / 2), round(200 - size / 2))
    near_corner = clip_window(np.stack([face68(150.0, (20.0, 470.0))]), (480, 640))
    assert (near_corner.x0, near_corner.y0) == (0, 480 - near_corner.size)
    huge = clip_window(np.stack([face68(900.0, (320.0, 240.0))]), (480, 640))
    assert (huge.x0, huge.y0, huge.size) == (80, 0, 480)


def test_window_crop_agrees_with_its_transform():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[250:254, 330:334] = 255  # a 4x4 mark, centre (332, 252)
    window = clip_window(np.stack([face68(120.0, (320.0, 240.0))]), (480, 640), out_size=256)
    crop = window.crop(frame)[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:256, :256] + 0.5
    centroid = np.array([(crop * xs).sum(), (crop * ys).sum()]) / crop.sum()
    target = apply_transform(window.transform, np.array([[332.0, 252.0]]))[0]
    assert crop.shape == (256, 256) and np.abs(centroid - target).max() < 0.15


def test_window_file_round_trips_and_a_broken_one_is_named(tmp_path):
    window = clip_window(np.stack([face68(120.0, (320.0, 240.0))]), (480, 640), out_size=256)
    write_window(tmp_path, window)
    assert read_window(tmp_path) == window
    (tmp_path / WINDOW_FILE).write_text('{"x0": 3}')
    with pytest.raises(TalkfaceError) as error:
        read_window(tmp_path)
    assert str(tmp_path / WINDOW_FILE) in str(error.value) and "\n" not in str(error.value)


# ---------------------------------------------------------------- landmark clean-up


def static_track(frames: int = 100) -> np.ndarray:
    return np.broadcast_to(face68(120.0, (200.0, 150.0)), (frames, 68, 2)).astype(np.float32)


def test_smoothing_reduces_jitter_of_a_static_track():
    noisy = static_track() + np.random.default_rng(4).normal(0, 1.0, (100, 68, 2)).astype(np.float32)
    smoothed = lmk_track.clean_track(noisy)
    raw_error, smooth_error = (np.std(x - static_track()) for x in (noisy, smoothed))
    assert smooth_error < 0.8 * raw_error, (raw_error, smooth_error)


def test_smoothing_keeps_a_step_where_it_is():
    track = static_track(100).copy()
    track[50:] += 10.0  # the head jumps 10 px at frame 50
    smoothed = lmk_track.clean_track(track) - static_track(100)
    np.testing.assert_allclose(smoothed[:48], 0, atol=1e-4)
    np.testing.assert_allclose(smoothed[52:], 10, atol=1e-4)
    assert (smoothed[49] < 5).all() and (smoothed[50] > 5).all()  # the midpoint is crossed at the step


def test_short_gaps_are_interpolated_and_edges_held():
    track = static_track(40) + np.arange(40, dtype=np.float32)[:, None, None]  # moving 1 px per frame
    holes = track.copy()
    holes[[0, 1, 10, 11, 12, 13, 14, 39]] = np.nan
    filled = lmk_track.fill_gaps(holes, max_gap=5)
    np.testing.assert_allclose(filled[2:39], track[2:39], atol=1e-4)  # linear inside
    np.testing.assert_allclose(filled[:2], track[[2, 2]], atol=1e-4)  # held at the ends
    np.testing.assert_allclose(filled[39], track[38], atol=1e-4)
    np.testing.assert_allclose(lmk_track.clean_track(holes)[4:37], track[4:37], atol=1e-3)  # SG keeps linear motion


def test_long_gaps_fail_listing_frame_ranges():
    track = static_track(150).copy()
    track[12:41] = np.nan
    track[77] = np.nan  # short: fine on its own
    track[100:111] = np.nan
    with pytest.raises(TalkfaceError) as error:
        lmk_track.clean_track(track, max_gap=5)
    message = str(error.value)
    assert "\n" not in message and "12-40, 100-110" in message and "41 of 150" in message
    with pytest.raises(TalkfaceError, match="no face found in any"):
        lmk_track.clean_track(np.full((3, 68, 2), np.nan, np.float32))


def test_format_ranges():
    mask = np.zeros(30, bool)
    mask[[3, 12, 13, 14, 29]] = True
    assert lmk_track.format_ranges(mask) == "3, 12-14, 29"
    assert lmk_track.format_ranges(mask, limit=2) == "3, 12-14, ... (1 more)"


# ---------------------------------------------------------------- backends


def test_file_backend_loads_and_names_the_file_on_errors(tmp_path):
    good = static_track(6).copy()
    good[2] = np.nan  # a frame with no face is allowed
    path = tmp_path / "lm.npy"
    np.save(path, good.astype(np.float64))
    backend = lmk.make_landmark_backend("file", path=path)
    track = backend.detect([None] * 6)
    assert track.dtype == np.float32 and np.isnan(track[2]).all()
    assert lmk.detect_landmarks(backend, [None] * 6).shape == (6, 68, 2)
    with pytest.raises(TalkfaceError, match="6 frames, the clip has 7"):
        backend.detect([None] * 7)

    cases = {
        "missing.npy": (None, "not found"),
        "shape.npy": (np.zeros((5, 68, 3)), r"\[5, 68, 3\]"),
        "inf.npy": (np.where(np.arange(5)[:, None, None] == 3, np.inf, np.zeros((5, 68, 2))), "frames 3"),
        "partial.npy": (np.where(np.arange(68)[None, :, None] == 9, np.nan, np.zeros((5, 68, 2))), "frames 0-4"),
    }
    for name, (content, problem) in cases.items():
        if content is not None:
            np.save(tmp_path / name, content)
        with pytest.raises(TalkfaceError, match=problem) as error:
            lmk.FileLandmarks(tmp_path / name).detect()
        assert name in str(error.value)
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(TalkfaceError, match="text.npy"):
        lmk.FileLandmarks(tmp_path / "text.npy").detect()


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(TalkfaceError, match="'openface'.*auto, fan, dlib, file"):
        lmk.make_landmark_backend("openface")
    with pytest.raises(TalkfaceError, match="needs the path"):
        lmk.make_landmark_backend("file")


def put_fan_weights(root):
    home = root / "face_alignment"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    (home / lmk.S3FD_FILE).write_bytes(b"weights")
    (home / "hub" / "checkpoints" / lmk.FAN2D_FILE).write_bytes(b"weights")


def test_fan_backend_names_missing_weights_then_missing_package(tmp_path, monkeypatch):
    with pytest.raises(MissingWeightsError) as error:
        lmk.make_landmark_backend("fan", checkpoints_dir=tmp_path)
    assert lmk.S3FD_FILE in str(error.value) and lmk.FAN_URL_BASE in str(error.value)
    put_fan_weights(tmp_path)
    (tmp_path / "face_alignment" / "hub" / "checkpoints" / lmk.FAN2D_FILE).unlink()
    with pytest.raises(MissingWeightsError, match=r"2DFAN4-11f355bf06\.pth\.tar.*adrianbulat"):
        lmk.make_landmark_backend("fan", checkpoints_dir=tmp_path)
    put_fan_weights(tmp_path / "complete")
    monkeypatch.setitem(sys.modules, "face_alignment", None)  # as if not installed
    with pytest.raises(TalkfaceError, match=r"pip install face-alignment==1\.5\.0"):
        lmk.make_landmark_backend("fan", checkpoints_dir=tmp_path / "complete")


def test_fan_backend_wires_local_weights_and_keeps_the_largest_face(tmp_path, monkeypatch):
    """A stand-in face_alignment module records how the backend builds and calls it."""
    put_fan_weights(tmp_path)
    seen = {}

    class FakeFaceAlignment:
        def __init__(self, landmarks_type, **kwargs):
            import os

            hub_file = os.path.join(os.environ["TORCH_HOME"], "hub", "checkpoints", lmk.FAN2D_FILE)
            seen.update(kwargs, landmarks_type=landmarks_type, hub_file_exists=os.path.isfile(hub_file))

        def get_landmarks_from_image(self, frame, return_bboxes=False):
            if frame is None:
                return None, None, None
            small, large = np.full((68, 2), 1.0), np.full((68, 2), 2.0)
            return [small, large], None, [np.array([0, 0, 10, 10, 0.9]), np.array([0, 0, 50, 40, 0.8])]

    fake = types.SimpleNamespace(
        __version__="1.5.0", LandmarksType=types.SimpleNamespace(TWO_D="2D"), FaceAlignment=FakeFaceAlignment
    )
    monkeypatch.setitem(sys.modules, "face_alignment", fake)
    monkeypatch.delenv("TORCH_HOME", raising=False)
    backend = lmk.make_landmark_backend("fan", checkpoints_dir=tmp_path, device="cpu")
    assert seen["hub_file_exists"] and seen["compile"] is False and seen["device"] == "cpu"
    assert seen["face_detector_kwargs"]["path_to_detector"].endswith(lmk.S3FD_FILE)
    assert "TORCH_HOME" not in __import__("os").environ  # restored after construction
    track = backend.detect([np.zeros((4, 4, 3), np.uint8), None])
    np.testing.assert_array_equal(track[0], 2.5)  # the larger box's landmarks, pixel index 2 -> centre 2.5
    assert np.isnan(track[1]).all()
    fake.__version__ = "1.4.1"
    with pytest.raises(TalkfaceError, match="1.4.1 is installed"):
        lmk.make_landmark_backend("fan", checkpoints_dir=tmp_path)


# ---------------------------------------------------------------- R-Net


def deep3d_net_recon_shapes() -> dict[str, tuple[int, ...]]:
    """Key names and shapes of a public Deep3DFaceRecon_pytorch checkpoint's 'net_recon'.

    Written out from the architecture (models/networks.py, ReconNetWrapper with use_last_fc=False:
    a torchvision-layout ResNet-50 under `backbone.` without `fc`, and `final_layers.0-6`), not from
    torchvision, so that the test checks our module against the public layout.
    """
    shapes: dict[str, tuple[int, ...]] = {}

    def batch_norm(prefix: str, channels: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (channels,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["backbone.conv1.weight"] = (64, 3, 7, 7)
    batch_norm("backbone.bn1", 64)
    inplanes = 64
    for layer, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for block in range(blocks):
            prefix = f"backbone.layer{layer}.{block}"
            shapes[f"{prefix}.conv1.weight"] = (planes, inplanes, 1, 1)
            batch_norm(f"{prefix}.bn1", planes)
            shapes[f"{prefix}.conv2.weight"] = (planes, planes, 3, 3)
            batch_norm(f"{prefix}.bn2", planes)
            shapes[f"{prefix}.conv3.weight"] = (planes * 4, planes, 1, 1)
            batch_norm(f"{prefix}.bn3", planes * 4)
            if block == 0:
                shapes[f"{prefix}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                batch_norm(f"{prefix}.downsample.1", planes * 4)
            inplanes = planes * 4
    for index, size in enumerate((80, 64, 80, 3, 27, 2, 1)):
        shapes[f"final_layers.{index}.weight"] = (size, 2048, 1, 1)
        shapes[f"final_layers.{index}.bias"] = (size,)
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1234)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.01
    return state


@pytest.fixture(scope="module")
def public_state() -> dict[str, torch.Tensor]:
    return random_state(deep3d_net_recon_shapes())


def test_heads_follow_the_coefficient_layout():
    bounds = np.cumsum((0,) + HEAD_SIZES)
    blocks = [coeffs.IDENTITY, coeffs.EXPRESSION, coeffs.TEXTURE, coeffs.ANGLES, coeffs.GAMMA, coeffs.TRANSLATION]
    assert [(b.start, b.stop) for b in blocks] == [(bounds[i], bounds[i + 1]) for i in range(5)] + [(254, 257)]
    assert bounds[-1] == coeffs.N_COEFFS


def test_zero_initialised_net_predicts_zero_coefficients():
    net = ReconNet().eval()
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == deep3d_net_recon_shapes()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 224, 224))
    assert out.shape == (2, 257) and torch.count_nonzero(out) == 0


def test_public_state_dict_loads_strictly_and_through_load_rnet(public_state, tmp_path):
    net = ReconNet()
    net.load_state_dict(public_state, strict=True)
    path = tmp_path / "epoch_20.pth"
    torch.save({"net_recon": public_state, "opt_00": {"state": {}, "param_groups": []}}, path)
    loaded = load_rnet(path)
    assert not loaded.training
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, public_state[key]), key
    with torch.no_grad():
        images = torch.rand(1, 3, 224, 224)
        assert torch.allclose(loaded(images), net.eval()(images))


def test_load_rnet_reads_talkface_checkpoints_and_reports_problems(public_state, tmp_path):
    from talkface.train.checkpoint import FORMAT

    path = tmp_path / "step.pt"
    prefixed = {f"module.{k}": v for k, v in public_state.items()}
    torch.save({"format": FORMAT, "models": {"rnet": prefixed}}, path)
    assert torch.equal(load_rnet(path).final_layers[3].bias, public_state["final_layers.3.bias"])

    with pytest.raises(MissingWeightsError, match=r"epoch_20\.pth.*Deep3DFaceRecon_pytorch"):
        load_rnet(tmp_path / "recon" / "epoch_20.pth")
    broken = dict(public_state)
    del broken["final_layers.6.bias"]
    broken["final_layers.0.weight"] = torch.zeros(81, 2048, 1, 1)
    torch.save({"net_recon": broken}, tmp_path / "broken.pth")
    with pytest.raises(TalkfaceError, match="missing: final_layers.6.bias; wrong shape: final_layers.0.weight"):
        load_rnet(tmp_path / "broken.pth")
    torch.save({"something": 1}, tmp_path / "other.pth")
    with pytest.raises(TalkfaceError, match="other.pth: neither"):
        load_rnet(tmp_path / "other.pth")


def test_pretrained_backbone_loads_torchvision_imagenet_layout(public_state, tmp_path):
    with pytest.raises(MissingWeightsError, match="resnet50-0676ba61.pth"):
        ReconNet(pretrained_backbone=tmp_path / "resnet50-0676ba61.pth")
    imagenet = {k.removeprefix("backbone."): v for k, v in public_state.items() if k.startswith("backbone.")}
    imagenet.update({"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)})  # dropped on load
    torch.save(imagenet, tmp_path / "resnet50.pth")
    net = ReconNet(pretrained_backbone=tmp_path / "resnet50.pth")
    assert torch.equal(net.backbone.conv1.weight, public_state["backbone.conv1.weight"])
    assert torch.count_nonzero(net.final_layers[0].weight) == 0
