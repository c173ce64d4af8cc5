"""MFCC and per-frame audio windows (talkface.audio) against python_speech_features."""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from talkface import audio
from talkface.errors import MediaError

psf = pytest.importorskip("python_speech_features")

RATE = 16000


def reference_mfcc(signal: np.ndarray) -> np.ndarray:
    """The definition we reproduce (docs/method.md, audio features): python_speech_features' MFCC without c0."""
    return psf.mfcc(signal, RATE, winstep=0.01)[:, 1:]


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """max |a - b| / max |b|: the error measured against the features' own scale."""
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def synthetic_speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like 16 kHz signal: a gliding harmonic source through three formant resonators,
    cut into ~4 Hz syllables with pauses, plus breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)  # Hz, slow intonation
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    source = sum(np.sin(k * phase) / k for k in range(1, 30))
    voiced = np.zeros_like(t)
    for centre, bandwidth in ((600, 80), (1400, 120), (2600, 160)):  # formants, Hz
        radius = np.exp(-np.pi * bandwidth / RATE)
        theta = 2 * np.pi * (centre * (1 + 0.15 * np.sin(2 * np.pi * 1.3 * t[0] + centre))) / RATE
        voiced += scipy.signal.lfilter([1 - radius], [1, -2 * radius * np.cos(theta), radius**2], source)
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2  # on/off envelope with pauses
    signal = syllables * voiced + 0.01 * rng.standard_normal(t.size)
    return 0.5 * signal / np.abs(signal).max()


def espeak_speech(tmp_path: Path, text: str) -> np.ndarray:
    """Real synthetic speech from espeak-ng, resampled to 16 kHz."""
    import soundfile

    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
    signal, rate = soundfile.read(wav, dtype="float64")
    if signal.ndim == 2:
        signal = signal.mean(axis=1)
    ratio = np.gcd(RATE, rate)
    return scipy.signal.resample_poly(signal, RATE // ratio, rate // ratio)


# --- MFCC ------------------------------------------------------------------------------------------


def test_mfcc_matches_reference_on_synthetic_speech():
    signal = synthetic_speech(3.0)
    ours = audio.mfcc(signal)
    reference = reference_mfcc(signal)
    assert ours.dtype == np.float32 and ours.shape == reference.shape == (299, 12)
    assert relative_error(ours, reference) < 1e-4


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_mfcc_matches_reference_on_espeak_speech(tmp_path):
    signal = espeak_speech(tmp_path, "Seven bright fish swam quietly past the old harbour wall.")
    assert (signal == 0).any() and signal.size > RATE  # real pauses of exact silence included
    ours = audio.mfcc(signal)
    reference = reference_mfcc(signal)
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) < 1e-4


@pytest.mark.parametrize(
    "n_samples",
    [1, 57, 399, 400, 401, 560, 561, 16000, 16077],  # < one window, = one window, off the step grid
)
def test_mfcc_edge_lengths(n_samples):
    signal = synthetic_speech(1.1, seed=n_samples)[:n_samples]
    ours = audio.mfcc(signal)
    reference = reference_mfcc(signal)
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) < 1e-4


def test_mfcc_of_silence_is_finite_and_matches_reference():
    for signal in (np.zeros(4000), np.concatenate([np.zeros(2000), synthetic_speech(0.5), np.zeros(2000)])):
        ours = audio.mfcc(signal)
        assert np.isfinite(ours).all()
        np.testing.assert_allclose(ours, reference_mfcc(signal), rtol=0, atol=1e-4 * max(1, np.abs(ours).max()))
    # log(eps) in every filter is flat, so c1..c12 vanish
    assert np.abs(audio.mfcc(np.zeros(4000))).max() < 1e-6


def test_mfcc_rejects_empty_and_multichannel_signals():
    with pytest.raises(MediaError, match="empty"):
        audio.mfcc(np.zeros(0))
    with pytest.raises(ValueError, match="shape"):
        audio.mfcc(np.zeros((1000, 2)))


