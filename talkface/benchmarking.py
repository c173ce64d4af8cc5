"""What every benchmark needs: name the machine, time a piece of code, write the result.

Shared by the scripts under benchmarks/ so that every recorded number carries the same
description of where it was measured.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy
import torch

from talkface.atomic import atomic_path


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (falls back to what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """The machine a number was measured on: CPU, cores, torch threads, load, versions, GPU."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": numpy.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def median_seconds(run: Callable[[], object], repeats: int, sync: Callable[[], None] | None = None) -> float:
    """Median wall time of `run()` over `repeats` calls, after one warm-up call.

    `sync` (e.g. torch.cuda.synchronize) is called after each run so asynchronous devices are
    timed to completion.
    """
    sync = sync or (lambda: None)
    run()  # warm-up: allocator, kernel selection, caches
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident memory (VmRSS) or its peak (VmHWM) in KiB, from /proc (0 where absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> None:
    """Set VmHWM back to the current RSS (Linux >= 4.0), so the next peak is the next block's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def write_result(path: str | Path, result: dict[str, Any]) -> Path:
    """Write `result` as indented JSON, atomically, with the machine named if it is not already."""
    result = {**result, "machine": result.get("machine", machine_info())}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    return Path(path)
