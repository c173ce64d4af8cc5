"""Wall time of the CPU path a user without a GPU takes: the general models, then one 300-frame person.

    .venv/bin/python benchmarks/bench_cpu_profile.py [--work DIR] [--skip-pretrain]

1. `talkface pretrain synthetic` with the shipped configs/pretrain_synthetic.yaml (target: ~10 min
   on 2 CPU cores), into WORK/pretrain, its general models into WORK/general;
2. a synthetic person speaking 14 s (talkface synth person), fine-tuned on its first 300 frames
   with configs/person_cpu.yaml (target: ~15 min on 2 cores) on those general models; landmarks
   are the synthetic truth and the R-Net is whatever preprocess's `rnet` resolves to, so the
   time is preprocess + motion + GAN as a user's clip would take them.
Per stage it records wall seconds and this process's CPU seconds (user + system over all threads):
on a shared machine the wall time grows with the load, the CPU time much less, so both are kept
with the load average. Writes benchmarks/results/cpu_profile.json (the machine named).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import time
from pathlib import Path
from typing import Any, Callable

from talkface.benchmarking import machine_info, write_result
from talkface.config import load_config
from talkface.pipelines.person import PersonConfig, finetune_person
from talkface.pipelines.synthetic_pretrain import PretrainSyntheticConfig, run_pretrain_synthetic

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # ffmpeg
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def timed(run: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = run()
    return value, {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(cpu_seconds() - cpu, 1),
                   "load_average_1m_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/talkface_cpu_profile"))
    parser.add_argument("--skip-pretrain", action="store_true", help="reuse WORK/general from an earlier run")
    args = parser.parse_args()
    general = args.work / "general"
    result: dict[str, Any] = {"machine_before": machine_info()}

    pretrain = dataclasses.replace(load_config(PretrainSyntheticConfig, REPO / "configs" / "pretrain_synthetic.yaml"),
                                   out=str(args.work / "pretrain"), motion_model=str(general / "motion_lrw.pt"),
                                   gan_model=str(general / "gan_lrw.pt"))
    if not args.skip_pretrain:
        stages, result["pretrain_synthetic"] = timed(lambda: run_pretrain_synthetic(pretrain, progress=False))
        result["pretrain_synthetic"]["stages_wall_s"] = {s.name: s.seconds for s in stages}

    from talkface.synth.world import write_person

    clip = write_person(args.work / "person", seconds=14.0, seed=3, size=256, progress=False)
    config = load_config(PersonConfig, REPO / "configs" / "person_cpu.yaml", [
        f"people_dir={args.work / 'people'}", f"motion.pretrained={pretrain.motion_model}",
        f"gan.pretrained={pretrain.gan_model}", "preprocess.landmarks.backend=file",
        f"preprocess.landmarks.file={clip / 'truth' / 'landmarks.npy'}", "preprocess.morphable_model=synthetic"])
    stages, result["person_cpu_300_frames"] = timed(lambda: finetune_person(clip / "clip.mp4", "cpu", config,
                                                                            progress=False))
    result["person_cpu_300_frames"]["stages_wall_s"] = {s.name: s.seconds for s in stages}
    result["person_cpu_300_frames"]["validation"] = {s.name: s.outputs.get("validation") for s in stages[1:]}
    path = write_result(RESULTS / "cpu_profile.json", result)
    print(path)


if __name__ == "__main__":
    main()
