"""Lip-sync scores LSE-D / LSE-C with SyncNet (Chung & Zisserman 2016), as the field computes them.

The network keeps the public PyTorch port's layout (joonson/syncnet_python, `SyncNetModel.py`:
modules `netcnnaud`, `netfcaud`, `netcnnlip`, `netfclip`), so its released `syncnet_v2.model`
loads directly from `checkpoints/syncnet/syncnet_v2.model` (checkpoints/README.md).

Inputs, as that code prepares them (docs/method.md, "Held-out evaluation"):
  video  face crops 224x224, BGR, 0..255 unnormalised, 5 consecutive 25 fps frames per window
         -> [B, 3, 5, 224, 224]
  audio  python_speech_features MFCC of 16-bit-scaled 16 kHz audio: 13 cepstra with c0 = log
         frame energy, 100 frames/s; video window i sees MFCC frames [4i, 4i + 20) -> [B, 1, 13, 20]
Scores: for every offset k in -15..15 the mean over windows of the distance between video window i
and audio window i + k (zero vectors past the ends); LSE-D = the smallest mean distance, LSE-C =
median - min of the 31 means, and the AV offset = -argmin k (> 0: the video lags the audio).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.signal import medfilt
from torch import nn

from talkface.audio import SAMPLES_PER_VIDEO_FRAME
from talkface.errors import TalkfaceError

SYNCNET_PATH = Path("checkpoints/syncnet/syncnet_v2.model")
SYNCNET_URL = "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model"
CROP_SIZE = 224  # the face crop the video stream was trained on
WINDOW_FRAMES = 5  # video frames per window (0.2 s)
MFCC_PER_FRAME = 4  # 100 MFCC frames/s over 25 video frames/s
WINDOW_MFCC = 20  # MFCC frames per window (0.2 s)
MAX_OFFSET = 15  # frames searched either side (run_syncnet.py's vshift)
CROP_SCALE = 0.4  # face box padding of run_pipeline.py (crop_scale)
CROP_PAD_VALUE = 110  # grey the frame is padded with where the crop leaves it
BOX_SMOOTHING = 13  # median filter length over the per-frame face boxes


class SyncNet(nn.Module):
    """Audio and mouth-region video embeddings whose distance is small when they are in sync."""

    def __init__(self, embedding_dim: int = 1024):
        super().__init__()

        def conv2d(c_in: int, c_out: int, kernel, **kw) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, kernel, **kw), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        def conv3d(c_in: int, c_out: int, kernel, **kw) -> list[nn.Module]:
            return [nn.Conv3d(c_in, c_out, kernel, **kw), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True)]

        def head() -> nn.Sequential:
            return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding_dim))

        # Indices inside each Sequential are the public key layout: keep the (1, 1) pool.
        self.netcnnaud = nn.Sequential(  # [B, 1, 13, 20] -> [B, 512, 1, 1]
            *conv2d(1, 64, 3, padding=1), nn.MaxPool2d(1, 1),
            *conv2d(64, 192, 3, padding=1), nn.MaxPool2d(3, (1, 2)),  # -> 11 x 9
            *conv2d(192, 384, 3, padding=1),
            *conv2d(384, 256, 3, padding=1),
            *conv2d(256, 256, 3, padding=1), nn.MaxPool2d(3, 2),  # -> 5 x 4
            *conv2d(256, 512, (5, 4)),
        )
        self.netfcaud = head()
        self.netfclip = head()
        self.netcnnlip = nn.Sequential(  # [B, 3, 5, 224, 224] -> [B, 512, 1, 1, 1]
            *conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),  # -> 54
            *conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),  # -> 13
            *conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            *conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            *conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),  # -> 6
            *conv3d(256, 512, (1, 6, 6)),
        )

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """[B, 1, 13, 20] MFCC windows -> [B, D]."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def embed_video(self, clips: torch.Tensor) -> torch.Tensor:
        """[B, 3, 5, 224, 224] BGR 0..255 face-crop windows -> [B, D]."""
        return self.netfclip(self.netcnnlip(clips).flatten(1))


