"""Make tests/data/original/ from the public reference code (run once; the tests never need the reference).

    python tests/data/make_original_fixtures.py \
        --talkingface /work/scratch/reference/Audio-driven-TalkingFace-HeadPose --talkingface-commit SHA \
        --deep3d /work/scratch/reference/Deep3DFaceRecon_pytorch --deep3d-commit SHA \
        [--files-out /work/scratch/original_files]

The reference checkouts stay outside this repository; this script imports their modules from there
and copies none of their code. It writes:

- manifest.json: the commits, and per original file its key names, shapes and aliases (the
  original saves some modules twice under `.body.*` names: the same tensor, two keys);
- reference.npz: the reference's outputs for tests/original_fixture.py `fixture_inputs`, with the
  files filled by `original_fixture.fill_state` (random weights at small sizes: generator ngf 4,
  discriminator ndf 8, a 64-slot memory; the audio network and ResNet-18 have fixed sizes);
- crops.npz: Deep3DFaceRecon's `align_img` crops of three faces (skimage's astronaut with dlib's
  68 landmarks, and two seeded noise frames with the same landmarks moved and scaled, one of them
  upscaled and partly outside its frame), with the landmarks in the reference's convention.

With --files-out the stand-in files are also saved in the original's layout (N_net_G.pth,
N_net_D.pth, N_net_mem.pth, atcnet_lstm_general.pth) for trying `talkface convert original`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import torch

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent))

import original_fixture as fx  # noqa: E402

from talkface import tvcompat  # noqa: E402,F401  (CPU torch: before torchvision)
import torchvision  # noqa: E402

MEMORY_SLOTS = 64
NGF, NDF = 4, 8


def load_module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def reference_modules(root: Path) -> dict[str, torch.nn.Module]:
    """The original's four modules at small sizes, built by its own code."""
    sys.path.insert(0, str(root / "Audio" / "code"))  # its models.py imports `ops` and `convolutional_rnn`
    audio = load_module("reference_audio_models", root / "Audio" / "code" / "models.py")
    networks = load_module("reference_networks", root / "render-to-video" / "models" / "networks.py")
    memory = load_module("reference_memory", root / "render-to-video" / "models" / "memory_network.py")
    # The memory's ResNet-18 asks torchvision for ImageNet weights (a download); random ones do here.
    memory.models = types.SimpleNamespace(resnet18=lambda pretrained=False: torchvision.models.resnet18(weights=None))
    return {
        "audio": audio.ATC_net(70),  # 64 expression + 6 pose (the original's --pose 1)
        "G": networks.unet_generator_ac_adain(9, 3, NGF, 512),
        "D": networks.NLayerDiscriminator(12, NDF, 3, torch.nn.BatchNorm2d),  # memory_seq: norm 'batch'
        "mem": memory.Memory_Network(MEMORY_SLOTS, 512, 512, top_k=16, alpha=0.3),
    }


FILE_NAMES = {"audio": "atcnet_lstm_general.pth", "G": "0_net_G.pth", "D": "0_net_D.pth", "mem": "0_net_mem.pth"}


def manifest_entry(kind: str, module: torch.nn.Module) -> dict:
    state = module.state_dict(keep_vars=True)
    tensors, aliases, seen = {}, {}, {}
    for name, tensor in state.items():
        pointer = tensor.data_ptr()
        if pointer in seen and tensor.numel():
            aliases[name] = seen[pointer]
            continue
        seen[pointer] = name
        tensors[name] = [list(tensor.shape), str(tensor.dtype)]
    if kind == "mem":
        for name, tensor in (("mem_key", module.spatial_key), ("mem_value", module.color_value),
                             ("mem_age", module.age), ("mem_index", module.top_index)):
            tensors[name] = [list(tensor.shape), str(tensor.dtype)]
    return {"file": FILE_NAMES[kind], "tensors": tensors, "aliases": aliases}


def load_into(kind: str, module: torch.nn.Module, saved) -> None:
    if kind == "mem":  # as the original's BaseModel.load_networks does
        module.load_state_dict(saved["mem_model"])
        module.spatial_key, module.color_value = saved["mem_key"], saved["mem_value"]
        module.age, module.top_index = saved["mem_age"], saved["mem_index"]
    else:
        module.load_state_dict(saved)
    module.eval()


