"""Evaluation metrics: landmark distances, head-pose statistics, PSNR / SSIM and flicker (docs/method.md,
"Held-out evaluation").

LMD compares mouth shapes, not positions: each frame's 20 mouth points (48-67) are centred on
their own mean before the distance, so a head that sits elsewhere in the frame is not penalised.
Pose statistics describe a head-motion style: how far each angle swings (std) and at what rhythm
(the dominant frequency of its spectrum).
"""

from __future__ import annotations

import numpy as np

from talkface.audio import VIDEO_FPS

MOUTH = slice(48, 68)  # the 20 mouth points of the 68-point layout


def lmd(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean Euclidean distance of the mouth points, each frame's points centred on their mean.

    predicted, target: [T, 68, 2] landmarks (or [T, 20, 2] mouth points) in the same pixel units.
    """
    pred, true = (_mouth_points(np.asarray(x, np.float64)) for x in (predicted, target))
    return _centred_distance(pred, true)


# The inner lips' facing pairs of the 68-point layout (upper 61-63 over lower 67-65).
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap [T] of landmarks [T, 68, 2]: the mean distance of the three facing inner-lip pairs."""
    marks = np.asarray(landmarks, np.float64)
    if marks.ndim != 3 or marks.shape[1:] != (68, 2):
        raise ValueError(f"expected landmarks [T, 68, 2], got {marks.shape}")
    upper, lower = (marks[:, [pair[i] for pair in INNER_LIP_PAIRS]] for i in (0, 1))  # [T, 3, 2]
    return np.linalg.norm(upper - lower, axis=-1).mean(axis=1)


EYES = (slice(36, 42), slice(42, 48))  # the two eyes' points of the 68-point layout


def mouth_opening_over_eyes(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap [T] of landmarks [T, 68, 2] over the distance of the eye centres: free of the face's size in the frame."""
    marks = np.asarray(landmarks, np.float64)
    eyes = np.linalg.norm(marks[:, EYES[0]].mean(1) - marks[:, EYES[1]].mean(1), axis=-1)  # [T]
    return mouth_opening(marks) / eyes


def face_lmd(predicted: np.ndarray, target: np.ndarray) -> float:
    """LMD over all 68 points of [T, 68, 2] landmarks (face shape, head rotation and mouth together)."""
    pred, true = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if pred.ndim != 3 or pred.shape[1:] != (68, 2):
        raise ValueError(f"expected landmarks [T, 68, 2], got {pred.shape}")
    return _centred_distance(pred, true)


def _centred_distance(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean point distance of two [T, P, 2] point sets, each frame's points centred on their mean."""
    if pred.shape != true.shape:
        raise ValueError(f"landmark shapes differ: {pred.shape} vs {true.shape}")
    pred = pred - pred.mean(axis=1, keepdims=True)  # [T, P, 2]
    true = true - true.mean(axis=1, keepdims=True)
    return float(np.linalg.norm(pred - true, axis=-1).mean())


def _mouth_points(landmarks: np.ndarray) -> np.ndarray:
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2 or landmarks.shape[1] not in (68, 20):
        raise ValueError(f"expected landmarks [T, 68, 2] or mouth points [T, 20, 2], got {landmarks.shape}")
    return landmarks[:, MOUTH] if landmarks.shape[1] == 68 else landmarks


def pose_statistics(angles: np.ndarray, fps: float = VIDEO_FPS) -> dict[str, np.ndarray]:
    """Per-angle std [3] and dominant frequency [3] (Hz, on the clip's own bins) of angles [T, 3]."""
    angles = np.asarray(angles, np.float64)
    if angles.ndim != 2 or len(angles) < 4:
        raise ValueError(f"expected angles [T, K] with T >= 4, got {angles.shape}")
    return {"std": angles.std(axis=0), "frequency": dominant_frequency(angles, fps)}


def dominant_frequency(series: np.ndarray, fps: float = VIDEO_FPS, fft_points: int = 0) -> np.ndarray:
    """The largest non-DC spectral peak [D] (Hz) of series [T, D], its mean removed, Hann-windowed.

    The grid: the spectrum is taken on max(fft_points, T) points, so by default on the clip's own
    bins, fps / T apart; the lowest of them is one whole period within the clip. The pose statistics
    use that grid: zero-padding a 4 s clip (100 frames) to 4096 points put 2 of 8 synthetic
    subjects' peaks at 0.006 and 0.07 Hz, below one period, and doubled their log-ratio distance to
    the same subject's next 4 s. The pose rhythm fit (talkface/motion/train.py) passes 4096: it
    synthesises an oscillation at this frequency, and zero padding interpolates the spectrum to
    0.006 Hz where a 12 s clip's own 0.083 Hz bins would put a 0.3 Hz rhythm at 0.25 or 0.33 Hz.
    The Hann window keeps the clip's ends from adding broadband leakage to the peak search.
    """
    x = np.asarray(series, np.float64)
    x = (x - x.mean(axis=0)) * np.hanning(len(x))[:, None]
    points = max(fft_points, len(x))
    spectrum = np.abs(np.fft.rfft(x, points, axis=0))  # [F, D]
    return np.fft.rfftfreq(points, 1.0 / fps)[1 + spectrum[1:].argmax(axis=0)]


def pose_statistics_distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Mean absolute log ratio over the std and frequency of every angle: 0 for equal statistics.

    Log ratios make the distance scale-free, so a 0.02 rad std and a 0.3 Hz rhythm weigh alike.
    """
    ratios = [np.log(np.maximum(a[k], 1e-8) / np.maximum(b[k], 1e-8)) for k in ("std", "frequency")]
    return float(np.abs(np.concatenate(ratios)).mean())


def psnr(predicted: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over whole image batches [..., H, W] of equal shape (one MSE)."""
    pred, true = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"image shapes differ: {pred.shape} vs {true.shape}")
    mse = float(np.mean((pred - true) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim(predicted: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Mean structural similarity of RGB image batches [N, 3, H, W] (skimage, 7x7 Gaussian-free windows)."""
    from skimage.metrics import structural_similarity

    pred, true = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if pred.shape != true.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected two image batches [N, 3, H, W] of one shape, got {pred.shape} and {true.shape}")
    return float(np.mean([structural_similarity(p, t, data_range=data_range, channel_axis=0)
                          for p, t in zip(pred, true)]))


def flicker(frames: np.ndarray, chunk: int = 32) -> float:
    """Mean |frame t - frame t-1| over all pixels and channels of a video [T, H, W, C] (its units)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) < 2:
        raise ValueError(f"expected a video [T, H, W, C] with T >= 2, got {frames.shape}")
    total = 0.0
    for start in range(1, len(frames), chunk):  # chunks keep the float copy small for long videos
        stop = min(start + chunk, len(frames))
        total += float(np.abs(np.diff(frames[start - 1:stop].astype(np.float32), axis=0)).sum(dtype=np.float64))
    return total / (frames[1:].size)
