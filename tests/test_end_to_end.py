"""End to end at tiny size: `talkface person` on a synthetic clip, `talkface infer` on held-out speech.

The general models are skipped (motion and GAN fine-tune from scratch) and the R-Net is trained
for a single step: the plumbing, the resumability and the video contract are under test here;
the quality of each stage has its own tests and benchmarks.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from talkface.cli import main as cli
from talkface.config import load_config
from talkface.media import probe_video, read_audio, read_video, write_video, write_wav
from talkface.pipelines.person import PersonConfig, finetune_person
from talkface.pipelines.person_folder import known_people

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
CLIP_FRAMES = 100
WINDOW = 64


def tiny_config(folder: Path, rnet: Path, people: Path) -> Path:
    """A person.yaml on top of the shipped one, shrunk to seconds."""
    path = folder / "person_tiny.yaml"
    path.write_text(f"""_base_: {REPO / 'configs' / 'person.yaml'}
people_dir: {people}
preprocess:
  frames: {CLIP_FRAMES}
  window_size: {WINDOW}
  rnet: {rnet}
  morphable_model: synthetic
  device: cpu
  refine:
    steps: 150
motion:
  pretrained: null
  epochs: 8                       # of 285 sequences (epoch_sequences): 136 steps, as 30 epochs of this clip's 69 were
  lr: 1.0e-3                      # from scratch on 100 frames: a faster start than the paper's 1e-4
  network:
    channels: [8, 8, 16, 16, 16]
    fc_sizes: [32, 32]
    lstm_hidden: 16
    lstm_layers: 1
  train:
    device: cpu
    eval_every: 1000
gan:
  pretrained: null
  train_frames: {CLIP_FRAMES}
  val_frames: 20
  epochs: 1
  epoch_frames: 1                 # an epoch of the clip's own frames: seconds, not the paper's 250
  model:
    ngf: 8
    ndf: 8
    memory_size: 64
  train:
    batch_size: 8
    device: cpu
    checkpoint_every: 5
""")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    from talkface.audio import SAMPLES_PER_VIDEO_FRAME
    from talkface.synth.world import write_person

    root = tmp_path_factory.mktemp("e2e")
    person = write_person(root / "person", seconds=6.0, seed=11, size=128, engine="builtin", progress=False)
    speech = read_audio(person / "truth" / "audio.wav")
    write_wav(root / "heldout.wav", speech[CLIP_FRAMES * SAMPLES_PER_VIDEO_FRAME:])
    rnet_run = root / "rnet"
    assert cli(["recon", "train", "--set", f"run_dir={rnet_run}", "--set", "morphable_model=synthetic",
                "--set", "model.backbone=resnet18", "--set", f"data.clips=[{person}]", "--set", "train.steps=1",
                "--set", "train.batch_size=2", "--set", "train.num_workers=0", "--set", "train.device=cpu"]) == 0
    rnet = next((rnet_run / "checkpoints").glob("step_*.pt"))
    config = tiny_config(root, rnet, root / "people")
    landmarks = person / "truth" / "landmarks.npy"
    assert cli(["person", str(person / "clip.mp4"), "--person", "ada", "--landmarks", str(landmarks),
                "--config", str(config)]) == 0
    return {"root": root, "person": person, "config": config, "people": root / "people", "landmarks": landmarks,
            "heldout": root / "heldout.wav"}


def infer(world: dict, audio: Path, out: Path, *extra: str) -> int:
    return cli(["infer", str(audio), "--person", "ada", "--out", str(out),
                "--set", f"people_dir={world['people']}", "--set", "device=cpu", *extra])


def test_infer_writes_a_25_fps_video_as_long_as_the_audio_with_the_audio_in_it(world, tmp_path):
    out = tmp_path / "ada.mp4"
    assert infer(world, world["heldout"], out) == 0
    video = probe_video(out)
    assert video.fps == pytest.approx(25.0) and video.has_audio
    seconds = len(read_audio(world["heldout"])) / 16000
    assert len(read_audio(out)) / 16000 == pytest.approx(seconds, abs=1 / 25)  # the muxed speech, whole
    frames = read_video(out)
    assert abs(len(frames) / 25.0 - seconds) <= 1 / 25 + 1e-6
    source = read_video(world["person"] / "clip.mp4", max_frames=1)[0]
    assert frames.shape[1:] == source.shape  # full frame: the face pasted back into the real frame


def mouth_box(people: Path) -> tuple[slice, slice]:
    """Rows and columns of the face-crop output around the person's mouth (landmarks 48-67, mean over the clip)."""
    import json

    from talkface.workspace import Workspace

    workspace = Workspace(people / "ada")
    window = json.loads(workspace.path("window.json").read_text())
    mouth = workspace.load_array("landmarks.npy")[:, 48:68].reshape(-1, 2)  # frame px
    zoom = window["out_size"] / window["size"]
    (x0, y0), (x1, y1) = (mouth.min(0) - [window["x0"], window["y0"]]) * zoom, \
        (mouth.max(0) - [window["x0"], window["y0"]]) * zoom
    return slice(int(y0) - 2, int(np.ceil(y1)) + 2), slice(int(x0) - 2, int(np.ceil(x1)) + 2)


