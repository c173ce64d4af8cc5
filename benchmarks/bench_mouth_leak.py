"""What moves a constant expression's mouth in the output video? (issue 12, the held-out mean-expression baseline)

    .venv/bin/python benchmarks/bench_mouth_leak.py --workspaces DIR [--clips hdtf_aoc,talk3] [--gan CKPT]

For each clip's whole-clip workspace (as bench_lipsync_coeffs.py makes them), the held-out last 25 %
of its frames is generated the way `talkface heldout` generates its mean-expression baseline, but
with the real held-out head pose: the expression held at the training frames' mean, background
frames matched from the first 75 % ('reassign' keyframes), rendered, composited, optionally through
the GAN (--gan), pasted back into the full frame and run through the dlib detector. The inner-lip
gap found in that video is correlated with what could move it:
- the real held-out frames' (what the metric compares it with),
- the matched background frames' own real mouths (the face around the pasted render),
- the drawn landmarks of the render (a constant expression: only the pose moves them),
and its std is given relative to the real one. Writes benchmarks/results/mouth_leak_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench_motion_real import REAL
from talkface.benchmarking import machine_info, write_result

RESULT = Path(__file__).parent / "results" / "mouth_leak_cpu.json"
TUNE_FRACTION = 0.75  # configs/heldout.yaml train_fraction


def generated_mouths(workspace: Path, gan: str | None) -> dict[str, np.ndarray]:
    """Inner-lip gaps [H] of the held-out frames: detected in the generated video, drawn, real, background's real."""
    from talkface.background.animation import animate, load_target, plan_animation
    from talkface.face3d.coeffs import motion_from_coeffs
    from talkface.face3d.model import load_morphable_model
    from talkface.metrics import mouth_opening
    from talkface.pipelines.heldout import detect_generated
    from talkface.pipelines.infer import output_frames
    from talkface.recon.alignment import apply_transform, invert_transform
    from talkface.recon.landmarks import make_landmark_backend
    from talkface.workspace import Workspace

    ws = Workspace(workspace)
    full = load_target(ws.root)
    n = int(TUNE_FRACTION * full.n_frames)
    target = dataclasses.replace(full, coeffs=full.coeffs[:n], transforms=full.transforms[:n],
                                 backgrounds=full.backgrounds[:n], crops=full.crops[:n])
    frames, real = ws.load_array("frames.npy", mmap=True), ws.load_array("landmarks.npy")
    motion = motion_from_coeffs(full.coeffs)
    held = motion[n:].copy()
    held[:, :64] = motion[:n, :64].mean(0)
    plan = plan_animation(target, held, mode="reassign")
    enhancer = None
    if gan is not None:
        from talkface.gan.inference import load_enhancer

        enhancer = load_enhancer(gan, device="cpu", batch_size=16)
        enhancer.reset()
    drawn = []  # each chunk's drawn landmarks, as inference pastes it back
    chunks = animate(target, plan, load_morphable_model("synthetic"), chunk_frames=32)
    out = list(output_frames(chunks, enhancer, frames, target.window,
                             observe=lambda chunk, faces: drawn.append(chunk.landmarks.cpu().numpy())))
    drawn_marks = apply_transform(invert_transform(target.window.transform), np.concatenate(drawn))
    found, _ = detect_generated(make_landmark_backend("dlib", device="cpu"), np.stack(out), drawn_marks)
    return {"detected": mouth_opening(found), "drawn": mouth_opening(drawn_marks), "real": mouth_opening(real[n:]),
            "background": mouth_opening(real[plan.indices]), "distinct_backgrounds": len(set(plan.indices.tolist()))}


def scores(mouths: dict[str, Any]) -> dict[str, float]:
    r = {f"r_detected_{k}": round(float(np.corrcoef(mouths["detected"], mouths[k])[0, 1]), 3)
         for k in ("real", "background", "drawn")}
    return {**r, "r_background_real": round(float(np.corrcoef(mouths["background"], mouths["real"])[0, 1]), 3),
            "std_detected_over_real": round(float(mouths["detected"].std() / mouths["real"].std()), 3),
            "std_drawn_over_real": round(float(mouths["drawn"].std() / mouths["real"].std()), 3),
            "distinct_backgrounds": mouths["distinct_backgrounds"], "frames": len(mouths["real"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", required=True)
    parser.add_argument("--clips", default="hdtf_aoc,talk3")
    parser.add_argument("--gan", default=None, help="a GAN checkpoint; without it the composited render is pasted")
    parser.add_argument("--result", default=str(RESULT))
    args = parser.parse_args()
    path = Path(args.result)
    report = json.loads(path.read_text()) if path.is_file() else {"clips": {}}
    if not REAL.is_dir():
        print(f"skipped: {REAL} is absent")
        return 0
    stage = "gan" if args.gan else "composite"
    for name in args.clips.split(","):
        result = scores(generated_mouths(Path(args.workspaces) / name, args.gan))
        report["clips"].setdefault(name, {})[stage] = {**result, "gan": args.gan}
        print(name, stage, result, flush=True)
    report["machine"] = machine_info()
    write_result(path, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
