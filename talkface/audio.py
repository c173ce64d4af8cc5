"""MFCC features and the per-video-frame 28x12 audio windows of the audio -> motion network.

The MFCC is python_speech_features' `mfcc(signal, 16000, winstep=0.01)` with its defaults and the
first coefficient dropped (docs/method.md, "Audio features"), recomputed here
with vectorised NumPy: one strided view for the frames, one FFT over all of them, one matmul with
a cached mel filterbank and one with a cached DCT+lifter matrix.

Time bases (docs/method.md, "Time bases"): 16 kHz audio, 100 MFCC frames/s (10 ms step), 25 video frames/s, so
one video frame = 4 MFCC frames = 640 samples. Video frame i sees MFCC frames
[(i-3)*4, (i+4)*4): 28 frames = 280 ms, three video frames either side of its own. The audio is
zero-padded by 1920 samples (0.12 s = 12 MFCC frames = 3 video frames) on both ends, so in the
padded MFCC that window is rows [4i, 4i+28) and exists for every frame, the first included.
"""

from __future__ import annotations

import functools
import math
from typing import Iterator

import numpy as np

from talkface.errors import MediaError

# The pipeline's two clocks, defined here and nowhere else: every audio track is read and written
# at SAMPLE_RATE, every video and per-frame track (coefficients, landmarks, motion) runs at VIDEO_FPS.
SAMPLE_RATE = 16000  # Hz; the network's audio rate (docs/method.md, time bases)
VIDEO_FPS = 25  # frames/s of every video in the pipeline (docs/method.md, time bases)
MFCC_FPS = 100  # MFCC frames/s: python_speech_features' 10 ms step
MFCC_PER_VIDEO_FRAME = MFCC_FPS // VIDEO_FPS  # 4
SAMPLES_PER_VIDEO_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640
WINDOW_MFCC_FRAMES = 28  # per-frame window: 7 video frames (i-3 .. i+3) = 280 ms
CONTEXT_VIDEO_FRAMES = 3  # video frames of audio context before (and after) frame i
PAD_SAMPLES = 1920  # 0.12 s of zeros on both ends of fine-tune/test audio (docs/method.md, audio features)
N_COEFFS = 12  # 13 cepstra minus c0 (c0 would be the log frame energy)

# python_speech_features defaults (docs/method.md, audio features).
WINDOW_SECONDS = 0.025
STEP_SECONDS = 0.01
N_CEPSTRA = 13
N_FILTERS = 26
N_FFT = 512
PREEMPHASIS = 0.97
CEPLIFTER = 22
# Stands in for an exact zero before the log, as python_speech_features does.
EPS = np.finfo(np.float64).eps