# --- frame counts ----------------------------------------------------------------------------------


def test_frame_rate_constants():
    assert audio.MFCC_PER_VIDEO_FRAME == 4 and audio.SAMPLES_PER_VIDEO_FRAME == 640
    assert audio.PAD_SAMPLES == 3 * audio.SAMPLES_PER_VIDEO_FRAME  # 0.12 s = 3 frames of context
    assert audio.WINDOW_MFCC_FRAMES == (2 * audio.CONTEXT_VIDEO_FRAMES + 1) * audio.MFCC_PER_VIDEO_FRAME


@pytest.mark.parametrize(
    "n_samples, expected",
    [(0, 0), (319, 0), (320, 1), (640, 1), (959, 1), (960, 2), (16000, 25), (18560, 29)],  # 18560: LRW
)
def test_n_video_frames_rounds_duration(n_samples, expected):
    assert audio.n_video_frames(n_samples) == expected


def test_n_video_frames_recovers_a_video_length_from_its_audio():
    for frames in (1, 29, 300, 7501):
        for slack in (-319, 0, 319):  # an audio track cut up to half a frame short or long
            assert audio.n_video_frames(frames * 640 + slack) == frames
        assert audio.n_video_frames(frames * 1764, sample_rate=44100) == frames


# --- windows ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return synthetic_speech(2.0, seed=7)[: 2 * RATE - 211]  # not a whole number of video frames


def test_windows_are_slices_of_the_padded_reference_mfcc(speech):
    windows = audio.audio_windows(speech)
    frames = audio.n_video_frames(speech.size)
    assert windows.shape == (frames, 28, 12) and windows.dtype == np.float32
    padded = reference_mfcc(np.pad(speech, 1920))  # [F, 12]; 0.12 s of zeros on both ends
    missing = 4 * frames + 24 - len(padded)  # the last windows run past the padded audio's MFCC
    assert missing > 0
    padded = np.concatenate([padded, np.zeros((missing, 12))])  # ... where there is only silence
    scale = np.abs(padded).max()
    for i in range(frames):
        assert np.abs(windows[i] - padded[4 * i : 4 * i + 28]).max() < 1e-4 * scale, f"window {i}"


def test_windows_follow_reference_formula_on_unpadded_audio(speech):
    # docs/method.md: frame i uses mfcc[(i-3)*4 : (i+4)*4] of the audio itself.
    windows = audio.audio_windows(speech)
    plain = reference_mfcc(speech)
    scale = np.abs(plain).max()
    checked = 0
    for i in range(3, len(windows)):
        if (i + 4) * 4 >= len(plain):  # python_speech_features' last frame pads after pre-emphasis
            break
        assert np.abs(windows[i] - plain[(i - 3) * 4 : (i + 4) * 4]).max() < 1e-4 * scale, f"window {i}"
        checked += 1
    assert checked == len(windows) - 7


def test_unpadded_windows_are_the_interior_frames(speech):
    padded = audio.audio_windows(speech)
    plain = audio.audio_windows(speech, pad=False)
    assert plain.shape == (len(padded) - 6, 28, 12)
    np.testing.assert_array_equal(plain, padded[3:-3])
    np.testing.assert_allclose(plain[0], audio.mfcc(speech)[:28], rtol=0, atol=1e-5)


