"""`talkface pretrain synthetic` at toy size, and what `talkface person` does with its general models:
a short clip, a clip below the minimum, a photo, and the message when the general models are missing.

The shipped configs/pretrain_synthetic.yaml is the real thing (about 10 minutes on 2 CPU cores);
the toy config shrinks every stage to a few steps, so the wiring is under test, not the quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from talkface.cli import main as cli
from talkface.config import load_config
from talkface.media import probe_video, read_audio, read_video, write_video, write_wav

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
TOY_PRETRAIN = """_base_: {shipped}
world: {{motion_words: 3, motion_clips_per_word: 2, render_words: 2, render_clips_per_word: 1, render_size: 64,
         engine: builtin}}
motion_pretrain:
  val_clips: 2
  network: {{channels: [8, 8, 16, 16, 16], fc_sizes: [32, 32], lstm_hidden: 16, lstm_layers: 1}}
  train: {{steps: 4, batch_size: 4, checkpoint_every: 4, eval_every: 4, device: cpu}}
gan_pretrain:
  window_size: 64
  model: {{ngf: 8, ndf: 8, memory_size: 32}}
  train: {{steps: 2, batch_size: 2, checkpoint_every: 2, device: cpu}}
"""
CLIP_FRAMES = 80  # shorter than the 300 frames person.yaml asks for


def tiny_person_config(folder: Path, general: dict) -> Path:
    """The shipped person.yaml on the toy general models, shrunk to seconds; no R-Net: direct fitting."""
    path = folder / "person_tiny.yaml"
    path.write_text(f"""_base_: {REPO / 'configs' / 'person.yaml'}
people_dir: {folder / 'people'}
preprocess: {{window_size: 64, rnet: null, morphable_model: synthetic, device: cpu, refine: {{steps: 30}}}}
motion: {{pretrained: {general['motion']}, epochs: 2, train: {{device: cpu, eval_every: 1000}}}}
gan: {{pretrained: {general['gan']}, val_frames: 20, epochs: 1, epoch_frames: 1, train: {{batch_size: 8, device: cpu}}}}
""")
    return path


@pytest.fixture(scope="module")
def general(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("pretrain")
    config = root / "toy.yaml"
    config.write_text(TOY_PRETRAIN.format(shipped=REPO / "configs" / "pretrain_synthetic.yaml"))
    motion, gan = root / "general" / "motion_lrw.pt", root / "general" / "gan_lrw.pt"
    command = ["pretrain", "synthetic", "--config", str(config), "--out", str(root / "work"),
               "--set", f"motion_model={motion}", "--set", f"gan_model={gan}"]
    assert cli(command) == 0
    return {"root": root, "command": command, "motion": motion, "gan": gan}


@pytest.fixture(scope="module")
def person(general, tmp_path_factory) -> dict:
    """A short synthetic clip, its held-out speech, and a tiny person config on the toy general models."""
    from talkface.synth.world import write_person

    root = tmp_path_factory.mktemp("person")
    clip = write_person(root / "clip", seconds=CLIP_FRAMES / 25 + 1.6, seed=5, size=128, engine="builtin",
                        progress=False)
    audio = read_audio(clip / "truth" / "audio.wav")
    write_video(root / "short.mp4", read_video(clip / "clip.mp4")[:CLIP_FRAMES],
                audio=(audio[:CLIP_FRAMES * 640], 16000))
    write_wav(root / "speech.wav", audio[CLIP_FRAMES * 640:])
    return {"root": root, "truth": clip / "truth", "clip": root / "short.mp4", "speech": root / "speech.wav",
            "config": tiny_person_config(root, general), "people": root / "people"}


def test_the_general_models_land_where_the_person_pipeline_looks():
    from talkface.pipelines.person import PersonConfig
    from talkface.pipelines.synthetic_pretrain import PretrainSyntheticConfig

    pretrain = load_config(PretrainSyntheticConfig, REPO / "configs" / "pretrain_synthetic.yaml")
    for profile in ("person.yaml", "person_cpu.yaml"):
        person = load_config(PersonConfig, REPO / "configs" / profile)
        assert (pretrain.motion_model, pretrain.gan_model) == (person.motion.pretrained, person.gan.pretrained)


@pytest.mark.slow
def test_pretrain_synthetic_makes_loadable_general_models_and_resumes(general, capsys):
    from talkface.gan.model import rebuild_networks
    from talkface.motion.model import load_motion_model

    net = load_motion_model(general["motion"])
    assert net.lstm.hidden_size == 16  # the toy network, as configured
    assert rebuild_networks(general["gan"]).args["generator"]["levels"] == 6  # log2 of the 64 px window

    general["motion"].unlink()  # a deleted general model comes back without retraining
    capsys.readouterr()
    assert cli(general["command"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 4 and " ran " not in printed
    assert general["motion"].is_file()


def test_finetune_without_general_models_names_the_pretrain_command_first(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "motion_lrw.pt"
    assert cli(["person", str(tmp_path / "clip.mp4"), "--person", "x", "--set", f"motion.pretrained={missing}"]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and str(missing) in error
    commands = [error.index(c) for c in ("talkface pretrain synthetic", "scripts/pretrain_lrw.sh",
                                         "talkface convert original")]
    assert commands == sorted(commands)


@pytest.mark.slow
def test_a_short_clip_is_fine_tuned_on_what_there_is_and_speaks(person, capsys):
    assert cli(["person", str(person["clip"]), "--person", "short", "--config", str(person["config"]),
                "--landmarks", str(person["truth"] / "landmarks.npy")]) == 0
    assert f"fine-tuning on {CLIP_FRAMES} frames" in capsys.readouterr().out
    assert len(np.load(person["people"] / "short" / "frames.npy", mmap_mode="r")) == CLIP_FRAMES

    out = person["root"] / "short_speaking.mp4"  # not the clip's own name: later tests fine-tune on the clip
    assert cli(["infer", str(person["speech"]), "--person", "short", "--out", str(out),
                "--set", f"people_dir={person['people']}", "--set", "device=cpu"]) == 0
    video = probe_video(out)
    assert video.has_audio and video.duration_s == pytest.approx(len(read_audio(person["speech"])) / 16000, abs=0.04)


def test_a_new_general_gan_at_the_same_path_fine_tunes_the_persons_gan_again(person, general, capsys):
    """The stage key holds the general model's content, not only its path."""
    import shutil

    import torch

    from talkface.train.checkpoint import read_checkpoint

    gan = person["root"] / "my_general_gan.pt"
    shutil.copyfile(general["gan"], gan)
    command = ["person", str(person["clip"]), "--person", "regen", "--config", str(person["config"]),
               "--landmarks", str(person["truth"] / "landmarks.npy"), "--set", f"gan.pretrained={gan}"]

    def statuses() -> dict[str, str]:
        assert cli(command) == 0
        lines = [line.split() for line in capsys.readouterr().out.splitlines()]
        return {words[0]: words[1] for words in lines if len(words) > 2 and words[0] in ("motion", "gan")}

    assert statuses() == {"motion": "ran", "gan": "ran"}
    assert statuses() == {"motion": "skipped", "gan": "skipped"}
    checkpoint = read_checkpoint(gan)
    first = next(iter(checkpoint["models"]["generator"]))
    checkpoint["models"]["generator"][first] = checkpoint["models"]["generator"][first] + 0.01
    torch.save(checkpoint, gan)  # retrained in place: same path, new weights
    assert statuses() == {"motion": "skipped", "gan": "ran"}


