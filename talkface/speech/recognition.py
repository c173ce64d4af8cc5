"""Phones of real speech, recognised, and the mouth that articulates them (docs/method.md, "Viseme mouth").

The audio -> motion network learns speech from the synthetic world; on a real voice it hears
little of what the mouth does. A phone recogniser trained on real speech does: PocketSphinx's
US-English acoustic model and phone language model ship inside its wheel (nothing to download)
and decode a few seconds of audio in under a second in all-phone mode. Its ARPAbet phones are
mapped onto this project's inventory (phones.py): diphthongs split into their two vowels, the
dental fricatives taken as alveolar (the same jaw and lips), /y/ as /i/; fillers and silence
are gaps. Speech in another language is heard as the nearest English phones.

`viseme_track` turns the phones into the three mouth directions of visemes.py at the video
frames, each frame's mouth shaping the sound one frame ahead of it (MOUTH_LEAD_S).
"""

from __future__ import annotations

import numpy as np

from talkface.audio import SAMPLE_RATE, VIDEO_FPS
from talkface.speech.phones import Phone
from talkface.speech.visemes import articulate

# ARPAbet (CMU dictionary phones) -> this project's symbols; two symbols split the phone's span.
ARPABET = {
    "AA": "a", "AE": "a", "AH": "a", "AO": "o", "AW": "au", "AY": "ai", "EH": "e", "ER": "r", "EY": "ei",
    "IH": "i", "IY": "i", "OW": "ou", "OY": "oi", "UH": "u", "UW": "u",
    "B": "b", "P": "p", "M": "m", "F": "f", "V": "v", "T": "t", "D": "d", "N": "n", "L": "l", "S": "s",
    "Z": "z", "TH": "t", "DH": "d", "SH": "x", "ZH": "x", "CH": "j", "JH": "j", "R": "r", "K": "k",
    "G": "g", "NG": "g", "HH": "h", "W": "w", "Y": "i",
}
# The mouth leads the sound it shapes: the synthetic world draws 50-80 ms (talkface/synth/motion.py);
# on the real clips hdtf_aoc, talk2 and talk3 one 25 fps frame correlated best with the fitted lip
# gap on average (each clip's best lies in 0-2 frames; benchmarks/bench_viseme_mouth.py).
MOUTH_LEAD_S = 1 / VIDEO_FPS
# PocketSphinx's all-phone decoding: its phone language model weight and wide beams (its own
# documentation's settings for phone recognition), with seeded dither: digital silence (zeros, as
# padding makes) is otherwise heard as one long /s/.
_LANGUAGE_WEIGHT = 2.0
_BEAM = 1e-20


def recognise_phones(audio: np.ndarray) -> list[Phone]:
    """16 kHz mono audio [N] (float, full scale 1) -> the phones heard in it, times in s from its start."""
    from pocketsphinx import Decoder, get_model_path

    pcm = (np.clip(np.asarray(audio, np.float64), -1.0, 1.0) * 32767).astype(np.int16)
    decoder = Decoder(hmm=get_model_path("en-us/en-us"), allphone=get_model_path("en-us/en-us-phone.lm.bin"),
                      lw=_LANGUAGE_WEIGHT, beam=_BEAM, pbeam=_BEAM, samprate=SAMPLE_RATE, dither=True, seed=1,
                      loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    rate = decoder.config["frate"]  # recogniser frames per second
    phones = []
    for segment in decoder.seg():
        symbols = ARPABET.get(segment.word, "")  # silence and fillers (+NSN+, +SPN+, ...) are gaps
        start, end = segment.start_frame / rate, (segment.end_frame + 1) / rate
        for k, symbol in enumerate(symbols):
            phones.append(Phone(symbol, start + (end - start) * k / len(symbols),
                                start + (end - start) * (k + 1) / len(symbols)))
    return phones


def viseme_track(audio: np.ndarray, frames: int) -> np.ndarray:
    """Jaw open, lip spread and lip round [frames, 3] float32 of 16 kHz audio's recognised phones at 25 fps."""
    times = (np.arange(frames) + 0.5) / VIDEO_FPS + MOUTH_LEAD_S
    return articulate(recognise_phones(audio), times, gain=1.0).astype(np.float32)
