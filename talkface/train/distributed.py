"""One process or many under `torchrun`: which device, which rank, and the few collectives we need."""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from talkface.errors import TalkfaceError


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: rank 0 of 1 when it runs alone."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


@dataclass(frozen=True)
class DistEnv(Ranks):
    """This process's place in the job and the device it runs on."""

    device: torch.device


def torchrun_ranks() -> Ranks:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them: the one place they are read."""
    return Ranks(rank=int(os.environ.get("RANK", "0")), world_size=int(os.environ.get("WORLD_SIZE", "1")),
                 local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def setup_distributed(device: str = "auto") -> DistEnv:
    """Take torchrun's ranks and join the process group (gloo on CPU, nccl on CUDA).

    A process group that already exists is reused; one created here is destroyed at exit.
    """
    ranks = torchrun_ranks()
    resolved = resolve_device(device, ranks.local_rank)
    if ranks.distributed and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
        atexit.register(_destroy)
    return DistEnv(rank=ranks.rank, world_size=ranks.world_size, local_rank=ranks.local_rank, device=resolved)


def resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' (or a torch.device, e.g. one this returned) -> the device to run on.

    'auto' and 'cuda' take this process's GPU (its local rank under torchrun); 'cuda:N' names one.
    """
    name = str(device)
    if name == "cpu":
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind not in ("auto", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise TalkfaceError(f"unknown device {name!r} (valid: auto, cpu, cuda, cuda:N)")
    if not torch.cuda.is_available():
        if kind == "cuda":
            raise TalkfaceError(f"device {name!r} was requested but no CUDA device is available")
        return torch.device("cpu")
    visible = torch.cuda.device_count()
    if index and int(index) >= visible:
        raise TalkfaceError(f"device {name!r}: only {visible} GPU(s) visible")
    if not index and local_rank >= visible:
        raise TalkfaceError(
            f"local rank {local_rank} has no GPU ({visible} visible); "
            "start at most one process per GPU"
        )
    return torch.device("cuda", int(index) if index else local_rank)


def wrap_trainable(model: nn.Module, env: DistEnv) -> nn.Module:
    """DistributedDataParallel around a model with trainable parameters when running distributed."""
    if not env.distributed or not any(p.requires_grad for p in model.parameters()):
        return model
    device_ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_(tensor: torch.Tensor, env: DistEnv, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce ('sum' or 'max'); a no-op in a single process."""
    if env.distributed:
        dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
    return tensor


def gather_objects(value: Any, env: DistEnv) -> list[Any]:
    """Every rank's `value`, in rank order (picklable in-memory values only)."""
    if not env.distributed:
        return [value]
    gathered: list[Any] = [None] * env.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
