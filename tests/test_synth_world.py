"""The synthetic world's subjects, "real" frames, person clips, LRW layout and `talkface synth` CLI."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from talkface.cli import main
from talkface.face3d.camera import Camera
from talkface.face3d.coeffs import ANGLES, IDENTITY, TEXTURE
from talkface.face3d.model import load_morphable_model
from talkface.media import probe_video, read_audio, read_video
from talkface.render.rasterize import interpolate, rasterize
from talkface.render.renderer import render
from talkface.synth.appearance import RealFrames, frame_transform, sample_subject
from talkface.synth.motion import generate_motion
from talkface.speech.phones import phones_from_json
from talkface.synth.phones import phones_from_audio
from talkface.synth.speech import speech_for_duration
from talkface.synth.world import VOCABULARY, lrw_clip_path, write_lrw, write_person

FPS, SR = 25, 16000
SECONDS, SIZE = 2.0, 256


@pytest.fixture(scope="module")
def model():
    return load_morphable_model("synthetic")


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    return write_person(tmp_path_factory.mktemp("world") / "person", seconds=SECONDS, seed=1, size=SIZE, progress=False)


def frame_masks(coeffs: np.ndarray, transform: np.ndarray, model, size: int) -> np.ndarray:
    """Where the model's face covers each frame [T, H, W], rasterized independently of the writer."""
    with torch.no_grad():
        mesh = model(torch.from_numpy(coeffs), Camera())
        a = torch.tensor(transform, dtype=torch.float32)
        screen = mesh.screen @ a[:, :2].T + a[:, 2]
        return rasterize(screen, mesh.vertices[..., 2], model.triangles, (size, size)).mask.numpy()


