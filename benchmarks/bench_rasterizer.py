"""Time the rasterizer on a BFM-sized face-like mesh (~35k vertices, ~70k triangles, ~40 % coverage).

    .venv/bin/python benchmarks/bench_rasterizer.py [--repeats 20] [--mesh synthetic] [--threads 1 2]
                                                    [--no-malloc-tune] [--note TEXT]

The mesh is a bumped half-ellipsoid built here (default) or, with --mesh synthetic, talkface's
synthetic morphable model at 35k vertices. Measures per frame, at 224 and 512 px, batch 1 and 8:
`rasterize` alone (forward) and rasterize + interpolate colours + L2 loss + backward to screen,
depth and colours (forward+backward).
CPU always; CUDA (torch backend, and nvdiffrast when installed) when a GPU is present. Writes
benchmarks/results/rasterizer_<device>[_<backend>][_synthetic].json.

By default the process raises glibc's malloc mmap and trim thresholds first (mallopt via ctypes,
the same effect as MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=536870912 in the
environment): with the defaults every large temporary is mmap'd and unmapped on each call, and
each frame page-faults on fresh memory (talkface/render/torch_rasterizer.py).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import statistics
import time
from pathlib import Path

import torch

from talkface.render.rasterize import interpolate, nvdiffrast_available, rasterize
from talkface.benchmarking import machine_info, write_result

RESULTS = Path(__file__).resolve().parent / "results"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers from glibc's malloc.h


def tune_malloc() -> bool:
    """Keep large freed blocks in glibc's heap instead of returning them to the OS every call."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 256 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 512 << 20))


def face_mesh(grid: int = 187, image_size: int = 224) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A bumped half-ellipsoid face seen from the front: screen [N,2], depth [N], triangles [F,3].

    grid=187 gives 34,969 vertices and 69,192 triangles, close to BFM's front face (35,709 / 70,789).
    The camera is the 3DMM one (focal 1015, centre 112 at 224 px, distance 10; docs/method.md).
    """
    u, v = torch.meshgrid(torch.linspace(-1, 1, grid), torch.linspace(-1, 1, grid), indexing="xy")
    # Square grid -> disc (elliptical grid mapping), then an ellipse of semi-axes 0.69 x 0.9 world
    # units: ~70 x 92 px at 224 px, i.e. ~40 % of the image.
    dx, dy = u * torch.sqrt(1 - v**2 / 2), v * torch.sqrt(1 - u**2 / 2)
    r2 = (dx**2 + dy**2).clamp(max=1)
    nose = 0.25 * torch.exp(-(dx**2 + (dy + 0.05) ** 2) / 0.02)
    brows = 0.05 * torch.cos(6 * dx) * torch.exp(-((dy - 0.35) ** 2) / 0.01)
    world = torch.stack([0.69 * dx, 0.9 * dy, 0.6 * torch.sqrt(1 - r2) + nose + brows], -1).reshape(-1, 3)
    z = 10.0 - world[:, 2]
    scale = image_size / 224
    screen = torch.stack([112 + 1015 * world[:, 0] / z, 112 - 1015 * world[:, 1] / z], -1) * scale
    idx = torch.arange(grid * grid).view(grid, grid)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    triangles = torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([b, c, d], -1).reshape(-1, 3)])
    return screen, z, triangles


def synthetic_face_mesh(image_size: int = 224) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The synthetic morphable model's mean face at BFM size (~35k vertices), frontal: screen, depth, triangles."""
    from talkface.face3d.camera import Camera
    from talkface.face3d.coeffs import N_COEFFS

    model = _synthetic_model()
    with torch.no_grad():
        mesh = model(torch.zeros(1, N_COEFFS), Camera().resized(image_size))
    return mesh.screen[0], mesh.vertices[0, :, 2], model.triangles


@functools.lru_cache(maxsize=1)
def _synthetic_model():
    from talkface.face3d.model import load_morphable_model

    return load_morphable_model("synthetic:35000")


MESHES = {"hemisphere": face_mesh, "synthetic": synthetic_face_mesh}


def _time(fn, repeats: int, sync) -> tuple[float, float]:
    """Median wall and process-CPU seconds of `fn` after two warm-up calls.

    On a shared machine the CPU time is the steadier figure (it excludes waiting for a core); with
    several threads it sums over them.
    """
    for _ in range(2):
        fn()
    sync()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def bench_case(mesh: str, size: int, batch: int, device: str, backend: str, repeats: int) -> dict:
    screen, depth, triangles = MESHES[mesh](image_size=size)
    screen = screen.expand(batch, -1, -1).contiguous().to(device)
    depth = depth.expand(batch, -1).contiguous().to(device)
    triangles = triangles.to(device)
    colors = torch.rand(batch, screen.shape[1], 3, device=device)
    target = torch.rand(batch, size, size, 3, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    coverage = float(rasterize(screen, depth, triangles, (size, size), backend).mask.mean())

    def forward():
        with torch.no_grad():
            rasterize(screen, depth, triangles, (size, size), backend)

    def forward_backward():
        s, d, c = (t.detach().requires_grad_() for t in (screen, depth, colors))
        image = interpolate(c, rasterize(s, d, triangles, (size, size), backend), triangles)
        ((image - target) ** 2).mean().backward()

    row = {"size": size, "batch": batch, "device": device, "backend": backend, "coverage": round(coverage, 3)}
    for name, fn in (("forward", forward), ("forward_backward", forward_backward)):
        wall, cpu = _time(fn, repeats, sync)
        row[f"{name}_ms_per_frame"] = round(1e3 * wall / batch, 2)
        row[f"{name}_cpu_ms_per_frame"] = round(1e3 * cpu / batch, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--mesh", choices=sorted(MESHES), default="hemisphere", help="hemisphere (built here) or synthetic (talkface)"
    )
    parser.add_argument("--no-malloc-tune", action="store_true", help="keep glibc's default malloc thresholds")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[torch.get_num_threads()], help="torch CPU thread counts to run"
    )
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. 'machine under load')")
    args = parser.parse_args()
    tuned = False if args.no_malloc_tune else tune_malloc()
    configs = [("cpu", "torch")]
    if torch.cuda.is_available():
        configs.append(("cuda", "torch"))
        if nvdiffrast_available():
            configs.append(("cuda", "nvdiffrast"))
    screen, _, triangles = MESHES[args.mesh]()
    for device, backend in configs:
        rows = []
        for threads in args.threads if device == "cpu" else [torch.get_num_threads()]:
            torch.set_num_threads(threads)
            for size in (224, 512):
                for batch in (1, 8):
                    row = {"threads": threads, **bench_case(args.mesh, size, batch, device, backend, args.repeats)}
                    print(json.dumps(row))
                    rows.append(row)
        result = {
            "machine": machine_info(),
            "malloc_tuned": tuned,
            "note": args.note,
            "mesh": {"name": args.mesh, "vertices": screen.shape[0], "triangles": len(triangles)},
            "results": rows,
        }
        suffix = "" if args.mesh == "hemisphere" else f"_{args.mesh}"
        name = f"rasterizer_cpu{suffix}.json" if device == "cpu" else f"rasterizer_cuda_{backend}{suffix}.json"
        write_result(RESULTS / name, result)


if __name__ == "__main__":
    main()
