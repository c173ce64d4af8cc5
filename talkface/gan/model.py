"""What a memory-GAN checkpoint holds, how it is built and rebuilt, and its test-time identity.

A checkpoint (talkface.train) holds these models, each with its constructor arguments:

    generator      MemoryGenerator (generator.py)
    keys           KeyEncoder: render -> memory query (identity.py)
    memory         Memory: keys, values, ages as buffers (memory.py)
    discriminator  PatchDiscriminator (only training needs it)
    identity       LearnedIdentityEncoder, when the identity encoder is "learned"; a frozen
                   ArcFace is not saved (it is reloaded from its file: model_args names it)

Training (train.py): the generator's identity vector is the identity encoder on another real
frame of the clip; the memory learns key(render) -> that identity (threshold triplet loss on the
key encoder, then the update rule). Test time (`IdentityStream`): the identity is the memory's
top-1 value for the render's key, read every 25th frame and blended in between.

Dropout at test time: off. pix2pix keeps dropout on at test time as its only noise source; for
video that noise differs from frame to frame and shows as flicker, and one output per input is
what chunked inference and resume-equality tests need. So the generator runs in eval mode:
deterministic, with dropout's expected activation (nn.Dropout rescales while training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from talkface.errors import ConfigError, TalkfaceError
from talkface.gan.discriminator import PatchDiscriminator
from talkface.gan.generator import MemoryGenerator, from_gan, to_gan
from talkface.gan.identity import IDENTITY_DIM, KeyEncoder, LearnedIdentityEncoder, make_identity_encoder
from talkface.gan.memory import READ_EVERY, Memory
from talkface.train.checkpoint import read_checkpoint

GENERATOR, KEYS, MEMORY, DISCRIMINATOR, IDENTITY = "generator", "keys", "memory", "discriminator", "identity"


def default_levels(window_size: int) -> int:
    """log2(window size): the U-Net's innermost level is 1x1 (8 levels at 256 px, docs/method.md)."""
    levels = round(math.log2(window_size))
    if 2**levels != window_size:
        raise ConfigError(f"window size {window_size} is not a power of two; set the generator's levels explicitly")
    return levels


@dataclass
class GanNetworks:
    """The GAN's modules and the arguments that rebuild each (`args`, saved as model_args)."""

    generator: MemoryGenerator
    identity: nn.Module
    keys: KeyEncoder
    memory: Memory
    discriminator: PatchDiscriminator | None
    args: dict[str, dict[str, Any]]

    @property
    def learned_identity(self) -> bool:
        return self.args[IDENTITY]["name"] == "learned"

    def models(self) -> dict[str, nn.Module]:
        """The modules a checkpoint saves (see the module docstring)."""
        models: dict[str, nn.Module] = {GENERATOR: self.generator, KEYS: self.keys, MEMORY: self.memory}
        if self.discriminator is not None:
            models[DISCRIMINATOR] = self.discriminator
        if self.learned_identity:
            models[IDENTITY] = self.identity
        return models


def build_networks(
    ngf: int = 64,
    levels: int = 8,
    mapping: str = "light",
    use_dropout: bool = True,
    identity_encoder: str = "learned",
    identity_weights: str | None = None,
    key_weights: str | None = None,
    train_key_backbone: bool = True,
    memory_size: int = 30000,
    ndf: int = 64,
    discriminator_layers: int = 3,
    discriminator_norm: str = "batch",
) -> GanNetworks:
    """Fresh networks. `identity_weights`: ArcFace backbone.pth (arcface only); `key_weights`: torchvision's
    ImageNet ResNet-18 file (the key encoder's backbone is then frozen), None = trained from scratch, or,
    with `train_key_backbone` False, kept at its random initialisation (only the key projection trains)."""
    args = {
        GENERATOR: {"in_channels": 9, "out_channels": 3, "ngf": ngf, "levels": levels,
                    "identity_dim": IDENTITY_DIM, "mapping": mapping, "use_dropout": use_dropout},
        KEYS: {"dim": IDENTITY_DIM, "frozen_backbone": key_weights is not None or not train_key_backbone},
        MEMORY: {"size": memory_size, "key_dim": IDENTITY_DIM, "value_dim": IDENTITY_DIM},
        DISCRIMINATOR: {"in_channels": 12, "ndf": ndf, "layers": discriminator_layers, "norm": discriminator_norm},
        IDENTITY: {"name": identity_encoder, "weights": identity_weights},
    }
    identity = make_identity_encoder(identity_encoder, identity_weights)  # fails first on missing weights
    keys = KeyEncoder(key_weights, IDENTITY_DIM)
    if not train_key_backbone:
        freeze_key_backbone(keys)
    return GanNetworks(
        generator=MemoryGenerator(**args[GENERATOR]),
        identity=identity,
        keys=keys,
        memory=Memory(**args[MEMORY]),
        discriminator=PatchDiscriminator(**args[DISCRIMINATOR]),
        args=args,
    )


