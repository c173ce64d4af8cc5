"""Memory-GAN pairs, training stages and inference, end to end on tiny synthetic data.

One synthetic person (3 s at 96 px, a 64 px window) and a 2-word synthetic LRW at 64 px. The
tiny GAN (ngf 8, 6 levels, random frozen key backbone) trains in seconds on one core.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from talkface.cli import main
from talkface.errors import MissingWeightsError, TalkfaceError
from talkface.gan import train as gan_train
from talkface.gan.data import GanPairs, PairClip
from talkface.gan.inference import load_enhancer
from talkface.gan.model import IdentityStream, build_networks, rebuild_networks
from talkface.gan.pairs import OUTPUT, ensure_renders
from talkface.gan.train import GanFinetuneConfig, GanModelConfig, finetune
from talkface.synth.truth_workspace import write_lrw_truth_workspace, write_truth_workspace
from talkface.train.checkpoint import read_checkpoint
from talkface.train.config import TrainConfig
from talkface.workspace import Workspace

WINDOW = 64
TRAIN_FRAMES, VAL_FRAMES = 50, 25  # of the person's 75
TINY = GanModelConfig(ngf=8, levels=6, memory_size=256, ndf=8, train_key_backbone=False)
TINY_SET = ["--set", "model.ngf=8", "--set", "model.memory_size=64", "--set", "model.ndf=8",
            "--set", "model.train_key_backbone=false"]
# Measured: 100 steps take the held-out PSNR from 18.3 dB (render) to 27.4 dB, SSIM 0.78 -> 0.91.
STEPS = 100
MIN_PSNR_GAIN = 5.0
MIN_SSIM_GAIN = 0.05

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gan_train")


@pytest.fixture(scope="module")
def workspace(tmp: Path) -> Path:
    from talkface.synth.world import write_person

    person = write_person(tmp / "person", seconds=3.0, seed=3, size=96, engine="builtin", progress=False)
    return write_truth_workspace(person, tmp / "ws", window_size=WINDOW).root


def config(run_dir: Path, steps: int, **train: object) -> GanFinetuneConfig:
    settings = {"steps": steps, "batch_size": 2, "num_workers": 0, "log_every": 10, "checkpoint_every": 1000, **train}
    return GanFinetuneConfig(train_frames=TRAIN_FRAMES, val_frames=VAL_FRAMES, epochs=None, lr=5e-4, model=TINY,
                             train=TrainConfig(**settings), run_dir=str(run_dir))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(workspace: Path, tmp: Path) -> tuple[Path, dict[str, float], Path]:
    run_dir = tmp / "finetune"
    checkpoint, scores = finetune(workspace, config(run_dir, STEPS, eval_every=50, image_every=50))
    return checkpoint, scores, run_dir


def test_renders_are_a_workspace_step(workspace: Path) -> None:
    ws = Workspace(workspace)
    renders = ensure_renders(ws, "synthetic")
    stamp = ws.path(OUTPUT).stat().st_mtime_ns
    again = ensure_renders(Workspace(workspace), "synthetic")
    assert ws.path(OUTPUT).stat().st_mtime_ns == stamp  # current: not recomputed
    np.testing.assert_array_equal(renders, again)
    reals = ws.load_array("window_crops.npy")
    assert renders.shape == reals.shape == (75, WINDOW, WINDOW, 3) and renders.dtype == np.uint8
    face = (renders != reals).any(axis=-1)  # the composite changes only the face
    assert 0.05 < face.mean() < 0.6


def test_items_use_another_frame_for_identity() -> None:
    frames = np.arange(10, dtype=np.uint8)[:, None, None, None].repeat(4, 1).repeat(4, 2).repeat(3, 3)  # value = t
    pairs = GanPairs([PairClip(frames, frames + 100, range(6))])
    assert len(pairs) == 6
    np.random.seed(0)
    for index in range(6):
        item = pairs[index]
        t = round(float(item["real"][0, 0, 0]) * 255) - 100
        assert t == index
        assert [round(float(v) * 255) for v in item["window"][::3, 0, 0]] == [t, max(t - 1, 0), max(t - 2, 0)]
        other = round(float(item["identity_frame"][0, 0, 0]) * 255) - 100
        assert other != t and 0 <= other < 6


def test_finetune_beats_the_render_on_held_out_frames(trained) -> None:
    checkpoint, scores, run_dir = trained
    assert scores["psnr_gan"] >= scores["psnr_render"] + MIN_PSNR_GAIN, scores
    assert scores["ssim_gan"] >= scores["ssim_render"] + MIN_SSIM_GAIN, scores
    logged = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert any("eval/psnr_gan" in row and "eval/ssim_render" in row for row in logged)
    assert list((run_dir / "tensorboard").glob("events.*"))  # scalars and the input/output/mask/target images
    saved = read_checkpoint(checkpoint)
    assert sorted(saved["models"]) == ["discriminator", "generator", "identity", "keys", "memory"]
    assert saved["models"]["memory"]["ages"].min() >= 0 and (saved["models"]["memory"]["values"].norm(dim=1) > 0).any()


def test_a_short_clip_gets_the_papers_steps_per_epoch(workspace: Path, tmp: Path) -> None:
    steps = {}
    for epoch_frames in (250, 1):
        run = dataclasses.replace(config(tmp / f"epochs_{epoch_frames}", 1, batch_size=25), epochs=1,
                                  epoch_frames=epoch_frames)
        final, _ = finetune(workspace, run)
        steps[epoch_frames] = read_checkpoint(final)["config"]["train"]["steps"]
    # The default: an epoch of the paper's 250 training frames (10 batches), whatever the clip's length;
    # with epoch_frames 1, the clip's own 50 (2 batches).
    assert steps == {250: 10, 1: 2}


def test_chunked_enhancement_equals_whole(trained, workspace: Path) -> None:
    from talkface.gan.data import render_window

    renders = Workspace(workspace).load_array(OUTPUT)
    windows = torch.stack([render_window(renders, t) for t in range(len(renders))])  # 75 frames: 4 memory reads
    enhancer = load_enhancer(trained[0], device="cpu", batch_size=16)
    whole, whole_masks = enhancer.enhance(windows)
    enhancer.reset()
    parts = [enhancer.enhance(windows[start:start + 7]) for start in range(0, len(windows), 7)]
    torch.testing.assert_close(torch.cat([p[0] for p in parts]), whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat([p[1] for p in parts]), whole_masks, atol=1e-5, rtol=0)
    assert whole.shape == (75, 3, WINDOW, WINDOW) and whole_masks.shape == (75, 1, WINDOW, WINDOW)
    assert 0 <= whole.min() and whole.max() <= 1
    with pytest.raises(MissingWeightsError, match="nothing.pt"):
        load_enhancer(trained[0].parent / "nothing.pt")


def test_identity_stream_blends_reads_without_looking_ahead() -> None:
    networks = build_networks(ngf=8, levels=6, memory_size=8)
    values = torch.nn.functional.normalize(torch.randn(8, 512), dim=1)
    networks.memory.values.copy_(values)
    stream = IdentityStream(networks.memory, networks.keys.eval(), every=5)
    windows = torch.rand(12, 9, WINDOW, WINDOW)
    identities = stream(windows)
    reads = networks.memory.read(networks.keys(windows[[0, 5, 10], :3]))
    torch.testing.assert_close(identities[:5], reads[0].expand(5, -1))  # the first period holds read 0
    torch.testing.assert_close(identities[5], reads[0])
    torch.testing.assert_close(identities[10], reads[1])  # one period behind: no future frames needed
    blend = torch.nn.functional.normalize(torch.lerp(reads[0], reads[1], 2 / 5), dim=0)
    torch.testing.assert_close(identities[7], blend)  # linear between the two reads


def test_resume_equals_uninterrupted(workspace: Path, tmp: Path) -> None:
    whole, _ = finetune(workspace, config(tmp / "whole", 6))
    finetune(workspace, config(tmp / "parts", 3))
    resumed, _ = finetune(workspace, config(tmp / "parts", 6), resume=True)
    a, b = read_checkpoint(whole)["models"], read_checkpoint(resumed)["models"]
    for name in a:
        for key, tensor in a[name].items():
            assert torch.equal(tensor, b[name][key]), f"{name}.{key}"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(workspace: Path, tmp: Path, monkeypatch) -> None:
    calls = {"n": 0}
    real_loss = gan_train.generator_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        terms = real_loss(*args, **kwargs)
        if calls["n"] == 4:
            terms["total"] = terms["total"] * float("nan")
        return terms

    monkeypatch.setattr(gan_train, "generator_loss", poisoned)
    run_dir = tmp / "nan"
    with pytest.raises(TalkfaceError, match=r"step 4: .* nan.*step_0000002\.pt"):
        finetune(workspace, config(run_dir, 6, checkpoint_every=2))
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step_*.pt")) == ["step_0000002.pt"]


def test_missing_arcface_weights_name_the_file(workspace: Path, tmp: Path, capsys) -> None:
    missing = tmp / "no_arcface" / "backbone.pth"
    with pytest.raises(MissingWeightsError, match="backbone.pth"):
        build_networks(identity_encoder="arcface", identity_weights=str(missing))
    code = main(["gan", "finetune", str(workspace), "--set", "model.identity_encoder=arcface",
                 "--set", f"model.identity_weights={missing}", "--set", "pretrained=null",
                 "--set", f"run_dir={tmp / 'arc_run'}", "--set", "val_frames=25"])
    error = capsys.readouterr().err
    assert code == 1 and str(missing) in error and "ArcFace" in error and len(error.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def lrw_clips(tmp: Path) -> list[Path]:
    from talkface.synth.world import write_lrw

    return write_lrw(tmp / "lrw", words=2, clips_per_word=1, size=64, splits=("train",), engine="builtin",
                     progress=False)


def test_pretrain_on_synthetic_lrw_via_the_cli(tmp: Path, workspace: Path, lrw_clips: list[Path], capsys) -> None:
    clips = lrw_clips
    run_dir = tmp / "gan_lrw"
    args = ["gan", "pretrain", "--set", f"lrw_root={tmp / 'lrw'}", "--set", f"cache={tmp / 'cache'}",
            "--set", f"run_dir={run_dir}", "--set", f"window_size={WINDOW}", "--set", "val_split=null",
            *TINY_SET, "--set", "train.steps=4", "--set", "train.batch_size=2", "--set", "train.num_workers=0",
            "--set", "train.image_every=null"]
    assert main(args) == 0
    assert "pretrained:" in capsys.readouterr().out
    checkpoint = run_dir / "checkpoints" / "step_0000004.pt"
    assert rebuild_networks(checkpoint).args["generator"]["levels"] == 6  # log2 of the window
    for clip in clips:
        ws = tmp / "cache" / clip.parent.parent.name / "train" / clip.stem
        assert np.load(ws / OUTPUT, mmap_mode="r").shape == (29, WINDOW, WINDOW, 3)
    # a person fine-tunes from it (the pretrained sizes win over the config's model section)
    fine = dataclasses.replace(config(tmp / "from_pretrained", 2), pretrained=str(run_dir))
    final, scores = finetune(workspace, fine)
    assert read_checkpoint(final)["model_args"]["memory"]["size"] == 64 and set(scores) >= {"psnr_gan", "ssim_gan"}


def test_a_prepared_split_is_skipped_resumed_and_redone_when_its_key_changes(tmp: Path, lrw_clips: list[Path],
                                                                              monkeypatch) -> None:
    from talkface.pipelines import gan_pretrain
    from talkface.pipelines.stages import StageBook

    config = gan_train.GanPretrainConfig(lrw_root=str(tmp / "lrw"), cache=str(tmp / "split_cache"),
                                         window_size=WINDOW, val_split=None)
    first = gan_pretrain.prepare_split(config, "train")
    manifests = {ws: (ws / "manifest.json").stat().st_mtime_ns for ws in (c.source for c in first)}
    prepared: list[Path] = []
    prepare_clip = gan_pretrain.prepare_clip
    monkeypatch.setattr(gan_pretrain, "prepare_clip", lambda clip, *rest: prepared.append(clip) or
                        prepare_clip(clip, *rest))
    again = gan_pretrain.prepare_split(config, "train")
    assert prepared == [] and [c.source for c in again] == list(manifests)  # current: only read
    book = StageBook(tmp / "split_cache" / gan_pretrain.BOOK, gan_pretrain.BOOK_KIND)
    book.begin("train", book.entry("train")["key"])  # as if rank 0 had been killed while preparing
    gan_pretrain.prepare_split(config, "train")
    assert sorted(prepared) == sorted(lrw_clips)  # gone through again, each workspace already current and kept
    assert all((ws / "manifest.json").stat().st_mtime_ns == stamp for ws, stamp in manifests.items())
    smaller = gan_pretrain.prepare_split(dataclasses.replace(config, window_size=32), "train")  # a changed key
    assert len(prepared) == 2 * len(lrw_clips) and all(c.renders.shape[1:] == (32, 32, 3) for c in smaller)


def test_lrw_truth_workspace_matches_its_clip(tmp: Path) -> None:
    from talkface.synth.world import lrw_clip_path, write_lrw

    write_lrw(tmp / "lrw1", words=["WATER"], clips_per_word=1, size=64, splits=("train",), engine="builtin",
              progress=False)
    clip = lrw_clip_path(tmp / "lrw1", "WATER", "train", 1)
    ws = write_lrw_truth_workspace(clip, tmp / "lrw_ws", window_size=32)
    with np.load(clip.with_suffix(".npz")) as truth:
        np.testing.assert_array_equal(ws.load_array("coeffs.npy"), truth["coeffs"].astype(np.float32))
    assert ws.load_array("window_crops.npy").shape == (29, 32, 32, 3)
    assert ws.load_array("mfcc.npy").shape[0] == 29
    with pytest.raises(TalkfaceError, match="no truth .npz"):
        write_lrw_truth_workspace(tmp / "lrw1" / "nothing.mp4", tmp / "bad_ws")


def test_real_lrw_clips_need_preprocess_weights(tmp: Path, lrw_clips: list[Path], capsys) -> None:
    import shutil

    real = tmp / "real_lrw" / "WORD" / "train" / "WORD_00001.mp4"  # a clip without truth: preprocessed
    real.parent.mkdir(parents=True)
    shutil.copy(lrw_clips[0], real)
    # A named R-Net that is not there (`rnet: auto` would fit directly instead, needing no weights).
    shipped = Path(__file__).resolve().parents[1] / "configs" / "preprocess.yaml"
    preprocess_config = tmp / "preprocess.yaml"
    preprocess_config.write_text(f"_base_: {shipped}\nrnet: {tmp / 'no_such_rnet.pth'}\n")
    code = main(["gan", "pretrain", "--set", f"lrw_root={tmp / 'real_lrw'}", "--set", f"cache={tmp / 'real_cache'}",
                 "--set", f"run_dir={tmp / 'real_run'}", "--set", f"preprocess={preprocess_config}",
                 "--set", "val_split=null", "--set", f"window_size={WINDOW}"])
    error = capsys.readouterr().err
    assert code == 1 and "no_such_rnet.pth" in error and len(error.strip().splitlines()) == 1
