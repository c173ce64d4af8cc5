"""Per-step cost of the shared Trainer against a bare PyTorch loop doing the same optimisation.

    .venv/bin/python benchmarks/bench_train_loop.py [--steps 300] [--hidden 512] [--batch-size 16]

Both loops train the same MLP (dropout, Adam, grad clipping) on the same in-memory data with
shuffling; the Trainer adds its deterministic sampler, per-item seeding, the NaN check (one
sync per step), logging every 50 steps, and fixed costs per `fit` (run directory, tensorboard
writer, final checkpoint). The Trainer runs for `steps` and `2 x steps`: the difference gives its
per-step cost, the remainder its fixed cost. Prints both and writes
benchmarks/results/train_loop_cpu.json with the machine named. The loops alternate `--repeats`
times and the fastest run of each counts, which filters out bursts of load from other jobs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from talkface.train.config import TrainConfig
from talkface.train.task import StepContext, Task
from talkface.train.trainer import Trainer
from talkface.benchmarking import machine_info, write_result
from talkface.face3d.coeffs import N_MOTION

RESULTS = Path(__file__).resolve().parent / "results" / "train_loop_cpu.json"
IN_DIM, OUT_DIM = 256, N_MOTION  # the audio net's FC 256 features -> the motion vector (docs/method.md)


def mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(IN_DIM, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, OUT_DIM))


class Regression(Task):
    def __init__(self, hidden: int):
        self.net = mlp(hidden)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-4)

    def models(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"net": self.optimizer}

    def train_step(self, batch: list[torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        x, y = batch
        loss = nn.functional.mse_loss(ctx.models["net"](x), y)
        ctx.optimize(loss, "net")
        return {"mse": loss}


def bare_loop(dataset: TensorDataset, hidden: int, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    net = mlp(hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    start, step = time.perf_counter(), 0
    while step < steps:
        for x, y in loader:
            loss = nn.functional.mse_loss(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            step += 1
            if step == steps:
                break
    return time.perf_counter() - start


def trainer_loop(dataset: TensorDataset, hidden: int, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    config = TrainConfig(steps=steps, batch_size=batch_size, num_workers=0, grad_clip=1.0, log_every=50,
                         checkpoint_every=steps, device="cpu", amp="none")
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        Trainer(Regression(hidden), dataset, config, run_dir).fit()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4096, IN_DIM, generator=generator)
    dataset = TensorDataset(x, torch.tanh(x[:, :OUT_DIM]))
    torch.set_num_threads(args.threads)
    bare_loop(dataset, args.hidden, 20, args.batch_size)  # warm-up: allocator, kernels
    bare, ours, ours_twice = float("inf"), float("inf"), float("inf")
    for _ in range(args.repeats):
        bare = min(bare, bare_loop(dataset, args.hidden, args.steps, args.batch_size))
        ours = min(ours, trainer_loop(dataset, args.hidden, args.steps, args.batch_size))
        ours_twice = min(ours_twice, trainer_loop(dataset, args.hidden, 2 * args.steps, args.batch_size))
    per_step = (ours_twice - ours) / args.steps
    result = {
        "machine": machine_info(),
        "setup": {"steps": args.steps, "hidden": args.hidden, "batch_size": args.batch_size,
                  "repeats": args.repeats, "best_of_repeats": True},
        "bare_loop_ms_per_step": 1000 * bare / args.steps,
        "trainer_ms_per_step": 1000 * per_step,
        "trainer_overhead_ms_per_step": 1000 * (per_step - bare / args.steps),
        "trainer_fixed_cost_s": ours - per_step * args.steps,
    }
    print(json.dumps(result, indent=2))
    write_result(args.out, result)


if __name__ == "__main__":
    main()
