"""Read video as 25 fps RGB frames, read audio as 16 kHz mono, write H.264 mp4 with audio.

Everything goes through the ffmpeg binary shipped inside the imageio-ffmpeg wheel (with libx264
and aac: no system ffmpeg is needed), driven through pipes so that no video is ever held whole
unless asked for. There is no ffprobe in that wheel, so probing parses the stream summary `ffmpeg -i` prints.

User-facing failures (missing, empty or unreadable files, a missing video or audio stream) raise
`MediaError` with one line naming the file; ffmpeg's stderr is only mined for a short reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import struct
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Union

import numpy as np

from talkface.atomic import atomic_path
from talkface.audio import SAMPLE_RATE, VIDEO_FPS
from talkface.errors import MediaError


# An audio source for `VideoWriter`: a media file with an audio track, or (samples, rate).
AudioSource = Union[str, Path, tuple[np.ndarray, int], None]


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg(*args: str) -> list[str]:
    """An ffmpeg command line that prints only errors and never reads the terminal."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", *args]


def _file_url(path: Path) -> str:
    """`path` as an ffmpeg URL that is always a local file (so a relative "data:x.mp4" is not a data URI)."""
    return f"file:{path}"


# ---------------------------------------------------------------------------------------------
# Errors


def _ffmpeg_reason(stderr: str) -> str:
    """The most telling line of ffmpeg's stderr, shortened to one line."""
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if line.startswith("Error opening input:"):
            return line.split(":", 1)[1].strip()
    for line in lines:
        if "moov atom not found" in line or "Invalid data found" in line:
            return line
    return lines[-1][:120] if lines else "ffmpeg failed"


def _check_complete(path: Path, decoded_s: float, declared_s: float | None, what: str, stderr: str) -> None:
    """MediaError when a stream decodes to much less than the container declares while the decoder
    reported errors (`stderr`, ffmpeg at -v error): a truncated file. An mp4 cut short with its index
    in front still opens, decodes its first part and exits 0, logging "partial file"."""
    # A stream may start a little late or end a frame early (priming, VFR); half a second and 2 %
    # of the length leave room for that, while a cut file falls short by far more. A clean decode
    # that is short is a stream that simply ends before another one (audio shorter than video).
    if declared_s is None or not stderr.strip() or decoded_s + 0.5 + 0.02 * declared_s >= declared_s:
        return
    reason = _ffmpeg_reason(stderr)
    raise MediaError(f"truncated or damaged: its {what} decodes to {decoded_s:.2f} s of the {declared_s:.2f} s "
                     f"its container declares ({reason})", path)


def _check_input(path: Path) -> None:
    """Fail early, with a plain reason, on what ffmpeg would report cryptically."""
    if not path.exists():
        raise MediaError("no such file", path)
    if path.is_dir():
        raise MediaError("is a directory, expected a media file", path)
    if path.stat().st_size == 0:
        raise MediaError("empty file (0 bytes)", path)


# ---------------------------------------------------------------------------------------------
# Probing


@dataclasses.dataclass(frozen=True)
class _Stream:
    kind: str  # "video" or "audio"
    summary: str  # the `Stream #0:1...` line and the indented lines under it


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video file (no frame is decoded)."""

    width: int  # displayed size: a rotation in the metadata (phone clips) is applied
    height: int
    fps: float  # the source frame rate
    duration_s: float | None  # container duration; None when the container does not say
    n_frames: int | None  # estimated frames at 25 fps (duration x 25); `count_frames` is exact
    has_audio: bool


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What the container says about the first audio track."""

    sample_rate: int
    channels: str  # ffmpeg's layout name: "mono", "stereo", "5.1", "3 channels", ...
    duration_s: float | None


def _header(path: Path) -> tuple[str, list[_Stream]]:
    """`ffmpeg -i path` summary text and its streams; MediaError when ffmpeg cannot open it."""
    _check_input(path)
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _file_url(path)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
    )
    text = result.stderr
    if "Input #0" not in text:
        raise MediaError(f"cannot read ({_ffmpeg_reason(text)})", path)
    streams: list[_Stream] = []
    for block in re.split(r"\n(?=\s*Stream #)", text)[1:]:
        match = re.match(r"\s*Stream #\S*: (Video|Audio):", block)
        # Cover art in mp3/m4a shows up as a one-picture video stream; it is not video.
        if match and "(attached pic)" not in block.splitlines()[0]:
            streams.append(_Stream(match.group(1).lower(), block))
    return text, streams


def _duration(text: str) -> float | None:
    match = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _rate(summary: str, unit: str) -> float | None:
    match = re.search(rf", (\d+(?:\.\d+)?)(k?) {unit}\b", summary)
    if match is None:
        return None
    return float(match.group(1)) * (1000 if match.group(2) else 1)


