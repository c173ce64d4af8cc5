"""The original project's released general models -> talkface checkpoints that fine-tuning starts from.

Yi et al.'s code (github.com/yiranran/Audio-driven-TalkingFace-HeadPose) released its LRW-trained
general models as plain PyTorch state dicts:

    Audio/model/atcnet_lstm_general.pth            ATC_net (Audio/code/models.py), 70 outputs
    render-to-video/checkpoints/memory_seq_p2p/
      0_net_G.pth      unet_generator_ac_adain (render-to-video/models/networks.py)
      0_net_D.pth      NLayerDiscriminator, 12 input channels, BatchNorm
      0_net_mem.pth    {mem_model: Memory_Network's state, mem_key, mem_value, mem_age, mem_index}

The architectures equal talkface's (motion/network.py with its default sizes; gan/generator.py
with mapping "original"; gan/discriminator.py; gan/identity.py KeyEncoder + gan/memory.py), so
the conversion is renaming plus four things a rename would get silently wrong:

- the 3-frame window: the original stacks (t-2, t-1, t), talkface (t, t-1, t-2) (gan/generator.py),
  so the input channels of the generator's and the discriminator's first convolution are reversed
  in blocks of 3 (the discriminator's last 3, the generated image, stay);
- the original registers each encoder/decoder convolution twice (`eN.conv` and `eN.body.1`, the
  same tensor) and gives every AdaIN dummy running statistics; the memory's ResNet-18 appears
  under four names: `.body.*` copies and AdaIN running stats are dropped;
- the memory file holds the key encoder (ResNet-18 without its fc + Linear) and the buffers; keys,
  values and ages become talkface's Memory buffers, `mem_index` (which training frame wrote a
  slot) has no counterpart and is dropped; never-written slots keep the original's tiny values,
  which match no unit identity (> 0.98) either, so reads and updates behave as the original's;
- the audio network was trained on translation z - 0.5: talkface's default target mean
  (motion/network.py TRANSLATION_Z_OFFSET) decodes that shift, so its statistics stay default.

The generator was trained on ArcFace features of an insightface MXNet model that talkface does
not have; `identity_encoder` chooses what fine-tuning feeds it instead (gan/identity.py): "learned"
(starts untrained, needs no file) or "arcface" (an arcface_torch backbone.pth). Either way the
identity space differs from the original's, and fine-tuning adapts the mapping to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from talkface.atomic import atomic_path
from talkface.errors import MissingWeightsError, TalkfaceError
from talkface.face3d.coeffs import N_EXPRESSION, N_POSE
from talkface.gan.discriminator import PatchDiscriminator
from talkface.gan.generator import FRAME_CHANNELS, MemoryGenerator
from talkface.gan.identity import IDENTITY_DIM, ENCODERS, KeyEncoder, make_identity_encoder
from talkface.gan.memory import Memory
from talkface.gan.model import DISCRIMINATOR, GENERATOR, IDENTITY, KEYS, MEMORY, freeze_key_backbone
from talkface.motion.model import CALIBRATION_KEYS, RHYTHM_KEYS, VISEME_KEYS
from talkface.motion.network import AudioToMotion
from talkface.provenance import provenance
from talkface.train.checkpoint import FORMAT, load_strict, load_weight_file, strip_wrapper_prefixes
from talkface.keyed import file_fingerprint

ORIGINAL = "https://github.com/yiranran/Audio-driven-TalkingFace-HeadPose"
WHERE = (f"the original project's pre-trained models are linked from its README ({ORIGINAL}, "
         "'Download pre-trained models')")
WINDOW_FRAMES = 3  # the generator sees frames t, t-1, t-2 (docs/method.md)
MOTION_FILE, GAN_FILE = "motion_lrw.pt", "gan_lrw.pt"  # the names configs/*_finetune.yaml point to
MEMORY_BUFFERS = {"mem_key": "keys", "mem_value": "values", "mem_age": "ages"}
# AudioToMotion's buffers the original lacks, kept at their defaults: the target statistics (the
# default mean is the z - 0.5 shift), and the per-person pose calibration, rhythm and viseme mouth (off)
TALKFACE_ONLY_BUFFERS = ("target_mean", "target_std", *CALIBRATION_KEYS, *RHYTHM_KEYS, *VISEME_KEYS)
KINDS = {
    "audio": "audio network (ATC_net, e.g. Audio/model/atcnet_lstm_general.pth)",
    "G": "generator (N_net_G.pth)",
    "D": "discriminator (N_net_D.pth)",
    "mem": "memory (N_net_mem.pth)",
}
NOT_ORIGINAL = ("is not one of the original project's files: its audio network (ATC_net), "
                "N_net_G.pth, N_net_D.pth or N_net_mem.pth")


@dataclass(frozen=True)
class OriginalFile:
    """One of the original's files: its kind (a KINDS key), its contents and where it came from."""

    kind: str
    contents: dict[str, Any]
    source: dict[str, Any]  # {path, size, mtime, sha256}


