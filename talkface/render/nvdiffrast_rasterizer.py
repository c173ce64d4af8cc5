"""CUDA rasterizer backend on nvdiffrast (imported lazily: it exists only on CUDA machines).

nvdiffrast decides coverage and the depth test in exact fixed-point arithmetic on vertices snapped
to 1/16 px, so on a 224 px face ~2 % of the pixel centres, those nearest an edge, land in a
neighbouring triangle (emulated on the CPU: tests/test_render.py). We take its triangle ids and
recompute the barycentrics and depth with the torch backend's differentiable formula
(`barycentrics`). Why not nvdiffrast's own (u, v) gradients: one backward for both backends
(tested by gradcheck on CPU, where nvdiffrast cannot run), identical barycentric semantics (our
corner order, camera-space depth rather than z/w) and the cost is one gather over covered pixels.

One difference remains: a triangle with a corner at depth <= 0 (behind the camera) is dropped by
the torch backend but clipped by nvdiffrast. A face in front of the camera never has one.
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor

from talkface.errors import TalkfaceError
from talkface.render.torch_rasterizer import barycentrics

_contexts: dict[torch.device, object] = {}
_lock = threading.Lock()


def rasterize_nvdiffrast(
    screen: Tensor, depth: Tensor, triangles: Tensor, image_size: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """Same contract as `rasterize_torch`: triangle_id [B,H,W], bary [B,H,W,3], depth [B,H,W]."""
    raw = raster_output(screen.detach(), depth.detach(), triangles, image_size)
    triangle_id = raw[..., 3].round().long() - 1  # nvdiffrast stores triangle_id + 1, 0 = empty
    bary, zbuf = barycentrics(screen, depth, triangles, triangle_id)
    return triangle_id, bary, zbuf


def raster_output(screen: Tensor, depth: Tensor, triangles: Tensor, image_size: tuple[int, int]) -> Tensor:
    """nvdiffrast's raw output [B,H,W,4] = (u, v, z/w, triangle_id + 1); bary (u, v, 1-u-v) for corners (0, 1, 2)."""
    import nvdiffrast.torch as dr

    height, width = image_size
    # Clip space: pixel (x, y) -> NDC (2x/W - 1, 2y/H - 1). nvdiffrast puts image row 0 at
    # y_ndc = -1, so y-down pixel rows map directly, and pixel centres land on its sample points.
    # w = depth gives perspective-correct barycentrics; z_ndc is any monotone map of depth into
    # (-1, 1): the usual near/far one with planes just outside this batch's depth range.
    positive = depth[depth > 0]
    near = 0.5 * float(positive.min()) if positive.numel() else 1.0
    far = 2.0 * float(positive.max()) if positive.numel() else 2.0
    w = depth.float()
    x = (2.0 * screen[..., 0].float() / width - 1.0) * w
    y = (2.0 * screen[..., 1].float() / height - 1.0) * w
    z = ((far + near) * w - 2.0 * far * near) / (far - near)  # z_ndc · w
    clip = torch.stack([x, y, z, w], -1).contiguous()  # [B,N,4]
    raw, _ = dr.rasterize(_context(screen.device), clip, triangles.to(torch.int32).contiguous(), (height, width))
    return raw


def _context(device: torch.device) -> object:
    """One RasterizeCudaContext per device (creating one costs a CUDA context setup)."""
    import nvdiffrast.torch as dr

    with _lock:
        if device not in _contexts:
            if device.type != "cuda":
                raise TalkfaceError(f"nvdiffrast needs CUDA tensors, got tensors on {device}")
            _contexts[device] = dr.RasterizeCudaContext(device=device)
        return _contexts[device]