def stream_kinds(path: str | Path) -> set[str]:
    """Which of "video" and "audio" a file holds (cover art is not video)."""
    return {stream.kind for stream in _header(Path(path))[1]}


def probe_video(path: str | Path) -> VideoInfo:
    """Size, source fps, duration and audio presence of a video; MediaError if it has no video."""
    path = Path(path)
    text, streams = _header(path)
    video = next((s for s in streams if s.kind == "video"), None)
    if video is None:
        raise MediaError("no video stream (audio-only or not a video file)", path)
    first_line = video.summary.splitlines()[0]
    size = re.search(r", (\d+)x(\d+)\b", first_line)
    if size is None:
        raise MediaError("video stream has no frame size", path)
    width, height = int(size.group(1)), int(size.group(2))
    rotation = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees", video.summary, re.IGNORECASE)
    if rotation is not None and round(float(rotation.group(1))) % 180 == 90:
        width, height = height, width  # ffmpeg auto-rotates decoded frames to this orientation
    fps = _rate(first_line, "fps") or _rate(first_line, "tbr") or 0.0
    duration = _duration(text)
    return VideoInfo(
        width=width,
        height=height,
        fps=fps,
        duration_s=duration,
        n_frames=None if duration is None else int(round(duration * VIDEO_FPS)),
        has_audio=any(s.kind == "audio" for s in streams),
    )


def probe_audio(path: str | Path) -> AudioInfo:
    """Rate, channel layout and duration of the first audio track; MediaError if there is none."""
    path = Path(path)
    text, streams = _header(path)
    audio = next((s for s in streams if s.kind == "audio"), None)
    if audio is None:
        raise MediaError("no audio track", path)
    first_line = audio.summary.splitlines()[0]
    match = re.search(r", (\d+) Hz, ([^,]+)", first_line)
    if match is None:
        raise MediaError("audio track has no sample rate", path)
    return AudioInfo(int(match.group(1)), match.group(2).strip(), _duration(text))


# ---------------------------------------------------------------------------------------------
# Reading video


