"""Speech -> per-frame expression and head pose, streamed so memory does not grow with the audio.

The original runs the whole utterance as one sequence (REFERENCE.md). Here the MFCC windows are
computed chunk by chunk and the LSTM state is carried from one chunk to the next, which gives the
same result for any chunk size while only one chunk of features and activations is alive.
The person's pose rhythm (network.py, beyond the paper) is sampled the same way: one seeded
random stream and the AR(2) filter state carried across chunks.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import lfilter, lfiltic

from talkface.audio import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, iter_audio_windows, n_video_frames
from talkface.errors import TalkfaceError
from talkface.face3d.coeffs import N_MOTION
from talkface.motion.network import EXPRESSION, POSE, AudioToMotion, ar2_autocorrelation

POSE_SOURCES = ("predicted", "reference", "still")


def predict_motion(
    model: AudioToMotion,
    audio: np.ndarray,
    chunk_frames: int = 250,
    device: torch.device | str | None = None,
    pose_source: str = "predicted",
    reference_motion: np.ndarray | None = None,
    head_motion_scale: float = 1.0,
    expression_scale: float = 1.0,
    bf16: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """16 kHz mono audio [N] -> motion [T, 70] float32 in coefficient units, T = n_video_frames(N).

    `chunk_frames` video frames go through the network at a time. `device` None keeps the model
    where it is. `bf16` autocasts on CUDA only. The model's per-person pose calibration (identity
    unless fine-tuning fitted one) is applied first, then its pose rhythm (off unless fitted) is
    sampled with `seed` and added, then the pose controls of `apply_controls`.
    """
    _check_controls(pose_source, reference_motion, head_motion_scale, expression_scale)
    frames = n_video_frames(len(audio))
    if frames == 0:
        # n_video_frames rounds to the nearest frame, so half a frame of audio is the minimum.
        raise TalkfaceError(
            f"audio of {len(audio)} samples ({len(audio) / SAMPLE_RATE:.3f} s) is too short for one video frame: "
            f"need at least {SAMPLES_PER_VIDEO_FRAME // 2} samples at {SAMPLE_RATE} Hz"
        )
    motion = _stream(model, audio, frames, chunk_frames, device, bf16, seed)
    return apply_controls(motion, pose_source, reference_motion, head_motion_scale, expression_scale)


def _stream(
    model: AudioToMotion, audio: np.ndarray, frames: int, chunk_frames: int,
    device: torch.device | str | None, bf16: bool, seed: int,
) -> np.ndarray:
    """Run the network over the audio chunk by chunk, carrying the LSTM state; decoded, calibrated [T, 70]."""
    if device is not None:
        model.to(device)
    device = next(model.parameters()).device
    out = np.empty((frames, N_MOTION), np.float32)
    was_training = model.training
    model.eval()
    state = None
    rhythm = PoseRhythm(model.pose_rhythm_ar.cpu().numpy(), model.pose_rhythm_std.cpu().numpy(), seed) \
        if model.has_pose_rhythm else None
    start = 0
    try:
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16,
                                                    enabled=bf16 and device.type == "cuda"):
            for chunk in iter_audio_windows(audio, chunk_frames):  # [<=chunk, 28, 12]
                windows = torch.tensor(chunk, device=device)[None]  # [1, n, 28, 12]; chunk may be read-only
                prediction, state = model(windows, state)  # [1, n, 70]
                decoded = model.calibrate_pose(model.decode_prediction(prediction[0].float()))  # [n, 70]
                out[start:start + len(chunk)] = decoded.cpu().numpy()
                if rhythm is not None:
                    out[start:start + len(chunk), POSE] += rhythm.sample(len(chunk))
                start += len(chunk)
    finally:
        model.train(was_training)
    return out


class PoseRhythm:
    """Seeded AR(2) processes, one per pose dimension, drawn frame block by frame block.

    Consecutive `sample` calls continue one realisation (random stream and filter state carried),
    so any split into blocks gives the same frames. The process starts in its stationary
    distribution, so the first frames swing as much as the later ones.
    """

    def __init__(self, coefficients: np.ndarray, innovation_std: np.ndarray, seed: int):
        self.rng = np.random.default_rng(seed)
        self.a = [np.array([1.0, -a1, -a2]) for a1, a2 in np.asarray(coefficients, np.float64)]  # lfilter form
        self.b = [np.array([s]) for s in np.asarray(innovation_std, np.float64)]
        variance, rho1 = self.stationary_statistics(coefficients, innovation_std)  # [6], [6]
        z = self.rng.standard_normal((2, len(self.b)))  # [2, 6]
        # (x_{-1}, x_{-2}) ~ N(0, variance [[1, rho1], [rho1, 1]]).
        previous = np.sqrt(variance) * z[0]
        before = rho1 * previous + np.sqrt(variance * (1 - rho1 ** 2)) * z[1]
        self.state = [lfiltic(b, a, [p, q]) for b, a, p, q in zip(self.b, self.a, previous, before)]

    @staticmethod
    def stationary_statistics(coefficients: np.ndarray, innovation_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(variance [D], lag-1 autocorrelation [D]) of the stationary AR(2) processes [D, 2] with innovation std [D]."""
        rho1, rho2 = (r.numpy() for r in ar2_autocorrelation(torch.as_tensor(coefficients, dtype=torch.float64)))
        a = np.asarray(coefficients, np.float64)
        variance = np.asarray(innovation_std, np.float64) ** 2 / (1 - a[:, 0] * rho1 - a[:, 1] * rho2)
        return variance, rho1

    def sample(self, frames: int) -> np.ndarray:
        """The next `frames` values [frames, 6] float64."""
        noise = self.rng.standard_normal((frames, len(self.b)))  # [frames, 6]
        out = np.empty_like(noise)
        for k, (b, a) in enumerate(zip(self.b, self.a)):
            out[:, k], self.state[k] = lfilter(b, a, noise[:, k], zi=self.state[k])
        return out