def read_original(path: str | Path) -> OriginalFile:
    """Load a file (weights_only) and tell which of the original's files it is; one-line error otherwise."""
    try:
        contents = load_weight_file(path, "original project", WHERE)
    except MissingWeightsError:
        raise
    except TalkfaceError:  # not a pickle weights_only can read: say what was expected, not torch's paragraph
        raise TalkfaceError(f"{NOT_ORIGINAL} (not a PyTorch state dict)", path) from None
    kind = _kind(contents)
    if kind is None:
        raise TalkfaceError(NOT_ORIGINAL, path)
    if kind != "mem":
        contents = strip_wrapper_prefixes(contents)  # DataParallel saves have `module.` names
    return OriginalFile(kind, contents, {**file_fingerprint(path), "kind": KINDS[kind]})


def _kind(contents: dict[str, Any]) -> str | None:
    if {"mem_model", *MEMORY_BUFFERS} <= contents.keys():
        return "mem"
    keys = strip_wrapper_prefixes(contents).keys()
    if "audio_eocder.0.0.weight" in keys and "lstm_fc.0.weight" in keys:
        return "audio"
    if "e1.weight" in keys and "mlp.model.0.weight" in keys and "d8.img_reg.0.weight" in keys:
        return "G"
    if "model.0.weight" in keys and all(key.startswith("model.") for key in keys):
        return "D"
    return None


def reverse_window(weight: torch.Tensor, frames: int = WINDOW_FRAMES) -> torch.Tensor:
    """A first convolution's weight [out, C, k, k]: the first `frames` x 3 input channels reversed in blocks of 3.

    Its own inverse: applied twice it gives the weight back.
    """
    width = frames * FRAME_CHANNELS
    blocks = weight[:, :width].reshape(weight.shape[0], frames, FRAME_CHANNELS, *weight.shape[2:])
    return torch.cat([blocks.flip(1).reshape_as(weight[:, :width]), weight[:, width:]], dim=1)


def _rename(state: dict[str, torch.Tensor], rules: list[tuple[str, str]], drop: str | None) -> dict[str, torch.Tensor]:
    """Keys matching `drop` (a regex) are dropped; each other key takes the first rule (regex, replacement) that matches."""
    out = {}
    for key, value in state.items():
        if drop is not None and re.search(drop, key):
            continue
        for pattern, replacement in rules:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, replacement, key)] = value
                break
        else:
            out[key] = value  # left as it is: the strict load below names it
    return out




def _shape(state: dict[str, torch.Tensor], key: str, path: str) -> torch.Size:
    if key not in state:
        raise TalkfaceError(f"has no {key}; is it one of the original's files?", path)
    return state[key].shape


def convert_audio(original: OriginalFile) -> AudioToMotion:
    """ATC_net (70 outputs) -> AudioToMotion; its default target statistics undo the z - 0.5 training shift."""
    state, path = original.contents, original.source["path"]
    out_dim = _shape(state, "lstm_fc.0.weight", path)[0]
    net = AudioToMotion()
    if out_dim != net.head.out_features:
        raise TalkfaceError(f"is an ATC_net with {out_dim} outputs; talkface needs the pose variant "
                            f"({net.head.out_features} = {N_EXPRESSION} expression + {N_POSE} pose, the original's --pose 1)", path)
    rules = [(r"audio_eocder\.(.*)", r"encoder.\1"), (r"audio_eocder_fc\.(.*)", r"fc.\1"),
             (r"lstm_fc\.0\.(.*)", r"head.\1")]
    renamed = _rename(state, rules, drop=None)
    defaults = {key: value for key, value in net.state_dict().items() if key in TALKFACE_ONLY_BUFFERS}
    load_strict(net, {**renamed, **defaults}, "original's ATC_net", path)
    return net