def _fps_filter(fps: float) -> str:
    # ffmpeg's fps filter: output frame k (time k/fps) is the input frame nearest in time; frames
    # are dropped or repeated, never blended.
    return f"fps=fps={fps!r}:round=near"


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """`size` bytes, or fewer only at end of stream."""
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_ppm(stream: IO[bytes]) -> np.ndarray | None:
    """One binary PPM image from the pipe as [H, W, 3] uint8, or None at end of stream."""
    # ffmpeg's ppm encoder writes "P6\n<W> <H>\n255\n"; the per-frame header makes the decoded
    # size self-describing (rotation metadata changes it).
    magic = stream.readline()
    if not magic:
        return None
    size = stream.readline().split()
    if len(size) != 2:
        return None
    width, height = int(size[0]), int(size[1])
    stream.readline()  # maxval, always 255 for rgb24
    data = _read_exact(stream, width * height * 3)
    if len(data) != width * height * 3:
        return None
    return np.frombuffer(bytearray(data), np.uint8).reshape(height, width, 3)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def _stderr_text(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


def iter_video_frames(
    path: str | Path, fps: float = VIDEO_FPS, max_frames: int | None = None
) -> Iterator[np.ndarray]:
    """Yield RGB frames [H, W, 3] uint8 resampled to `fps` by timestamp, one at a time.

    Frame k is the source frame nearest to time k/fps (ffmpeg's fps filter), so a 30 fps clip of
    N frames gives round(N * 25/30) frames (halves round up). Frames start at the first video
    timestamp, so a clip whose video starts after its audio is not padded. Closing the generator
    early stops ffmpeg. A variable-frame-rate clip gives one frame per 40 ms of its video's span
    (a real phone clip: 22.1 fps average, 6.13 s -> 152 frames). A video that decodes to
    much less than its container's duration (a truncated file) raises MediaError at the end.
    """
    path = Path(path)
    info = probe_video(path)  # clear errors for missing, unreadable and audio-only files
    command = _ffmpeg("-i", _file_url(path), "-map", "0:V:0", "-vf", _fps_filter(fps))
    if max_frames is not None:
        command += ["-frames:v", str(int(max_frames))]
    command += ["-f", "image2pipe", "-c:v", "ppm", "-pix_fmt", "rgb24", "-"]
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: ffmpeg can never block on it
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
        count = 0
        try:
            while (frame := _read_ppm(process.stdout)) is not None:
                count += 1
                yield frame
            if process.wait() != 0:
                raise MediaError(f"cannot decode video ({_ffmpeg_reason(_stderr_text(stderr))})", path)
            if max_frames is None or count < max_frames:
                _check_complete(path, count / fps, info.duration_s, "video", _stderr_text(stderr))
        finally:
            process.stdout.close()
            _stop(process)
    if count == 0 and max_frames != 0:
        raise MediaError("video stream has no frames", path)


def read_video(path: str | Path, fps: float = VIDEO_FPS, max_frames: int | None = None) -> np.ndarray:
    """All frames as one array [T, H, W, 3] uint8, resampled to `fps` (see `iter_video_frames`)."""
    frames = list(iter_video_frames(path, fps, max_frames))
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def count_frames(path: str | Path, fps: float = VIDEO_FPS) -> int:
    """Exact number of frames `iter_video_frames` yields (decodes the video, keeps no pixels)."""
    path = Path(path)
    info = probe_video(path)
    command = _ffmpeg(
        "-progress", "pipe:1", "-i", _file_url(path), "-map", "0:V:0", "-vf", _fps_filter(fps),
        "-f", "null", "-",
    )
    result = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace"
    )
    counts = re.findall(r"^frame=(\d+)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or not counts:
        raise MediaError(f"cannot decode video ({_ffmpeg_reason(result.stderr)})", path)
    _check_complete(path, int(counts[-1]) / fps, info.duration_s, "video", result.stderr)
    return int(counts[-1])


# ---------------------------------------------------------------------------------------------
# Audio


def _parse_wav_stream(data: bytes, path: Path) -> tuple[int, np.ndarray]:
    """(channels, float32 samples) from a float WAV whose size fields may be unset (a pipe)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise MediaError("cannot decode audio (decoder gave no WAV data)", path)
    offset, channels = 12, 0
    while offset + 8 <= len(data):
        chunk_id, chunk_size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        offset += 8
        if chunk_id == b"fmt ":
            channels = struct.unpack("<H", data[offset + 2:offset + 4])[0]
        elif chunk_id == b"data":
            # The size field is a placeholder when ffmpeg writes to a pipe: read to the end.
            body = data[offset:]
            body = body[: len(body) - len(body) % (4 * max(channels, 1))]
            return channels, np.frombuffer(body, np.float32)
        offset += chunk_size + (chunk_size & 1)
    raise MediaError("cannot decode audio (no data chunk)", path)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio track of any audio or video file as mono float32 [N] at `sample_rate`.

    Decoding and resampling (soxr) are ffmpeg's; channels are averaged here, because ffmpeg's
    own downmix scales differently depending on the channel layout it guesses.
    """
    path = Path(path)
    info = probe_audio(path)  # clear errors for missing, unreadable and silent-video files
    command = _ffmpeg(
        "-i", _file_url(path), "-map", "0:a:0", "-af", f"aresample={int(sample_rate)}:resampler=soxr",
        "-c:a", "pcm_f32le", "-fflags", "+bitexact", "-f", "wav", "-",
    )
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True)
    if result.returncode != 0:
        reason = _ffmpeg_reason(result.stderr.decode("utf-8", "replace"))
        raise MediaError(f"cannot decode audio ({reason})", path)
    channels, samples = _parse_wav_stream(result.stdout, path)
    if samples.size == 0:
        raise MediaError("audio track has no samples", path)
    _check_complete(path, samples.size / channels / sample_rate, info.duration_s, "audio",
                    result.stderr.decode("utf-8", "replace"))
    mono = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)  # [N]
    return np.clip(mono, -1.0, 1.0)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write float samples in [-1, 1], [N] or [N, C], as 16-bit PCM WAV (atomically)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]  # [N, 1]
    if samples.ndim != 2:
        raise ValueError(f"samples must be [N] or [N, C], got shape {samples.shape}")
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")  # [N, C]
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as out:
        out.setnchannels(pcm.shape[1])
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())


# ---------------------------------------------------------------------------------------------
# Writing video


def to_uint8_frame(frame: Any) -> np.ndarray:
    """One frame as [H, W, 3] uint8 RGB.

    Accepts numpy [H, W, 3] uint8, numpy [H, W, 3] float in [0, 1], or a torch float tensor
    [3, H, W] or [H, W, 3] in [0, 1] (the package's image convention, docs/formats.md).
    """
    if hasattr(frame, "detach"):  # a torch tensor; torch itself is not imported here
        frame = frame.detach().float().cpu()
        if frame.ndim == 3 and frame.shape[0] == 3:
            frame = frame.permute(1, 2, 0)  # [3, H, W] -> [H, W, 3]
        frame = frame.numpy()
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame [H, W, 3] or [3, H, W], got shape {frame.shape}")
    if frame.dtype == np.uint8:
        return frame
    if np.issubdtype(frame.dtype, np.floating):
        return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"expected uint8 or float in [0, 1], got dtype {frame.dtype}")


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """Repeat the last column/row where W/H is odd (yuv420p stores chroma per 2x2 block)."""
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


