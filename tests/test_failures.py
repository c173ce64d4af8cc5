"""Every failure one line: bad inputs and unwritable outputs through the commands a user runs.

One test per class of failure (issue 15), each through a few representative commands: the exit
code, a single stderr line naming the file or flag, no traceback, nothing left behind. Also a
person folder that works wherever it is copied, and silence that holds still in the video.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from talkface.cli import main as cli
from talkface.media import ffmpeg_exe, iter_video_frames, probe_video, read_audio, read_video, write_video, write_wav

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real"
CLIP_FRAMES = 75


def fails(capsys, argv: list[str], *named: object) -> str:
    """Run the CLI and check the failure contract: exit 1, one stderr line naming each of `named`."""
    code = cli([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("talkface: error: "), err
    for name in named:
        assert str(name) in err, err
    return err


def leftovers(folder: Path) -> list[str]:
    """Hidden temporaries anywhere below `folder`."""
    return sorted(p.name for p in folder.rglob(".*") if ".tmp" in p.name)


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 6 s, 25 fps test-pattern clip with a tone, its index in front (as a phone or web clip has it)."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x96:rate=25:duration=6", "-f", "lavfi", "-i",
           "sine=frequency=300:duration=6", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-movflags", "+faststart", str(path))
    return path


# ---------------------------------------------------------------------------------------------
# 1. an output that cannot be written


def test_an_unwritable_output_is_one_line_naming_it_in_every_command(clip, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "afile"
    blocker.write_text("a file where a folder should be")
    fails(capsys, ["media", "convert", clip, "--out", blocker / "out.mp4"], blocker)
    fails(capsys, ["audio", "features", clip, "--out", blocker / "sub" / "f.npy"], blocker)
    fails(capsys, ["bfm", "synth", "--out", blocker / "m.mat", "--vertices", "600"], blocker)
    fails(capsys, ["eval", clip, "--reference", clip, "--out", blocker / "m.json"], blocker)
    # A read-only folder (simulated: the tests may run as root, who writes anywhere): the line names
    # the file asked for, not the hidden temporary beside it.
    import tempfile

    def refused(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(Path(dir) / ".out.123.x.tmp.mp4"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    err = fails(capsys, ["media", "convert", clip, "--out", tmp_path / "ro" / "out.mp4"], tmp_path / "ro" / "out.mp4")
    assert "permission denied" in err and ".tmp" not in err
    assert leftovers(tmp_path) == []


def test_stale_temporaries_of_a_killed_run_are_removed_by_the_next(clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a process that has ended
    stale = tmp_path / f".out.{dead}.k2j4.tmp.mp4"
    stale.write_bytes(b"half a video" * 1000)
    live = tmp_path / f".out.{os.getpid()}.a1b2.tmp.mp4"  # a run still writing (this process)
    live.write_bytes(b"x")
    assert cli(["media", "convert", str(clip), "--out", str(out), "--max-frames", "5"]) == 0
    assert not stale.exists() and live.exists() and out.is_file()


# ---------------------------------------------------------------------------------------------
# 5. values that are not valid


def test_invalid_values_are_one_line_naming_the_flag(clip, tmp_path, capsys):
    fails(capsys, ["bfm", "synth", "--out", tmp_path / "m.mat", "--vertices", "10000000000"], "10000000000")
    fails(capsys, ["bfm", "synth", "--out", tmp_path / "m.mat", "--seed", "-1"], "seed")
    fails(capsys, ["infer", clip, "--person", "x", "--out", tmp_path / "o.mp4",
                   "--set", "chunk_frames=[1,"], "--set chunk_frames=[1,", "not valid YAML")
    assert not (tmp_path / "m.mat").exists()


# ---------------------------------------------------------------------------------------------
# 6. checkpoints that are not ours


def test_a_checkpoint_that_is_not_one_is_named_without_pytorch_advice(clip, tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 40)
    err = fails(capsys, ["motion", "predict", clip, "--checkpoint", garbage, "--out", tmp_path / "m.npy"],
                garbage, "not a talkface checkpoint")
    assert "weights_only" not in err
    fails(capsys, ["motion", "predict", clip, "--checkpoint", tmp_path, "--out", tmp_path / "m.npy"],
          "is a directory, not a talkface checkpoint file")


def test_missing_rnet_advice_names_the_way_each_command_sets_it(tmp_path, capsys):
    (tmp_path / "lrw" / "WORD" / "train").mkdir(parents=True)
    config = tmp_path / "pre.yaml"
    config.write_text(f"rnet: {tmp_path / 'absent.pt'}\n")
    err = fails(capsys, ["lrw", "preprocess", tmp_path / "lrw", "--out", tmp_path / "cache",
                         "--config", config], tmp_path / "absent.pt", "R-Net")
    assert "lrw preprocess: --set rnet=CKPT" in err


# ---------------------------------------------------------------------------------------------
# 7. media: truncated files, variable frame rate, no audio


def test_a_truncated_mp4_is_one_line_naming_it(clip, tmp_path, capsys):
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.3)])  # its index (in front) still says 6 s
    for argv in (["media", "convert", cut, "--out", tmp_path / "out.mp4"],
                 ["audio", "features", cut, "--out", tmp_path / "f.npy"],
                 ["eval", cut, "--reference", clip, "--out", tmp_path / "m.json"]):
        err = fails(capsys, argv, cut, "truncated or damaged")
        assert "6.00 s" in err
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def vfr_clip(folder: Path, frame_ends: np.ndarray, audio_seconds: float) -> Path:
    """A variable-frame-rate clip whose frame i shows grey level 10 * i until time frame_ends[i]."""
    import cv2

    lines = []
    for i, (start, end) in enumerate(zip(np.concatenate([[0.0], frame_ends[:-1]]), frame_ends)):
        cv2.imwrite(str(folder / f"f{i}.png"), np.full((64, 64, 3), 10 * i, np.uint8))
        lines += [f"file 'f{i}.png'", f"duration {end - start:.4f}"]
    lines.append(f"file 'f{len(frame_ends) - 1}.png'")  # the concat demuxer's last entry: shown once more
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    path = folder / "vfr.mp4"
    ffmpeg("-f", "concat", "-i", str(folder / "list.txt"), "-f", "lavfi", "-i",
           f"sine=frequency=300:duration={audio_seconds}", "-map", "0:v", "-map", "1:a", "-fps_mode", "vfr",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10", "-c:a", "aac", str(path))
    return path


def test_a_variable_frame_rate_clip_is_resampled_by_timestamp_to_its_speech(tmp_path):
    from talkface.pipelines.preprocess import PreprocessConfig, _Runner
    from talkface.workspace import Workspace

    ends = np.round(np.cumsum([0.02, 0.07, 0.033, 0.05] * 6), 3)  # 14 to 50 fps, 1.04 s
    ends[-1] = 1.2  # the last frame held for 0.2 s
    clip = vfr_clip(tmp_path, ends, audio_seconds=1.2)
    frames = read_video(clip)
    starts = np.concatenate([[0.0], ends[:-1]])
    levels = np.round(frames[:, 20:40, 20:40].mean(axis=(1, 2, 3)) / 10)
    # By timestamp: output frame k shows the source frame on screen at k/25, or one that starts
    # less than half an output frame later (the fps filter rounds timestamps to the nearest frame).
    for k, level in enumerate(levels):
        on_screen = np.searchsorted(starts, k / 25 + 1e-6, side="right") - 1
        nearest = np.searchsorted(starts, (k + 0.5) / 25, side="left") - 1
        assert on_screen <= level <= nearest, (k, level, on_screen, nearest)
    # The video outlasts the speech by the held last frame: a person's frames stop with the speech.
    workspace = Workspace(tmp_path / "ws")
    runner = _Runner(workspace, clip, PreprocessConfig(frames=1000), progress=False)
    with pytest.raises(Exception, match="30 frames with speech"):
        runner.frames()  # fewer than asked: says so, with the flags of both commands
    runner = _Runner(workspace, clip, PreprocessConfig(frames=30), progress=False)
    assert runner.frames()["frames"] == 30 == round(len(read_audio(clip)) / 16000 * 25)


@pytest.mark.parametrize("name", ["talk1.mp4", "talk4.mp4"])  # variable frame rate; 30 fps
def test_real_clips_give_one_frame_per_40_ms_of_their_duration(name):
    if not (REAL / name).is_file():
        pytest.skip("../shared/real is absent")
    frames = sum(1 for _ in iter_video_frames(REAL / name))
    assert abs(frames - probe_video(REAL / name).duration_s * 25) <= 1.5


def test_a_clip_without_audio_is_refused_for_fine_tuning(tmp_path, capsys):
    silent = tmp_path / "silent.mp4"
    write_video(silent, np.zeros((30, 64, 64, 3), np.uint8))
    fails(capsys, ["preprocess", silent, "--out", tmp_path / "ws", "--rnet", silent, "--landmarks", silent],
          silent, "fine-tuning needs the person's speech")
    assert not (tmp_path / "ws").exists()


# ---------------------------------------------------------------------------------------------
# 8. eval inputs that do not fit together


def test_eval_refuses_motion_that_does_not_fit_its_video(clip, tmp_path, capsys):
    short, nan = tmp_path / "short.npy", tmp_path / "nan.npy"
    np.save(short, np.zeros((10, 70), np.float32))
    np.save(nan, np.full((150, 70), np.nan, np.float32))
    base = ["eval", clip, "--out", tmp_path / "m.json"]
    fails(capsys, base + ["--generated-motion", short], short, "10")
    fails(capsys, base + ["--generated-motion", nan], nan, "not finite")
    other = tmp_path / "other.mp4"
    write_video(other, np.zeros((150, 32, 32, 3), np.uint8))
    fails(capsys, ["eval", clip, "--reference", other, "--out", tmp_path / "m.json"], other)
    assert not (tmp_path / "m.json").exists()


# ---------------------------------------------------------------------------------------------
# 9. leftovers and late checks


def test_gan_pretrain_checks_its_window_before_building_the_cache(tmp_path, capsys):
    fails(capsys, ["gan", "pretrain", "--set", "window_size=100", "--set", f"cache={tmp_path / 'cache'}",
                   "--set", f"lrw_root={tmp_path}", "--set", f"run_dir={tmp_path / 'run'}"], "100")
    fails(capsys, ["gan", "pretrain", "--set", "window_size=0", "--set", f"cache={tmp_path / 'cache'}",
                   "--set", f"lrw_root={tmp_path}", "--set", f"run_dir={tmp_path / 'run'}"], "window_size")
    assert not (tmp_path / "cache").exists()


def test_threads_default_to_the_idle_cores():
    from talkface.threads import idle_threads

    assert idle_threads(cores=2, load=0.2) == 2
    assert idle_threads(cores=2, load=1.0) == 1  # one core busy: OpenMP threads would wait on it
    assert idle_threads(cores=2, load=7.5) == 1
    assert idle_threads(cores=16, load=4.0) == 12


# ---------------------------------------------------------------------------------------------
# A tiny fine-tuned person (as tests/test_end_to_end.py, smaller): classes 1-6, 9, 10 on it


def tiny_config(folder: Path, rnet: Path, people: Path) -> Path:
    path = folder / "person_tiny.yaml"
    path.write_text(f"""_base_: {REPO / 'configs' / 'person.yaml'}
