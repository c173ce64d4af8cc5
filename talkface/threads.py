"""How many CPU threads torch may use: the cores that are idle now, not all of them.

On a shared machine torch's default (one thread per core) collapses: OpenMP threads that wait for
each other on cores another process holds ran `talkface infer` at 7.5 frames/s with 2 threads
against 117 with 1 on a busy 2-core machine (benchmarks/bench_threads.py). So the CLI starts
with the number of cores the 1-minute load average leaves idle, at least one; `--threads N` or
the usual OMP_NUM_THREADS choose for themselves.
"""

from __future__ import annotations

import os
import sys

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def idle_threads(cores: int | None = None, load: float | None = None) -> int:
    """The cores the load leaves idle, rounded, at least 1: 2 cores at load 0.3 -> 2, at load 0.8 -> 1."""
    cores = available_cores() if cores is None else cores
    load = os.getloadavg()[0] if load is None else load
    return max(1, min(cores, int(cores - load + 0.5)))


def configure_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads for this process: `threads`, else OMP_NUM_THREADS when the user set it,
    else `idle_threads()`. Works before and after torch is imported; the number chosen."""
    if threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        threads = int(os.environ["OMP_NUM_THREADS"])
    if threads is None:
        threads = idle_threads()
    threads = max(1, threads)
    for name in THREAD_VARIABLES:  # read by torch when it is first imported
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads
