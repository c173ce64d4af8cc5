"""Direct fitting (no R-Net weights) against R-Net + refinement, on the synthetic world and on real clips.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_recon_direct.py [--work DIR] [--frames T]
        [--steps 400 800 1600] [--real-landmarks DIR]

Synthetic world (bench_recon.py's recipe): a small resnet18 R-Net trained from scratch on two
synthetic training people; the held-out person (seed 7, truth landmarks) is preprocessed with it
and the 800-step refinement; the same crops are then fitted directly from the posed mean face for
each step count. Scores: 68-landmark error at 224 px against the truth, Pearson r of the mouth
expression directions against the truth, seconds.

Real clips (`--real-landmarks DIR`: one <clip>.npy of 68-point frame-pixel landmarks per clip of
../shared/real, e.g. dlib's): `talkface preprocess` without R-Net and with the synthetic model, then
the reprojection error against those landmarks (px at 224) and identity constancy: the clip is cut
into chunks, each fitted on its own; the chunks' neutral face shapes (identity only) deviate from
their mean by an RMS vertex distance (mm), compared with the same distance between the clips'
(different people's) identities.
Writes benchmarks/results/recon_direct_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recon import MOUTH, clip, score, train  # noqa: E402  (the synthetic recipe, one copy)

from talkface.benchmarking import machine_info, write_result  # noqa: E402
from talkface.config import load_config  # noqa: E402
from talkface.face3d.camera import Camera  # noqa: E402
from talkface.face3d.model import load_morphable_model  # noqa: E402
from talkface.pipelines.preprocess import PreprocessConfig, preprocess  # noqa: E402
from talkface.recon.fitting import RefineConfig, fit_clip, keypoints_2d  # noqa: E402
from talkface.workspace import Workspace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real"
MM_PER_UNIT = 100.0  # the model's units are decimetres


def config(frames: int, landmarks: Path, rnet: str | None, steps: int) -> PreprocessConfig:
    return load_config(PreprocessConfig, ROOT / "configs" / "preprocess.yaml", [
        "morphable_model=synthetic", f"frames={frames}", "landmarks.backend=file", f"landmarks.file={landmarks}",
        f"rnet={rnet if rnet else 'null'}", f"refine.steps={steps}",
    ])


def synthetic(work: Path, args: argparse.Namespace) -> dict:
    training = [clip(work, 101 + k, 4.0) for k in range(2)]
    held_out = clip(work, 7, args.frames / 25 + 0.04)
    checkpoint, train_seconds = train(work, training, 60)
    landmarks = held_out / "truth" / "landmarks.npy"
    model = load_morphable_model("synthetic")
    start = time.perf_counter()
    preprocess(held_out / "clip.mp4", work / "ws_rnet", config(args.frames, landmarks, str(checkpoint), 800), False)
    ws = Workspace(work / "ws_rnet")
    rows = {"rnet_plus_refinement_800": {**score(ws.root, held_out, ws.load_array("coeffs.npy"), model),
                                         "seconds_preprocess": round(time.perf_counter() - start, 1)}}
    crops, crop_landmarks, transforms = (ws.load_array(n) for n in ("crops.npy", "crop_landmarks.npy", "transforms.npy"))
    for steps in args.steps:
        start = time.perf_counter()
        coeffs = fit_clip(crops, crop_landmarks, None, model, RefineConfig(steps=steps), progress=False,
                          transforms=transforms)
        rows[f"direct_{steps}"] = {**score(ws.root, held_out, coeffs, model),
                                   "seconds_fit": round(time.perf_counter() - start, 1)}
    return {"setup": {"held_out_seed": 7, "frames": args.frames, "rnet": "resnet18, 60 steps from scratch on two "
                      "4 s synthetic people (bench_recon.py)", "rnet_train_seconds": round(train_seconds, 1),
                      "landmarks": "truth"},
            "results": rows, "summary": summary(rows)}


def summary(rows: dict) -> dict:
    """Each direct fit relative to R-Net + refinement: landmark error ratio and mean mouth r ratio."""
    base = rows["rnet_plus_refinement_800"]

    def mouth_r(row: dict) -> float:
        return float(np.mean([row["mouth_expression_correlation"][n]["r"] for n in MOUTH]))

    return {name: {"landmark_error_ratio": round(row["landmark_error_px_224"] / base["landmark_error_px_224"], 3),
                   "mean_mouth_r": round(mouth_r(row), 4), "mean_mouth_r_ratio": round(mouth_r(row) / mouth_r(base), 4)}
            for name, row in rows.items()}


def real(work: Path, landmark_dir: Path, steps: int, chunks: int) -> dict:
    model = load_morphable_model("synthetic")
    rows, identities = {}, {}
    for path in sorted(landmark_dir.glob("*.npy")):
        track = np.load(path)
        frames = len(track)
        start = time.perf_counter()
        result = preprocess(REAL / f"{path.stem}.mp4", work / f"real_{path.stem}",
                            config(frames, path, None, steps), progress=False)
        ws = Workspace(result.workspace)
        coeffs = ws.load_array("coeffs.npy")
        target = ws.load_array("crop_landmarks.npy")
        predicted = keypoints_2d(model, torch.from_numpy(coeffs), Camera()).numpy()
        error = np.linalg.norm(predicted - target, axis=-1)
        seconds = time.perf_counter() - start
        crops, transforms = ws.load_array("crops.npy"), ws.load_array("transforms.npy")
        parts = np.array_split(np.arange(frames), chunks)
        chunk_ids = [fit_clip(crops[p], target[p], None, model, RefineConfig(steps=steps), progress=False,
                              transforms=transforms[p])[0, :80] for p in parts]
        identities[path.stem] = coeffs[0, :80]
        rows[path.stem] = {
            "frames": frames, "landmark_error_px_224": round(float(error.mean()), 3),
            "inner_lip_error_px_224": round(float(error[:, 60:68].mean()), 3),
            "chunk_identity_rms_mm": round(identity_spread(model, np.stack(chunk_ids)), 3),
            "seconds_preprocess": round(seconds, 1),
        }
    between = identity_spread(model, np.stack(list(identities.values())))
    return {"setup": {"landmarks": "dlib 68-point (face_recognition_models), +0.5 px", "steps": steps,
                      "chunks": chunks, "morphable_model": "synthetic"},
            "clips": rows, "between_clips_identity_rms_mm": round(between, 3)}


def identity_spread(model, identity: np.ndarray) -> float:
    """RMS distance (mm) of the neutral shapes of identity rows [K, 80] from their mean shape."""
    ids = torch.from_numpy(np.asarray(identity, np.float32))
    shapes = model.shape(ids, torch.zeros(len(ids), 64)).detach().numpy()  # [K, N, 3]
    return float(np.sqrt(((shapes - shapes.mean(axis=0)) ** 2).sum(-1).mean()) * MM_PER_UNIT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=None, help="folder for clips and runs (default: a temporary folder)")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--steps", type=int, nargs="+", default=[400, 800, 1600], help="direct-fit step counts")
    parser.add_argument("--real-landmarks", default=None, help="folder of <clip>.npy landmarks of ../shared/real clips")
    parser.add_argument("--real-steps", type=int, default=800)
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recon_direct_cpu.json"))
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_recon_direct_"))
    out = Path(args.out)
    sections = {}  # each section names the machine and its load when it finished
    if not args.skip_synthetic:
        sections["synthetic"] = {**synthetic(work, args), "machine": machine_info()}
    if args.real_landmarks:
        sections["real"] = {**real(work, Path(args.real_landmarks), args.real_steps, args.chunks),
                            "machine": machine_info()}
    results = json.loads(out.read_text()) if out.is_file() else {}  # keep the section not rerun
    results.update(sections)
    write_result(out, results)
    print(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
