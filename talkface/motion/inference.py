"""Speech -> per-frame expression and head pose, streamed so memory does not grow with the audio.

The original runs the whole utterance as one sequence (docs/method.md). Here the MFCC windows are
computed chunk by chunk and the LSTM state is carried from one chunk to the next, which gives the
same result for any chunk size while only one chunk of features and activations is alive.
The person's pose rhythm (network.py, beyond the paper) is sampled the same way: one seeded
random stream and the rhythm's phase carried across chunks; it is multiplied by the speech
activity of the audio (activity.py, its state carried too), so the head holds still in silence.
A person's viseme mouth (network.py, beyond the paper) needs the phones of the whole audio: they
are recognised once, before the chunks (a [T, 3] track), and blended in chunk by chunk.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import nn

from talkface.audio import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS, iter_audio_windows, n_video_frames
from talkface.errors import TalkfaceError
from talkface.face3d.coeffs import IDENTITY, MOTION_EXPRESSION, MOTION_POSE, N_COEFFS, N_MOTION, with_motion
from talkface.motion.activity import SpeechGate, frame_levels_db
from talkface.motion.network import RHYTHM_PHASE_STEP_STD, AudioToMotion
from talkface.speech.recognition import viseme_track

log = logging.getLogger(__name__)

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
    sampled with `seed`, multiplied by the audio's speech activity (activity.py: 0 in silence) and
    added; its viseme mouth (off unless fitted) is blended into the expression; then the pose
    controls of `apply_controls`.
    """
    _check_controls(pose_source, reference_motion, head_motion_scale, expression_scale)
    if chunk_frames < 1:
        raise TalkfaceError(f"--chunk-frames must be at least 1, got {chunk_frames}")
    if seed < 0:
        raise TalkfaceError(f"--seed must be >= 0, got {seed}")
    frames = n_video_frames(len(audio))
    if frames == 0:
        # n_video_frames rounds to the nearest frame, so half a frame of audio is the minimum.
        raise TalkfaceError(
            f"audio of {len(audio)} samples ({len(audio) / SAMPLE_RATE:.3f} s) is too short for one video frame: "
            f"need at least {SAMPLES_PER_VIDEO_FRAME // 2} samples at {SAMPLE_RATE} Hz"
        )
    motion = _stream(model, audio, frames, chunk_frames, device, bf16, seed)
    return apply_controls(motion, pose_source, reference_motion, head_motion_scale, expression_scale)


def _heard_visemes(model: AudioToMotion, audio: np.ndarray, frames: int) -> torch.Tensor:
    """The viseme track [T, 3] of the audio, heard as the person's viseme mouth was fitted."""
    # Words cost ~0.6x real time on one core, before the first frame: say why the wait.
    log.info("recognising the phones of %.1f s of speech (as %s) for the viseme mouth",
             len(audio) / SAMPLE_RATE, model.viseme_recogniser_name)
    return torch.from_numpy(viseme_track(audio, frames, model.viseme_recogniser_name))


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
    rhythm = PoseRhythm(model.pose_rhythm_frequency.cpu().numpy(), model.pose_rhythm_std.cpu().numpy(), seed) \
        if model.has_pose_rhythm else None
    gate = SpeechGate()
    track = _heard_visemes(model, audio, frames) if model.has_viseme_mouth else None  # [T, 3]
    start = 0
    try:
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16,
                                                    enabled=bf16 and device.type == "cuda"):
            for chunk in iter_audio_windows(audio, chunk_frames):  # [<=chunk, 28, 12]
                windows = torch.tensor(chunk, device=device)[None]  # [1, n, 28, 12]; chunk may be read-only
                prediction, state = model(windows, state)  # [1, n, 70]
                decoded = model.calibrate_pose(model.decode_prediction(prediction[0].float()))  # [n, 70]
                if track is not None:
                    decoded = model.blend_visemes(decoded, track[start:start + len(chunk)])
                out[start:start + len(chunk)] = decoded.cpu().numpy()
                if rhythm is not None:
                    activity = gate(frame_levels_db(audio, start, len(chunk)))  # [n]
                    out[start:start + len(chunk), MOTION_POSE] += activity[:, None] * rhythm.sample(len(chunk))
                start += len(chunk)
    finally:
        model.train(was_training)
    return out


