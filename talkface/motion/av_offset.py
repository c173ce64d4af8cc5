"""A clip's audio-video offset, from the phones heard in its audio and its detected mouth (docs/method.md,
"Viseme mouth").

Recordings put their sound and picture a few frames apart, and by different amounts: on the 7 real
clips of ../shared/real the word track's jaw follows the detected inner-lip gap best with the track
moved by -2 to +2 frames from the standard lead (the two HDTF clips +1 and +2, talk1-5 0 to -2;
benchmarks/bench_viseme_mouth.py). The viseme mouth is fitted on the clip's own frames, so a track
that runs early or late against them teaches it a blurred map (the shipped mouth's training-frame
r, unaligned → aligned: talk1 0.66 → 0.84, talk3 0.70 → 0.83; benchmarks/README.md, "Viseme
mouth"). As SyncNet finds a video's offset from the shift that matches best, the offset is the
shift within +-MAX_OFFSET_FRAMES at which the track's jaw correlates best with the detected lip
gap. Only fitting uses it: new speech is not out of step with the video generated for it, so
inference keeps the standard lead (speech/recognition.py MOUTH_LEAD_S).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from talkface.metrics import mouth_opening_over_eyes
from talkface.speech.phones import Phone
from talkface.speech.recognition import phone_track

# 240 ms either way: the offsets measured on real clips reach 2 frames, and a search much wider
# than the syllable period (~200 ms) could land on the next syllable's match.
MAX_OFFSET_FRAMES = 6


def offset_correlations(phones: Sequence[Phone], landmarks: np.ndarray,
                        max_offset: int = MAX_OFFSET_FRAMES) -> dict[int, float]:
    """r of the phones' jaw-open track, shifted by each offset in -max..max frames, with the inner-lip gap
    of the landmarks [T, 68, 2] (0 where either does not move)."""
    gap = mouth_opening_over_eyes(landmarks)  # [T]
    correlations = {}
    for shift in range(-max_offset, max_offset + 1):
        jaw = phone_track(phones, len(gap), shift)[:, 0]
        moving = jaw.std() > 1e-9 and gap.std() > 1e-9
        correlations[shift] = float(np.corrcoef(jaw, gap)[0, 1]) if moving else 0.0
    return correlations


def audio_video_offset(phones: Sequence[Phone], landmarks: np.ndarray, max_offset: int = MAX_OFFSET_FRAMES) -> int:
    """The shift (frames, `phone_track`'s) that puts the phones in step with the mouth of the landmarks
    [T, 68, 2]: 0 where nothing correlates."""
    correlations = offset_correlations(phones, landmarks, max_offset)
    best = max(correlations, key=lambda shift: (correlations[shift], -abs(shift)))
    return best if correlations[best] > 0 else 0
