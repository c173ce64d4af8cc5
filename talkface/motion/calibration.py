"""The person's pose calibration, pose rhythm and viseme mouth, fitted into a fine-tuned network
(beyond the paper).

After fine-tuning, the network's pose on new speech is mapped onto the person's (calibration), and
an oscillation at the person's dominant pose frequency carries the variance the audio cannot
predict (rhythm; inference.py samples it). The viseme mouth maps the recognised phones' mouth
directions onto the person's expression (`person_viseme_mouth`). `recentre_on_person` shifts a
pretrained network onto the person's mean motion before fine-tuning starts.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from talkface.face3d.coeffs import MOTION_EXPRESSION, MOTION_POSE
from talkface.metrics import dominant_frequency
from talkface.motion.network import POSE_GAIN_RANGE, AudioToMotion, fit_pose_calibration, motion_statistics

log = logging.getLogger(__name__)

# The rhythm's variance is divided by the mean squared speech activity of the training frames (so
# the gated rhythm carries the leftover variance on average); a clip that is mostly silence would
# blow that up, so the mean is floored here (at most a 4x variance boost, i.e. 2x std).
MIN_MEAN_ACTIVITY = 0.25
# The rhythm's frequency is read off a spectrum zero-padded to this many points: a 0.006 Hz grid
# at 25 fps (metrics.dominant_frequency says why).
RHYTHM_FFT_POINTS = 4096
# Ridge penalty of the viseme map, per training frame, on tracks in [0, 1]: a held-out block of
# each real clip (4-fold over hdtf_aoc, talk2, talk3, talk4) was predicted best at 0.01 per frame
# among 0, 0.01 and 0.1 on the phone track, and of all 7 clips on the word track on 4
# (benchmarks/bench_viseme_mouth.py; docs/method.md).
VISEME_RIDGE_PER_FRAME = 0.01
# The recogniser whose viseme mouth predicts the person's expression best is chosen by this many
# contiguous blocks of the training frames, each predicted from the others; another than the first
# (words, the better one on real speech) only when its error is lower by more than this share. On
# 4-6 s of training frames the comparison is noisy: talk3 and hdtf_kh preferred phones by 6 % and
# 5 % there and did worse with them on their held-out frames; the synthetic voice's clear preference
# is 15 % (benchmarks/README.md, "Held-out scores").
RECOGNISER_FOLDS = 4
RECOGNISER_MARGIN = 0.10


def reversed_speech_windows(windows: np.ndarray) -> np.ndarray:
    """MFCC windows [T, 28, 12] of the time-reversed audio: frame order and each window's time axis reversed."""
    return np.ascontiguousarray(windows[::-1, ::-1])


@torch.no_grad()
def _predicted_motion(net: AudioToMotion, windows: np.ndarray) -> torch.Tensor:
    """The net's decoded, uncalibrated motion [T, 70] on windows [T, 28, 12], as one sequence."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    try:
        prediction, _ = net(torch.as_tensor(np.ascontiguousarray(windows), device=device)[None])
        return net.decode_prediction(prediction[0].float()).cpu()
    finally:
        net.train(was_training)


def _predicted_pose(net: AudioToMotion, windows: np.ndarray) -> torch.Tensor:
    """The net's decoded, uncalibrated pose [T, 6] on windows [T, 28, 12], as one sequence."""
    return _predicted_motion(net, windows)[:, MOTION_POSE]


@torch.no_grad()
def recentre_on_person(net: AudioToMotion, windows: np.ndarray, motion: np.ndarray) -> torch.Tensor:
    """Shift the net's output so its mean over the training frames is the person's mean motion; the shift [70].

    windows [T, 28, 12], motion [T, 70]: the frames fine-tuning trains on. The shift moves the
    net's target mean (network.py `shift_output`), so the first step starts from the person's mean
    instead of spending itself on the general model's offset for this person.
    """
    offset = torch.as_tensor(motion, dtype=torch.float32).mean(0) - _predicted_motion(net, windows).mean(0)
    net.shift_output(offset)
    return offset


