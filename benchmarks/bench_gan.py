"""Memory-GAN generator speed at 256 px and parameter counts, for both identity mappings.

    .venv/bin/python benchmarks/bench_gan.py [--batches 1 4] [--repeats 3]

CPU: inference (eval, no grad) frames/s at batch 1 and 4. CUDA, when present: bf16 autocast at
batch 16 (--channels-last optional), inference and one generator training step (forward +
backward). Prints and writes benchmarks/results/gan_cpu.json (gan_cuda.json on CUDA) with the
machine named.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from talkface.gan.generator import MAPPINGS, MemoryGenerator
from talkface.benchmarking import machine_info, median_seconds, write_result

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = 256


def parameter_counts(mapping: str) -> dict[str, int]:
    with torch.device("meta"):  # no memory, exact counts
        net = MemoryGenerator(mapping=mapping)
    mapping_params = sum(p.numel() for p in net.mapping.parameters())
    total = sum(p.numel() for p in net.parameters())
    return {"total": total, "mapping": mapping_params, "unet_and_heads": total - mapping_params}


def inputs(batch: int, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    window = torch.rand(batch, 9, SIZE, SIZE, device=device) * 2 - 1
    if channels_last:
        window = window.contiguous(memory_format=torch.channels_last)
    return window, F.normalize(torch.randn(batch, 512, device=device), dim=1)


def time_inference(net: MemoryGenerator, batch: int, repeats: int, device: torch.device,
                   autocast: contextlib.AbstractContextManager, channels_last: bool, sync: Callable[[], None]) -> float:
    window, identity = inputs(batch, device, channels_last)

    def run() -> None:
        with torch.no_grad(), autocast:
            net(window, identity)

    return batch / median_seconds(run, repeats, sync)


def time_train_step(net: MemoryGenerator, batch: int, repeats: int, device: torch.device,
                    autocast: contextlib.AbstractContextManager, channels_last: bool, sync: Callable[[], None]) -> float:
    window, identity = inputs(batch, device, channels_last)
    target = torch.rand(batch, 3, SIZE, SIZE, device=device) * 2 - 1

    def run() -> None:
        with autocast:
            out = net(window, identity)
            loss = (out.image.float() - target).abs().mean() + out.mask.float().mean()
        loss.backward()
        net.zero_grad(set_to_none=True)

    return batch / median_seconds(run, repeats, sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help="batch sizes (default: 1 4 on CPU, 16 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true", help="CUDA: channels_last memory format")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    batches = args.batches or ([16] if cuda else [1, 4])
    channels_last = cuda and args.channels_last
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    result: dict = {
        "benchmark": f"MemoryGenerator at {SIZE} px (ngf 64, 8 levels), frames per second",
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "precision": "bf16 autocast" if cuda else "float32",
        "channels_last": channels_last,
        "repeats": args.repeats,
        "parameters": {mapping: parameter_counts(mapping) for mapping in MAPPINGS},
        "inference_frames_per_s": {},
        "train_step_frames_per_s": {},
    }
    torch.manual_seed(0)
    for mapping in MAPPINGS:
        net = MemoryGenerator(mapping=mapping).to(device)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        for batch in batches:
            key = f"{mapping}/batch{batch}"
            fps = time_inference(net.eval(), batch, args.repeats, device, autocast(), channels_last, sync)
            result["inference_frames_per_s"][key] = fps
            print(f"inference  {key:22s} {fps:8.2f} frames/s")
            if cuda:
                fps = time_train_step(net.train(), batch, args.repeats, device, autocast(), channels_last, sync)
                result["train_step_frames_per_s"][key] = fps
                print(f"train step {key:22s} {fps:8.2f} frames/s")
        del net
    if not cuda:
        result["train_step_frames_per_s"] = "skipped: measured on CUDA only"
        result["cuda"] = "skipped: no CUDA device"
    result["machine"] = machine_info()
    for mapping, counts in result["parameters"].items():
        print(f"parameters {mapping:9s} total {counts['total'] / 1e6:7.1f}M, mapping {counts['mapping'] / 1e6:7.1f}M")
    print(f"on {result['machine']['cpu']}, {os.cpu_count()} cores, load {result['machine']['load_average_1m']:.1f}")
    out = args.out or RESULTS / ("gan_cuda.json" if cuda else "gan_cpu.json")
    write_result(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
