"""The morphable model: camera, rotation, SH lighting, BFM files and converter, synthetic model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io
import torch

from talkface.cli import main as cli_main
from talkface.errors import MissingWeightsError, TalkfaceError
from talkface.face3d import bfm
from talkface.face3d.camera import Camera, rotation_matrix
from talkface.face3d.coeffs import (
    ANGLES, EXPRESSION, GAMMA, IDENTITY, MOTION_ANGLES, MOTION_EXPRESSION, MOTION_POSE, MOTION_TRANSLATION,
    MOTION_TRANSLATION_Z, N_COEFFS, N_MOTION, N_POSE, TEXTURE, TRANSLATION, expression_on_pose, motion_from_coeffs,
    with_motion,
)
from talkface.face3d.lighting import sh_basis, shade
from talkface.face3d.model import MorphableModel, load_morphable_model
from talkface.face3d.synthetic import (
    EXPRESSION_DIRECTIONS, build_synthetic_model_arrays, cached_synthetic_model_arrays, write_synthetic_model,
)

MIRRORED_LANDMARKS = [(0, 16), (3, 13), (6, 10), (17, 26), (19, 24), (21, 22), (31, 35), (36, 45), (37, 44),
                      (39, 42), (41, 46), (48, 54), (50, 52), (59, 55), (60, 64), (61, 63), (67, 65)]
CENTRE_LANDMARKS = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


@pytest.fixture(scope="module")
def model() -> MorphableModel:
    return load_morphable_model("synthetic")


def zero_coeffs(batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, 257)


def with_expression(**strengths: float) -> torch.Tensor:
    coeffs = zero_coeffs()
    for name, value in strengths.items():
        coeffs[0, EXPRESSION.start + EXPRESSION_DIRECTIONS[name]] = value
    return coeffs


# --- rotation and camera ------------------------------------------------------------------------


def _rx(a: float) -> np.ndarray:
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _ry(a: float) -> np.ndarray:
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def _rz(a: float) -> np.ndarray:
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def test_rotation_is_orthonormal_and_composes_z_y_x():
    angles = torch.tensor([[0.3, -0.7, 1.1], [-1.2, 0.4, 0.05], [0.0, 0.0, 0.0]], dtype=torch.float64)
    r = rotation_matrix(angles)
    eye = torch.eye(3, dtype=torch.float64).expand(3, 3, 3)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(3, dtype=torch.float64))
    for row, (x, y, z) in zip(r, angles.tolist()):
        np.testing.assert_allclose(row.numpy(), _rz(z) @ _ry(y) @ _rx(x), atol=1e-12)
    # right-handed about each axis: a positive x angle turns +y towards +z
    r_x = rotation_matrix(torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64))
    np.testing.assert_allclose(r_x.numpy() @ [0, 1, 0], [0, math.cos(0.5), math.sin(0.5)], atol=1e-12)


def test_projection_matches_pinhole_formula():
    camera = Camera()
    world = torch.tensor([[0.0, 0.0, 0.0], [0.5, -0.25, 1.0], [-0.3, 0.8, -2.0]], dtype=torch.float64)
    cam = camera.to_camera(world)
    assert torch.equal(world[:, 2], torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64))  # input untouched
    np.testing.assert_allclose(cam.numpy(), [[0, 0, 10], [0.5, -0.25, 9], [-0.3, 0.8, 12]])
    expected = [[112 + 1015 * x / (10 - z), 224 - (112 + 1015 * y / (10 - z))] for x, y, z in world.tolist()]
    np.testing.assert_allclose(camera.project(cam).numpy(), expected, rtol=1e-12)
    # the optical axis hits the image centre, between pixels 111 and 112; up in the world is up in the image
    assert camera.project(cam)[0].tolist() == [112.0, 112.0]
    assert camera.project(cam)[2, 1] < 112
    big = camera.resized(512)
    np.testing.assert_allclose(big.project(cam).numpy(), camera.project(cam).numpy() * 512 / 224, rtol=1e-12)
    assert big.fov == pytest.approx(camera.fov) == pytest.approx(math.radians(12.59), abs=1e-3)


# --- lighting -----------------------------------------------------------------------------------


def test_sh_shading_of_a_constant_normal_matches_the_closed_form():
    x, y, z = 0.36, 0.48, 0.8  # a unit normal
    # a_n c_n by hand: pi/sqrt(4 pi) = sqrt(pi)/2; (2 pi/sqrt 3)(sqrt 3/sqrt(4 pi)) = sqrt(pi);
    # (2 pi/sqrt 8)(3 sqrt 5/sqrt(12 pi)) = 1.5 sqrt(5 pi/6)
    k0, k1, k2 = math.sqrt(math.pi) / 2, math.sqrt(math.pi), 1.5 * math.sqrt(5 * math.pi / 6)
    basis = [k0, -k1 * y, k1 * z, -k1 * x, k2 * x * y, -k2 * y * z, k2 / (2 * math.sqrt(3)) * (3 * z * z - 1),
             -k2 * x * z, k2 / 2 * (x * x - y * y)]
    normals = torch.tensor([x, y, z], dtype=torch.float64).expand(1, 5, 3)
    np.testing.assert_allclose(sh_basis(normals)[0, 0].numpy(), basis, rtol=1e-12)

    gamma = torch.linspace(-0.3, 0.5, 27, dtype=torch.float64)[None]
    albedo = torch.tensor([0.9, 0.6, 0.3], dtype=torch.float64).expand(1, 5, 3)
    lit = shade(normals, albedo, gamma)
    for channel in range(3):
        g = gamma[0, 9 * channel : 9 * channel + 9].tolist()
        g[0] += 0.8  # the ambient term on band 0
        expected = sum(b * gc for b, gc in zip(basis, g)) * albedo[0, 0, channel].item()
        np.testing.assert_allclose(lit[0, :, channel].numpy(), expected, rtol=1e-12)
    # zero gamma: a uniform white light of 0.8, whatever the normal
    other = torch.nn.functional.normalize(torch.randn(1, 5, 3, dtype=torch.float64), dim=-1)
    flat = shade(other, albedo, torch.zeros(1, 27, dtype=torch.float64))
    torch.testing.assert_close(flat, 0.8 * k0 * albedo)


# --- the mesh -----------------------------------------------------------------------------------


def test_zero_coefficients_give_a_frontal_centred_symmetric_face(model):
    mesh = model(zero_coeffs())
    lm = mesh.landmarks[0]
    assert len(model.keypoints.unique()) == 68
    assert torch.all(mesh.vertices[..., 2] > 8.5) and torch.all(mesh.vertices[..., 2] < 11)
    assert (lm.mean(0) - 112).abs().max() < 6, lm.mean(0)
    for left, right in MIRRORED_LANDMARKS:
        assert abs(lm[left, 0] + lm[right, 0] - 224) < 1e-3 and abs(lm[left, 1] - lm[right, 1]) < 1e-3
        assert lm[left, 0] < lm[right, 0]  # iBUG's left-of-image points come first
    assert torch.allclose(lm[CENTRE_LANDMARKS, 0], torch.tensor(112.0), atol=1e-3)
    # anatomical order down the face (y down): brows, eyes, nose tip, mouth, chin
    heights = [float(lm[k, 1]) for k in (19, 37, 30, 51, 57, 8)]
    assert heights == sorted(heights)
    width = (mesh.screen[0, :, 0].max() - mesh.screen[0, :, 0].min()) / 224
    assert 0.55 < width < 0.75
    # lit from the front: the nose tip faces the camera
    assert mesh.normals[0, model.keypoints[30], 2] > 0.8
    assert torch.allclose(mesh.normals.norm(dim=-1), torch.tensor(1.0), atol=1e-5)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_motion_vector_is_the_coefficients_expression_angles_and_translation(as_tensor: bool):
    """The 70-float motion layout and the 257-float coefficient layout agree block by block."""
    coeffs = np.random.default_rng(0).standard_normal((5, N_COEFFS)).astype(np.float32)
    coeffs = torch.from_numpy(coeffs) if as_tensor else coeffs
    motion = motion_from_coeffs(coeffs)
    assert motion.shape == (5, N_MOTION) == (5, 70) and N_POSE == 6
    for in_motion, in_coeffs in ((MOTION_EXPRESSION, EXPRESSION), (MOTION_ANGLES, ANGLES),
                                 (MOTION_TRANSLATION, TRANSLATION)):
        assert np.array_equal(np.asarray(motion[:, in_motion]), np.asarray(coeffs[:, in_coeffs]))
    pose = np.asarray(motion[:, MOTION_POSE])
    assert np.array_equal(pose, np.concatenate([np.asarray(coeffs[:, ANGLES]), np.asarray(coeffs[:, TRANSLATION])], 1))
    assert np.array_equal(np.asarray(motion[:, MOTION_TRANSLATION_Z]), np.asarray(coeffs[:, TRANSLATION.stop - 1]))
    # with_motion writes exactly those blocks back and leaves identity, texture and lighting alone.
    other = motion * 0 + 7
    mixed = with_motion(coeffs, other)
    assert np.array_equal(np.asarray(motion_from_coeffs(mixed)), np.asarray(other))
    for block in (IDENTITY, TEXTURE, GAMMA):
        assert np.array_equal(np.asarray(mixed[:, block]), np.asarray(coeffs[:, block]))


def test_an_expression_drawn_on_another_motions_head_pose():
    pose_source = np.random.default_rng(1).standard_normal((6, N_MOTION)).astype(np.float32)
    held = expression_on_pose(pose_source, np.full(64, 0.5, np.float32))  # one expression, held
    assert held.shape == (6, N_MOTION) and held.dtype == np.float32
    assert (held[:, MOTION_EXPRESSION] == 0.5).all() and np.array_equal(held[:, MOTION_POSE], pose_source[:, MOTION_POSE])
    # A per-frame expression of another length: the shorter of the two, frame by frame.
    per_frame = np.arange(4 * 64, dtype=np.float32).reshape(4, 64)
    shorter = expression_on_pose(pose_source, per_frame)
    assert np.array_equal(shorter[:, MOTION_EXPRESSION], per_frame)
    assert np.array_equal(shorter[:, MOTION_POSE], pose_source[:4, MOTION_POSE])
    assert expression_on_pose(pose_source[:3], per_frame).shape == (3, N_MOTION)
    assert (pose_source[:, MOTION_EXPRESSION] != 0.5).all()  # the source is not written


def test_forward_matches_an_independent_numpy_pipeline(model):
    coeffs = torch.randn(2, 257, generator=torch.Generator().manual_seed(0)) * 0.3
    coeffs[:, TRANSLATION] = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.05, -0.4]])
    mesh = model(coeffs)
    c = coeffs.double().numpy()
    mean = model.mean_shape.double().numpy()
    for b in range(2):
        offsets = model.id_base.double().numpy() @ c[b, IDENTITY] + model.exp_base.double().numpy() @ c[b, EXPRESSION]
        shape = mean + offsets.reshape(-1, 3)
        x, y, z = c[b, ANGLES]
        world = shape @ (_rz(z) @ _ry(y) @ _rx(x)).T + c[b, TRANSLATION]
        depth = 10 - world[:, 2]
        screen = np.stack([1015 * world[:, 0] / depth + 112, 112 - 1015 * world[:, 1] / depth], 1)
        np.testing.assert_allclose(mesh.vertices[b, :, 2].numpy(), depth, atol=1e-4)
        np.testing.assert_allclose(mesh.screen[b].numpy(), screen, atol=2e-3)
        np.testing.assert_allclose(mesh.landmarks[b].numpy(), screen[model.keypoints.numpy()], atol=2e-3)
        tex = model.mean_tex.double().numpy() + (model.tex_base.double().numpy() @ c[b, TEXTURE]).reshape(-1, 3)
        np.testing.assert_allclose(mesh.albedo[b].numpy(), tex / 255, atol=1e-5)
    # the stored mean is recentred on its centroid
    np.testing.assert_allclose(mean.mean(0), 0, atol=1e-6)


def test_vertex_normals_ignore_point_buf_padding(model):
    padding = model.point_buf == model.n_triangles
    assert padding.any() and model.point_buf.max() == model.n_triangles
    # every real entry lists a triangle that contains the vertex
    vertex, slot = torch.nonzero(~padding, as_tuple=True)
    assert (model.triangles[model.point_buf[vertex, slot]] == vertex[:, None]).any(dim=1).all()
    shape = model.shape(torch.zeros(1, 80), torch.zeros(1, 64))
    normals = model.vertex_normals(shape)
    assert torch.isfinite(normals).all()
    # a flat mesh (all triangles counter-clockwise seen from the camera): every normal is +z
    flat = shape.clone()
    flat[..., 2] = 0.0
    torch.testing.assert_close(model.vertex_normals(flat)[0], torch.tensor([0.0, 0.0, 1.0]).expand(model.n_vertices, 3))


def test_gradients_reach_every_coefficient_block(model):
    coeffs = (torch.randn(2, 257, generator=torch.Generator().manual_seed(1)) * 0.1).requires_grad_()
    mesh = model(coeffs)
    (mesh.landmarks.sum() + mesh.colors.sum()).backward()
    for block in (IDENTITY, EXPRESSION, TEXTURE, ANGLES, GAMMA, TRANSLATION):
        assert coeffs.grad[:, block].abs().sum(1).min() > 0, block


def test_model_buffers_follow_to_and_stay_out_of_state_dict(model):
    assert model.state_dict() == {}
    assert model.mean_shape.dtype == torch.float32 and model.triangles.dtype == torch.int64
    double = load_morphable_model("synthetic:600").double()
    assert double.id_base.dtype == torch.float64 and double.keypoints.dtype == torch.int64


# --- expressions --------------------------------------------------------------------------------


def _landmarks(model: MorphableModel, **strengths: float) -> torch.Tensor:
    return model(with_expression(**strengths)).landmarks[0]


def _distance(lm: torch.Tensor, a: int, b: int) -> float:
    return float((lm[a] - lm[b]).norm())


def test_semantic_expressions_move_the_expected_landmarks(model):
    rest = _landmarks(model)
    jaw = _landmarks(model, jaw_open=1.0)
    assert _distance(rest, 62, 66) < 0.5 and _distance(jaw, 62, 66) > 15  # a wide vowel, ~2 cm
    assert jaw[8, 1] > rest[8, 1] + 15 and (jaw[17:48] - rest[17:48]).abs().max() < 0.5

    blink = _landmarks(model, blink=1.0)
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert _distance(rest, upper, lower) > 3
        assert _distance(blink, upper, lower) < 0.2 * _distance(rest, upper, lower)
    assert (blink[48:] - rest[48:]).abs().max() < 1e-3

    spread = _landmarks(model, lip_spread=1.0)
    assert _distance(spread, 48, 54) > _distance(rest, 48, 54) + 8

    round_ = _landmarks(model, lip_round=1.0)
    assert _distance(round_, 48, 54) < _distance(rest, 48, 54) - 3
    pout = model.shape(torch.zeros(1, 80), with_expression(lip_round=1.0)[:, EXPRESSION])
    assert pout[0, model.keypoints[62], 2] > model.mean_shape[model.keypoints[62], 2] + 0.05  # ~7 mm forward

    smile = _landmarks(model, smile=1.0)
    assert smile[48, 1] < rest[48, 1] - 4 and smile[54, 1] < rest[54, 1] - 4  # corners up (y down)

    brows = _landmarks(model, brow_raise=1.0)
    assert brows[19, 1] < rest[19, 1] - 4 and brows[24, 1] < rest[24, 1] - 4
    assert (brows[36:68] - rest[36:68]).abs().max() < 0.5


def test_expression_directions_are_distinct_and_the_rest_are_small(model):
    moves = torch.stack([(_landmarks(model, **{name: 1.0}) - _landmarks(model)).flatten()
                         for name in EXPRESSION_DIRECTIONS])
    cos = torch.nn.functional.cosine_similarity(moves[:, None], moves[None], dim=-1)
    assert (cos - torch.eye(6)).abs().max() < 0.8
    base = model.exp_base.double()
    cos_fields = (base.T @ base) / torch.outer(base.norm(dim=0), base.norm(dim=0))
    assert (cos_fields[:6, :6] - torch.eye(6, dtype=torch.float64)).abs().max() < 0.6
    assert cos_fields[:6, 6:].abs().max() < 1e-4  # the 58 extras are orthogonal to the named six
    assert base[:, 6:].norm(dim=0).max() < 0.2 * base[:, 0].norm()


def _unexplained(moves: torch.Tensor, k: int) -> float:
    """Share of column k's squared norm that least squares on all the other columns leaves over."""
    others = torch.cat([moves[:, :k], moves[:, k + 1 :]], dim=1)
    residual = moves[:, k] - others @ torch.linalg.lstsq(others, moves[:, k : k + 1]).solution[:, 0]
    return float(residual.square().sum() / moves[:, k].square().sum())