@pytest.mark.parametrize("pad", [True, False])
@pytest.mark.parametrize("chunk", [1, 7, 16, 49, 50, 1000])
def test_chunked_windows_concatenate_to_the_whole(speech, chunk, pad):
    whole = audio.audio_windows(speech, pad=pad)
    chunks = list(audio.iter_audio_windows(speech, chunk, pad=pad))
    assert all(0 < len(part) <= chunk for part in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_float32_audio_gives_the_same_windows(speech):
    as_read = speech.astype(np.float32)  # what talkface.media.read_audio returns
    whole = audio.audio_windows(as_read)
    np.testing.assert_array_equal(whole, audio.audio_windows(as_read.astype(np.float64)))
    np.testing.assert_array_equal(np.concatenate(list(audio.iter_audio_windows(as_read, 9))), whole)


def test_chunked_windows_memory_does_not_grow_with_length():
    def peak_bytes(seconds: float) -> int:
        signal = synthetic_speech(seconds, seed=3).astype(np.float32)
        tracemalloc.start()
        for _ in audio.iter_audio_windows(signal, chunk_frames=25):
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    short, long = peak_bytes(4.0), peak_bytes(40.0)
    whole_spectrum = 4000 * 257 * 16  # what one FFT over 40 s of frames would hold
    assert long < 1.5 * short + 100_000
    assert long < whole_spectrum / 10


def test_windows_of_silence_and_of_tiny_audio():
    silent = audio.audio_windows(np.zeros(RATE))
    assert silent.shape == (25, 28, 12) and np.isfinite(silent).all() and np.abs(silent).max() < 1e-6
    assert audio.audio_windows(np.zeros(319)).shape == (0, 28, 12)
    assert audio.audio_windows(np.zeros(0)).shape == (0, 28, 12)
    assert audio.audio_windows(np.zeros(2000), pad=False).shape == (0, 28, 12)
    assert list(audio.iter_audio_windows(np.zeros(100), 4)) == []


def test_windows_reject_other_rates_and_bad_chunks():
    with pytest.raises(ValueError, match="16000 Hz"):
        audio.audio_windows(np.zeros(44100), sample_rate=44100)
    with pytest.raises(ValueError, match="chunk_frames"):
        next(audio.iter_audio_windows(np.zeros(RATE), 0))


@pytest.mark.parametrize("frames, rate", [(29, 16000), (50, 44100)])
def test_an_mp4_of_t_frames_gives_t_windows(tmp_path, frames, rate):
    media = pytest.importorskip("talkface.media")
    video = tmp_path / "clip.mp4"
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(frames * rate // 25) / rate)
    media.write_video(video, np.zeros((frames, 16, 16, 3), np.uint8), audio=(tone, rate))
    signal = media.read_audio(video)
    assert media.count_frames(video) == frames
    assert audio.n_video_frames(signal.size) == frames
    assert audio.audio_windows(signal).shape == (frames, 28, 12)


# --- command line ----------------------------------------------------------------------------------


def test_cli_writes_windows(tmp_path, capsys):
    import json

    import soundfile

    from talkface.cli import main

    pytest.importorskip("talkface.media")
    signal = synthetic_speech(1.5, seed=11)
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, signal, RATE, subtype="FLOAT")
    out = tmp_path / "features" / "windows.npy"
    assert main(["audio", "features", str(wav), "--out", str(out)]) == 0
    windows = np.load(out)
    assert windows.dtype == np.float32 and windows.shape == (audio.n_video_frames(signal.size), 28, 12)
    np.testing.assert_allclose(windows, audio.audio_windows(signal), rtol=0, atol=1e-4)
    assert json.loads(out.with_name("windows.npy.json").read_text())["shape"] == list(windows.shape)
    printed = capsys.readouterr().out
    assert f"{len(windows)} windows" in printed and "1.50 s" in printed
    assert main(["audio", "features", str(wav), "--out", str(out), "--no-pad"]) == 0
    np.testing.assert_array_equal(np.load(out), windows[3:-3])


def test_cli_reports_unreadable_audio(tmp_path, capsys):
    from talkface.cli import main

    pytest.importorskip("talkface.media")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    assert main(["audio", "features", str(bad), "--out", str(tmp_path / "w.npy")]) == 1
    assert "bad.wav" in capsys.readouterr().err
    assert not (tmp_path / "w.npy").exists()
