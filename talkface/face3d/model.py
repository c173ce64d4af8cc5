"""The parametric face: 257 coefficients -> a lit, posed, projected mesh (Deep3DFaceRecon's BFM model).

Conventions follow Deep3DFaceRecon so that public R-Net coefficients mean the same here
(docs/method.md, "The 3D morphable model"): shape = mean + idBase·id + exBase·exp with the mean recentred on
its centroid; normals from the unrotated shape, then rotated with the head; world = R·shape + t;
camera z <- 10 - z; lighting with the rotated normals in world space.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from talkface.errors import TalkfaceError
from talkface.face3d.bfm import DEFAULT_PATH as BFM_PATH
from talkface.face3d.camera import Camera, rotation_matrix
from talkface.face3d.coeffs import split_coeffs
from talkface.face3d.lighting import shade

log = logging.getLogger(__name__)


@dataclass
class FaceMesh:
    """The mesh of a batch of coefficient rows, ready to render."""

    vertices: Tensor  # [B, N, 3] camera space (rotated, translated, z flipped): depth = vertices[..., 2] > 0
    normals: Tensor  # [B, N, 3] unit, rotated with the head (world axes: +z faces the camera)
    albedo: Tensor  # [B, N, 3] low-frequency PCA texture, in [0, 1] for plausible coefficients
    colors: Tensor  # [B, N, 3] SH-lit albedo
    screen: Tensor  # [B, N, 2] continuous pixel coordinates, x right, y down
    landmarks: Tensor  # [B, 68, 2] screen at the 68 keypoint vertices


class MorphableModel(nn.Module):
    """Linear 3D morphable model; every array is a float32/int64 buffer (moves with .to(device)).

    Indices are 0-based. point_buf [N, K] lists the triangles around each vertex, padded with
    n_triangles (the id of an extra all-zero face normal, so padding drops out of the sums).
    """

    def __init__(
        self,
        mean_shape: np.ndarray,  # [N, 3] model units
        id_base: np.ndarray,  # [3N, 80], xyz interleaved per vertex
        exp_base: np.ndarray,  # [3N, 64]
        mean_tex: np.ndarray,  # [N, 3] 0-255
        tex_base: np.ndarray,  # [3N, 80] 0-255 per unit coefficient
        triangles: np.ndarray,  # [F, 3]
        point_buf: np.ndarray,  # [N, K], padded with F
        keypoints: np.ndarray,  # [68]
        skin_mask: np.ndarray,  # [N]
        front_mask: np.ndarray,  # [M] vertex ids of the inner face (photometric-loss region)
        front_triangles: np.ndarray,  # [F2, 3] triangles of that region, mesh vertex ids
        recenter: bool = True,
    ):
        super().__init__()
        mean_shape = np.asarray(mean_shape, np.float64).reshape(-1, 3)
        if recenter:  # Deep3DFaceRecon recentres the mean only, so rotations pivot about the face
            mean_shape = mean_shape - mean_shape.mean(axis=0, keepdims=True)
        floats = {"mean_shape": mean_shape, "id_base": id_base, "exp_base": exp_base,
                  "mean_tex": np.asarray(mean_tex).reshape(-1, 3), "tex_base": tex_base,
                  "skin_mask": skin_mask}
        ints = {"triangles": triangles, "point_buf": point_buf, "keypoints": keypoints,
                "front_mask": front_mask, "front_triangles": front_triangles}
        for name, value in floats.items():
            self.register_buffer(name, torch.tensor(np.asarray(value), dtype=torch.float32), persistent=False)
        for name, value in ints.items():
            self.register_buffer(name, torch.tensor(np.asarray(value), dtype=torch.int64), persistent=False)

    @property
    def n_vertices(self) -> int:
        return self.mean_shape.shape[0]

    @property
    def n_triangles(self) -> int:
        return self.triangles.shape[0]

    @classmethod
    def from_bfm_arrays(cls, arrays: dict[str, np.ndarray], recenter: bool = True) -> "MorphableModel":
        """Build from canonical BFM-format arrays (bfm.read_bfm: 1-based, tri_mask2 as mesh ids)."""
        return cls(
            mean_shape=arrays["meanshape"].reshape(-1, 3), id_base=arrays["idBase"], exp_base=arrays["exBase"],
            mean_tex=arrays["meantex"].reshape(-1, 3), tex_base=arrays["texBase"],
            triangles=arrays["tri"] - 1, point_buf=arrays["point_buf"] - 1, keypoints=arrays["keypoints"] - 1,
            skin_mask=arrays["skinmask"], front_mask=arrays["frontmask2_idx"] - 1,
            front_triangles=arrays["tri_mask2"] - 1, recenter=recenter,
        )

    def shape(self, identity: Tensor, expression: Tensor) -> Tensor:
        """[B, 80], [B, 64] -> [B, N, 3] model-space vertices."""
        offsets = identity @ self.id_base.T + expression @ self.exp_base.T  # [B, 3N]
        return self.mean_shape + offsets.reshape(identity.shape[0], -1, 3)

    def albedo(self, texture: Tensor) -> Tensor:
        """[B, 80] -> [B, N, 3] albedo, (meantex + texBase·tex) / 255 (not clipped, as in Deep3DFaceRecon)."""
        return (self.mean_tex + (texture @ self.tex_base.T).reshape(texture.shape[0], -1, 3)) / 255.0

    def vertex_normals(self, vertices: Tensor) -> Tensor:
        """[B, N, 3] -> [B, N, 3] unit normals: unit face normals summed over point_buf, normalised."""
        v0, v1, v2 = (vertices[:, self.triangles[:, k]] for k in range(3))
        face = F.normalize(torch.cross(v0 - v1, v1 - v2, dim=-1), dim=-1)  # [B, F, 3]
        face = torch.cat([face, face.new_zeros(face.shape[0], 1, 3)], dim=1)  # padding id F -> zero
        return F.normalize(face[:, self.point_buf].sum(dim=2), dim=-1)

    def forward(self, coeffs: Tensor, camera: Camera = Camera()) -> FaceMesh:
        """[B, 257] coefficients -> FaceMesh."""
        c = split_coeffs(coeffs)
        shape = self.shape(c.identity, c.expression)  # [B, N, 3]
        rotation_t = rotation_matrix(c.angles).transpose(1, 2)  # row vectors: p @ R^T = (R p)^T
        world = shape @ rotation_t + c.translation[:, None, :]
        vertices = camera.to_camera(world)
        screen = camera.project(vertices)
        normals = self.vertex_normals(shape) @ rotation_t
        albedo = self.albedo(c.texture)
        colors = shade(normals, albedo, c.gamma)
        return FaceMesh(vertices, normals, albedo, colors, screen, screen[:, self.keypoints])


SYNTHETIC = "synthetic"
# `morphable_model: auto` in every config: the model the input's coefficients were fitted with when
# it records one (a workspace), else the BFM file when present, else the synthetic model.
AUTO = "auto"


def recorded_morphable_model(manifest: dict) -> str | None:
    """The morphable model a workspace's manifest records its coefficients were fitted with; None if none."""
    model = (manifest.get("config") or {}).get("morphable_model")
    return None if model is None else str(model)


