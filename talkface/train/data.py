"""Data order as a pure function of (seed, epoch), so a resumed run sees the batches it would have.

Each epoch is a permutation drawn from a generator seeded by (seed, epoch), plus one seed per
item. A global batch is `batch_size x world_size` consecutive items of that permutation; process
`rank` takes its contiguous slice. Incomplete global batches are dropped, so every process runs
the same number of steps. Step `s` is batch `s % batches_per_epoch` of epoch
`s // batches_per_epoch`, which lets a resumed run start mid-epoch without loading the skipped
items. The per-item seed reseeds torch, numpy and python before the dataset's `__getitem__`, so
random augmentation is reproducible too, whichever worker or process loads the item.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from talkface.errors import TalkfaceError
from talkface.train.rng import preserved_rng


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator seeded by (seed, epoch) through numpy's SeedSequence (stable across versions)."""
    mixed = int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(mixed)


class EpochBatchSampler:
    """Yields this process's batches of (item index, item seed) for one epoch, from a start batch."""

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.batches_per_epoch = num_items // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise TalkfaceError(
                f"the dataset has {num_items} items, fewer than one global batch "
                f"(batch_size {batch_size} x {world_size} processes)"
            )
        self.epoch = 0
        self.start_batch = 0

    def set_position(self, epoch: int, start_batch: int) -> None:
        """The next iteration yields epoch `epoch` from its batch `start_batch` on."""
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = epoch_generator(self.seed, self.epoch)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        item_seeds = torch.randint(0, 2**62, (self.num_items,), generator=generator).tolist()
        global_batch = self.batch_size * self.world_size
        for batch in range(self.start_batch, self.batches_per_epoch):
            first = batch * global_batch + self.rank * self.batch_size
            yield list(zip(order[first:first + self.batch_size], item_seeds[first:first + self.batch_size]))


class SeededItems(Dataset):
    """`dataset` indexed by (index, seed): the global generators are seeded per item.

    In the main process (num_workers=0) the training generators are restored afterwards, so data
    loading never shifts the dropout masks the model sees.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        """A whole batch (the DataLoader's batched fetch): the training RNG is saved once, not per item."""
        context = preserved_rng() if get_worker_info() is None else contextlib.nullcontext()
        with context:
            items = []
            for index, seed in keys:
                _seed_host(seed)
                items.append(self.dataset[index])
            return items


def _seed_host(seed: int) -> None:
    # CPU generators only: torch.manual_seed would also reseed CUDA, which the main process
    # uses for dropout on the GPU.
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested dict/list/tuple) batch to `device`, asynchronously when pinned."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(value, device) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def held_out_split(frames: int, train_frames: int, held_out: int, min_train: int) -> tuple[slice, slice]:
    """(training frames, held-out frames) of one clip: at most its first `train_frames`, before its last `held_out`.

    Fine-tuning on a person trains on the clip's head and validates on its tail, never trained on;
    the head must keep at least `min_train` frames.
    """
    train_end = min(train_frames, frames - held_out)
    if train_end < min_train:
        raise TalkfaceError(f"the clip has {frames} frames: too few for {held_out} held-out frames "
                            f"and at least {min_train} training frames")
    return slice(0, train_end), slice(frames - held_out, frames)


def fixed_keys(count: int, num_items: int) -> list[tuple[int, int]]:
    """Keys of the fixed items rendered for image logs: the first `count` items, seed = index."""
    return [(index, index) for index in range(min(count, num_items))]