def test_the_mouth_moves_with_speech_and_stays_still_in_silence(world, tmp_path):
    """Pose held still in both videos, so the background plan is the same and only the speech differs."""
    samples = read_audio(world["heldout"])
    write_wav(tmp_path / "silence.wav", np.zeros_like(samples))
    rows, columns = mouth_box(world["people"])
    videos = {}
    for name, audio in (("speech", world["heldout"]), ("silence", tmp_path / "silence.wav")):
        assert infer(world, audio, tmp_path / f"{name}.mp4", "--output", "face", "--pose-source", "still") == 0
        videos[name] = read_video(tmp_path / f"{name}.mp4")[:, rows, columns]
    speech, silence = (videos[k].astype(np.float32) for k in ("speech", "silence"))
    change = {k: np.abs(np.diff(v, axis=0)).mean() for k, v in (("speech", speech), ("silence", silence))}
    assert change["speech"] > 1.5 * change["silence"], change  # the mouth moves only while there is speech
    assert np.abs(speech - silence).mean() > 1.0  # grey levels: the speaking mouth is not the closed one


def test_unknown_person_lists_the_known_ones(world, tmp_path, capsys):
    assert known_people(world["people"]) == ["ada"]
    code = cli(["infer", str(world["heldout"]), "--person", "bob", "--out", str(tmp_path / "x.mp4"),
                "--set", f"people_dir={world['people']}"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "no fine-tuned person 'bob'" in err and "known people: ada" in err
    assert "\n" not in err and not (tmp_path / "x.mp4").exists()


def test_interrupted_finetune_resumes_where_it_stopped(world, monkeypatch):
    config = load_config(PersonConfig, world["config"])
    landmarks = dataclasses.replace(config.preprocess.landmarks, backend="file", file=str(world["landmarks"]))
    config = dataclasses.replace(config, preprocess=dataclasses.replace(config.preprocess, landmarks=landmarks))
    clip = world["person"] / "clip.mp4"

    import talkface.gan.train as gan_train

    real_finetune = gan_train.finetune

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gan_train, "finetune", interrupted)
    with pytest.raises(KeyboardInterrupt):
        finetune_person(clip, "bea", config, progress=False, say=lambda _: None)
    assert known_people(world["people"]) == ["ada"]  # bea is not finished, so not offered
    monkeypatch.setattr(gan_train, "finetune", real_finetune)
    results = finetune_person(clip, "bea", config, progress=False, say=lambda _: None)
    assert [(r.name, r.ran) for r in results] == [("preprocess", False), ("motion", False), ("gan", True)]
    assert known_people(world["people"]) == ["ada", "bea"]


def test_a_video_with_audio_but_no_face_is_a_one_line_error(world, tmp_path, monkeypatch, capsys):
    """The face detector (a stand-in for face-alignment) finds nothing: one line naming the clip."""
    from talkface.recon import landmarks as lmk

    blank = tmp_path / "blank.mp4"
    speech = read_audio(world["heldout"])
    write_video(blank, np.full((CLIP_FRAMES, 64, 64, 3), 90, np.uint8), audio=(np.tile(speech, 3), 16000))
    home = tmp_path / "checkpoints" / "face_alignment"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    (home / lmk.S3FD_FILE).write_bytes(b"weights")
    (home / "hub" / "checkpoints" / lmk.FAN2D_FILE).write_bytes(b"weights")

    class NoFaces:
        def __init__(self, *args, **kwargs):
            pass

        def get_landmarks_from_image(self, frame, return_bboxes=False):
            return None, None, None

    monkeypatch.setitem(sys.modules, "face_alignment", types.SimpleNamespace(
        __version__="1.5.0", LandmarksType=types.SimpleNamespace(TWO_D="2D"), FaceAlignment=NoFaces))
    code = cli(["person", str(blank), "--person", "nobody", "--config", str(world["config"]),
                "--set", f"preprocess.landmarks.checkpoints_dir={tmp_path / 'checkpoints'}",
                "--set", "preprocess.landmarks.backend=fan"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and str(blank) in err and "no face found in any of the" in err and "\n" not in err
    assert "nobody" not in known_people(world["people"])


def test_the_scripts_pass_their_arguments_to_the_commands(world, tmp_path):
    """scripts/infer.sh and finetune.sh: usage errors, and a real run through infer.sh."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(REPO),  # this tree's talkface
           "TALKFACE": str(Path(sys.executable).parent / "talkface")}
    usage = subprocess.run(["bash", str(REPO / "scripts" / "infer.sh")], capture_output=True, text=True, env=env)
    assert usage.returncode == 2 and "usage" in usage.stderr
    out = tmp_path / "script.mp4"
    done = subprocess.run(["bash", str(REPO / "scripts" / "infer.sh"), str(world["heldout"]), "ada", str(out),
                           "--output", "face", "--set", f"people_dir={world['people']}", "--set", "device=cpu"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert probe_video(out).fps == pytest.approx(25.0)
    unknown = subprocess.run(["bash", str(REPO / "scripts" / "infer.sh"), str(world["heldout"]), "zed",
                              str(tmp_path / "z.mp4"), "--set", f"people_dir={world['people']}"],
                             capture_output=True, text=True, env=env)
    assert unknown.returncode == 1 and "known people: ada" in unknown.stderr


def test_pretrain_script_makes_the_general_models_and_resumes(tmp_path):
    """scripts/pretrain_lrw.sh on a tiny synthetic LRW: cache, motion and GAN runs, checkpoints/general/."""
    from talkface.synth.world import write_lrw

    write_lrw(tmp_path / "lrw", words=2, clips_per_word=1, splits=("train", "val"), size=64, engine="builtin",
              progress=False)
    motion = tmp_path / "motion.yaml"
    motion.write_text(f"""_base_: {REPO / 'configs' / 'motion_lrw.yaml'}
epochs: null
val_clips: 1
network: {{channels: [8, 8, 16, 16, 16], fc_sizes: [32, 32], lstm_hidden: 16, lstm_layers: 1}}
train: {{steps: 2, batch_size: 2, num_workers: 0, checkpoint_every: 2, eval_every: null, device: cpu}}
""")
    gan = tmp_path / "gan.yaml"
    gan.write_text(f"""_base_: {REPO / 'configs' / 'gan_lrw.yaml'}
val_split: null
window_size: 64
model: {{ngf: 8, ndf: 8, memory_size: 16}}
train: {{steps: 2, batch_size: 2, num_workers: 0, checkpoint_every: 2, image_every: null, eval_every: null,
        device: cpu}}
""")
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(REPO), "TALKFACE": str(bin_dir / "talkface"),
           "MOTION_CONFIG": str(motion),
           "GAN_CONFIG": str(gan), "CHECKPOINTS": str(tmp_path / "checkpoints"), "HOME": str(tmp_path)}
    command = ["bash", str(REPO / "scripts" / "pretrain_lrw.sh"), str(tmp_path / "lrw"), str(tmp_path / "work")]
    first = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    for stage in ("motion_lrw", "gan_lrw"):
        assert (tmp_path / "checkpoints" / "general" / f"{stage}.pt").is_file()
    runs = sorted((tmp_path / "work" / "runs").rglob("step_*.pt"))
    written = {path: path.stat().st_mtime_ns for path in runs}
    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted((tmp_path / "work" / "runs").rglob("step_*.pt")) == runs  # every step found its work done
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in written.items())