def test_person_files_and_clip(person):
    truth = person / "truth"
    n = int(SECONDS * FPS)
    coeffs, landmarks = np.load(truth / "coeffs.npy"), np.load(truth / "landmarks.npy")
    assert coeffs.shape == (n, 257) and coeffs.dtype == np.float32
    assert landmarks.shape == (n, 68, 2) and landmarks.dtype == np.float32
    assert np.load(truth / "transform.npy").shape == (2, 3)
    info = json.loads((truth / "subject.json").read_text())
    assert info["seed"] == 1 and info["engine"] in ("espeak", "builtin") and "style" in info
    assert json.loads((person / "manifest.json").read_text())["frames"] == n
    sheet = cv2.imread(str(person / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 100
    frames = read_video(person / "clip.mp4")
    assert frames.shape == (n, SIZE, SIZE, 3)
    assert probe_video(person / "clip.mp4").fps == pytest.approx(FPS)
    audio = read_audio(person / "clip.mp4")
    assert len(audio) / SR == pytest.approx(SECONDS, abs=0.05)
    assert np.sqrt(np.mean(audio**2)) > 0.01  # speech, not silence
    assert len(read_audio(truth / "audio.wav")) == n * SR // FPS


def test_landmarks_land_on_the_rendered_face(person, model):
    truth = person / "truth"
    every = slice(None, None, 5)
    coeffs, landmarks = np.load(truth / "coeffs.npy")[every], np.load(truth / "landmarks.npy")[every]
    masks = frame_masks(coeffs, np.load(truth / "transform.npy"), model, SIZE)
    grown = np.stack([cv2.dilate(m, np.ones((5, 5), np.uint8)) for m in masks])  # 2 px each way
    cols = np.clip(landmarks[..., 0].astype(int), 0, SIZE - 1)
    rows = np.clip(landmarks[..., 1].astype(int), 0, SIZE - 1)
    inside = grown[np.arange(len(masks))[:, None], rows, cols]
    assert inside.all()
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    area = masks.sum((1, 2))
    centroid = np.stack([(masks * xs).sum((1, 2)) / area, (masks * ys).sum((1, 2)) / area], 1)
    assert np.linalg.norm(landmarks.mean(1) - centroid, axis=1).max() < 0.05 * SIZE
    # The video shows the face there: skin differs from the frame's border (background).
    frame = read_video(person / "clip.mp4", max_frames=1)[0].astype(float)
    x, y = landmarks[0, 30].astype(int)
    nose = frame[y - 2 : y + 3, x - 2 : x + 3].mean((0, 1))
    assert np.abs(nose - frame[:4, :4].mean((0, 1))).max() > 0.02 * 255


def test_mouth_articulates_the_phones_not_the_loudness(person):
    landmarks = np.load(person / "truth" / "landmarks.npy")
    opening = np.linalg.norm(landmarks[:, [61, 62, 63]] - landmarks[:, [67, 66, 65]], axis=2).mean(1)
    truth = json.loads((person / "truth" / "phones.json").read_text())
    assert truth["source"] == "engine" and truth["engine"] == "builtin"  # espeak-ng is not installed
    phones = phones_from_json(truth["phones"])
    lead = json.loads((person / "truth" / "subject.json").read_text())["style"]["mouth_lead"]
    shown = lambda p: int(round(((p.start + p.end) / 2 - lead) * FPS - 0.5))  # the frame showing the phone
    vowels = [opening[shown(p)] for p in phones if p.symbol in "aeo"]
    closures = [opening[shown(p)] for p in phones if p.symbol in "pbm"]
    assert vowels and closures and np.mean(vowels) > 4 * max(np.mean(closures), 0.1)
    audio = read_audio(person / "clip.mp4")  # the muxed track: also checks that it is in sync
    n = len(landmarks)
    hop = SR // FPS
    audio = np.pad(audio, (0, max(0, n * hop - len(audio))))
    energy = np.log(np.sqrt((audio[: n * hop].reshape(n, hop) ** 2).mean(1)) + 1e-3)

    def corr(lag: int) -> float:
        a, b = (opening[: n - lag], energy[lag:]) if lag >= 0 else (opening[-lag:], energy[: n + lag])
        return float(np.corrcoef(a, b)[0, 1])

    # Real mouths follow loudness at r ~0.2-0.5 (benchmarks/bench_synth_mouth_loudness.py).
    assert 0.0 < max(corr(lag) for lag in range(-3, 4)) < 0.7


def test_subjects_differ(model):
    one, two = sample_subject(1), sample_subject(2)
    assert np.abs(one.identity - two.identity).mean() > 0.3
    assert np.abs(one.texture - two.texture).mean() > 0.3
    # The faces look different (neutral expression and pose, same framing).
    faces = []
    for subject in (one, two):
        subject = dataclasses.replace(subject, zoom=1.0, offset=(0.0, 0.0))
        frames, _ = RealFrames(subject, model, 128).render(subject.coeffs(*(np.zeros((1, k), np.float32) for k in (64, 3, 3))))
        faces.append(frames[0, 40:100, 34:94].astype(float))  # cheeks, eyes, nose, mouth
    assert np.abs(faces[0] - faces[1]).mean() > 10  # of 255
    # Head-motion styles: the same speech gives clearly different pose spreads.
    speech = speech_for_duration(10.0, seed=3, engine="builtin")
    stds = [generate_motion(speech, SR, s.style, s.seed).angles.std(0) for s in (one, two)]
    assert np.abs(np.log(stds[0] / stds[1])).max() > np.log(1.3)


def test_real_frame_has_detail_a_3dmm_render_lacks(person, model):
    coeffs = np.load(person / "truth" / "coeffs.npy")
    landmarks = np.load(person / "truth" / "landmarks.npy")
    opening = np.linalg.norm(landmarks[:, 62] - landmarks[:, 66], axis=1)
    row = coeffs[[int(opening.argmax())]]
    # The same subject framed exactly as the canonical 224 crop, so both images share pixels.
    subject = dataclasses.replace(sample_subject(1), zoom=1.0, offset=(0.0, 0.0))
    real, real_landmarks = RealFrames(subject, model, 224).render(row)
    with torch.no_grad():
        plain = render(torch.from_numpy(row), model)
        skin = interpolate(model.skin_mask[None, :, None], plain.fragments, model.triangles)[0, ..., 0].numpy()
    plain_image = plain.image[0].permute(1, 2, 0).numpy() * 255
    real_image = real[0].astype(np.float32)
    face = cv2.erode(plain.mask[0, 0].numpy(), np.ones((7, 7), np.uint8)) > 0
    assert np.abs(real_image - plain_image)[face].mean() > 8  # of 255
    # Plain skin, below the brows (no hair): the 3DMM render is smooth there, the real frame is not.
    bare = face & (cv2.erode((skin > 0.99).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    bare[: int(real_landmarks[0, 17:27, 1].max()) + 4] = False
    assert bare.sum() > 5000

    def high_frequency(image: np.ndarray) -> float:
        grey = image.mean(2)
        return float((grey - cv2.GaussianBlur(grey, (0, 0), 1.5))[bare].var())

    assert high_frequency(real_image) > 4 * high_frequency(plain_image)


def test_frame_transform_is_the_framing():
    subject = sample_subject(4)
    t = frame_transform(subject, 256)
    centre = t @ np.array([112.0, 112.0, 1.0])
    assert t[0, 0] == t[1, 1] == pytest.approx(256 / 224 * subject.zoom)
    assert centre == pytest.approx(128 + np.asarray(subject.offset) * 256)


def test_lrw_layout_and_resume(tmp_path):
    root = tmp_path / "lrw"
    paths = write_lrw(root, words=2, clips_per_word=2, seed=0, splits=("train",), size=64, progress=False)
    words = sorted({p.parent.parent.name for p in paths})
    assert len(words) == 2 and all(w in VOCABULARY for w in words)
    assert sorted(paths) == sorted(lrw_clip_path(root, w, "train", k) for w in words for k in (1, 2))
    assert paths[0].name == f"{words[0]}_00001.mp4"
    seeds = set()
    for path in paths:
        assert read_video(path).shape == (29, 64, 64, 3)
        truth = np.load(path.with_suffix(".npz"))
        assert truth["coeffs"].shape == (29, 257) and truth["landmarks"].shape == (29, 68, 2)
        assert 0.3 < truth["word_start"] < 0.58 < truth["word_end"] < 0.86  # the word in the middle
        assert path.with_suffix(".txt").read_text().startswith(f"Text: {path.parent.parent.name}")
        seeds.add(int(truth["seed"]))
    assert len(seeds) == len(paths)  # a new subject per clip
    # Rerun: complete clips are kept; a clip missing its truth is made again, identically.
    times = {p: p.stat().st_mtime_ns for p in paths}
    redo = paths[1]
    before = np.load(redo.with_suffix(".npz"))["coeffs"]
    redo.with_suffix(".npz").unlink()
    write_lrw(root, words=2, clips_per_word=2, seed=0, splits=("train",), size=64, progress=False)
    assert all(p.stat().st_mtime_ns == times[p] for p in paths if p != redo)
    assert redo.stat().st_mtime_ns != times[redo]
    np.testing.assert_array_equal(np.load(redo.with_suffix(".npz"))["coeffs"], before)


def test_cli_person_from_audio_file(person, tmp_path):
    out = tmp_path / "from_audio"
    assert main(["synth", "person", "--out", str(out), "--audio", str(person / "truth" / "audio.wav"),
                 "--seconds", "1.2", "--seed", "2", "--size", "64"]) == 0
    coeffs = np.load(out / "truth" / "coeffs.npy")
    n = len(coeffs)
    assert coeffs.shape == (30, 257)
    source = read_audio(person / "truth" / "audio.wav")[: n * SR // FPS]
    np.testing.assert_allclose(read_audio(out / "truth" / "audio.wav"), source, atol=2e-4)
    assert json.loads((out / "truth" / "subject.json").read_text())["engine"] == "file"
    # Same speech, different subject: the identity and head pose differ; the mouth articulates
    # phones estimated from the file, which find the vowels the engine said.
    first = np.load(person / "truth" / "coeffs.npy")[:n]
    assert not np.allclose(coeffs[:, IDENTITY], first[:, IDENTITY])
    assert not np.allclose(coeffs[:, ANGLES], first[:, ANGLES])
    assert not np.allclose(coeffs[:, TEXTURE], first[:, TEXTURE])
    heard = json.loads((out / "truth" / "phones.json").read_text())
    assert heard["source"] == "audio"
    assert heard["phones"] == [[p.symbol, round(p.start, 4), round(p.end, 4)]
                               for p in phones_from_audio(read_audio(out / "truth" / "audio.wav"), SR)]
    said = phones_from_json(json.loads((person / "truth" / "phones.json").read_text())["phones"])
    t = np.arange(0, n / FPS, 0.005)

    def vowel_time(phones) -> np.ndarray:
        return np.any([(t >= p.start) & (t < p.end) for p in phones if p.symbol in "aeiou"], axis=0)

    said_vowels, heard_vowels = vowel_time(said), vowel_time(phones_from_json(heard["phones"]))
    assert (said_vowels & heard_vowels).sum() > 0.7 * said_vowels.sum()
    assert coeffs[:, 80].max() > 0.1  # the jaw moves


@pytest.mark.parametrize("arguments, message", [
    (["--audio", "{tmp}/missing.wav"], "missing.wav"),
    (["--audio", "{tmp}/garbage.wav"], "garbage.wav"),
    (["--seconds", "0"], "seconds must be positive"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, arguments, message):
    (tmp_path / "garbage.wav").write_bytes(b"this is not audio" * 10)
    args = [a.format(tmp=tmp_path) for a in arguments]
    assert main(["synth", "person", "--out", str(tmp_path / "out"), *args]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("talkface: error:") and message in error and "\n" not in error
    assert not (tmp_path / "out").exists()


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(self, coeffs, first_frame=0):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(RealFrames, "render", broken)
    with pytest.raises(RuntimeError):
        write_person(tmp_path / "person", seconds=0.4, seed=1, size=64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(Exception, match="not a synthetic person"):
        write_person(folder, seconds=0.4, seed=1, size=64, progress=False)
    assert (folder / "notes.txt").read_text() == "keep me"

