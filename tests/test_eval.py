"""`talkface eval`: image, landmark, pose and flicker metrics, SyncNet scoring, and the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from talkface import media
from talkface.cli import main
from talkface.errors import MissingWeightsError, TalkfaceError
from talkface.evaluation import evaluate
from talkface.face3d.coeffs import MOTION_ANGLES, N_MOTION
from talkface.sync import (
    SYNCNET_PATH,
    SyncNet,
    face_crops,
    load_syncnet,
    offset_distances,
    scores_from_distances,
    sync_mfcc,
    sync_scores,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_video(rng: np.random.Generator, frames: int = 6, size: int = 32) -> np.ndarray:
    return rng.integers(20, 236, (frames, size, size, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------
# image metrics


def test_psnr_of_a_constant_offset_is_exact() -> None:
    reference = random_video(np.random.default_rng(0))
    result = evaluate(reference + np.uint8(7), reference)
    assert result["psnr"] == pytest.approx(20 * math.log10(255 / 7), abs=1e-9)


def test_ssim_is_one_for_identical_videos_and_matches_skimage_per_frame() -> None:
    rng = np.random.default_rng(1)
    reference = random_video(rng, frames=20)  # more frames than one SSIM chunk
    assert evaluate(reference, reference)["ssim"] == pytest.approx(1.0)
    generated = np.clip(reference + rng.normal(0, 20, reference.shape), 0, 255).astype(np.uint8)
    expected = np.mean([structural_similarity(g, r, data_range=255, channel_axis=-1)
                        for g, r in zip(generated, reference)])
    assert evaluate(generated, reference)["ssim"] == pytest.approx(expected, abs=1e-9)


def test_ssim_of_flat_frames_is_the_luminance_term() -> None:
    a, b = 100.0, 140.0
    flat = lambda value: np.full((3, 16, 16, 3), value, np.uint8)
    c1 = (0.01 * 255) ** 2  # Wang et al. 2004 constant K1 = 0.01
    assert evaluate(flat(a), flat(b))["ssim"] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-9)


def test_flicker_is_the_mean_frame_to_frame_change() -> None:
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    frames[1::2] = 12
    result = evaluate(frames, np.repeat(frames[:1], 5, axis=0))
    assert result["generated_flicker"] == pytest.approx(12.0)
    assert result["reference_flicker"] == 0.0


def test_lengths_may_differ_by_one_frame_only() -> None:
    video = random_video(np.random.default_rng(2), frames=8)
    assert evaluate(video, video[:7])["frames"] == 7
    with pytest.raises(TalkfaceError, match="8 generated frames against 6 reference frames"):
        evaluate(video, video[:6])


def test_frame_sizes_must_match() -> None:
    video = random_video(np.random.default_rng(3))
    with pytest.raises(TalkfaceError, match="frame sizes differ"):
        evaluate(video, video[:, :16])


# ------------------------------------------------------------------------------------------------
# landmarks and pose


def test_lmd_of_a_known_mouth_change_and_a_head_translation() -> None:
    reference = np.random.default_rng(4).uniform(0, 100, (10, 68, 2)).astype(np.float32)
    moved = reference + np.float32([5, -3])  # the whole head moves: no shape change
    opened = reference.copy()
    opened[:, 48:58, 1] += 2  # half the mouth points down 2 px, half up: the mouth centre stays
    opened[:, 58:68, 1] -= 2
    video = np.zeros((10, 4, 4, 3), np.uint8)
    moved_result = evaluate(video, None, generated_landmarks=moved, reference_landmarks=reference)
    assert moved_result["lmd"] == pytest.approx(0.0, abs=1e-5)
    assert moved_result["face_lmd"] == pytest.approx(0.0, abs=1e-5)
    result = evaluate(video, None, generated_landmarks=opened, reference_landmarks=reference)
    assert result["lmd"] == pytest.approx(2.0, abs=1e-5)
    assert result["face_lmd"] == pytest.approx(2.0 * 20 / 68, abs=1e-5)


def test_pose_statistics_of_a_sinusoid() -> None:
    frames, fps = 100, 25.0  # 4 s: 0.25 Hz frequency bins, so 2 Hz is a bin and 8 whole periods
    t = np.arange(frames) / fps
    generated, reference = np.zeros((frames, N_MOTION)), np.zeros((frames, N_MOTION))
    generated[:, MOTION_ANGLES] = np.stack([0.1 * np.sin(2 * np.pi * 2.0 * t),  # x: 2 Hz
                                            0.05 * np.sin(2 * np.pi * 0.5 * t),  # y: 0.5 Hz
                                            0.02 * np.sin(2 * np.pi * 1.0 * t)], 1)
    reference[:, MOTION_ANGLES] = 2 * generated[:, MOTION_ANGLES]
    result = evaluate(np.zeros((frames, 4, 4, 3), np.uint8), None, generated_motion=generated,
                      reference_motion=reference)
    assert result["generated_pose_freq_x"] == 2.0 and result["generated_pose_freq_y"] == 0.5
    assert result["generated_pose_std_x"] == pytest.approx(0.1 / math.sqrt(2), rel=1e-9)
    assert result["reference_pose_std_z"] == pytest.approx(0.04 / math.sqrt(2), rel=1e-9)
    # Same rhythms, twice the swing: |log 2| on the three stds, 0 on the three frequencies.
    assert result["pose_stats_distance"] == pytest.approx(math.log(2) / 2, rel=1e-9)


# ------------------------------------------------------------------------------------------------
# SyncNet

# The public SyncNetModel.py layout, written out from its layer list: (key prefix, weight shape).
PUBLIC_LAYOUT = {
    "netcnnaud": [(0, (64, 1, 3, 3)), (4, (192, 64, 3, 3)), (8, (384, 192, 3, 3)), (11, (256, 384, 3, 3)),
                  (14, (256, 256, 3, 3)), (18, (512, 256, 5, 4))],
    "netcnnlip": [(0, (96, 3, 5, 7, 7)), (4, (256, 96, 1, 5, 5)), (8, (256, 256, 1, 3, 3)),
                  (11, (256, 256, 1, 3, 3)), (14, (256, 256, 1, 3, 3)), (18, (512, 256, 1, 6, 6))],
    "netfcaud": [(0, (512, 512)), (3, (1024, 512))],
    "netfclip": [(0, (512, 512)), (3, (1024, 512))],
}


def public_state_dict(rng: torch.Generator) -> dict[str, torch.Tensor]:
    """Random tensors under the public key names, without num_batches_tracked (old checkpoints lack it)."""
    state = {}
    for module, layers in PUBLIC_LAYOUT.items():
        for index, shape in layers:
            state[f"{module}.{index}.weight"] = torch.randn(shape, generator=rng) * 0.05
            state[f"{module}.{index}.bias"] = torch.randn(shape[0], generator=rng) * 0.05
            if index + 1 < 20 and not (module.startswith("netfc") and index == 3):  # a BatchNorm follows
                norm = f"{module}.{index + 1}"
                state.update({f"{norm}.weight": torch.rand(shape[0], generator=rng) + 0.5,
                              f"{norm}.bias": torch.randn(shape[0], generator=rng) * 0.1,
                              f"{norm}.running_mean": torch.randn(shape[0], generator=rng) * 0.1,
                              f"{norm}.running_var": torch.rand(shape[0], generator=rng) + 0.5})
    return state


def test_syncnet_embeddings_have_the_public_shapes() -> None:
    model = SyncNet().eval()
    with torch.no_grad():
        assert model.embed_audio(torch.randn(2, 1, 13, 20)).shape == (2, 1024)
        assert model.embed_video(torch.rand(1, 3, 5, 224, 224) * 255).shape == (1, 1024)


def test_public_key_layout_loads_strictly(tmp_path: Path) -> None:
    state = public_state_dict(torch.Generator().manual_seed(0))
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path)
    model = load_syncnet(path)
    loaded = model.state_dict()
    assert set(loaded) - set(state) == {k for k in loaded if k.endswith("num_batches_tracked")}
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not model.training
    del state["netcnnlip.18.weight"]
    state["netcnnlip.18.weights"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(TalkfaceError, match="missing: netcnnlip.18.weight; unexpected: netcnnlip.18.weights"):
        load_syncnet(path)


def test_missing_syncnet_weights_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="syncnet_v2.model: missing SyncNet weights; download https://"):
        load_syncnet(tmp_path / "syncnet_v2.model")
    assert SYNCNET_PATH == Path("checkpoints/syncnet/syncnet_v2.model")


def test_offset_distances_match_a_direct_loop() -> None:
    rng = torch.Generator().manual_seed(1)
    video, audio, k = torch.randn(9, 4, generator=rng), torch.randn(9, 4, generator=rng), 3
    expected = torch.zeros(9, 2 * k + 1)
    for i in range(9):
        for j, shift in enumerate(range(-k, k + 1)):
            other = audio[i + shift] if 0 <= i + shift < 9 else torch.zeros(4)
            expected[i, j] = torch.linalg.vector_norm(video[i] - other + 1e-6)
    assert torch.allclose(offset_distances(video, audio, k), expected, atol=1e-6)


@pytest.mark.parametrize("shift", [-4, 0, 6])
def test_offset_search_finds_a_known_shift(shift: int) -> None:
    sequence = torch.randn(80, 16, generator=torch.Generator().manual_seed(2))
    audio = sequence[20:60]
    video = sequence[20 + shift:60 + shift]  # video window i shows what audio window i + shift says
    scores = scores_from_distances(offset_distances(video, audio, 15))
    assert scores.offset == -shift
    assert scores.mean_distances.shape == (31,)
    assert scores.lse_d == pytest.approx(float(scores.mean_distances.min()))
    assert scores.lse_c == pytest.approx(float(np.median(scores.mean_distances) - scores.mean_distances.min()))
    assert scores.lse_c > 1.0


class OnOffSyncNet(torch.nn.Module):
    """A stand-in SyncNet: per frame of a window, is the face bright / is the sound loud."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def embed_video(self, clips: torch.Tensor) -> torch.Tensor:  # [B, 3, 5, 224, 224] -> [B, 5]
        return (clips.mean(dim=(1, 3, 4)) > 100).float()

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:  # [B, 1, 13, 20] -> [B, 5]
        return (mfcc[:, 0, 0, 1::4] > 0).float()  # c0 of the MFCC frame inside each video frame


