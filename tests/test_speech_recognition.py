"""The phone recogniser of real speech and the viseme track it gives (talkface/speech/recognition.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from talkface.audio import SAMPLE_RATE, VIDEO_FPS
from talkface.media import read_audio
from talkface.speech.phones import SYMBOLS, VOWELS
from talkface.speech.recognition import (
    ARPABET, MOUTH_LEAD_S, RECOGNISERS, recognise_phones, utterance_spans, viseme_track,
)
from talkface.speech.visemes import articulate
from talkface.synth.speech import utterance_for_duration

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"


def test_every_arpabet_phone_maps_into_the_inventory():
    assert all(symbols and set(symbols) <= SYMBOLS for symbols in ARPABET.values())
    assert {"AA", "IY", "UW", "M", "B", "P", "F", "SH", "HH"} <= set(ARPABET)


def test_an_unknown_recogniser_is_refused():
    with pytest.raises(ValueError, match="unknown recogniser 'spectrogram'"):
        recognise_phones(np.zeros(SAMPLE_RATE, np.float32), "spectrogram")


@pytest.fixture(scope="module")
def synthetic_speech():
    """6 s of the built-in engine's speech, with the engine's own phone timeline (the truth)."""
    return utterance_for_duration(6.0, seed=5, engine="builtin")


@pytest.mark.parametrize("recogniser, least_r", [("phones", 0.75), ("words", 0.6)])
def test_recognised_visemes_follow_the_spoken_phones(synthetic_speech, recogniser: str, least_r: float):
    # The synthetic world's mouth articulates the engine's exact phones; the recogniser hears only
    # the audio. Its jaw track must follow the true one, and open and close. Measured r: phones
    # 0.88, words 0.78 (the engine speaks phone strings, not English words, which the word decoder
    # bends toward words; on real speech the order reverses: docs/method.md, "Viseme mouth").
    frames = round(len(synthetic_speech.audio) / SAMPLE_RATE * VIDEO_FPS)
    track = viseme_track(synthetic_speech.audio, frames, recogniser)
    times = (np.arange(frames) + 0.5) / VIDEO_FPS + MOUTH_LEAD_S
    truth = articulate(synthetic_speech.phones, times, gain=1.0)
    assert track.shape == (frames, 3) and track.dtype == np.float32
    assert np.corrcoef(track[:, 0], truth[:, 0])[0, 1] > least_r
    assert track[:, 0].max() > 0.4 and np.percentile(track[:, 0], 10) < 0.15


def test_long_audio_is_cut_into_utterances_at_its_quietest_moment():
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, 70 * SAMPLE_RATE).astype(np.float32)
    audio[27 * SAMPLE_RATE:27 * SAMPLE_RATE + 800] = 0  # a pause inside the first piece's search window
    spans = utterance_spans(audio, max_seconds=30.0)
    assert spans[0] == (0, 27 * SAMPLE_RATE)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])) and spans[-1][1] == len(audio)
    assert all(0 < stop - start <= 30 * SAMPLE_RATE for start, stop in spans)
    assert utterance_spans(audio[:SAMPLE_RATE]) == [(0, SAMPLE_RATE)]


@pytest.mark.parametrize("recogniser", RECOGNISERS)
def test_audio_decoded_in_pieces_keeps_each_phone_in_its_place(synthetic_speech, recogniser: str):
    # Cut into utterances of at most 2.5 s, the phones keep their times: the jaw track follows the
    # one of the audio decoded whole (measured r: words 0.90, phones 0.96) and phones are heard in
    # every piece.
    audio = synthetic_speech.audio
    frames = round(len(audio) / SAMPLE_RATE * VIDEO_FPS)
    times = (np.arange(frames) + 0.5) / VIDEO_FPS
    pieces = recognise_phones(audio, recogniser, max_utterance_s=2.5)
    whole = articulate(recognise_phones(audio, recogniser), times, gain=1.0)
    assert np.corrcoef(articulate(pieces, times, gain=1.0)[:, 0], whole[:, 0])[0, 1] > 0.75
    for start, stop in utterance_spans(audio, 2.5):
        assert any(start / SAMPLE_RATE <= p.start < stop / SAMPLE_RATE for p in pieces)


@pytest.mark.parametrize("recogniser", RECOGNISERS)
def test_silence_has_no_phones_and_a_closed_mouth(recogniser: str):
    silence = np.zeros(2 * SAMPLE_RATE, np.float32)
    assert recognise_phones(silence, recogniser) == []
    np.testing.assert_allclose(viseme_track(silence, 50, recogniser), 0.0, atol=1e-6)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} is absent")
@pytest.mark.parametrize("recogniser", RECOGNISERS)
def test_real_speech_is_heard_as_a_stream_of_phones(recogniser: str):
    audio = read_audio(REAL / "speech_en_44k_stereo.wav")  # 5 s of English
    phones = recognise_phones(audio, recogniser)
    seconds = len(audio) / SAMPLE_RATE
    assert 4 * seconds < len(phones) < 25 * seconds  # syllable rates of speech, not noise or nothing
    vowel_time = sum(p.end - p.start for p in phones if p.symbol in VOWELS)
    assert 0.15 * seconds < vowel_time < 0.8 * seconds
    assert all(0 <= p.start < p.end <= seconds + 0.05 for p in phones)