def test_a_clip_below_the_minimum_is_refused_in_one_line(person, capsys):
    from talkface.pipelines.person import PersonConfig, minimum_frames

    # the paper's config: the GAN's 50 held-out frames after one 3-frame window; the CPU profile holds out 25
    assert minimum_frames(load_config(PersonConfig, REPO / "configs" / "person.yaml")) == 53
    minimum = minimum_frames(load_config(PersonConfig, person["config"]))
    assert minimum == 32  # the motion stage's 16 training + 16 held-out frames (the toy GAN holds out 20 + 3)
    tiny = person["root"] / "tiny.mp4"
    write_video(tiny, read_video(person["clip"])[:minimum - 1],
                audio=(read_audio(person["clip"])[:(minimum - 1) * 640], 16000))
    assert cli(["person", str(tiny), "--person", "tiny", "--config", str(person["config"])]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and str(tiny) in error and f"at least {minimum}" in error
    assert not (person["people"] / "tiny").exists()  # refused before any work


@pytest.mark.slow
def test_a_photo_becomes_a_person_that_infer_animates(person, capsys):
    import imageio.v3 as iio

    photo = person["root"] / "photo.png"
    iio.imwrite(photo, read_video(person["clip"], max_frames=1)[0])
    landmarks = person["root"] / "photo_landmarks.npy"
    np.save(landmarks, np.load(person["truth"] / "landmarks.npy")[:1])
    assert cli(["person", str(photo), "--person", "still", "--config", str(person["config"]),
                "--landmarks", str(landmarks)]) == 0
    assert "keeps the general model" in capsys.readouterr().out

    out = person["root"] / "still.mp4"
    assert cli(["infer", str(person["speech"]), "--person", "still", "--out", str(out),
                "--set", f"people_dir={person['people']}", "--set", "device=cpu"]) == 0
    video = probe_video(out)
    assert video.fps == pytest.approx(25.0) and video.has_audio
    assert video.duration_s == pytest.approx(len(read_audio(person["speech"])) / 16000, abs=0.04)
    frames = read_video(out)
    assert (frames.shape[1], frames.shape[2]) == (128, 128)  # the photo's size: the photo is the background
    assert np.abs(frames[1:].astype(int) - frames[:-1]).mean() > 0  # the face moves


@pytest.mark.parametrize("extra, expected", [
    ([], ["--config", str(REPO / "configs" / "person_cpu.yaml")]),  # no GPU here: the CPU profile
    (["--config", "mine.yaml", "--set", "gan.epochs=2"], ["--config", "mine.yaml", "--set", "gan.epochs=2"]),
])
def test_finetune_script_picks_the_cpu_profile_without_a_gpu_unless_told(tmp_path, extra, expected):
    import subprocess

    fake = tmp_path / "talkface"  # records its arguments instead of fine-tuning
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "TALKFACE": str(fake)}  # no nvidia-smi on this PATH
    done = subprocess.run(["bash", str(REPO / "scripts" / "finetune.sh"), "clip.mp4", "ada", *extra],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:-1] == ["person", "clip.mp4", "--person", "ada", *expected]


def test_an_image_without_a_face_is_refused_in_one_line_naming_it(person, capsys):
    import imageio.v3 as iio

    wall = person["root"] / "wall.png"  # smooth noise: texture, no face
    noise = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    iio.imwrite(wall, np.repeat(np.repeat(noise, 16, axis=0), 16, axis=1))
    assert cli(["person", str(wall), "--person", "wall", "--config", str(person["config"])]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and str(wall) in error and "no face" in error
