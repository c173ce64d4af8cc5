"""Peak memory and time of streamed audio -> motion inference (paper-size ATC-net, CPU).

    .venv/bin/python benchmarks/bench_motion.py [--minutes 1 60] [--chunk-frames 250] [--threads 1]

Each duration runs in a fresh child process on synthetic noise audio (the network's cost does not
depend on what the audio says). Peak memory is the rise of the process's peak RSS (VmHWM, reset
just before the call) over its RSS with the model and the audio already loaded, so it counts
torch's allocations as well as numpy's. A single-chunk forward pass is measured the same way: if
streaming works, the whole run peaks at about one chunk plus the [T, 70] output.
Writes benchmarks/results/motion_cpu.json with the machine named (rewritten after each duration,
so a long run that is stopped keeps the durations that finished).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from talkface.benchmarking import reset_peak_rss, rss_kib

RESULTS = Path(__file__).resolve().parent / "results" / "motion_cpu.json"


def measure(minutes: float, chunk_frames: int, single_chunk: bool, threads: int) -> dict:
    """Child process: time and peak-RSS rise of predict_motion (or of one chunk's forward)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)

    from talkface.audio import SAMPLE_RATE, audio_windows, n_video_frames
    from talkface.motion.inference import predict_motion
    from talkface.motion.network import AudioToMotion

    torch.manual_seed(0)
    model = AudioToMotion().eval()
    samples = int(minutes * 60 * SAMPLE_RATE) if not single_chunk else chunk_frames * 640
    audio = (0.1 * np.random.default_rng(0).standard_normal(samples)).astype(np.float32)
    predict_motion(model, audio[: 25 * 640], chunk_frames=chunk_frames)  # warm-up: kernels, caches
    if single_chunk:
        windows = torch.from_numpy(audio_windows(audio))[None]  # [1, chunk, 28, 12]
    baseline = rss_kib("VmRSS")
    reset_peak_rss()
    start = time.perf_counter()
    if single_chunk:
        with torch.inference_mode():
            model(windows)
    else:
        predict_motion(model, audio, chunk_frames=chunk_frames)
    seconds = time.perf_counter() - start
    frames = n_video_frames(samples)
    return {
        "audio_seconds": samples / SAMPLE_RATE,
        "video_frames": frames,
        "seconds": seconds,
        "frames_per_second": frames / seconds,
        "real_time_factor": (samples / SAMPLE_RATE) / seconds,
        "peak_rss_rise_mib": (rss_kib("VmHWM") - baseline) / 1024,
        "baseline_rss_mib": baseline / 1024,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def run_child(minutes: float, chunk_frames: int, single_chunk: bool, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", str(minutes), "--chunk-frames", str(chunk_frames),
               "--threads", str(threads)]
    if single_chunk:
        command.append("--single-chunk")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 60.0])
    parser.add_argument("--chunk-frames", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each child")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--single-chunk", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.chunk_frames, args.single_chunk, args.threads)))
        return

    import torch

    from talkface.benchmarking import write_result
    from talkface.motion.network import AudioToMotion

    torch.set_num_threads(args.threads)  # so the machine info names the children's thread count
    runs = {}
    chunk = run_child(0.0, args.chunk_frames, True, args.threads)
    print(f"one chunk of {args.chunk_frames} frames: {chunk['seconds']:.2f} s, "
          f"peak RSS +{chunk['peak_rss_rise_mib']:.0f} MiB")
    report = {
        "benchmark": "predict_motion, paper-size AudioToMotion, synthetic noise audio, CPU float32",
        "parameters": sum(p.numel() for p in AudioToMotion().parameters()),
        "chunk_frames": args.chunk_frames,
        "threads": args.threads,
        "note": "CPU shared with other jobs while measured (timings under load; run at nice 10); "
                "load_average_1m_after is each child's 1-minute load when it finished",
        "single_chunk_forward": chunk,
        "runs": runs,
    }
    for minutes in args.minutes:
        runs[f"{minutes:g} min"] = result = run_child(minutes, args.chunk_frames, False, args.threads)
        print(f"{minutes:g} min of audio: {result['seconds']:.1f} s "
              f"({result['real_time_factor']:.2f}x real time), peak RSS +{result['peak_rss_rise_mib']:.0f} MiB",
              flush=True)
        write_result(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