def rebuild_networks(checkpoint: str | Path, discriminator: bool = True) -> GanNetworks:
    """The networks a GAN checkpoint was trained with, their weights and memory loaded.

    An ArcFace identity encoder is reloaded from the file the checkpoint names, and only when
    `discriminator` is asked for (training); inference needs neither.
    """
    saved = read_checkpoint(checkpoint)
    args = saved["model_args"]
    needed = [GENERATOR, KEYS, MEMORY] + ([DISCRIMINATOR] if discriminator else [])
    missing = [name for name in needed if name not in args or name not in saved["models"]]
    if missing:
        raise TalkfaceError(f"is not a GAN checkpoint (no {', '.join(missing)}; models: "
                            f"{sorted(saved['models'])})", checkpoint)
    identity_args = args.get(IDENTITY, {"name": "learned", "weights": None})
    learned = identity_args["name"] == "learned"
    keys = KeyEncoder(None, args[KEYS]["dim"])
    if args[KEYS]["frozen_backbone"]:
        freeze_key_backbone(keys)
    networks = GanNetworks(
        generator=MemoryGenerator(**args[GENERATOR]),
        identity=LearnedIdentityEncoder() if learned or not discriminator
        else make_identity_encoder(identity_args["name"], identity_args["weights"]),
        keys=keys,
        memory=Memory(**args[MEMORY]),
        discriminator=PatchDiscriminator(**args[DISCRIMINATOR]) if discriminator else None,
        args={name: dict(value) for name, value in args.items()},
    )
    for name, module in networks.models().items():
        if name == IDENTITY and not (learned and discriminator):
            continue  # inference does not run the identity encoder
        _load_exact(module, saved["models"].get(name), name, checkpoint)
    return networks


def _load_exact(module: nn.Module, state: dict[str, torch.Tensor] | None, name: str, path: str | Path) -> None:
    if state is None:
        raise TalkfaceError(f"holds no '{name}' weights", path)
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise TalkfaceError(f"'{name}' weights do not match (missing {result.missing_keys[:3]}, "
                            f"unexpected {result.unexpected_keys[:3]})", path)


def freeze_key_backbone(keys: KeyEncoder) -> None:
    """Freeze the key encoder's ResNet-18 (an ImageNet backbone stays fixed, as in the original)."""
    keys.frozen = True
    keys.backbone.requires_grad_(False)
    keys.train(keys.training)


class IdentityStream:
    """Test-time identity vectors for consecutive frames, from memory reads every `every` frames.

    The memory is read at frames 0, every, 2 every, ...; frame t in [k every, (k+1) every) takes
    the blend of the reads at (k-1) every and k every, moving linearly from the first to the
    second (the first period holds read 0). This is Memory.read_sequence's interpolation delayed
    by one period so that it needs no future frames: a stream of chunks gives the same identities
    whatever the chunk size, and the identity still changes smoothly (continuous, piecewise linear).
    """

    def __init__(self, memory: Memory, keys: KeyEncoder, every: int = READ_EVERY):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.memory, self.keys, self.every = memory, keys, every
        self.reset()

    def reset(self) -> None:
        """Start a new video: the next frame is frame 0."""
        self.frame = 0
        self.previous: torch.Tensor | None = None  # [value_dim] read at the last anchor but one
        self.current: torch.Tensor | None = None  # [value_dim] read at the last anchor

    @torch.no_grad()
    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        """Windows [B, 9, S, S] in [0, 1] of the next B frames -> identities [B, value_dim]."""
        frames = torch.arange(self.frame, self.frame + len(windows))
        anchors = (frames % self.every == 0).nonzero()[:, 0]  # positions in this chunk
        values = iter(self.memory.read(self.keys(windows[anchors, :3]).float())) if len(anchors) else iter(())
        identities = []
        for t in frames.tolist():
            if t % self.every == 0:
                value = next(values)
                self.previous = value if self.current is None else self.current
                self.current = value
            weight = (t % self.every) / self.every
            identities.append(torch.lerp(self.previous, self.current, weight))  # type: ignore[arg-type]
        self.frame += len(windows)
        return F.normalize(torch.stack(identities), dim=1)


@torch.no_grad()
def enhance_windows(generator: nn.Module, identities: IdentityStream,
                    windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows [B, 9, S, S] in [0, 1] (the next frames of a stream) -> (frames [B, 3, S, S] in [0, 1], masks [B, 1, S, S])."""
    identity = identities(windows)
    out = generator(to_gan(windows), identity.to(windows.dtype))
    return from_gan(out.image.float()), out.mask.float()