def load_syncnet(path: str | Path = SYNCNET_PATH, device: str | torch.device = "cpu") -> SyncNet:
    """The public SyncNet weights in eval mode; MissingWeightsError naming the file when absent.

    The key set must match exactly, except BatchNorm's `num_batches_tracked` counters, which
    checkpoints saved by older PyTorch lack and which inference never reads.
    """
    from talkface.train.checkpoint import load_weight_file

    path = Path(path)
    state = load_weight_file(path, "SyncNet", f"download {SYNCNET_URL} and place it there (checkpoints/README.md)")
    # A state dict saved from syncnet_python's SyncNetInstance carries its `__S__.` attribute prefix.
    state = {k.removeprefix("__S__."): v for k, v in state.items()}
    model = SyncNet()
    expected = model.state_dict()
    missing = [k for k in expected.keys() - state.keys() if not k.endswith("num_batches_tracked")]
    unexpected = sorted(state.keys() - expected.keys())
    wrong = sorted(k for k in state.keys() & expected.keys()
                   if not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(f"{kind}: {', '.join(sorted(keys)[:4])}" for kind, keys in
                           (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
        raise TalkfaceError(f"not a SyncNet (syncnet_v2) state dict ({detail})", path)
    model.load_state_dict(state, strict=False)
    return model.eval().to(device)


# ------------------------------------------------------------------------------------------------
# inputs


def sync_mfcc(audio: np.ndarray) -> np.ndarray:
    """16 kHz float audio [N] in [-1, 1] -> [13, F] MFCC as syncnet_python computes it.

    It reads 16-bit PCM, so the signal is scaled to that range first: the scale shifts c0 (the
    log energy) only, but by 2 ln 32768 ~ 20.8, which the network sees.
    """
    from talkface.audio import mfcc

    pcm = np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767)  # [N]
    cepstra = mfcc(pcm)  # [F, 12] c1..c12
    return np.concatenate([_log_energy(pcm, len(cepstra))[:, None], cepstra], axis=1).T.astype(np.float32)


def _log_energy(pcm: np.ndarray, n_frames: int) -> np.ndarray:
    """log of the per-frame power-spectrum sum (python_speech_features' c0) -> [F]."""
    from talkface.audio import N_FFT, PREEMPHASIS, SAMPLE_RATE, STEP_SECONDS, WINDOW_SECONDS

    length, step = round(WINDOW_SECONDS * SAMPLE_RATE), round(STEP_SECONDS * SAMPLE_RATE)  # 400, 160
    emphasised = np.zeros((n_frames - 1) * step + length)
    emphasised[0] = pcm[0]
    emphasised[1:len(pcm)] = pcm[1:] - PREEMPHASIS * pcm[:-1]
    frames = np.lib.stride_tricks.sliding_window_view(emphasised, length)[::step]  # [F, 400]
    energy = np.square(np.abs(np.fft.rfft(frames, N_FFT))).sum(axis=1) / N_FFT  # [F]
    return np.log(np.where(energy == 0, np.finfo(np.float64).eps, energy))


def face_crops(frames: np.ndarray, landmarks: np.ndarray | None = None, crop_scale: float = CROP_SCALE) -> np.ndarray:
    """RGB frames [T, H, W, 3] uint8 -> SyncNet's face crops [T, 224, 224, 3] uint8 (RGB).

    With landmarks [T, 68, 2], the crop follows run_pipeline.py around the box of the 68 points
    (it used S3FD boxes, which reach higher up the forehead): half-size s = max(w, h) / 2 and the
    centre, median-filtered over time; rows [cy - s, cy + (1 + 2c) s), columns cx -/+ (1 + c) s,
    grey outside the frame. Without landmarks the frames are taken as face crops already (the
    face-crop output of `talkface infer`) and only resized.
    """
    import cv2

    if landmarks is None:
        return np.stack([cv2.resize(f, (CROP_SIZE, CROP_SIZE)) for f in frames])
    low, high = landmarks.min(axis=1), landmarks.max(axis=1)  # [T, 2] each
    kernel = min(BOX_SMOOTHING, len(frames) - 1 + len(frames) % 2)  # odd, at most T
    half = medfilt(np.max(high - low, axis=1) / 2, kernel)  # [T]
    cx, cy = (medfilt((low[:, i] + high[:, i]) / 2, kernel) for i in (0, 1))
    crops = []
    for frame, s, x, y in zip(frames, half, cx, cy):
        top, bottom = int(y - s), int(y + s * (1 + 2 * crop_scale))
        left, right = int(x - s * (1 + crop_scale)), int(x + s * (1 + crop_scale))
        crops.append(cv2.resize(_padded_slice(frame, top, bottom, left, right), (CROP_SIZE, CROP_SIZE)))
    return np.stack(crops)


def _padded_slice(frame: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """frame[top:bottom, left:right] with CROP_PAD_VALUE where the rectangle leaves the frame."""
    out = np.full((max(bottom - top, 1), max(right - left, 1), 3), CROP_PAD_VALUE, np.uint8)
    height, width = frame.shape[:2]
    y0, y1, x0, x1 = max(top, 0), min(bottom, height), max(left, 0), min(right, width)
    if y0 < y1 and x0 < x1:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = frame[y0:y1, x0:x1]
    return out


# ------------------------------------------------------------------------------------------------
# scores


@dataclass(frozen=True)
class SyncScores:
    lse_d: float  # min over offsets of the mean embedding distance (lower: better sync)
    lse_c: float  # median - min of the mean distances (higher: more confident sync)
    offset: int  # frames; > 0: the video lags the audio
    mean_distances: np.ndarray  # [2 * max_offset + 1], for offsets -max_offset .. +max_offset


def offset_distances(video: torch.Tensor, audio: torch.Tensor, max_offset: int = MAX_OFFSET) -> torch.Tensor:
    """[N, D] video and audio embeddings -> [N, 2K+1] distances of video i to audio i + k, k = -K..K.

    Audio embeddings past either end are zero vectors (so those windows still count), and the
    distance is torch's pairwise_distance (|x - y + 1e-6|), as in syncnet_python.
    """
    padded = torch.nn.functional.pad(audio, (0, 0, max_offset, max_offset))  # [N + 2K, D]
    shifted = padded.unfold(0, len(video), 1).permute(2, 0, 1)  # [N, 2K+1, D]: row i, column j -> audio i+j-K
    return torch.nn.functional.pairwise_distance(video[:, None, :].expand_as(shifted), shifted)


def scores_from_distances(distances: torch.Tensor) -> SyncScores:
    """LSE-D, LSE-C and the offset from `offset_distances`' [N, 2K+1]."""
    means = distances.mean(dim=0)  # [2K+1]
    best = int(means.argmin())
    lowest = float(means[best])
    return SyncScores(lse_d=lowest, lse_c=float(means.median()) - lowest,
                      offset=(len(means) - 1) // 2 - best, mean_distances=means.numpy())


@torch.no_grad()
def sync_scores(model: SyncNet, frames: np.ndarray, audio: np.ndarray, landmarks: np.ndarray | None = None,
                max_offset: int = MAX_OFFSET, batch_size: int = 20) -> SyncScores:
    """LSE-D / LSE-C of RGB frames [T, H, W, 3] uint8 against 16 kHz audio [N] (see the module doc)."""
    n_frames = min(len(frames), len(audio) // SAMPLES_PER_VIDEO_FRAME, len(frames if landmarks is None else landmarks))
    # syncnet_python stops one window short of the last full one (lastframe = min_length - 5).
    n_windows = n_frames - WINDOW_FRAMES
    if n_windows < 1:
        raise TalkfaceError(f"lip-sync scores need more than {WINDOW_FRAMES} frames of video with audio, "
                            f"got {n_frames}")
    crops = face_crops(frames[:n_frames], None if landmarks is None else landmarks[:n_frames])
    clips = torch.from_numpy(crops[..., ::-1].copy()).permute(3, 0, 1, 2)  # [3, T, 224, 224] BGR uint8
    mfcc = torch.from_numpy(sync_mfcc(audio))  # [13, F]
    device = next(model.parameters()).device
    video_emb, audio_emb = [], []
    for start in range(0, n_windows, batch_size):
        index = range(start, min(start + batch_size, n_windows))
        video = torch.stack([clips[:, i:i + WINDOW_FRAMES] for i in index]).float()  # [B, 3, 5, 224, 224]
        sound = torch.stack([mfcc[None, :, MFCC_PER_FRAME * i:MFCC_PER_FRAME * i + WINDOW_MFCC] for i in index])
        video_emb.append(model.embed_video(video.to(device)).float().cpu())
        audio_emb.append(model.embed_audio(sound.to(device)).float().cpu())  # [B, D] from [B, 1, 13, 20]
    return scores_from_distances(offset_distances(torch.cat(video_emb), torch.cat(audio_emb), max_offset))