class VideoWriter:
    """Stream frames into an H.264 (libx264, yuv420p) mp4 at `fps`, with an optional aac track.

        with VideoWriter("out.mp4", audio="speech.wav") as writer:
            for frame in frames:
                writer.write(frame)

    The file appears at `path` only when the block ends without an exception; until then ffmpeg
    writes to a temporary name beside it. Odd widths/heights are padded (never cropped) by
    repeating the last column/row, so a W x H frame reads back as even-sized with the original
    pixels at the same coordinates. `audio` is a media file (its first audio track) or
    (samples [N] or [N, C] float in [-1, 1], rate); it is kept whole unless `audio_seconds` cuts it.
    `crf` is x264's constant quality (18: close to visually lossless; lower is better and larger).
    """

    def __init__(
        self,
        path: str | Path,
        fps: float = VIDEO_FPS,
        audio: AudioSource = None,
        audio_seconds: float | None = None,
        crf: int = 18,
        preset: str = "medium",
    ):
        self.path = Path(path)
        self.fps = float(fps)
        self.crf = crf
        self.preset = preset
        self.audio_seconds = audio_seconds
        self._stack = contextlib.ExitStack()
        try:
            self._audio_path = self._prepare_audio(audio)
            self._tmp = self._stack.enter_context(atomic_path(self.path))
            self._stderr = self._stack.enter_context(tempfile.TemporaryFile())
        except BaseException:
            self._stack.close()
            raise
        self._process: subprocess.Popen | None = None
        self._size: tuple[int, int] | None = None  # (H, W) of the first frame, before padding
        self.frames_written = 0

    def _prepare_audio(self, audio: AudioSource) -> Path | None:
        if audio is None:
            return None
        if isinstance(audio, (str, Path)):
            probe_audio(audio)  # fail now, not after all frames are encoded
            return Path(audio)
        samples, rate = audio
        workdir = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="talkface-audio-")))
        write_wav(workdir / "audio.wav", samples, rate)
        return workdir / "audio.wav"

    def _start(self, height: int, width: int) -> subprocess.Popen:
        command = _ffmpeg(
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", repr(self.fps),
            "-i", "-",
        )
        if self._audio_path is not None:
            if self.audio_seconds is not None:
                command += ["-t", repr(float(self.audio_seconds))]
            command += ["-i", _file_url(self._audio_path), "-map", "0:v:0", "-map", "1:a:0"]
            command += ["-c:a", "aac", "-b:a", "128k"]
        command += [
            "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", "-y", _file_url(self._tmp),
        ]
        return subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr
        )

    def write(self, frame: Any) -> None:
        """Append one frame (see `to_uint8_frame` for the accepted forms); all must share a size."""
        image = to_uint8_frame(frame)
        if self._process is None:
            self._size = image.shape[:2]
            self._process = self._start(*_pad_even(image).shape[:2])
        elif image.shape[:2] != self._size:
            raise ValueError(f"frame size {image.shape[:2]} differs from the first frame's {self._size}")
        image = _pad_even(image)
        try:
            self._process.stdin.write(np.ascontiguousarray(image).tobytes())
        except BrokenPipeError:
            raise self._ffmpeg_error() from None
        self.frames_written += 1

    def _ffmpeg_error(self) -> MediaError:
        if self._process is not None:
            _stop(self._process)
        return MediaError(f"cannot encode video ({_ffmpeg_reason(_stderr_text(self._stderr))})", self.path)

    def _finish(self) -> None:
        if self._process is None:
            raise MediaError("no frames were written", self.path)
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        if self._process.wait() != 0:
            raise self._ffmpeg_error()

    def close(self) -> None:
        """Finish encoding and move the file to its final name."""
        self.__exit__(None, None, None)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            try:
                self._finish()
            except BaseException as error:
                self._abort()
                self._stack.__exit__(type(error), error, error.__traceback__)
                raise
            self._stack.__exit__(None, None, None)
        else:
            self._abort()
            self._stack.__exit__(exc_type, exc, tb)

    def _abort(self) -> None:
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            _stop(self._process)


def write_video(
    path: str | Path, frames: Iterable[Any], fps: float = VIDEO_FPS, audio: AudioSource = None
) -> None:
    """Write frames ([T, H, W, 3] uint8, torch [T, 3, H, W] in [0, 1], or any iterable of frames)."""
    with VideoWriter(path, fps=fps, audio=audio) as writer:
        for frame in frames:
            writer.write(frame)
