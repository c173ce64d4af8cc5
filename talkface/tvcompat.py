"""Make `import torchvision` work on the CPU build of torch.

The PyPI torchvision 0.28 wheel is a CUDA build. On CPU torch its compiled ops library fails to
load, and torchvision then registers fake kernels for `torchvision::nms` / `qnms`, which raises
"operator torchvision::nms does not exist" at import. Declaring the
two schemas first lets the import finish; the model definitions we use (ResNets) need no custom
ops. Import this module before torchvision, anywhere in the package: `from talkface import tvcompat`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch


def _torchvision_ops_load() -> bool:
    """Whether torchvision's compiled ops library loads against this torch (true on GPU installs)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for candidate in Path(list(spec.submodule_search_locations)[0]).glob("_C*.so"):
        try:
            torch.ops.load_library(str(candidate))
            return True
        except (OSError, RuntimeError):
            return False
    return False


def _declare_missing_ops() -> None:
    try:
        torch._C._get_schema("torchvision::nms", "")
        return  # already declared (this module ran before, or the real library loaded)
    except RuntimeError:
        pass
    if _torchvision_ops_load():
        return
    library = torch.library.Library("torchvision", "DEF")  # noqa: F841 - kept alive below
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARIES.append(library)


_LIBRARIES: list[torch.library.Library] = []  # a Library's definitions live as long as the object
_declare_missing_ops()
