"""Evaluation metrics: mouth landmark distance and head-pose statistics (REFERENCE.md, "Evaluation").

LMD compares mouth shapes, not positions: each frame's 20 mouth points (48-67) are centred on
their own mean before the distance, so a head that sits elsewhere in the frame is not penalised.
Pose statistics describe a head-motion style: how far each angle swings (std) and at what rhythm
(the dominant frequency of its spectrum).
"""

from __future__ import annotations

import numpy as np

MOUTH = slice(48, 68)  # the 20 mouth points of the 68-point layout
FPS = 25.0


def lmd(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean Euclidean distance of the mouth points, each frame's points centred on their mean.

    predicted, target: [T, 68, 2] landmarks (or [T, 20, 2] mouth points) in the same pixel units.
    """
    pred, true = (_mouth_points(np.asarray(x, np.float64)) for x in (predicted, target))
    if pred.shape != true.shape:
        raise ValueError(f"landmark shapes differ: {pred.shape} vs {true.shape}")
    pred = pred - pred.mean(axis=1, keepdims=True)  # [T, 20, 2]
    true = true - true.mean(axis=1, keepdims=True)
    return float(np.linalg.norm(pred - true, axis=-1).mean())


def _mouth_points(landmarks: np.ndarray) -> np.ndarray:
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2 or landmarks.shape[1] not in (68, 20):
        raise ValueError(f"expected landmarks [T, 68, 2] or mouth points [T, 20, 2], got {landmarks.shape}")
    return landmarks[:, MOUTH] if landmarks.shape[1] == 68 else landmarks


def pose_statistics(angles: np.ndarray, fps: float = FPS) -> dict[str, np.ndarray]:
    """Per-angle std [3] and dominant frequency [3] (Hz, the largest non-DC spectral peak) of angles [T, 3]."""
    angles = np.asarray(angles, np.float64)
    if angles.ndim != 2 or len(angles) < 4:
        raise ValueError(f"expected angles [T, K] with T >= 4, got {angles.shape}")
    centred = angles - angles.mean(axis=0)
    # A Hann window keeps the clip's ends from adding broadband leakage to the peak search.
    spectrum = np.abs(np.fft.rfft(centred * np.hanning(len(angles))[:, None], axis=0))  # [F, K]
    freqs = np.fft.rfftfreq(len(angles), 1.0 / fps)
    dominant = freqs[1 + spectrum[1:].argmax(axis=0)]
    return {"std": angles.std(axis=0), "frequency": dominant}


def pose_statistics_distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Mean absolute log ratio over the std and frequency of every angle: 0 for equal statistics.

    Log ratios make the distance scale-free, so a 0.02 rad std and a 0.3 Hz rhythm weigh alike.
    """
    ratios = [np.log(np.maximum(a[k], 1e-8) / np.maximum(b[k], 1e-8)) for k in ("std", "frequency")]
    return float(np.abs(np.concatenate(ratios)).mean())
