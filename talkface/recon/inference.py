"""Per-clip 3D reconstruction: an initial estimate per frame, then a joint refinement of the whole clip.

The initial estimate is R-Net's prediction when there are R-Net weights, else the mean face posed to
each frame's landmarks (`posed_mean_face`, a PnP fit): the refinement then fits identity, texture,
lighting and expression from the landmarks and pixels alone ("direct fitting").

The refinement goes beyond the original (which kept each frame's R-Net prediction, so identity
flickered): one identity and one texture for the clip, per-frame expression, pose and lighting,
fitted by Adam through the renderer to the clip's landmarks and pixels, with the R-Net's
regularisers and a temporal smoothness prior on expression and pose. Everything is in the aligned
224 px crop's camera (talkface.recon.alignment); the crop transforms map results back to frames.

Cost: landmarks, regularisers and smoothness use every frame at every step (the 68 keypoints
only, no rendering); the photometric term renders a random subset of frames per step at a reduced
size, an unbiased estimate of its clip mean at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from talkface.face3d import coeffs as layout
from talkface.face3d.camera import Camera, rotation_matrix
from talkface.recon.losses import (
    LossWeights, gamma_loss, landmark_loss, photometric_loss, reflectance_loss, regularization_loss,
)
from talkface.render.rasterize import interpolate
from talkface.render.renderer import render

if TYPE_CHECKING:
    from talkface.face3d.model import MorphableModel
    from talkface.recon.model import ReconNet


@dataclass
class RefineConfig:
    """How the whole-clip refinement runs (also the `refine` section of configs/preprocess.yaml)."""

    enabled: bool = True
    # Adam steps over the whole clip: subtle mouth shapes need ~800, with or without R-Net
    # (benchmarks/bench_recon.py, bench_recon_direct.py)
    steps: int = 800
    lr: float = 0.02  # decays linearly to lr/10 over the steps
    photometric_frames: int = 4  # frames rendered per step for the photometric term (0 = landmarks only)
    photometric_size: int = 112  # side of those renders (the 224 px crops are downsampled to it)
    smooth_expression: float = 1e-3  # weight of mean |exp_t+1 - exp_t|²
    smooth_pose: float = 1.0  # weight of mean |angles_t+1 - angles_t|² + |translation_t+1 - translation_t|²
    seed: int = 0  # which frames the photometric term draws

    def __post_init__(self) -> None:
        if self.steps < 0 or self.photometric_frames < 0 or self.photometric_size < 16 or self.lr <= 0:
            raise ValueError("refine: steps and photometric_frames must be >= 0, photometric_size >= 16, lr > 0")


def crops_to_tensor(crops: np.ndarray | Tensor) -> Tensor:
    """uint8 [T, H, W, 3] (or already float [T, 3, H, W]) -> float32 [T, 3, H, W] in [0, 1]."""
    if isinstance(crops, Tensor) and crops.dtype.is_floating_point:
        return crops.float()
    array = torch.as_tensor(np.asarray(crops))
    return array.permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def predict_coeffs(rnet: "ReconNet", crops: np.ndarray | Tensor, batch_size: int = 32,
                   device: str | torch.device = "cpu") -> Tensor:
    """R-Net coefficients [T, 257] of aligned crops (uint8 [T, 224, 224, 3] or float [T, 3, 224, 224])."""
    rnet = rnet.to(device).eval()
    rows = []
    for start in range(0, len(crops), batch_size):
        rows.append(rnet(crops_to_tensor(crops[start:start + batch_size]).to(device)).float().cpu())
    return torch.cat(rows) if rows else torch.zeros(0, layout.N_COEFFS)


def keypoints_2d(model: "MorphableModel", coeffs: Tensor, camera: Camera) -> Tensor:
    """[B, 257] -> [B, 68, 2]: the model's landmark projection, computed on the 68 keypoints only.

    The same geometry as MorphableModel.forward (shape, R·shape + t, camera), without the other
    vertices, normals or colours: the refinement evaluates it for every frame at every step.
    """
    c = layout.split_coeffs(coeffs)
    ids = model.keypoints
    mean = model.mean_shape[ids]  # [68, 3]
    id_rows = model.id_base.reshape(-1, 3, layout.N_IDENTITY)[ids]  # [68, 3, 80]
    exp_rows = model.exp_base.reshape(-1, 3, layout.N_EXPRESSION)[ids]  # [68, 3, 64]
    shape = mean + torch.einsum("kdi,bi->bkd", id_rows, c.identity) + torch.einsum("kde,be->bkd", exp_rows, c.expression)
    world = shape @ rotation_matrix(c.angles).transpose(1, 2) + c.translation[:, None, :]
    return camera.project(camera.to_camera(world))


class _ClipParameters(torch.nn.Module):
    """The refined unknowns: shared identity and texture, per-frame expression, angles, light, translation."""

    def __init__(self, coeffs: Tensor):
        super().__init__()
        c = layout.split_coeffs(coeffs)
        self.identity = torch.nn.Parameter(c.identity.mean(dim=0, keepdim=True).clone())  # [1, 80]
        self.texture = torch.nn.Parameter(c.texture.mean(dim=0, keepdim=True).clone())  # [1, 80]
        self.expression = torch.nn.Parameter(c.expression.clone())  # [T, 64]
        self.angles = torch.nn.Parameter(c.angles.clone())  # [T, 3]
        self.gamma = torch.nn.Parameter(c.gamma.clone())  # [T, 27]
        self.translation = torch.nn.Parameter(c.translation.clone())  # [T, 3]

    def coeffs(self, frames: Tensor | None = None) -> Tensor:
        """[T, 257] (or the rows `frames`)."""
        pick = (lambda x: x) if frames is None else (lambda x: x[frames])
        count = len(self.expression) if frames is None else len(frames)
        return layout.join_coeffs(self.identity.expand(count, -1), pick(self.expression),
                                  self.texture.expand(count, -1), pick(self.angles), pick(self.gamma),
                                  pick(self.translation))


def common_crop_translation(translation: Tensor, transforms: Tensor, camera: Camera) -> Tensor:
    """[T, 3] translations in each frame's crop camera -> the same head positions in the clip's mean crop.

    transforms [T, 2, 3]: frame -> crop maps q = zoom·p + offset (alignment.crop_transform). Under weak
    perspective a crop zoomed by rho relative to the mean shows the head rho times nearer, and its
    offset shifts the head sideways. The 5-point crop's zoom follows the mouth corners (on a synthetic
    speech clip: 1.3 % std, -0.95 correlated with lip_spread), so smoothing the crop-camera
    translation would make the mouth coefficients absorb that zoom (lip_round r 0.56 instead of 0.95).
    """
    zoom, offset = transforms[:, 0, 0], transforms[:, :, 2]  # [T], [T, 2]
    rho = zoom.mean() / zoom  # crop t -> mean crop zoom
    shift = offset.mean(dim=0) - rho[:, None] * offset  # [T, 2] mean-crop px = rho·(crop px) + shift
    depth = camera.distance - translation[:, 2]
    per_px = depth / (rho * camera.focal)  # model units per mean-crop pixel at the head's depth
    x = translation[:, 0] + (camera.center * (rho - 1) + shift[:, 0]) * per_px
    y = translation[:, 1] + (camera.center * (1 - rho) - shift[:, 1]) * per_px  # image y points down
    return torch.stack([x, y, camera.distance - depth / rho], dim=1)


def _smoothness(values: Tensor) -> Tensor:
    """Mean squared frame-to-frame difference of [T, D] (summed over D)."""
    if len(values) < 2:
        return values.new_zeros(())
    return ((values[1:] - values[:-1]) ** 2).sum(dim=1).mean()


def refine_clip(
    coeffs: Tensor,
    crops: np.ndarray | Tensor | None,
    landmarks: np.ndarray | Tensor,
    model: "MorphableModel",
    config: RefineConfig = RefineConfig(),
    weights: LossWeights = LossWeights(),
    device: str | torch.device = "cpu",
    progress: bool = True,
    transforms: np.ndarray | Tensor | None = None,
) -> Tensor:
    """Fit a clip jointly: coeffs [T, 257] (e.g. R-Net's) -> refined [T, 257] with one identity and texture.

    crops: the aligned 224 px crops (uint8 [T, 224, 224, 3] or float [T, 3, 224, 224]), or None to
    fit the landmarks alone (no photometric term, so no texture or light is fitted);
    landmarks: [T, 68, 2] in crop pixels; transforms: the crops' frame -> crop maps [T, 2, 3], so
    that the pose smoothness compares head positions in one crop (None: the crops are one crop).
    """
    device = torch.device(device)
    model = model.to(device)
    camera = Camera()
    params = _ClipParameters(coeffs.to(device, torch.float32))
    targets = torch.as_tensor(np.asarray(landmarks), dtype=torch.float32, device=device)
    if transforms is not None:
        transforms = torch.as_tensor(np.asarray(transforms), dtype=torch.float32, device=device)
    photo = _PhotometricTerm(crops, model, config, weights, device)
    optimizer = torch.optim.Adam(params.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - 0.9 * s / max(config.steps, 1))
    for _ in tqdm(range(config.steps), desc="refine", unit="step", disable=not progress, leave=False):
        all_coeffs = params.coeffs()  # [T, 257]
        loss = weights.landmark * landmark_loss(keypoints_2d(model, all_coeffs, camera), targets)
        loss = loss + weights.regularization * regularization_loss(all_coeffs, weights)
        loss = loss + weights.gamma * gamma_loss(params.gamma)
        loss = loss + weights.reflectance * reflectance_loss(model.albedo(params.texture), model.skin_mask)
        loss = loss + config.smooth_expression * _smoothness(params.expression)
        translation = params.translation if transforms is None else \
            common_crop_translation(params.translation, transforms, camera)
        loss = loss + config.smooth_pose * (_smoothness(params.angles) + _smoothness(translation))
        loss = loss + photo(params)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return params.coeffs().detach().cpu()


class _PhotometricTerm:
    """The photometric loss of a random subset of frames, rendered at a reduced size."""

    def __init__(self, crops: np.ndarray | Tensor | None, model: "MorphableModel", config: RefineConfig,
                 weights: LossWeights, device: torch.device):
        self.model, self.weight = model, weights.photometric
        self.count = min(config.photometric_frames, len(crops)) if crops is not None and weights.photometric > 0 else 0
        self.camera = Camera().resized(config.photometric_size)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.targets = None
        if self.count:
            size = (config.photometric_size, config.photometric_size)
            chunks = [F.interpolate(crops_to_tensor(crops[i:i + 64]), size=size, mode="bilinear",
                                    antialias=True, align_corners=False) for i in range(0, len(crops), 64)]
            self.targets = torch.cat(chunks).to(device)  # [T, 3, s, s]

    def __call__(self, params: _ClipParameters) -> Tensor:
        if not self.count:
            return params.identity.new_zeros(())
        frames = torch.randperm(len(self.targets), generator=self.generator)[:self.count].to(self.targets.device)
        coeffs = params.coeffs(frames)
        rendered = render(coeffs, self.model, self.camera)
        skin = interpolate(self.model.skin_mask.expand(len(frames), -1)[..., None], rendered.fragments,
                           self.model.triangles).permute(0, 3, 1, 2)
        return self.weight * photometric_loss(rendered.image, self.targets[frames], rendered.mask * skin)


def posed_mean_face(landmarks: np.ndarray | Tensor, model: "MorphableModel", camera: Camera = Camera()) -> Tensor:
    """Crop landmarks [T, 68, 2] -> [T, 257]: the mean face (zero identity, expression, texture and
    light) with each frame's head rotation and translation solved by PnP from its 68 keypoints."""
    points = model.mean_shape[model.keypoints].detach().cpu().double().numpy()  # [68, 3] model space
    matrix = np.array([[camera.focal, 0, camera.center], [0, camera.focal, camera.center], [0, 0, 1]])
    # OpenCV's camera has y down and looks along +z: p_cv = FLIP·(R·p + t) + (0, 0, distance).
    flip = np.diag([1.0, -1.0, -1.0])
    coeffs = torch.zeros(len(landmarks), layout.N_COEFFS)
    for t, target in enumerate(np.asarray(landmarks, dtype=np.float64)):
        ok, rvec, tvec = cv2.solvePnP(points, target, matrix, None, flags=cv2.SOLVEPNP_SQPNP)
        if not ok:  # degenerate landmarks: keep the frontal face at the default distance
            continue
        rotation = flip @ cv2.Rodrigues(rvec)[0]
        translation = flip @ (tvec[:, 0] - [0.0, 0.0, camera.distance])
        coeffs[t, layout.ANGLES] = torch.from_numpy(euler_angles(rotation)).float()
        coeffs[t, layout.TRANSLATION] = torch.from_numpy(translation).float()
    return coeffs


def euler_angles(rotation: np.ndarray) -> np.ndarray:
    """[3, 3] R = Rz·Ry·Rx -> its angles (x, y, z) in radians (face3d.camera.rotation_matrix's inverse)."""
    y = -np.arcsin(np.clip(rotation[2, 0], -1.0, 1.0))
    return np.array([np.arctan2(rotation[2, 1], rotation[2, 2]), y, np.arctan2(rotation[1, 0], rotation[0, 0])])


def fit_clip(
    crops: np.ndarray | Tensor,
    landmarks: np.ndarray | Tensor,
    rnet: "ReconNet | None",
    model: "MorphableModel",
    refine: RefineConfig | None = RefineConfig(),
    weights: LossWeights = LossWeights(),
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
    transforms: np.ndarray | Tensor | None = None,
) -> np.ndarray:
    """Aligned crops + crop landmarks (+ the crop transforms [T, 2, 3]) -> float32 [T, 257] in the 224
    crop's camera: R-Net (or, with `rnet` None, the posed mean face), then the whole-clip refinement.

    Without R-Net the refinement is the only fit of identity, expression, texture and light, so it
    cannot be disabled.
    """
    if rnet is None:
        if refine is None or not refine.enabled or refine.steps == 0:
            raise ValueError("fitting without R-Net needs the whole-clip refinement (refine.enabled, steps > 0)")
        coeffs = posed_mean_face(landmarks, model)
    else:
        coeffs = predict_coeffs(rnet, crops, batch_size, device)
    if refine is not None and refine.enabled and refine.steps > 0:
        coeffs = refine_clip(coeffs, crops, landmarks, model, refine, weights, device, progress, transforms)
    return coeffs.numpy().astype(np.float32)
