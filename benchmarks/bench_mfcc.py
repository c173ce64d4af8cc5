"""Time talkface's MFCC against python_speech_features on 60 s of 16 kHz audio.

    .venv/bin/python benchmarks/bench_mfcc.py [--seconds 60] [--repeats 9]

Prints the medians and writes benchmarks/results/mfcc_cpu.json with the machine named.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from talkface.audio import SAMPLE_RATE, audio_windows, iter_audio_windows, mfcc
from talkface.benchmarking import machine_info, median_seconds, write_result

RESULTS = Path(__file__).resolve().parent / "results" / "mfcc_cpu.json"


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonics of a gliding 120 Hz voice, ~4 Hz syllables, plus noise; 16 kHz, [N] float64."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(120 + 20 * np.sin(2 * np.pi * 0.7 * t)) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 20))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    return 0.3 * syllables * voice / 3 + 0.01 * rng.standard_normal(t.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from python_speech_features import mfcc as reference_mfcc

    signal = speech_like(args.seconds)
    ours = mfcc(signal)
    reference = reference_mfcc(signal, SAMPLE_RATE, winstep=0.01)[:, 1:]
    timings = {
        "talkface.audio.mfcc": median_seconds(lambda: mfcc(signal), args.repeats),
        "python_speech_features.mfcc": median_seconds(
            lambda: reference_mfcc(signal, SAMPLE_RATE, winstep=0.01), args.repeats
        ),
        "talkface.audio.audio_windows": median_seconds(lambda: audio_windows(signal), args.repeats),
        "talkface.audio.iter_audio_windows(chunk_frames=250)": median_seconds(
            lambda: sum(len(chunk) for chunk in iter_audio_windows(signal, 250)), args.repeats
        ),
    }
    speedup = timings["python_speech_features.mfcc"] / timings["talkface.audio.mfcc"]
    result = {
        "benchmark": "MFCC of speech-like audio, median seconds per call",
        "audio_seconds": args.seconds,
        "sample_rate": SAMPLE_RATE,
        "mfcc_frames": len(ours),
        "repeats": args.repeats,
        "median_seconds": timings,
        "speedup_vs_python_speech_features": speedup,
        "max_relative_error": float(np.abs(ours - reference).max() / np.abs(reference).max()),
        "machine": machine_info(),
    }
    for name, seconds in timings.items():
        print(f"{name:55s} {seconds * 1000:8.1f} ms")
    print(f"speedup vs python_speech_features: {speedup:.2f}x  (max relative error "
          f"{result['max_relative_error']:.1e}) on {result['machine']['cpu']}, {os.cpu_count()} cores")
    write_result(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