@torch.no_grad()
def person_pose_calibration(net: AudioToMotion, windows: np.ndarray,
                            motion: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale [6], shift [6]) mapping the fine-tuned net's pose on new speech onto the person's training pose.

    The target is the true pose of the training frames (windows [T, 28, 12], motion [T, 70]). The
    net's own statistics come from the training audio played backwards: after 100 epochs the net
    has partly memorised the training frames' pose (its swing there is 55-90 % of the truth on the
    synthetic benchmark, against 40-55 % on new speech), so a gain fitted on them under-corrects.
    Reversed speech has the same spectrum, loudness and syllable rate but none of the memorised
    sequences; the net's pose angle swing on it matches its swing on unseen speech (within 11 % there).
    """
    pose = _predicted_pose(net, reversed_speech_windows(windows))  # [T, 6]
    return fit_pose_calibration(pose, torch.as_tensor(motion[:, MOTION_POSE]))


@torch.no_grad()
def person_pose_rhythm(
    net: AudioToMotion, windows: np.ndarray, motion: np.ndarray, activity: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scale [6], shift [6], rhythm frequency [6] Hz, rhythm std [6]): calibration plus rhythm.

    By the law of total variance the true pose variance is the variance of what the audio predicts
    (the net's pose on the reversed training speech, as in `person_pose_calibration`) plus that of
    the unpredictable rest. So the calibration gain is no longer inflated to the full true std: it
    is min(true/predicted std, 1), clamped to POSE_GAIN_RANGE, and the rhythm gets the remaining
    variance, true - (gain x predicted)^2, so prediction + rhythm has the person's variance (the two
    are independent: the rhythm is sampled). Inference multiplies the rhythm by the speech activity
    (activity.py), so with the training frames' activity [T] given, the rhythm's own variance is the
    remaining one divided by mean(activity^2) (floored at MIN_MEAN_ACTIVITY): the gated rhythm then
    carries it on average over the clip. The rhythm oscillates (inference.py `PoseRhythm`) at the
    dominant frequency of the person's true training pose: the audio cannot tell the rhythm's phase,
    so that peak is what the prediction lacks. A Yule-Walker AR(2) fit was tried first, on the
    forward-frame residual (true - predicted) and on the true pose: on 300 frames both came out with
    real poles, i.e. low-pass noise with no peak, and drew random dominant frequencies
    (pose-statistics distance 0.37, mean over seeds 0.61, against 0.18 without a rhythm).
    """
    true = torch.as_tensor(motion[:, MOTION_POSE])  # [T, 6]
    predicted_mean, predicted_std = motion_statistics(_predicted_pose(net, reversed_speech_windows(windows)))
    true_mean, true_std = motion_statistics(true)
    gain = (true_std / predicted_std).clamp(max=1.0).clamp(*POSE_GAIN_RANGE)
    residual_variance = (true_std.square() - (gain * predicted_std).square()).clamp_min(0)  # [6]
    if activity is not None:
        residual_variance /= max(float(np.mean(np.square(activity))), MIN_MEAN_ACTIVITY)
    frequency = torch.from_numpy(dominant_frequency(true.numpy(), fft_points=RHYTHM_FFT_POINTS)).float()
    return gain, true_mean - gain * predicted_mean, frequency, residual_variance.sqrt()


def fit_pose_calibration_into(net: AudioToMotion, windows: np.ndarray, motion: np.ndarray,
                              activity: np.ndarray | None = None) -> None:
    """Fit the person's pose calibration into the net, from its training frames.

    With the training frames' speech activity [T] (`person_speech_activity`), also the pose rhythm.
    """
    if activity is not None:
        scale, shift, frequency, std = person_pose_rhythm(net, windows, motion, activity)
        net.set_pose_rhythm(frequency, std)
        log.info("pose rhythm %s Hz, std %s", np.round(frequency.numpy(), 3).tolist(),
                 np.round(std.numpy(), 5).tolist())
    else:
        net.reset_pose_rhythm()
        scale, shift = person_pose_calibration(net, windows, motion)
    net.set_pose_calibration(scale, shift)
    log.info("pose calibration gains %s", np.round(scale.numpy(), 3).tolist())