@pytest.mark.parametrize("delay", [-3, 2])
def test_sync_scores_find_the_delay_between_face_and_sound(delay: int) -> None:
    rng = np.random.default_rng(5)
    on = rng.integers(0, 2, 60).astype(bool)
    # The sound of frame t is what the face did at frame t - delay: the audio lags by `delay` frames.
    frames_on, sound_on = on[10:50], on[10 - delay:50 - delay]
    frames = np.where(frames_on[:, None, None, None], 200, 20).astype(np.uint8) * np.ones((1, 8, 8, 3), np.uint8)
    audio = np.repeat(np.where(sound_on, 0.3, 0.0), 640) * rng.choice([-1.0, 1.0], 640 * 40)
    scores = sync_scores(OnOffSyncNet(), frames, audio.astype(np.float32))
    assert scores.offset == -delay  # the offset counts how far the video lags the audio
    assert scores.lse_d < 0.5


def test_sync_mfcc_matches_python_speech_features() -> None:
    psf = pytest.importorskip("python_speech_features")
    audio = (np.random.default_rng(6).normal(0, 0.1, 8000)).astype(np.float32)
    audio[:1000] = 0
    pcm = np.clip(np.round(audio.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
    np.testing.assert_allclose(sync_mfcc(audio), psf.mfcc(pcm, 16000).T, rtol=1e-5, atol=1e-4)


def test_face_crops_follow_the_landmark_box_and_pad_with_grey() -> None:
    frames = np.full((3, 100, 100, 3), 50, np.uint8)
    box = np.array([[x, y] for x in (60, 90) for y in (60, 90)] * 17, np.float32)  # [68, 2], a 30 px box
    crops = face_crops(frames, np.repeat(box[None], 3, axis=0))
    assert crops.shape == (3, 224, 224, 3)
    # Half-size s = 15 around (75, 75): rows 60..102, columns 54..96; the bottom rows leave the frame.
    assert crops[0, 0, 0, 0] == 50 and crops[0, -1, -1, 0] == 110
    assert face_crops(frames).shape == (3, 224, 224, 3)


# ------------------------------------------------------------------------------------------------
# the command


def run_cli(*args: object) -> int:
    return main(["eval", *map(str, args)])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:64, 0:64]
    reference = np.stack([np.stack([(x * 4 + t * 8) % 256, y * 4, np.full_like(x, 128)], -1)
                          for t in range(12)]).astype(np.uint8)  # [12, 64, 64, 3] smooth moving ramp
    generated = np.clip(reference.astype(int) + rng.integers(-12, 13, reference.shape), 0, 255).astype(np.uint8)
    speech = (0.2 * np.sin(2 * np.pi * 220 * np.arange(12 * 640) / 16000)).astype(np.float32)
    paths = {"ref": root / "ref.mp4", "gen": root / "gen.mp4", "long": root / "long.mp4"}
    media.write_video(paths["ref"], reference)
    media.write_video(paths["gen"], generated, audio=(speech, 16000))
    media.write_video(paths["long"], np.concatenate([reference, reference[:3]]))
    landmarks = rng.uniform(10, 50, (12, 68, 2)).astype(np.float32)
    motion = rng.normal(0, 0.1, (12, 70)).astype(np.float32)
    for name, array in (("gen_lm", landmarks), ("ref_lm", landmarks + 1), ("gen_motion", motion),
                        ("ref_motion", motion * 2)):
        paths[name] = root / f"{name}.npy"
        np.save(paths[name], array)
    paths["root"] = root
    return paths


def test_cli_writes_every_metric(clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "metrics.json"
    assert run_cli(clips["gen"], "--reference", clips["ref"], "--generated-landmarks", clips["gen_lm"],
                   "--reference-landmarks", clips["ref_lm"], "--generated-motion", clips["gen_motion"],
                   "--reference-motion", clips["ref_motion"], "--out", out) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["frames"] == 12 and 20 < metrics["psnr"] < 40 and 0 < metrics["ssim"] < 1
    assert metrics["lmd"] == pytest.approx(0.0, abs=1e-4)  # a 1 px translation changes no shape
    assert metrics["pose_stats_distance"] == pytest.approx(math.log(2) / 2, rel=1e-5)
    assert metrics["generated_flicker"] > 0 and metrics["reference_flicker"] > 0
    assert "psnr" in capsys.readouterr().out


def test_cli_scores_lip_sync_with_syncnet_weights(clips: dict[str, Path], tmp_path: Path) -> None:
    weights = tmp_path / "syncnet_v2.model"
    torch.save(public_state_dict(torch.Generator().manual_seed(3)), weights)
    out = tmp_path / "metrics.json"
    assert run_cli(clips["gen"], "--syncnet", weights, "--out", out) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["lse_d"] > 0 and metrics["lse_c"] >= 0 and abs(metrics["sync_offset"]) <= 15
    assert "psnr" not in metrics


@pytest.mark.parametrize("case, message", [
    ("unreadable", "junk.mp4: cannot read"),
    ("length", "long.mp4: frames: 12 generated frames against 15 reference frames"),
    ("weights", "nothing.model: missing SyncNet weights"),
    ("bare_flag", "syncnet/syncnet_v2.model: missing SyncNet weights"),
    ("no_audio", "ref.mp4: has no audio track"),
    ("landmarks", "ref_motion.npy: expected landmarks of shape [T, 68, 2]"),
    ("fan", "s3fd-619a316812.pth: missing S3FD face detector weights"),
])
def test_cli_bad_input_is_one_line_naming_the_file(clips: dict[str, Path], tmp_path: Path, case: str, message: str,
                                                    capsys: pytest.CaptureFixture) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    args = {
        "unreadable": [junk],
        "length": [clips["gen"], "--reference", clips["long"]],
        "weights": [clips["gen"], "--syncnet", tmp_path / "nothing.model"],
        "bare_flag": [clips["gen"], "--checkpoints-dir", tmp_path, "--syncnet"],
        "no_audio": [clips["ref"], "--syncnet", tmp_path / "nothing.model"],
        "landmarks": [clips["gen"], "--generated-landmarks", clips["ref_motion"]],
        "fan": [clips["gen"], "--landmarks-backend", "fan", "--checkpoints-dir", tmp_path],
    }[case]
    assert run_cli(*args, "--out", tmp_path / "m.json") == 1
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error
    assert not (tmp_path / "m.json").exists()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace of 20 frames with landmarks and coefficients (steps recorded as preprocess would)."""
    from talkface.workspace import Workspace

    root = tmp_path_factory.mktemp("ws")
    rng = np.random.default_rng(8)
    y, x = np.mgrid[0:48, 0:48]
    frames = np.stack([np.stack([(x * 5 + t * 11) % 256, (y * 5 + t * 3) % 256, np.full_like(x, 90)], -1)
                       for t in range(20)]).astype(np.uint8)
    ws = Workspace(root)
    arrays = {"frames": ("frames.npy", frames),
              "landmarks": ("landmarks.npy", rng.uniform(5, 40, (20, 68, 2)).astype(np.float32)),
              "coeffs": ("coeffs.npy", rng.normal(0, 0.1, (20, 257)).astype(np.float32))}
    for step, (name, array) in arrays.items():
        ws.save_array(name, array)
        ws.record(step, key="test")
    # The window x0 = y0 = 8, side 32, resampled to 64 px: frame pixels -> crop pixels (p - 8) * 2.
    crops = np.stack([cv2.resize(f[8:40, 8:40], (64, 64)) for f in frames])
    for name, array in (("window_crops.npy", crops), ("transforms.npy", np.zeros((20, 2, 3))),
                        ("crops.npy", crops), ("crop_landmarks.npy", arrays["landmarks"][1])):
        ws.save_array(name, array)
    transform = [[2.0, 0.0, -16.0], [0.0, 2.0, -16.0]]
    (root / "window.json").write_text(json.dumps({"x0": 8, "y0": 8, "size": 32, "out_size": 64,
                                                  "transform": transform}))
    ws.record("align", key="test")
    return root


def test_cli_takes_the_reference_from_a_workspace_tail(workspace: Path, tmp_path: Path) -> None:
    from talkface.face3d.coeffs import motion_from_coeffs
    from talkface.metrics import pose_statistics

    frames, coeffs = np.load(workspace / "frames.npy"), np.load(workspace / "coeffs.npy")
    media.write_video(tmp_path / "gen.mp4", frames[8:])  # the held-out tail, re-encoded
    landmarks = np.load(workspace / "landmarks.npy")[8:]
    np.save(tmp_path / "gen_lm.npy", landmarks)
    out = tmp_path / "metrics.json"
    assert run_cli(tmp_path / "gen.mp4", "--workspace", workspace,
                   "--generated-landmarks", tmp_path / "gen_lm.npy", "--out", out) == 0
    tail = json.loads(out.read_text())["metrics"]
    assert tail["frames"] == 12 and tail["psnr"] > 20 and tail["lmd"] == pytest.approx(0.0, abs=1e-5)
    expected = pose_statistics(motion_from_coeffs(coeffs[8:])[:, MOTION_ANGLES])
    assert tail["reference_pose_std_y"] == pytest.approx(expected["std"][1], rel=1e-5)
    assert run_cli(tmp_path / "gen.mp4", "--workspace", workspace, "--start", 0, "--out", out) == 0
    assert json.loads(out.read_text())["metrics"]["psnr"] < tail["psnr"] - 5
    assert run_cli(tmp_path / "gen.mp4", "--workspace", workspace, "--start", 10, "--out", out) == 1


def test_evaluate_reports_lip_sync_and_needs_audio_for_it() -> None:
    rng = np.random.default_rng(9)
    on = rng.integers(0, 2, 20).astype(bool)
    frames = np.where(on[:, None, None, None], 200, 20).astype(np.uint8) * np.ones((1, 8, 8, 3), np.uint8)
    audio = (np.repeat(np.where(on, 0.3, 0.0), 640) * rng.choice([-1.0, 1.0], 640 * 20)).astype(np.float32)
    result = evaluate(frames, None, audio=audio, syncnet=OnOffSyncNet())
    assert result["sync_offset"] == 0 and result["lse_d"] < 0.1 and result["lse_c"] > 0.5
    with pytest.raises(TalkfaceError, match="need the generated video's audio"):
        evaluate(frames, None, syncnet=OnOffSyncNet())


def test_cli_uses_the_window_crops_when_the_video_has_their_size(workspace: Path, tmp_path: Path) -> None:
    crops, landmarks = np.load(workspace / "window_crops.npy"), np.load(workspace / "landmarks.npy")
    media.write_video(tmp_path / "gen.mp4", crops[8:])
    np.save(tmp_path / "gen_lm.npy", (landmarks[8:] - 8) * 2)  # the same points in crop pixels
    out = tmp_path / "metrics.json"
    assert run_cli(tmp_path / "gen.mp4", "--workspace", workspace,
                   "--generated-landmarks", tmp_path / "gen_lm.npy", "--out", out) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["psnr"] > 20 and metrics["face_lmd"] == pytest.approx(0.0, abs=1e-4)
    media.write_video(tmp_path / "odd.mp4", crops[8:, :40, :40])
    assert run_cli(tmp_path / "odd.mp4", "--workspace", workspace, "--out", out) == 1