people_dir: {people}
preprocess: {{frames: {CLIP_FRAMES}, window_size: 64, rnet: {rnet}, morphable_model: synthetic, device: cpu,
             refine: {{steps: 30}}}}
motion:
  pretrained: null
  epochs: 20
  lr: 1.0e-3
  network: {{channels: [8, 8, 16, 16, 16], fc_sizes: [32, 32], lstm_hidden: 16, lstm_layers: 1}}
  train: {{device: cpu, eval_every: 1000}}
gan:
  pretrained: null
  train_frames: 32
  val_frames: 8
  epochs: 1
  epoch_frames: 1
  model: {{ngf: 8, ndf: 8, memory_size: 32}}
  train: {{batch_size: 8, device: cpu, checkpoint_every: 5}}
""")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    from talkface.audio import SAMPLES_PER_VIDEO_FRAME
    from talkface.synth.world import write_person

    root = tmp_path_factory.mktemp("failures")
    person = write_person(root / "person", seconds=5.0, seed=11, size=128, engine="builtin", progress=False)
    speech = read_audio(person / "truth" / "audio.wav")
    write_wav(root / "heldout.wav", speech[CLIP_FRAMES * SAMPLES_PER_VIDEO_FRAME:])
    write_wav(root / "silence.wav", np.zeros(len(speech) - CLIP_FRAMES * SAMPLES_PER_VIDEO_FRAME, np.float32))
    rnet_run = root / "rnet"
    assert cli(["recon", "train", "--set", f"run_dir={rnet_run}", "--set", "morphable_model=synthetic",
                "--set", "model.backbone=resnet18", "--set", f"data.clips=[{person}]", "--set", "train.steps=1",
                "--set", "train.batch_size=2", "--set", "train.num_workers=0", "--set", "train.device=cpu"]) == 0
    rnet = next((rnet_run / "checkpoints").glob("step_*.pt"))
    config = tiny_config(root, rnet, root / "people")
    landmarks = person / "truth" / "landmarks.npy"
    assert cli(["person", str(person / "clip.mp4"), "--person", "ada", "--landmarks", str(landmarks),
                "--config", str(config)]) == 0
    return {"root": root, "person": person, "config": config, "people": root / "people", "rnet": rnet,
            "landmarks": landmarks, "heldout": root / "heldout.wav", "silence": root / "silence.wav"}


def infer(people: Path, audio: Path, out: Path, *extra: object) -> int:
    return cli(["infer", str(audio), "--person", "ada", "--out", str(out),
                "--set", f"people_dir={people}", "--set", "device=cpu", *map(str, extra)])


@pytest.mark.slow
def test_a_copied_or_moved_person_works_and_a_swapped_checkpoint_is_refused(world, tmp_path, capsys):
    copied = tmp_path / "copied"
    shutil.copytree(world["people"], copied)
    moved = tmp_path / "moved"
    shutil.move(str(copied), moved)  # the copy, moved: nothing of it is where it was made
    record = json.loads((moved / "ada" / "person.json").read_text())
    assert not any(Path(record["stages"][s]["outputs"]["checkpoint"]).is_absolute() for s in ("motion", "gan"))
    assert infer(moved, world["heldout"], tmp_path / "moved.mp4", "--output", "face") == 0
    # Swap the moved person's GAN checkpoint for another (the motion one): refused, naming it; the
    # original folder's weights are not used instead.
    gan = moved / "ada" / record["stages"]["gan"]["outputs"]["checkpoint"]
    shutil.copy(moved / "ada" / record["stages"]["motion"]["outputs"]["checkpoint"], gan)
    capsys.readouterr()
    fails(capsys, ["infer", world["heldout"], "--person", "ada", "--out", tmp_path / "swapped.mp4",
                   "--set", f"people_dir={moved}", "--set", "device=cpu"], gan, "sha256")
    assert not (tmp_path / "swapped.mp4").exists()


@pytest.mark.slow
def test_unwritable_outputs_and_invalid_controls_of_the_person_commands(world, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    motion = next((world["people"] / "ada" / "motion_finetune" / "checkpoints").glob("step_*.pt"))
    predict = ["motion", "predict", world["heldout"], "--checkpoint", motion, "--out", tmp_path / "m.npy"]
    fails(capsys, predict[:-1] + [blocker / "m.npy"], blocker)
    fails(capsys, ["motion", "finetune", world["people"] / "ada", "--set", f"run_dir={blocker / 'run'}",
                   "--set", "pretrained=null", "--set", "train.device=cpu"], blocker)
    fails(capsys, ["infer", world["heldout"], "--person", "ada", "--out", blocker / "o.mp4",
                   "--set", f"people_dir={world['people']}", "--set", "device=cpu"], blocker)
    fails(capsys, ["person", world["person"] / "clip.mp4", "--person", "bob", "--config", world["config"],
                   "--landmarks", world["landmarks"], "--set", f"people_dir={blocker}"], blocker)
    # 4. non-finite controls, 5. out-of-range values: refused where they enter, naming the flag
    fails(capsys, predict + ["--head-motion-scale", "nan"], "--head-motion-scale")
    fails(capsys, predict + ["--expression-scale", "inf"], "--expression-scale")
    fails(capsys, predict + ["--seed", "-3"], "--seed")
    fails(capsys, predict + ["--chunk-frames", "0"], "--chunk-frames")
    fails(capsys, ["infer", world["heldout"], "--person", "ada", "--out", tmp_path / "o.mp4",
                   "--set", f"people_dir={world['people']}", "--seed", "-1"], "--seed")
    assert not (tmp_path / "m.npy").exists() and not (tmp_path / "o.mp4").exists()
    assert leftovers(tmp_path) == [] and leftovers(world["people"]) == []


@pytest.mark.slow
def test_bad_landmarks_name_the_npy_and_leave_no_workspace(world, tmp_path, capsys):
    truth = np.load(world["landmarks"])
    far, nan = tmp_path / "far.npy", tmp_path / "nan.npy"
    np.save(far, truth * 100)  # pixels of another scale: wholly outside the 128 px frames
    np.save(nan, np.full_like(truth, np.nan))
    base = ["preprocess", world["person"] / "clip.mp4", "--rnet", world["rnet"], "--frames", CLIP_FRAMES,
            "--set", "morphable_model=synthetic", "--set", "window_size=64", "--set", "device=cpu"]
    fails(capsys, base + ["--out", tmp_path / "ws_far", "--landmarks", far], far, "wholly outside")
    fails(capsys, base + ["--out", tmp_path / "ws_nan", "--landmarks", nan], nan, "no face")
    assert not (tmp_path / "ws_far").exists() and not (tmp_path / "ws_nan").exists()
    # The same through finetune: no person folder is left.
    people = tmp_path / "people"
    fails(capsys, ["person", world["person"] / "clip.mp4", "--person", "far", "--config", world["config"],
                   "--landmarks", far, "--set", f"people_dir={people}"], far)
    # (A clip shorter than preprocess.frames is fine-tuned on what it has: tests/test_pretrain_synthetic.py.)
    assert not people.exists() or list(people.iterdir()) == []


@pytest.mark.slow
def test_silence_holds_still_at_default_settings(world, tmp_path):
    """Default infer (predicted pose, reassign background): silence changes the face less than speech
    does, and the head and the background frame hold still."""
    from talkface.pipelines.infer import InferConfig, generate

    config = InferConfig(people_dir=str(world["people"]), device="cpu", output="face")
    change, results = {}, {}
    for name in ("heldout", "silence"):
        results[name] = generate("ada", world[name], tmp_path / f"{name}.mp4", config, progress=False)
        video = read_video(tmp_path / f"{name}.mp4").astype(np.float32)
        change[name] = float(np.abs(np.diff(video, axis=0)).mean())
    assert change["silence"] < 0.5 * change["heldout"], change
    # One real frame behind the whole silence; 'reassign' renders the head in that frame's pose.
    assert len(np.unique(results["silence"].background_indices)) == 1