def apply_controls(
    motion: np.ndarray,
    pose_source: str = "predicted",
    reference_motion: np.ndarray | None = None,
    head_motion_scale: float = 1.0,
    expression_scale: float = 1.0,
) -> np.ndarray:
    """Choose and scale the head pose and scale the expression of motion [T, 70]; a new array.

    pose_source: "predicted" keeps the network's pose; "reference" replays the reference clip's
    poses, forth and back when the audio is longer; "still" holds the reference's mean pose
    (zeros without a reference). The pose is then pulled towards its centre, the reference's mean
    pose when there is a reference and the predicted mean otherwise:
    pose = centre + head_motion_scale * (pose - centre). Expression is multiplied by expression_scale.
    """
    _check_controls(pose_source, reference_motion, head_motion_scale, expression_scale)
    out = np.array(motion, np.float32)  # [T, 70]
    reference_pose = None if reference_motion is None else np.asarray(reference_motion, np.float32)[:, POSE]
    if pose_source == "reference":
        out[:, POSE] = reference_pose[ping_pong_indices(len(reference_pose), len(out))]
    elif pose_source == "still":
        out[:, POSE] = 0.0 if reference_pose is None else reference_pose.mean(0)
    centre = (out[:, POSE] if reference_pose is None else reference_pose).mean(0)  # [6]
    out[:, POSE] += (head_motion_scale - 1.0) * (out[:, POSE] - centre)  # exact at scale 1
    out[:, EXPRESSION] *= expression_scale
    return out


def ping_pong_indices(n: int, length: int) -> np.ndarray:
    """[length] indices 0, 1, .., n-1, n-2, .., 1, 0, 1, ..: a replay of n frames, forth and back."""
    if n == 1:
        return np.zeros(length, np.int64)
    phase = np.arange(length) % (2 * n - 2)
    return np.where(phase < n, phase, 2 * n - 2 - phase)


def _check_controls(
    pose_source: str, reference_motion: np.ndarray | None, head_motion_scale: float, expression_scale: float,
) -> None:
    if pose_source not in POSE_SOURCES:
        raise TalkfaceError(f"unknown pose source {pose_source!r}; choose one of {', '.join(POSE_SOURCES)}")
    if pose_source == "reference" and reference_motion is None:
        raise TalkfaceError("pose source 'reference' needs the reference clip's motion")
    shape = None if reference_motion is None else np.shape(reference_motion)
    if shape is not None and (len(shape) != 2 or shape[1] != N_MOTION or shape[0] == 0):
        raise TalkfaceError(f"reference motion must be [T, {N_MOTION}] with T >= 1, got {shape}")
    if head_motion_scale < 0 or expression_scale < 0:
        raise TalkfaceError(
            f"motion scales must be >= 0, got head {head_motion_scale}, expression {expression_scale}"
        )
