"""Phones of real speech, recognised, and the mouth that articulates them (docs/method.md, "Viseme mouth").

The audio -> motion network learns speech from the synthetic world; on a real voice it hears
little of what the mouth does. A speech recogniser trained on real speech does: PocketSphinx's
US-English acoustic model, language model, pronouncing dictionary and phone language model ship
inside its wheel (nothing to download). It runs in one of two ways (RECOGNISERS):

- "words": each utterance is decoded into words, then the words' dictionary phones are aligned to
  the audio. On real speech the dictionary knows how words are said, and this track follows the
  mouth better, even where the words are wrong.
- "phones": the phones are decoded directly (all-phone mode). On the synthetic world's voice,
  which speaks phone strings rather than English words, this one follows the mouth better.

A person's fine-tuning picks the one that predicts their own mouth (motion/calibration.py).
ARPAbet phones are mapped onto this project's inventory (phones.py): diphthongs split into their
two vowels, the dental fricatives taken as alveolar (the same jaw and lips), /y/ as /i/; fillers
and silence are gaps. Speech in another language is heard as the nearest English words or phones.

`viseme_track` turns the phones into the three mouth directions of visemes.py at the video
frames, each frame's mouth shaping the sound one frame ahead of it (MOUTH_LEAD_S).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from talkface.audio import SAMPLE_RATE, VIDEO_FPS
from talkface.speech.phones import Phone
from talkface.speech.visemes import articulate

if TYPE_CHECKING:
    from pocketsphinx import Decoder

# ARPAbet (CMU dictionary phones) -> this project's symbols; two symbols split the phone's span.
ARPABET = {
    "AA": "a", "AE": "a", "AH": "a", "AO": "o", "AW": "au", "AY": "ai", "EH": "e", "ER": "r", "EY": "ei",
    "IH": "i", "IY": "i", "OW": "ou", "OY": "oi", "UH": "u", "UW": "u",
    "B": "b", "P": "p", "M": "m", "F": "f", "V": "v", "T": "t", "D": "d", "N": "n", "L": "l", "S": "s",
    "Z": "z", "TH": "t", "DH": "d", "SH": "x", "ZH": "x", "CH": "j", "JH": "j", "R": "r", "K": "k",
    "G": "g", "NG": "g", "HH": "h", "W": "w", "Y": "i",
}
# The two ways of hearing phones (module docstring); a person's checkpoint stores the index of its own.
RECOGNISERS = ("words", "phones")
# The mouth leads the sound it shapes: the synthetic world draws 50-80 ms (talkface/synth/motion.py);
# on the 7 real clips of ../shared/real the word track's jaw follows the fitted lip gap at r 0.42 /
# 0.42 / 0.37 on average with a lead of 0 / 1 / 2 frames (hdtf_aoc and hdtf_kh do best at 2,
# talk1-4 at 0: apparently the clips' own audio-video offsets; benchmarks/bench_viseme_mouth.py).
MOUTH_LEAD_S = 1 / VIDEO_FPS
# The decoder's memory grows with the utterance (1 GiB for 3 min of speech), so longer audio is
# decoded in pieces of at most this length, each cut at the quietest 10 ms in its last seconds.
MAX_UTTERANCE_S = 30.0
CUT_SEARCH_S = 5.0
_CUT_HOP = SAMPLE_RATE // 100


def utterance_spans(audio: np.ndarray, max_seconds: float = MAX_UTTERANCE_S) -> list[tuple[int, int]]:
    """(start, stop) sample spans covering the audio [N], each at most max_seconds long."""
    limit, search = int(max_seconds * SAMPLE_RATE), int(min(CUT_SEARCH_S, max_seconds / 2) * SAMPLE_RATE)
    spans, start = [], 0
    while len(audio) - start > limit:
        first = start + limit - search
        energy = np.square(audio[first:first + search // _CUT_HOP * _CUT_HOP]).reshape(-1, _CUT_HOP).sum(1)
        cut = first + int(np.argmin(energy)) * _CUT_HOP
        spans.append((start, cut))
        start = cut
    return spans + [(start, len(audio))]


def recognise_phones(audio: np.ndarray, recogniser: str = RECOGNISERS[0],
                     max_utterance_s: float = MAX_UTTERANCE_S) -> list[Phone]:
    """16 kHz mono audio [N] (float, full scale 1) -> the phones heard in it, times in s from its start."""
    check_recogniser(recogniser)
    decoder = _decoder(recogniser)
    heard = _aligned_words if recogniser == "words" else _decoded_phones
    phones = []
    for start, stop in utterance_spans(audio, max_utterance_s):
        pcm = (np.clip(np.asarray(audio[start:stop], np.float64), -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        for symbol, begin, end in heard(decoder, pcm):
            phones += _split(ARPABET.get(symbol, ""), begin + start / SAMPLE_RATE, end + start / SAMPLE_RATE)
    return phones


def check_recogniser(recogniser: str) -> None:
    """ValueError unless `recogniser` is one of RECOGNISERS."""
    if recogniser not in RECOGNISERS:
        raise ValueError(f"unknown recogniser {recogniser!r}; expected one of {RECOGNISERS}")


def _decoder(recogniser: str) -> "Decoder":
    from pocketsphinx import Decoder, get_model_path

    # Seeded dither: digital silence (zeros, as padding makes) is otherwise heard as speech.
    common = dict(hmm=get_model_path("en-us/en-us"), samprate=SAMPLE_RATE, dither=True, seed=1, loglevel="FATAL")
    if recogniser == "words":  # PocketSphinx's default search over its language model and dictionary
        return Decoder(lm=get_model_path("en-us/en-us.lm.bin"), dict=get_model_path("en-us/cmudict-en-us.dict"),
                       **common)
    # All-phone search: its phone language model, with the weight and wide beams PocketSphinx's own
    # documentation gives for phone recognition.
    return Decoder(allphone=get_model_path("en-us/en-us-phone.lm.bin"), lw=2.0, beam=1e-20, pbeam=1e-20, **common)


def _decode(decoder: "Decoder", pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _aligned_words(decoder: "Decoder", pcm: bytes) -> list[tuple[str, float, float]]:
    """(ARPAbet phone, start s, end s) of one utterance: its words decoded, then aligned phone by phone."""
    decoder.activate_search()  # the language model again, after the previous utterance's alignment
    _decode(decoder, pcm)
    if decoder.hyp() is None or not decoder.hyp().hypstr:
        return []  # silence, noise or a tone: nothing said
    decoder.set_alignment()  # a second pass aligns the words' phones
    _decode(decoder, pcm)
    rate = decoder.config["frate"]  # recogniser frames per second
    return [(phone.name, phone.start / rate, (phone.start + phone.duration) / rate)
            for word in decoder.get_alignment() for phone in word]


def _decoded_phones(decoder: "Decoder", pcm: bytes) -> list[tuple[str, float, float]]:
    """(ARPAbet phone, start s, end s) of one utterance, decoded as phones."""
    _decode(decoder, pcm)
    rate = decoder.config["frate"]
    return [(segment.word, segment.start_frame / rate, (segment.end_frame + 1) / rate) for segment in decoder.seg()]


def _split(symbols: str, start: float, end: float) -> list[Phone]:
    """One ARPAbet phone's project symbols ("" for silence and fillers), sharing its span equally."""
    step = (end - start) / max(len(symbols), 1)
    return [Phone(symbol, start + k * step, start + (k + 1) * step) for k, symbol in enumerate(symbols)]


def viseme_track(audio: np.ndarray, frames: int, recogniser: str = RECOGNISERS[0]) -> np.ndarray:
    """Jaw open, lip spread and lip round [frames, 3] float32 of 16 kHz audio's recognised phones at 25 fps."""
    return phone_track(recognise_phones(audio, recogniser), frames)


def phone_track(phones: Sequence[Phone], frames: int, shift: int = 0) -> np.ndarray:
    """Jaw open, lip spread and lip round [frames, 3] float32 of `phones` at 25 fps, each frame shaping the
    sound MOUTH_LEAD_S after it; `shift` frames later still (earlier when negative)."""
    times = (np.arange(frames) + 0.5 + shift) / VIDEO_FPS + MOUTH_LEAD_S
    return articulate(phones, times, gain=1.0).astype(np.float32)
