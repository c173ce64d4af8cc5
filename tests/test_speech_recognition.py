"""The phone recogniser of real speech and the viseme track it gives (talkface/speech/recognition.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from talkface.audio import SAMPLE_RATE, VIDEO_FPS
from talkface.media import read_audio
from talkface.speech.phones import SYMBOLS, VOWELS
from talkface.speech.recognition import ARPABET, MOUTH_LEAD_S, recognise_phones, viseme_track
from talkface.speech.visemes import articulate
from talkface.synth.speech import utterance_for_duration

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"


def test_every_arpabet_phone_maps_into_the_inventory():
    assert all(symbols and set(symbols) <= SYMBOLS for symbols in ARPABET.values())
    assert {"AA", "IY", "UW", "M", "B", "P", "F", "SH", "HH"} <= set(ARPABET)


@pytest.fixture(scope="module")
def synthetic_speech():
    """6 s of the built-in engine's speech, with the engine's own phone timeline (the truth)."""
    return utterance_for_duration(6.0, seed=5, engine="builtin")


def test_recognised_visemes_follow_the_spoken_phones(synthetic_speech):
    # The synthetic world's mouth articulates the engine's exact phones; the recogniser hears only
    # the audio. Its jaw track must follow the true one (measured r 0.73 here), and open and close.
    frames = round(len(synthetic_speech.audio) / SAMPLE_RATE * VIDEO_FPS)
    track = viseme_track(synthetic_speech.audio, frames)
    times = (np.arange(frames) + 0.5) / VIDEO_FPS + MOUTH_LEAD_S
    truth = articulate(synthetic_speech.phones, times, gain=1.0)
    assert track.shape == (frames, 3) and track.dtype == np.float32
    assert np.corrcoef(track[:, 0], truth[:, 0])[0, 1] > 0.55
    assert track[:, 0].max() > 0.4 and np.percentile(track[:, 0], 10) < 0.15


def test_silence_has_no_phones_and_a_closed_mouth():
    silence = np.zeros(2 * SAMPLE_RATE, np.float32)
    assert recognise_phones(silence) == []
    np.testing.assert_allclose(viseme_track(silence, 50), 0.0, atol=1e-6)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} is absent")
def test_real_speech_is_heard_as_a_stream_of_phones():
    audio = read_audio(REAL / "speech_en_44k_stereo.wav")  # 5 s of English
    phones = recognise_phones(audio)
    seconds = len(audio) / SAMPLE_RATE
    assert 4 * seconds < len(phones) < 25 * seconds  # syllable rates of speech, not noise or nothing
    vowel_time = sum(p.end - p.start for p in phones if p.symbol in VOWELS)
    assert 0.15 * seconds < vowel_time < 0.8 * seconds
    assert all(0 <= p.start < p.end <= seconds + 0.05 for p in phones)