def resolve_morphable_model(source: str | Path = AUTO, recorded: str | None = None) -> str:
    """The model `source` names: "auto" -> `recorded` (the model a workspace records its coefficients
    were fitted with) when given, else the BFM file (checkpoints/BFM/BFM_model_front.mat) when present,
    else "synthetic"; anything else unchanged. Workspaces record the resolved name, so that every later
    stage of a person uses the model its coefficients were fitted with."""
    if str(source) != AUTO:
        return str(source)
    if recorded is not None:
        return str(recorded)
    return _say_auto_choice(str(BFM_PATH) if BFM_PATH.is_file() else SYNTHETIC)


@lru_cache(maxsize=None)
def _say_auto_choice(choice: str) -> str:
    """Log the auto choice once per process (and per choice)."""
    if choice == SYNTHETIC:
        log.info("morphable model auto: no %s, using the built-in synthetic model", BFM_PATH)
    else:
        log.info("morphable model auto: using %s", choice)
    return choice


def load_morphable_model(source: str | Path = AUTO) -> MorphableModel:
    """A model from a BFM_model_front.mat, "synthetic[:<n_vertices>]" for the synthetic model (seed 0),
    or "auto" (resolve_morphable_model).

    A missing file raises MissingWeightsError naming it and how to get it.
    """
    from talkface.face3d import bfm, synthetic

    text = resolve_morphable_model(source)
    if text == SYNTHETIC or text.startswith(SYNTHETIC + ":"):
        size = text[len(SYNTHETIC) + 1:] or "4000"
        if not size.isdigit():
            raise TalkfaceError(
                f"bad morphable model source {text!r}: expected a .mat path, 'auto', 'synthetic' or "
                "'synthetic:<n_vertices>'"
            )
        return MorphableModel.from_bfm_arrays(synthetic.cached_synthetic_model_arrays(int(size)))
    return MorphableModel.from_bfm_arrays(bfm.read_bfm(text))