def n_video_frames(n_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of 25 fps video frames spanning `n_samples` of audio: duration * 25, rounded half up.

    A 25 fps video of T frames lasts T/25 s, and its audio track, however it was cut, is within
    half a frame of that; rounding makes both give the same T.
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    # Integer form of floor(n_samples * VIDEO_FPS / sample_rate + 1/2): no float rounding.
    return (2 * n_samples * VIDEO_FPS + sample_rate) // (2 * sample_rate)


def mfcc(signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """MFCC without c0: [N] samples -> [F, 12] float32, F = python_speech_features' frame count.

    Frames of 25 ms every 10 ms; F = 1 when N <= one window, else 1 + ceil((N - window) / step),
    the last frame zero-padded after pre-emphasis.
    """
    x = _as_signal(signal).astype(np.float64, copy=False)
    if x.size == 0:
        raise MediaError("empty audio signal: no MFCC frames")
    length, step = _frame_geometry(sample_rate)
    n_frames = 1 if x.size <= length else 1 + math.ceil((x.size - length) / step)
    # Pre-emphasis y[n] = x[n] - 0.97 x[n-1], y[0] = x[0], then zeros up to the last frame's end.
    emphasised = np.zeros((n_frames - 1) * step + length)  # [samples covered by the frames]
    emphasised[0] = x[0]
    _preemphasise(x, out=emphasised[1:x.size])
    return _cepstra(emphasised, n_frames, sample_rate)


def audio_windows(signal: np.ndarray, sample_rate: int = SAMPLE_RATE, pad: bool = True) -> np.ndarray:
    """Per-video-frame MFCC windows: [N] samples at 16 kHz -> [T, 28, 12] float32.

    pad=True (fine-tuning and inference): T = n_video_frames(N) and window i is rows [4i, 4i+28)
    of the MFCC of the audio zero-padded by 1920 samples on both ends; rows past the end of that
    MFCC are the MFCC of more zeros (coefficients ~0, as python_speech_features gives silence).
    pad=False (LRW pretraining, no padding): only frames 3 .. T-4, whose 280 ms lie inside the
    audio, so T-6 windows; window k is video frame k+3 and equals rows [4k, 4k+28) of mfcc(signal).
    """
    first, count = _frame_range(signal, sample_rate, pad)
    return _windows(_as_signal(signal), first, count)


def iter_audio_windows(
    signal: np.ndarray, chunk_frames: int, sample_rate: int = SAMPLE_RATE, pad: bool = True
) -> Iterator[np.ndarray]:
    """`audio_windows` in chunks of at most `chunk_frames` windows ([<=chunk, 28, 12] each).

    Each chunk computes only the MFCC frames its windows need, so memory stays bounded by the
    chunk size; the chunks concatenate to exactly `audio_windows(signal, sample_rate, pad)`.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    first, count = _frame_range(signal, sample_rate, pad)
    x = _as_signal(signal)
    for start in range(first, first + count, chunk_frames):
        yield _windows(x, start, min(chunk_frames, first + count - start))


def _as_signal(signal: np.ndarray) -> np.ndarray:
    """The [N] array itself, in its own dtype: the windows convert only the slices they use."""
    x = np.asarray(signal)
    if x.ndim != 1:
        raise ValueError(f"expected a mono signal of shape [N], got shape {x.shape}")
    return x


def _frame_range(signal: np.ndarray, sample_rate: int, pad: bool) -> tuple[int, int]:
    """(first video frame, number of frames) that `audio_windows` returns."""
    if sample_rate != SAMPLE_RATE:
        # 4 MFCC frames per video frame and the 1920-sample pad hold at 16 kHz only.
        raise ValueError(f"audio windows need {SAMPLE_RATE} Hz audio, got {sample_rate} Hz; resample first")
    total = n_video_frames(len(signal), sample_rate)
    if pad:
        return 0, total
    return CONTEXT_VIDEO_FRAMES, max(total - 2 * CONTEXT_VIDEO_FRAMES, 0)


def _windows(x: np.ndarray, first: int, count: int) -> np.ndarray:
    """Windows of video frames [first, first+count) -> [count, 28, 12] float32.

    Works in the coordinates of the padded signal (x preceded by PAD_SAMPLES zeros and followed
    by zeros forever), in which frame i's window starts at MFCC frame 4i.
    """
    if count == 0:
        return np.zeros((0, WINDOW_MFCC_FRAMES, N_COEFFS), np.float32)
    length, step = _frame_geometry(SAMPLE_RATE)
    first_mfcc = first * MFCC_PER_VIDEO_FRAME
    n_mfcc = (count - 1) * MFCC_PER_VIDEO_FRAME + WINDOW_MFCC_FRAMES
    start = first_mfcc * step - PAD_SAMPLES  # in x's coordinates
    stop = start + (n_mfcc - 1) * step + length
    # One sample before `start` feeds the pre-emphasis of the first one.
    segment = _zero_extended_slice(x, start - 1, stop)  # [stop - start + 1]
    emphasised = _preemphasise(segment, out=np.empty(segment.size - 1))
    cepstra = _cepstra(emphasised, n_mfcc, SAMPLE_RATE)  # [n_mfcc, 12]
    view = np.lib.stride_tricks.sliding_window_view(cepstra, WINDOW_MFCC_FRAMES, axis=0)  # [., 12, 28]
    return np.ascontiguousarray(view[::MFCC_PER_VIDEO_FRAME].transpose(0, 2, 1))  # [count, 28, 12]


def _preemphasise(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[n] = x[n+1] - 0.97 x[n] for n < len(x) - 1, without temporaries."""
    np.multiply(x[:-1], -PREEMPHASIS, out=out)
    out += x[1:]  # a + (-b) rounds exactly as a - b
    return out


def _zero_extended_slice(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """x[start:stop] as float64, where x is taken as zero outside [0, len(x))."""
    out = np.zeros(stop - start)
    lo, hi = max(start, 0), min(stop, x.size)
    if lo < hi:
        out[lo - start:hi - start] = x[lo:hi]
    return out


def _cepstra(emphasised: np.ndarray, n_frames: int, sample_rate: int) -> np.ndarray:
    """Pre-emphasised samples covering `n_frames` frames -> liftered cepstra c1..c12, [F, 12] float32."""
    length, step = _frame_geometry(sample_rate)
    frames = np.lib.stride_tricks.sliding_window_view(emphasised, length)[::step][:n_frames]  # [F, length]
    spectrum = np.fft.rfft(frames, N_FFT)  # [F, 257] complex; zero-pads each frame to N_FFT
    squares = np.square(spectrum.view(np.float64), out=spectrum.view(np.float64))  # [F, 514] re², im²
    # Power spectrum |X|²/N_FFT and the filterbank in one matmul: each filter weight appears twice
    # (for re² and im²) and carries the 1/N_FFT, an exact power-of-two scaling.
    energies = squares @ _interleaved_filterbank(sample_rate)  # [F, 26]
    energies[energies == 0] = EPS  # silence: log(eps), never -inf
    return (np.log(energies) @ _dct_lifter()).astype(np.float32)  # [F, 12]


def _frame_geometry(sample_rate: int) -> tuple[int, int]:
    """(window, step) in samples, rounded half up as python_speech_features does."""
    return math.floor(WINDOW_SECONDS * sample_rate + 0.5), math.floor(STEP_SECONDS * sample_rate + 0.5)


@functools.lru_cache(maxsize=8)
def _filterbank(sample_rate: int) -> np.ndarray:
    """Triangular mel filters [26, 257] over the FFT bins, 0 Hz .. sample_rate/2.

    Edges are equally spaced in mel and snapped down to integer bins, floor((n_fft+1) * f / sr);
    filter j rises over bins [e_j, e_j+1) from 0 and falls over [e_j+1, e_j+2) from 1.
    """
    mel_edges = np.linspace(0.0, _hz_to_mel(sample_rate / 2), N_FILTERS + 2)
    edges = np.floor((N_FFT + 1) * _mel_to_hz(mel_edges) / sample_rate)  # [28]
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # [26, 1] each
    bins = np.arange(N_FFT // 2 + 1, dtype=np.float64)[None, :]  # [1, 257]
    with np.errstate(divide="ignore", invalid="ignore"):  # empty slopes are masked out below
        rising = np.where((bins >= low) & (bins < centre), (bins - low) / (centre - low), 0.0)
        falling = np.where((bins >= centre) & (bins < high), (high - bins) / (high - centre), 0.0)
    bank = rising + falling  # [26, 257]
    bank.setflags(write=False)
    return bank


@functools.lru_cache(maxsize=8)
def _interleaved_filterbank(sample_rate: int) -> np.ndarray:
    """[514, 26]: `_filterbank` transposed, each bin's row repeated (re, im), divided by N_FFT."""
    matrix = np.repeat(_filterbank(sample_rate).T / N_FFT, 2, axis=0)
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=1)
def _dct_lifter() -> np.ndarray:
    """[26, 12] matrix: orthonormal DCT-II rows 1..12, each times the cepstral lifter."""
    k = np.arange(1, N_CEPSTRA)[None, :]  # [1, 12]
    n = np.arange(N_FILTERS)[:, None]  # [26, 1]
    dct = np.sqrt(2.0 / N_FILTERS) * np.cos(np.pi * k * (2 * n + 1) / (2 * N_FILTERS))  # [26, 12]
    lifter = 1 + (CEPLIFTER / 2) * np.sin(np.pi * k / CEPLIFTER)  # [1, 12]
    matrix = dct * lifter
    matrix.setflags(write=False)
    return matrix


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray | float:
    return 2595 * np.log10(1 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700 * (10 ** (mel / 2595.0) - 1)