def convert_generator(original: OriginalFile) -> tuple[MemoryGenerator, dict[str, Any]]:
    """unet_generator_ac_adain -> MemoryGenerator (mapping "original", 8 levels) and its constructor arguments."""
    state, path = original.contents, original.source["path"]
    ngf, in_channels = _shape(state, "e1.weight", path)[:2]
    identity_dim = _shape(state, "mlp.model.0.weight", path)[1]
    if in_channels != WINDOW_FRAMES * FRAME_CHANNELS or identity_dim != IDENTITY_DIM:
        raise TalkfaceError(f"is a generator for {in_channels} input channels and {identity_dim}-d identities; "
                            f"talkface's takes a {WINDOW_FRAMES}-frame window (9) and {IDENTITY_DIM}-d", path)
    args = {"in_channels": int(in_channels), "out_channels": int(_shape(state, "d8.img_reg.0.weight", path)[0]),
            "ngf": int(ngf), "levels": 8, "identity_dim": IDENTITY_DIM, "mapping": "original", "use_dropout": True}
    rules = [(r"e1\.(weight|bias)", r"encoder.0.conv.\1"),
             *[(rf"e{k}\.conv\.(.*)", rf"encoder.{k - 1}.conv.\1") for k in range(2, 9)],
             *[(rf"d{k}\.deconv\.(.*)", rf"decoder.{k - 1}.conv.\1") for k in range(1, 8)],
             (r"d8\.deconv\.(.*)", r"final.conv.\1"), (r"d8\.img_reg\.0\.(.*)", r"color_head.\1"),
             (r"d8\.attention_reg\.0\.(.*)", r"mask_head.\1"), (r"mlp\.model\.(.*)", r"mapping.\1")]
    renamed = _rename(state, rules, drop=r"\.body\.")  # conv copies and AdaIN dummy running stats
    renamed["encoder.0.conv.weight"] = reverse_window(renamed["encoder.0.conv.weight"])
    generator = MemoryGenerator(**args)
    load_strict(generator, renamed, "original's unet_generator_ac_adain (at 8 levels, ngf read from e1)", path)
    return generator, args


def convert_discriminator(original: OriginalFile) -> tuple[PatchDiscriminator, dict[str, Any]]:
    """NLayerDiscriminator -> PatchDiscriminator and its constructor arguments."""
    state, path = original.contents, original.source["path"]
    ndf, in_channels = _shape(state, "model.0.weight", path)[:2]
    convolutions = sum(1 for key, value in state.items() if key.endswith(".weight") and value.dim() == 4)
    norm = "batch" if any(key.endswith("running_mean") for key in state) else "instance"
    if in_channels != WINDOW_FRAMES * FRAME_CHANNELS + FRAME_CHANNELS:
        raise TalkfaceError(f"is a discriminator for {in_channels} input channels; talkface's sees the "
                            f"window and the image ({WINDOW_FRAMES * FRAME_CHANNELS + FRAME_CHANNELS})", path)
    args = {"in_channels": int(in_channels), "ndf": int(ndf), "layers": convolutions - 2, "norm": norm}
    renamed = _rename(state, [(r"model\.(.*)", r"net.\1")], drop=None)
    renamed["net.0.weight"] = reverse_window(renamed["net.0.weight"])
    discriminator = PatchDiscriminator(**args)
    load_strict(discriminator, renamed, "original's NLayerDiscriminator", path)
    return discriminator, args