class PoseRhythm:
    """Seeded pose rhythm, one oscillation per pose dimension, drawn frame block by frame block.

    x_t = sqrt(2) std sin(phi_t), phi_t = phi_{t-1} + 2 pi f / 25 + N(0, RHYTHM_PHASE_STEP_STD^2), phi_{-1}
    uniform: a constant swing (variance std^2) at frequency f whose phase wanders, the way a person's
    head rhythm keeps its size but not its exact timing. A Gaussian AR(2) resonator was used before:
    its random envelope made the swing over 30 s vary by tens of percent, which put the person first
    in only 21 of 32 seeds on bench_motion_personal.py (this: 30 of 32). Consecutive `sample` calls
    continue one realisation (random stream and phase carried), so any split into blocks gives the
    same frames (to float rounding of the carried phase).
    """

    def __init__(self, frequency_hz: np.ndarray, std: np.ndarray, seed: int,
                 phase_step_std: float = RHYTHM_PHASE_STEP_STD):
        self.rng = np.random.default_rng(seed)
        self.omega = 2 * np.pi * np.asarray(frequency_hz, np.float64) / VIDEO_FPS  # [6] rad per frame
        self.amplitude = np.sqrt(2.0) * np.asarray(std, np.float64)  # [6]
        self.phase_step_std = phase_step_std
        self.phase = self.rng.uniform(0, 2 * np.pi, len(self.omega))  # [6]

    def sample(self, frames: int) -> np.ndarray:
        """The next `frames` values [frames, 6] float64."""
        steps = self.omega + self.phase_step_std * self.rng.standard_normal((frames, len(self.omega)))
        phases = self.phase + np.cumsum(steps, axis=0)  # [frames, 6]
        if frames:
            self.phase = np.mod(phases[-1], 2 * np.pi)  # bounded, so hours of audio lose no precision
        return self.amplitude * np.sin(phases)


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
    reference_pose = None if reference_motion is None else np.asarray(reference_motion, np.float32)[:, MOTION_POSE]
    if pose_source == "reference":
        out[:, MOTION_POSE] = reference_pose[ping_pong_indices(len(reference_pose), len(out))]
    elif pose_source == "still":
        out[:, MOTION_POSE] = 0.0 if reference_pose is None else reference_pose.mean(0)
    centre = (out[:, MOTION_POSE] if reference_pose is None else reference_pose).mean(0)  # [6]
    out[:, MOTION_POSE] += (head_motion_scale - 1.0) * (out[:, MOTION_POSE] - centre)  # exact at scale 1
    out[:, MOTION_EXPRESSION] *= expression_scale
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
    for flag, value in (("--head-motion-scale", head_motion_scale), ("--expression-scale", expression_scale)):
        if not math.isfinite(value) or value < 0:  # NaN fails every comparison: test it by name
            raise TalkfaceError(f"{flag} must be a finite number >= 0, got {value}")


def motion_landmarks(face_model: nn.Module, motion: torch.Tensor | np.ndarray,
                     identity: torch.Tensor | np.ndarray) -> np.ndarray:
    """Landmarks [T, 68, 2] of motion [T, 70] on a face of identity [80] or [T, 80] (mean texture, no light)."""
    motion = torch.as_tensor(np.asarray(motion, np.float32))
    coeffs = torch.zeros(len(motion), N_COEFFS)
    coeffs[:, IDENTITY] = torch.as_tensor(np.asarray(identity, np.float32))
    with torch.no_grad():
        return face_model(with_motion(coeffs, motion)).landmarks.numpy()
