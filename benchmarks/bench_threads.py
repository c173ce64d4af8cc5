"""`talkface infer` frames/s on a shared CPU: torch's one-thread-per-core default against the CLI's
load-aware default (talkface/threads.py).

    .venv/bin/python benchmarks/bench_threads.py --people PEOPLE --person NAME --audio SPEECH.wav [--repeats 2]

A person made by `talkface person` (any size; the tiny one of tests/test_end_to_end.py shows the
effect best, since small tensors gain least from threads). While `--busy` processes (default: one
per core) spin on every core, infer runs in a fresh process with `--threads` = the core count
(torch's default before: "before") and with no flag (the load-aware default: "after"), and once of
each on the machine as it is ("quiet" when nothing else runs). Writes benchmarks/results/threads_cpu.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from talkface.benchmarking import machine_info, write_result
from talkface.threads import available_cores

RESULTS = Path(__file__).resolve().parent / "results"


def spin() -> None:
    while True:
        pass


def infer_fps(args: argparse.Namespace, out: Path, threads: int | None) -> dict:
    """frames/s that `talkface infer` reports, and the threads it ran with."""
    command = [sys.executable, "-m", "talkface"] + ([] if threads is None else ["--threads", str(threads)])
    command += ["infer", args.audio, "--person", args.person, "--out", str(out),
                "--set", f"people_dir={args.people}", "--set", "device=cpu"]
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return {"frames_per_s": float(re.search(r"\(([\d.]+) frames/s\)", result.stdout).group(1)),
            "threads": "default" if threads is None else threads}


def measure(args: argparse.Namespace, work: Path) -> dict:
    rows = {"before": [], "after": []}
    for repeat in range(args.repeats):
        rows["before"].append(infer_fps(args, work / "before.mp4", available_cores()))
        rows["after"].append(infer_fps(args, work / "after.mp4", None))
    return {k: {"frames_per_s": [r["frames_per_s"] for r in v], "best": max(r["frames_per_s"] for r in v)}
            for k, v in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", required=True)
    parser.add_argument("--person", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--busy", type=int, default=available_cores(), help="spinning processes")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        result = {"machine_before": machine_info(), "cores": available_cores()}
        result["as_is"] = measure(args, work)
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
        for process in spinners:
            process.start()
        time.sleep(20)  # let the 1-minute load average see the spinners
        try:
            result["machine_busy"] = machine_info()
            result["busy"] = measure(args, work)
        finally:
            for process in spinners:
                process.terminate()
    result["note"] = (f"before: --threads {available_cores()} (torch's default, one per core); after: the "
                      f"CLI default (talkface/threads.py). busy: {args.busy} spinning processes besides "
                      "whatever else the machine ran (see load_average_1m)")
    print(result)
    write_result(RESULTS / "threads_cpu.json", result)


if __name__ == "__main__":
    main()
