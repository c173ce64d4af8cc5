"""Running a trained memory GAN on a stream of composited-render windows.

    enhancer = load_enhancer("runs/.../checkpoints/step_018000.pt")
    for chunk in animate(...):                    # background/animation.py
        frames, masks = enhancer.enhance(chunk.gan_input)
    enhancer.reset()                              # before the next video

Frames are processed in batches of `batch_size` (bf16 autocast on CUDA, float32 on CPU). The
identity comes from the memory (model.IdentityStream), read every 25th frame of the stream and
blended in between; the stream position is the enhancer's state, so a video enhanced in chunks of
any size gives the same frames as in one call.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from talkface.errors import MissingWeightsError
from talkface.gan.model import IdentityStream, enhance_windows, rebuild_networks
from talkface.train.distributed import resolve_device

GAN_SOURCE = "train one with `talkface gan finetune WORKSPACE` (after `talkface gan pretrain`)"


class FrameEnhancer:
    """Generator + key encoder + memory of one checkpoint, in eval mode (no dropout: see model.py)."""

    def __init__(self, generator: torch.nn.Module, identities: IdentityStream, device: torch.device,
                 batch_size: int = 16, channels_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.generator = generator
        self.identities = identities
        self.device = device
        self.batch_size = batch_size
        self.channels_last = channels_last

    def reset(self) -> None:
        """Start a new video (the memory read schedule restarts at frame 0)."""
        self.identities.reset()

    @torch.no_grad()
    def enhance(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next frames' windows [B, 9, S, S] in [0, 1] -> (frames [B, 3, S, S] in [0, 1], masks [B, 1, S, S]).

        Outputs are float32 on the windows' device.
        """
        if windows.ndim != 4 or windows.shape[1] != 9:
            raise ValueError(f"expected windows [B, 9, S, S], got {list(windows.shape)}")
        frames, masks = [], []
        for start in range(0, len(windows), self.batch_size):
            batch = windows[start:start + self.batch_size].to(self.device, torch.float32)
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                frame, mask = enhance_windows(self.generator, self.identities, batch)
            frames.append(frame.to(windows.device))
            masks.append(mask.to(windows.device))
        if not frames:
            size = windows.shape[2:]
            return windows.new_zeros(0, 3, *size), windows.new_zeros(0, 1, *size)
        return torch.cat(frames), torch.cat(masks)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def load_enhancer(checkpoint: str | Path, device: str | torch.device = "auto", batch_size: int = 16,
                  channels_last: bool = False, compile: bool = False) -> FrameEnhancer:
    """A FrameEnhancer from a GAN checkpoint (pretrained or fine-tuned); a missing file names it."""
    path = Path(checkpoint)
    if not path.is_file():
        raise MissingWeightsError(path, "memory GAN", GAN_SOURCE)
    target = resolve_device(device)
    networks = rebuild_networks(path, discriminator=False)
    generator = networks.generator.to(target).eval()
    if channels_last:
        generator = generator.to(memory_format=torch.channels_last)
    keys, memory = networks.keys.to(target).eval(), networks.memory.to(target).eval()
    runner: torch.nn.Module = torch.compile(generator) if compile else generator  # type: ignore[assignment]
    return FrameEnhancer(runner, IdentityStream(memory, keys), target, batch_size, channels_last)