def reference_outputs(modules: dict[str, torch.nn.Module]) -> dict[str, np.ndarray]:
    inputs = {k: torch.from_numpy(v) for k, v in fx.fixture_inputs().items()}
    original_cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # ATC_net.forward puts its LSTM state on CUDA
    try:
        with torch.no_grad():
            motion = modules["audio"](inputs["mfcc"])
            color, mask = modules["G"](inputs["window"], inputs["identity"])
            # memory_seq_model.forward: blend with the window's last frame (t)
            image = mask * inputs["window"][:, -3:] + (1 - mask) * color
            patches = modules["D"](inputs["pair"])
            query = modules["mem"](torch.from_numpy(fx.imagenet_normalised(fx.fixture_inputs()["render"])))
            value, _, index = modules["mem"].topk_feature(query, 5)
    finally:
        torch.Tensor.cuda = original_cuda
    return {"motion": motion.numpy(), "image": image.numpy(), "mask": mask.numpy(), "patches": patches.numpy(),
            "query": query.numpy(), "top5_index": index.numpy(), "top1_value": value[:, 0].numpy()}


def dlib_landmarks(image: np.ndarray) -> np.ndarray:
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    models = Path(spec.submodule_search_locations[0]) / "models"
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    box = max(detector(image, 1), key=lambda rect: rect.area())  # the astronaut's face; her badge is found too
    shape = predictor(image, box)
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def crop_cases() -> tuple[list[np.ndarray], np.ndarray]:
    """Frames and reference-convention landmarks [3, 68, 2]: the same ones the crop test rebuilds."""
    frames = fx.crop_frames()
    landmarks = dlib_landmarks(frames[0])
    moved = [landmarks, landmarks * 2.3 + np.array([420.0, 35.0]), landmarks * 0.55 - np.array([70.0, 40.0])]
    return frames, np.stack(moved).astype(np.float32)


def reference_crops(deep3d: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    if not hasattr(np, "VisibleDeprecationWarning"):  # numpy 2 moved it; util/preprocess.py names it at import
        np.VisibleDeprecationWarning = np.exceptions.VisibleDeprecationWarning
    preprocess = load_module("reference_preprocess", deep3d / "util" / "preprocess.py")
    # numpy 2 refuses float() of the (1,)-shaped entries POS returns; the same numbers as 0-d entries
    pos = preprocess.POS
    preprocess.POS = lambda xp, x: (lambda t, s: (t.reshape(2), s))(*pos(xp, x))
    load_mats = load_module("reference_load_mats", deep3d / "util" / "load_mats.py")
    lm3d = load_mats.load_lm3d(str(deep3d / "BFM"))
    frames, landmarks = crop_cases()
    crops, params = [], []
    for frame, points in zip(frames, landmarks):
        height = frame.shape[0]
        flipped = points.copy()
        flipped[:, 1] = height - 1 - flipped[:, 1]  # test.py read_data: y up
        trans, crop, _, _ = preprocess.align_img(Image.fromarray(frame), flipped, lm3d)
        crops.append(np.asarray(crop))
        params.append(trans.astype(np.float64).ravel())
    return {"landmarks": landmarks, "crops": np.stack(crops), "trans_params": np.stack(params)}


def compact_json(value: dict) -> str:
    """Indented JSON with each innermost list (a shape) and each [shape, dtype] pair on one line."""
    text = json.dumps(value, indent=1)
    for _ in range(2):  # shapes, then the pairs holding them
        text = re.sub(r"\[\s+((?:[^\[\]]|\[[^\[\]]*\])*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    return text + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--talkingface", type=Path, required=True)
    parser.add_argument("--talkingface-commit", required=True)
    parser.add_argument("--deep3d", type=Path, required=True)
    parser.add_argument("--deep3d-commit", required=True)
    parser.add_argument("--files-out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    modules = reference_modules(args.talkingface)
    manifest = {
        "reference": {"yiranran/Audio-driven-TalkingFace-HeadPose": args.talkingface_commit,
                      "sicxu/Deep3DFaceRecon_pytorch": args.deep3d_commit},
        "sizes": {"ngf": NGF, "ndf": NDF, "memory_slots": MEMORY_SLOTS},
        "files": {kind: manifest_entry(kind, module) for kind, module in modules.items()},
    }
    fx.DATA.mkdir(parents=True, exist_ok=True)
    files = fx.original_files(manifest)
    for kind, module in modules.items():
        load_into(kind, module, files[manifest["files"][kind]["file"]])
    np.savez_compressed(fx.DATA / "reference.npz", **reference_outputs(modules))
    np.savez_compressed(fx.DATA / "crops.npz", **reference_crops(args.deep3d))
    fx.MANIFEST.write_text(compact_json(manifest))
    if args.files_out is not None:
        for kind, path in fx.write_original_files(args.files_out, manifest).items():
            print(f"wrote {path}")
    print(f"wrote {fx.DATA}")


if __name__ == "__main__":
    main()
