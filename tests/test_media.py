"""Media I/O: 25 fps resampling by timestamp, 16 kHz mono audio, mp4 round trips, clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from talkface import media
from talkface.audio import SAMPLE_RATE
from talkface.cli import main
from talkface.errors import MediaError

RATE = SAMPLE_RATE
FRAME_SAMPLES = RATE // 25  # one 25 fps frame of audio: 40 ms


def smooth_frames(n: int, height: int = 48, width: int = 64) -> np.ndarray:
    """[n, H, W, 3] uint8 slowly moving colour gradients: content H.264 keeps well."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for t in range(n):
        red = 40 + 2.5 * x + t
        green = 60 + 2.0 * y
        blue = 200 - 1.5 * x - 1.0 * y + 0.5 * t
        frames.append(np.stack([red, green, blue], axis=-1))
    return np.clip(np.round(frames), 0, 255).astype(np.uint8)


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def ffmpeg(*args: str) -> None:
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


# ---------------------------------------------------------------------------------------------
# Round trips


def test_round_trip_frames_and_audio(tmp_path: Path) -> None:
    frames = smooth_frames(40)  # 1.6 s at 25 fps
    speech = sine(440, 1.6, RATE)
    out = tmp_path / "clip.mp4"
    media.write_video(out, frames, audio=(speech, RATE))

    info = media.probe_video(out)
    assert (info.width, info.height, info.fps, info.has_audio) == (64, 48, 25.0, True)
    assert info.n_frames == 40 and media.count_frames(out) == 40

    back = media.read_video(out)
    assert back.shape == frames.shape and back.dtype == np.uint8
    error = np.abs(back.astype(np.int16) - frames).mean()
    assert error < 3.0, error  # crf 18 + 4:2:0 chroma on smooth gradients: about 2 grey levels

    audio = media.read_audio(out)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - len(speech)) <= FRAME_SAMPLES
    assert peak_hz(audio, RATE) == pytest.approx(440, abs=2)


def test_names_that_look_like_urls_are_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = Path("data:clip.mp4")  # ffmpeg alone would read this relative name as a data: URI
    media.write_video(out, smooth_frames(3), audio=(sine(440, 0.12, RATE), RATE))
    assert media.read_video(out).shape == (3, 48, 64, 3) and len(media.read_audio(out)) > 0


def test_odd_sizes_are_padded_with_the_last_row_and_column(tmp_path: Path) -> None:
    frames = smooth_frames(10, height=47, width=65)
    out = tmp_path / "odd.mp4"
    media.write_video(out, frames)
    back = media.read_video(out)
    assert back.shape == (10, 48, 66, 3)
    assert np.abs(back[:, :47, :65].astype(np.int16) - frames).mean() < 3.0
    # the padding repeats the edge, so it looks like its neighbours, not black
    assert np.abs(back[:, :47, 65].astype(np.int16) - frames[:, :, 64]).mean() < 4.0
    assert np.abs(back[:, 47, :65].astype(np.int16) - frames[:, 46, :]).mean() < 4.0


def test_writer_accepts_torch_frames_in_both_layouts() -> None:
    frame = smooth_frames(1)[0]
    chw = torch.from_numpy(frame).permute(2, 0, 1).float() / 255  # [3, H, W]
    assert np.array_equal(media.to_uint8_frame(chw), frame)
    assert np.array_equal(media.to_uint8_frame(chw.permute(1, 2, 0)), frame)  # [H, W, 3]
    with pytest.raises(ValueError):
        media.to_uint8_frame(np.zeros((48, 64), np.uint8))


# ---------------------------------------------------------------------------------------------
# Resampling video to 25 fps by timestamp


def test_30fps_clip_is_resampled_by_timestamp(tmp_path: Path) -> None:
    n_source, step = 40, 6
    # source frame i is a flat grey of brightness 6 i, so its index can be read back
    greys = np.arange(n_source) * step
    source = np.broadcast_to(greys[:, None, None, None], (n_source, 48, 64, 3)).astype(np.uint8)
    clip = tmp_path / "clip30.mp4"
    media.write_video(clip, source, fps=30)
    assert media.probe_video(clip).fps == 30.0

    frames = media.read_video(clip)
    # 40 frames at 30 fps last 4/3 s; at 25 fps that is 33.3 frames, and the fps filter emits
    # every output time k/25 before the clip's end: k = 0..32.
    assert len(frames) == 33 == media.count_frames(clip)
    chosen = np.round(frames.reshape(len(frames), -1).mean(axis=1) / step).astype(int)
    # output k at time k/25 shows the source frame nearest in time, i = round(k * 30/25)
    # (never a tie: 6k/5 is never m + 1/2), so frames 3, 9, 15, ... are the ones dropped.
    expected = np.round(np.arange(33) * 30 / 25).astype(int)
    assert chosen.tolist() == expected.tolist()


def test_rotation_metadata_swaps_the_probed_and_decoded_size(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    media.write_video(clip, smooth_frames(5))
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(clip), "-c", "copy", str(rotated))
    info = media.probe_video(rotated)
    assert (info.width, info.height) == (48, 64)
    assert media.read_video(rotated).shape == (5, 64, 48, 3)


# ---------------------------------------------------------------------------------------------
# Audio