def test_mouth_directions_are_identifiable_from_landmarks(model):
    """No combination of the other 63 directions, at any scale, reproduces most of a mouth direction's 2D motion."""
    coeffs = zero_coeffs(65)
    coeffs[1:, EXPRESSION] = torch.eye(64)
    landmarks = model(coeffs).landmarks.double()
    moves = (landmarks[1:] - landmarks[0]).reshape(64, 136).T  # [136, 64] landmark motion per direction
    for name in ("jaw_open", "lip_spread", "lip_round"):  # measured 0.32, 0.54, 0.46; before the fix < 0.001
        assert _unexplained(moves, EXPRESSION_DIRECTIONS[name]) >= 0.3, name
    assert moves.reshape(68, 2, 64)[48:, :, 6:].abs().max() < 1e-3  # the 58 extras leave the lips still


# --- files --------------------------------------------------------------------------------------


def test_synthetic_file_round_trips_through_the_loader(tmp_path):
    path = tmp_path / "synthetic.mat"
    write_synthetic_model(path, n_vertices=600, seed=3)
    expected = build_synthetic_model_arrays(600, seed=3)
    loaded = bfm.read_bfm(path)
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(loaded[key].reshape(value.shape), value, err_msg=key)
    from_file = load_morphable_model(path)
    assert from_file.n_vertices == len(expected["skinmask"]) and from_file.n_triangles == len(expected["tri"])
    torch.testing.assert_close(from_file.triangles, torch.from_numpy(expected["tri"] - 1).long())
    assert cli_main(["bfm", "info", str(path)]) == 0


