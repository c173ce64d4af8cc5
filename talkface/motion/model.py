"""The audio -> motion network as a checkpoint holds it: its name there and `load_motion_model`."""

from __future__ import annotations

from pathlib import Path

import torch

from talkface.atomic import atomic_path
from talkface.errors import TalkfaceError
from talkface.motion.network import AudioToMotion
from talkface.speech.recognition import RECOGNISERS
from talkface.train.checkpoint import load_weights, read_checkpoint

MODEL = "motion"  # the model's name in checkpoints
# AudioToMotion's per-person buffers: pose calibration, pose rhythm, viseme mouth; older checkpoints lack them.
CALIBRATION_KEYS = ("pose_scale", "pose_shift")
RHYTHM_KEYS = ("pose_rhythm_frequency", "pose_rhythm_std")
VISEME_KEYS = ("viseme_map", "viseme_bias", "viseme_weight", "viseme_recogniser")
PERSON_KEYS = CALIBRATION_KEYS + RHYTHM_KEYS + VISEME_KEYS


def load_motion_model(checkpoint: str | Path) -> AudioToMotion:
    """Rebuild the network a checkpoint was trained with (its constructor args) and load its weights."""
    saved = read_checkpoint(checkpoint)
    args = saved["model_args"].get(MODEL)
    if args is None or MODEL not in saved["models"]:
        raise TalkfaceError(f"holds no '{MODEL}' model (models: {sorted(saved['models'])})", checkpoint)
    net = AudioToMotion(**args)
    # Checkpoints from before the pose calibration, rhythm or viseme mouth lack their buffers: identity, off.
    report = load_weights(checkpoint, net, MODEL, optional=PERSON_KEYS)
    missing = [key for key in report.missing if key not in PERSON_KEYS]
    if missing or report.unexpected or report.mismatched:
        raise TalkfaceError(f"'{MODEL}' weights do not match the network (missing {missing}, unexpected "
                            f"{report.unexpected}, mismatched shapes {report.mismatched})", checkpoint)
    if "viseme_recogniser" in report.missing and net.has_viseme_mouth:
        net.viseme_recogniser.fill_(RECOGNISERS.index("phones"))  # fitted before words were decoded
    return net.eval()


def save_motion_weights(checkpoint: str | Path, net: AudioToMotion) -> None:
    """Replace the network's weights in `checkpoint` (atomically), the rest of it kept."""
    saved = read_checkpoint(checkpoint)
    saved["models"][MODEL] = net.state_dict()
    with atomic_path(Path(checkpoint)) as tmp:
        torch.save(saved, tmp)