@pytest.fixture
def stereo_wav(tmp_path: Path) -> Path:
    """1.0 s at 44.1 kHz, stereo, 523 Hz: left amplitude 0.6, right 0.2 (mono mean: 0.4)."""
    left, right = sine(523, 1.0, 44100, 0.6), sine(523, 1.0, 44100, 0.2)
    path = tmp_path / "stereo.wav"
    media.write_wav(path, np.stack([left, right], axis=1), 44100)
    return path


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".m4a"])
def test_read_audio_gives_16k_mono(stereo_wav: Path, tmp_path: Path, suffix: str) -> None:
    path = stereo_wav
    if suffix != ".wav":
        path = tmp_path / f"stereo{suffix}"
        ffmpeg("-i", str(stereo_wav), str(path))
    assert media.probe_audio(path).sample_rate == 44100
    audio = media.read_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - RATE) <= (1 if suffix in (".wav", ".flac") else FRAME_SAMPLES)
    assert peak_hz(audio, RATE) == pytest.approx(523, abs=2)
    middle = audio[2000:-2000]  # away from resampler / codec edges
    assert np.abs(middle).max() == pytest.approx(0.4, abs=0.02)  # channels averaged


def test_read_audio_from_the_audio_track_of_a_video(stereo_wav: Path, tmp_path: Path) -> None:
    clip = tmp_path / "talk.mp4"
    media.write_video(clip, smooth_frames(25), audio=stereo_wav)
    audio = media.read_audio(clip)
    assert abs(len(audio) - RATE) <= FRAME_SAMPLES
    assert peak_hz(audio, RATE) == pytest.approx(523, abs=2)


def test_write_wav_read_audio_round_trip(tmp_path: Path) -> None:
    speech = sine(300, 0.5, RATE, 0.9)
    path = tmp_path / "a.wav"
    media.write_wav(path, speech)
    back = media.read_audio(path)
    assert len(back) == len(speech)
    assert np.abs(back - speech).max() < 2 / 32767  # 16-bit quantisation only


# ---------------------------------------------------------------------------------------------
# Streaming


def test_iter_video_frames_is_lazy_and_stops_ffmpeg(tmp_path: Path, monkeypatch) -> None:
    clip = tmp_path / "long.mp4"
    media.write_video(clip, smooth_frames(100, height=120, width=160))  # 4 s, 57.6 kB per frame
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(media.subprocess, "Popen", recording_popen)
    frames = media.iter_video_frames(clip)
    first = [next(frames) for _ in range(3)]
    assert all(frame.shape == (120, 160, 3) for frame in first)
    process = started[-1]  # the decoder (the probe before it has exited)
    # 97 frames (5.6 MB) cannot fit in a pipe: ffmpeg is still waiting for us to read
    assert process.poll() is None
    frames.close()
    assert process.returncode is not None  # stopped and reaped, not left running
    assert len(media.read_video(clip, max_frames=3)) == 3


# ---------------------------------------------------------------------------------------------
# Errors


def test_writer_leaves_nothing_when_the_block_raises(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with media.VideoWriter(out, audio=(sine(440, 1.0, RATE), RATE)) as writer:
            for frame in smooth_frames(5):
                writer.write(frame)
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MediaError, match="no frames were written"):
        with media.VideoWriter(out):
            pass
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_a_change_of_frame_size(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="differs"):
        with media.VideoWriter(out) as writer:
            writer.write(smooth_frames(1, height=47, width=65)[0])
            writer.write(smooth_frames(1, height=48, width=66)[0])  # same size once padded
    assert list(tmp_path.iterdir()) == []


def test_audio_requested_from_a_silent_video(tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp4"
    media.write_video(silent, smooth_frames(5))
    assert media.probe_video(silent).has_audio is False
    with pytest.raises(MediaError, match="silent.mp4: no audio track"):
        media.read_audio(silent)
    with pytest.raises(MediaError, match="no audio track"):
        media.VideoWriter(tmp_path / "out.mp4", audio=silent)
    assert not (tmp_path / "out.mp4").exists()


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], Path, str]]:
    missing = tmp_path / "missing.mp4"
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    empty = tmp_path / "empty.wav"
    empty.touch()
    no_samples = tmp_path / "header_only.wav"
    media.write_wav(no_samples, np.zeros(0, np.float32))
    audio_only = tmp_path / "speech.wav"
    media.write_wav(audio_only, sine(440, 0.5, RATE))
    out = str(tmp_path / "out.mp4")
    return {
        "missing": (["media", "info", str(missing)], missing, "no such file"),
        "text as mp4": (["media", "info", str(text)], text, "cannot read"),
        "zero-length wav": (["media", "info", str(empty)], empty, "empty file"),
        "wav without samples": (["media", "info", str(no_samples)], no_samples, "no samples"),
        "audio-only as video": (["media", "convert", str(audio_only), "--out", out], audio_only, "no video stream"),
        "convert missing": (["media", "convert", str(missing), "--out", out], missing, "no such file"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "text as mp4", "zero-length wav", "wav without samples", "audio-only as video",
             "convert missing"],
)
def test_cli_bad_input_is_one_line_naming_the_file(tmp_path: Path, capsys, case: str) -> None:
    argv, path, reason = _bad_inputs(tmp_path)[case]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and reason in err
    assert not (tmp_path / "out.mp4").exists()


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_info_and_convert(tmp_path: Path, capsys) -> None:
    clip = tmp_path / "clip30.mp4"
    media.write_video(clip, smooth_frames(39), fps=30, audio=(sine(440, 1.3, RATE), RATE))
    assert main(["media", "info", str(clip)]) == 0
    out = capsys.readouterr().out
    assert "64x48, 30 fps" in out and "33 at 25 fps" in out and "16000 Hz, mono, 1.300 s" in out

    short = tmp_path / "short.mp4"
    assert main(["media", "convert", str(clip), "--out", str(short), "--max-frames", "10"]) == 0
    info = media.probe_video(short)
    assert (info.fps, info.has_audio) == (25.0, True)
    assert media.count_frames(short) == 10
    assert abs(len(media.read_audio(short)) - 10 * FRAME_SAMPLES) <= FRAME_SAMPLES  # audio cut to match