def test_synthetic_model_is_seeded_and_sized():
    a, b, c = (build_synthetic_model_arrays(600, seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["idBase"], c["idBase"]) and np.array_equal(a["meanshape"], c["meanshape"])
    n = a["meanshape"].size // 3
    assert abs(n - 600) < 30 and a["keypoints"].shape == (68,)
    assert a["point_buf"].max() == len(a["tri"]) + 1  # 1-based padding F + 1, as in BFM
    with pytest.raises(TalkfaceError, match="at least"):
        build_synthetic_model_arrays(10)
    with pytest.raises(TalkfaceError, match="synthetic:<n_vertices>"):
        load_morphable_model("synthetic:many")


def _save(path, arrays: dict) -> None:
    scipy.io.savemat(str(path), arrays)


def test_loader_names_a_missing_key_and_mismatched_sizes(tmp_path):
    arrays = cached_synthetic_model_arrays(600)
    missing = dict(arrays)
    del missing["keypoints"]
    _save(tmp_path / "missing.mat", missing)
    with pytest.raises(TalkfaceError, match="missing key.*keypoints"):
        bfm.read_bfm(tmp_path / "missing.mat")

    cases = {
        "idBase": arrays["idBase"][:, :79],
        "exBase": arrays["exBase"][:-3],
        "texBase": np.zeros((5, 80), np.float32),
        "meantex": arrays["meantex"][:, :-3],
        "keypoints": arrays["keypoints"][:67],
        "tri": np.concatenate([arrays["tri"], [[1, 2, 10**6]]]),
        "point_buf": arrays["point_buf"][:-1],
    }
    for key, bad in cases.items():
        _save(tmp_path / f"{key}.mat", {**arrays, key: bad})
        with pytest.raises(TalkfaceError, match=key) as error:
            bfm.read_bfm(tmp_path / f"{key}.mat")
        assert f"{key}.mat" in str(error.value)

    (tmp_path / "junk.mat").write_bytes(b"not a mat file")
    with pytest.raises(TalkfaceError, match="junk.mat"):
        bfm.read_bfm(tmp_path / "junk.mat")
    with pytest.raises(MissingWeightsError, match="talkface bfm convert"):
        load_morphable_model(tmp_path / "absent.mat")


def test_files_without_our_marker_get_tri_mask2_mapped(tmp_path):
    """A Deep3DFaceRecon-made file stores tri_mask2 as ids into frontmask2_idx; we map them."""
    arrays = cached_synthetic_model_arrays(600)
    front = arrays["frontmask2_idx"]
    position = np.zeros(front.max() + 1, np.int64)
    position[front] = np.arange(1, len(front) + 1)
    _save(tmp_path / "deep3d.mat", {**arrays, "tri_mask2": position[arrays["tri_mask2"]]})
    np.testing.assert_array_equal(bfm.read_bfm(tmp_path / "deep3d.mat")["tri_mask2"], arrays["tri_mask2"])


# --- the converter on small fake raw files -----------------------------------------------------


def _fake_raw(folder, n_full=300, n_trim=250, n_front=200, n_region=150, dim=79, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    raw = {
        "shapeMU": rng.normal(0, 5e4, (3 * n_full, 1)).astype(np.float32),
        "shapePC": rng.normal(0, 1, (3 * n_full, 199)).astype(np.float32),
        "shapeEV": np.abs(rng.normal(0, 1e3, (199, 1))),
        "texMU": rng.uniform(0, 255, (3 * n_full, 1)).astype(np.float32),
        "texPC": rng.normal(0, 1, (3 * n_full, 199)).astype(np.float32),
        "texEV": np.abs(rng.normal(0, 10, (199, 1))),
        "tl": np.ones((4, 3)),
    }
    scipy.io.savemat(str(folder / "01_MorphableModel.mat"), raw)
    trim = np.sort(rng.choice(n_full, n_trim, replace=False)) + 1
    front = np.sort(rng.choice(n_trim, n_front, replace=False)) + 1
    scipy.io.savemat(str(folder / "BFM_exp_idx.mat"), {"trimIndex": trim[:, None].astype(np.float64)})
    scipy.io.savemat(str(folder / "BFM_front_idx.mat"), {"idx": front[:, None].astype(np.float64)})
    exp_mean = rng.normal(0, 1, 3 * n_trim).astype(np.float32)
    exp_pcs = rng.normal(0, 1e4, (dim, 3 * n_trim)).astype(np.float32)
    with open(folder / "Exp_Pca.bin", "wb") as file:
        np.array([dim], np.int32).tofile(file)
        exp_mean.tofile(file)
        exp_pcs.tofile(file)
    std = np.abs(rng.normal(0, 1, dim))
    np.savetxt(folder / "std_exp.txt", std)
    tri = rng.integers(1, n_front + 1, (320, 3))
    region = np.sort(rng.choice(n_front, n_region, replace=False)) + 1
    info = {
        "tri": tri.astype(np.float64), "point_buf": rng.integers(1, len(tri) + 2, (n_front, 8)).astype(np.float64),
        "keypoints": rng.integers(1, n_front + 1, (1, 68)).astype(np.float64),
        "skinmask": rng.integers(0, 2, (1, n_front)).astype(np.float64),
        "frontmask2_idx": region[:, None].astype(np.float64),
        "tri_mask2": rng.integers(1, n_region + 1, (90, 3)).astype(np.float64),
    }
    scipy.io.savemat(str(folder / "facemodel_info.mat"), info)
    return {**raw, "trim": trim, "front": front, "exp_pcs": exp_pcs, "std": std, **info}


def test_converter_builds_the_front_model_from_raw_files(tmp_path):
    raw = _fake_raw(tmp_path)
    out = tmp_path / "out" / "BFM_model_front.mat"
    assert cli_main(["bfm", "convert", str(tmp_path), "--out", str(out)]) == 0
    model = bfm.read_bfm(out)
    n = len(raw["front"])
    assert model["meanshape"].shape == (1, 3 * n) and model["idBase"].shape == (3 * n, 80)
    # independently: row 3j + a of the front model is coordinate a of BFM09 vertex trim[front[j]]
    full_vertex = raw["trim"][raw["front"] - 1] - 1
    rows_full = (3 * full_vertex[:, None] + np.arange(3)).ravel()
    rows_trim = (3 * (raw["front"][:, None] - 1) + np.arange(3)).ravel()
    ev, tev = raw["shapeEV"].ravel(), raw["texEV"].ravel()
    np.testing.assert_allclose(model["meanshape"][0], raw["shapeMU"][rows_full, 0] / 1e5, rtol=1e-6)
    np.testing.assert_allclose(model["idBase"], raw["shapePC"][rows_full, :80] * ev[:80] / 1e5, rtol=1e-5)
    np.testing.assert_allclose(model["texBase"], raw["texPC"][rows_full, :80] * tev[:80], rtol=1e-5)
    np.testing.assert_allclose(model["meantex"][0], raw["texMU"][rows_full, 0], rtol=1e-6)
    expected_exp = raw["exp_pcs"][:64, rows_trim].T.astype(np.float64) * raw["std"][:64] / 1e5
    np.testing.assert_allclose(model["exBase"], expected_exp, rtol=1e-5)
    np.testing.assert_array_equal(model["tri"], raw["tri"])
    np.testing.assert_array_equal(model["keypoints"], raw["keypoints"].ravel())
    # the tri_mask2 fix: region ids mapped through frontmask2_idx to mesh vertex ids
    np.testing.assert_array_equal(model["tri_mask2"], raw["frontmask2_idx"].ravel()[raw["tri_mask2"].astype(int) - 1])
    face = load_morphable_model(out)(zero_coeffs())
    assert torch.isfinite(face.landmarks).all()


def test_converter_lists_every_missing_raw_file(tmp_path):
    _fake_raw(tmp_path)
    (tmp_path / "Exp_Pca.bin").unlink()
    (tmp_path / "01_MorphableModel.mat").unlink()
    with pytest.raises(TalkfaceError) as error:
        bfm.convert_bfm(tmp_path, tmp_path / "out.mat")
    message = str(error.value)
    assert "01_MorphableModel.mat (Basel Face Model 2009" in message and "Exp_Pca.bin (Guo" in message
    assert "std_exp.txt" not in message and not (tmp_path / "out.mat").exists()
    assert cli_main(["bfm", "convert", str(tmp_path), "--out", str(tmp_path / "o.mat")]) == 1


def test_converter_checks_the_expression_file_size(tmp_path):
    _fake_raw(tmp_path)
    data = (tmp_path / "Exp_Pca.bin").read_bytes()
    (tmp_path / "Exp_Pca.bin").write_bytes(data[:-4])
    with pytest.raises(TalkfaceError, match="Exp_Pca.bin"):
        bfm.convert_bfm(tmp_path, tmp_path / "out.mat")


def test_converter_reads_the_expression_file_like_the_reference(tmp_path):
    """Deep3DFaceRecon reads dim, mean and PCs and ignores what follows; a wrong dimension is refused."""
    raw = _fake_raw(tmp_path)
    path = tmp_path / "Exp_Pca.bin"
    data = path.read_bytes()
    path.write_bytes(data + b"\x07" * 10)  # trailing bytes
    first = bfm.convert_bfm(tmp_path, tmp_path / "a.mat")["exBase"]
    rows_trim = (3 * (raw["front"][:, None] - 1) + np.arange(3)).ravel()
    np.testing.assert_allclose(first, raw["exp_pcs"][:64, rows_trim].T * raw["std"][:64] / 1e5, rtol=1e-5)
    for dim in (63, 78, 80):  # below 64; disagreeing with std_exp.txt (79), with and without enough bytes
        path.write_bytes(np.array([dim], np.int32).tobytes() + data[4:] + b"\0" * 4 * 3 * 250)
        with pytest.raises(TalkfaceError, match="Exp_Pca.bin|std_exp.txt"):
            bfm.convert_bfm(tmp_path, tmp_path / "b.mat")
    path.write_bytes(np.array([79], np.int32).byteswap().tobytes() + data[4:])  # big-endian: a huge dim
    with pytest.raises(TalkfaceError, match="Exp_Pca.bin"):
        bfm.convert_bfm(tmp_path, tmp_path / "c.mat")
    assert not any((tmp_path / name).exists() for name in ("b.mat", "c.mat"))


def test_cli_synth_writes_a_loadable_model(tmp_path):
    out = tmp_path / "m.mat"
    assert cli_main(["bfm", "synth", "--out", str(out), "--vertices", "700", "--seed", "2"]) == 0
    assert load_morphable_model(out)(zero_coeffs()).landmarks.shape == (1, 68, 2)