def convert_memory(original: OriginalFile) -> tuple[KeyEncoder, Memory, dict[str, Any]]:
    """Memory_Network file -> (frozen key encoder, Memory, the memory's constructor arguments)."""
    contents, path = original.contents, original.source["path"]
    keys = KeyEncoder(None, IDENTITY_DIM)
    freeze_key_backbone(keys)  # the original's ResNet-18 is fixed ImageNet weights
    rules = [(r"ResNet18\.model\.(.*)", r"backbone.\1"), (r"Linear\.(.*)", r"project.\1")]
    # ResNet18.body.* and body.* are the same modules again; the ResNet's fc is unused
    state = _rename(strip_wrapper_prefixes(contents["mem_model"]), rules,
                    drop=r"^(ResNet18\.body\.|body\.|ResNet18\.model\.fc\.)")
    load_strict(keys, state, "original's Memory_Network key encoder (ResNet-18 + Linear)", path)
    size, key_dim = contents["mem_key"].shape
    args = {"size": int(size), "key_dim": int(key_dim), "value_dim": int(contents["mem_value"].shape[1])}
    memory = Memory(**args)
    buffers = {ours: contents[theirs].float().reshape(getattr(memory, ours).shape)
               for theirs, ours in MEMORY_BUFFERS.items()}
    load_strict(memory, buffers, "original's memory buffers", path)
    return keys, memory, args


def convert_original(
    paths: list[str | Path],
    out_dir: str | Path = "checkpoints/general",
    identity_encoder: str = "learned",
    identity_weights: str | Path | None = None,
) -> list[Path]:
    """Convert the original's files (any order) into `out_dir`/motion_lrw.pt and/or gan_lrw.pt; the written paths.

    The audio network alone gives the motion checkpoint; the GAN needs the generator, the
    discriminator and the memory together. Each checkpoint records its source files and their sha256.
    """
    if identity_encoder not in ENCODERS:
        raise TalkfaceError(f"unknown identity encoder {identity_encoder!r}; valid: {', '.join(ENCODERS)}")
    files: dict[str, OriginalFile] = {}
    for path in paths:
        original = read_original(path)
        if original.kind in files:
            raise TalkfaceError(f"two {KINDS[original.kind]} files given: {files[original.kind].source['path']} "
                                f"and {original.source['path']}")
        files[original.kind] = original
    gan_kinds = [kind for kind in ("G", "D", "mem") if kind in files]
    if gan_kinds and len(gan_kinds) < 3:
        missing = [KINDS[kind] for kind in ("G", "D", "mem") if kind not in files]
        raise TalkfaceError(f"the GAN needs the original's generator, discriminator and memory; missing: "
                            f"{', '.join(missing)}")
    written = []
    out_dir = Path(out_dir)
    if "audio" in files:
        net = convert_audio(files["audio"])
        written.append(_save(out_dir / MOTION_FILE, {"motion": net.state_dict()},
                             {"motion": net.constructor_args()}, [files["audio"]]))
    if gan_kinds:
        written.append(_save_gan(out_dir / GAN_FILE, files, identity_encoder, identity_weights))
    if not written:
        raise TalkfaceError("no files given")
    return written


def _save_gan(path: Path, files: dict[str, OriginalFile], identity_encoder: str,
              identity_weights: str | Path | None) -> Path:
    identity = make_identity_encoder(identity_encoder, identity_weights)  # an ArcFace file must load, first
    generator, generator_args = convert_generator(files["G"])
    discriminator, discriminator_args = convert_discriminator(files["D"])
    keys, memory, memory_args = convert_memory(files["mem"])
    models = {GENERATOR: generator.state_dict(), KEYS: keys.state_dict(), MEMORY: memory.state_dict(),
              DISCRIMINATOR: discriminator.state_dict()}
    if identity_encoder == "learned":
        models[IDENTITY] = identity.state_dict()  # untrained: fine-tuning trains it with the GAN
    weights = None if identity_weights is None else str(Path(identity_weights).resolve())
    if identity_encoder == "arcface" and weights is None:
        from talkface.arcface import ARCFACE_WEIGHTS

        weights = str(ARCFACE_WEIGHTS.resolve())
    args = {GENERATOR: generator_args, KEYS: {"dim": IDENTITY_DIM, "frozen_backbone": True}, MEMORY: memory_args,
            DISCRIMINATOR: discriminator_args, IDENTITY: {"name": identity_encoder, "weights": weights}}
    return _save(path, models, args, [files[kind] for kind in ("G", "D", "mem")])


def _save(path: Path, models: dict[str, Any], model_args: dict[str, Any], sources: list[OriginalFile]) -> Path:
    """A talkface checkpoint (train/checkpoint.py format) of converted weights at step 0, written atomically."""
    record = provenance(converted_from=[original.source for original in sources], original_project=ORIGINAL)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "step": 0, "models": models, "model_args": model_args,
                    "provenance": record}, tmp)
    return path