def person_viseme_mouth(track: np.ndarray, expression: np.ndarray,
                        ridge_per_frame: float = VISEME_RIDGE_PER_FRAME) -> tuple[torch.Tensor, torch.Tensor]:
    """(map [3, 64], bias [64]): ridge regression of the training frames' expression [T, 64] on their
    viseme track [T, 3] (speech/recognition.py), so bias + track @ map is the person's mouth for the phones."""
    x = np.asarray(track, np.float64)
    y = np.asarray(expression, np.float64)
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    ridge = ridge_per_frame * len(x) * np.eye(x.shape[1])
    mapping = np.linalg.solve(xc.T @ xc + ridge, xc.T @ yc)  # [3, 64]
    return torch.from_numpy(mapping).float(), torch.from_numpy(y_mean - x_mean @ mapping).float()


def viseme_cross_validation_error(track: np.ndarray, expression: np.ndarray, folds: int = RECOGNISER_FOLDS) -> float:
    """Expression MSE of the viseme mouth (track [T, 3] -> expression [T, 64]) predicting each of
    `folds` contiguous blocks of the frames from the others."""
    frames = np.arange(len(track))
    squared = 0.0
    for block in np.array_split(frames, folds):
        rest = np.setdiff1d(frames, block)
        mapping, bias = person_viseme_mouth(track[rest], expression[rest])
        squared += float(np.square(bias.numpy() + track[block] @ mapping.numpy() - expression[block]).sum())
    return squared / expression.size


def choose_recogniser(tracks: dict[str, np.ndarray], expression: np.ndarray,
                      margin: float = RECOGNISER_MARGIN) -> tuple[str, dict[str, float]]:
    """(name, errors): of the viseme tracks [T, 3] by recogniser, the first, unless the one whose
    viseme mouth predicts the expression [T, 64] of the same frames best under cross-validation
    does so with an error lower by more than `margin` of the first's; every one's error."""
    errors = {name: viseme_cross_validation_error(track, expression) for name, track in tracks.items()}
    first, best = next(iter(errors)), min(errors, key=errors.__getitem__)
    return (best if errors[best] < (1 - margin) * errors[first] else first), errors


def fit_viseme_mouth_into(net: AudioToMotion, windows: np.ndarray, motion: np.ndarray,
                          tracks: dict[str, np.ndarray], train: slice, validation: slice,
                          weights: Sequence[float]) -> None:
    """Fit the person's viseme mouth into the net.

    windows [T, 28, 12], motion [T, 70] and the viseme track [T, 3] of each recogniser
    (speech/recognition.py RECOGNISERS) of the whole clip. The recogniser is the one whose viseme
    mouth predicts the `train` frames best (`choose_recogniser`); its map is fitted on the `train`
    frames, and of the candidate `weights` the one whose blend of the net's expression (the clip run
    as one sequence, as inference runs it) and the viseme mouth has the lowest expression MSE on the
    `validation` frames is kept (0: the net alone).
    """
    recogniser, cross_validated = choose_recogniser({name: track[train] for name, track in tracks.items()},
                                                    motion[train, MOTION_EXPRESSION])
    track = tracks[recogniser]
    mapping, bias = person_viseme_mouth(track[train], motion[train, MOTION_EXPRESSION])
    network = _predicted_motion(net, windows)[validation]  # [V, 70]
    heard = torch.from_numpy(np.asarray(track[validation], np.float32))  # [V, 3]
    truth = torch.as_tensor(motion[validation, MOTION_EXPRESSION], dtype=torch.float32)

    def error(weight: float) -> float:
        """Validation expression MSE of the blend inference gives at this weight (network.blend_visemes)."""
        net.set_viseme_mouth(mapping, bias, weight, recogniser)
        return float((net.blend_visemes(network, heard)[:, MOTION_EXPRESSION] - truth).square().mean())

    errors = {w: error(w) for w in weights}
    weight = min(errors, key=errors.__getitem__)
    net.set_viseme_mouth(mapping, bias, weight, recogniser)
    log.info("viseme mouth: recogniser %s (cross-validated expression MSE %s), weight %.2f (validation "
             "expression MSE %s)", recogniser, {k: round(e, 5) for k, e in cross_validated.items()}, weight,
             {w: round(e, 5) for w, e in errors.items()})
