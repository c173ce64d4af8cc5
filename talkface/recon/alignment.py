"""5-point face alignment for the R-Net (docs/method.md, "Reconstruction": alignment); the per-clip window is window.py.

Pixel convention (docs/formats.md): continuous coordinates, x right, y down; pixel (row i, column j)
covers [j, j+1) x [i, i+1) and its centre is (j + 0.5, i + 0.5). Every transform here is a 2x3
matrix acting on such coordinates, `q = M[:, :2] @ p + M[:, 2]`, so landmarks, crops and later
renders map back to the frame exactly. OpenCV puts pixel centres on integers; `warp_image` converts.

The aligned crop: fit the 5 image points to a 3D 5-point template by least squares (a 2x4 affine
camera, "POS"), take the template origin's image position t and the scale s (mean row norm of the
affine's 2x3 part), then map the frame by q = (102 / s) (p - t) + (112, 112) into 224 x 224.

Two crop modes (`CROP_MODES`): "exact" is that continuous map; "deep3d" is the crop of
Deep3DFaceRecon_pytorch's util/preprocess.py `align_img`, which the public R-Net (`epoch_20.pth`)
was trained on. It takes landmarks with pixel centres on integers and y flipped (H - 1 - y),
truncates the rescaled frame size and the crop corner to integers, resizes the whole frame with
PIL's bicubic filter and cuts 224 x 224 out of it (zeros outside): its crops sit 0.1-1.5 crop px
from the exact map. "deep3d" repeats those steps, so its crops equal the reference's pixel for
pixel, and returns the map they really are (a slightly anisotropic zoom and an integer shift).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

TARGET_SIZE = 224  # R-Net input side (docs/method.md)
CROP_MODES = ("exact", "deep3d")
RESCALE_FACTOR = 102.0  # crop pixels per template unit (docs/method.md)

# The standard 5 points of Deep3DFaceRecon: BFM/similarity_Lm3D_all.mat (68 3D landmarks of the
# mean face) reduced to 5 by util/load_mats.py `load_lm3d` (eye centre = midpoint of the two eye
# corners, nose tip, mouth corners), in BFM units (decimetres), x towards image right, y up,
# z towards the camera. Rows: eye 36-41, eye 42-47, nose tip 30, mouth corners 48 and 54.
# The same numbers are hard-coded in several public ports of that code; we take them as data.
TEMPLATE_5PT = np.array(
    [
        [-0.31148657, 0.29036078, 0.13377953],
        [0.30979887, 0.28972036, 0.13179526],
        [0.0032535, -0.04617932, 0.55244243],
        [-0.25216928, -0.38133916, 0.22405732],
        [0.2484662, -0.38128236, 0.22235769],
    ]
)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """[..., 68, 2] -> [..., 5, 2]: eye centres, nose tip (30), mouth corners (48, 54).

    An eye centre is the midpoint of its two corners (36/39, 42/45), as Deep3DFaceRecon's
    `extract_5p` and the template above: the corners do not move when the eye blinks, the lids do.
    """
    landmarks = np.asarray(landmarks)
    eye_a = landmarks[..., [36, 39], :].mean(axis=-2)
    eye_b = landmarks[..., [42, 45], :].mean(axis=-2)
    return np.stack([eye_a, eye_b, landmarks[..., 30, :], landmarks[..., 48, :], landmarks[..., 54, :]], axis=-2)


def pos_fit(points: np.ndarray, template: np.ndarray = TEMPLATE_5PT) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares affine camera from template [N, 3] to image points [..., N, 2].

    Returns t [..., 2], the image position of the template origin, and s [...], the mean norm of
    the two rows of the fitted 2x3 linear part (pixels per template unit). The image y axis points
    down and the template's up: the affine absorbs the flip, and neither t nor s depend on it.
    """
    design = np.concatenate([template, np.ones((len(template), 1))], axis=1)  # [N, 4]
    solution = np.linalg.pinv(design) @ np.asarray(points, np.float64)  # [..., 4, 2]: columns x, y
    translation = solution[..., 3, :]
    scale = np.linalg.norm(solution[..., :3, :], axis=-2).mean(axis=-1)
    return translation, scale


def crop_transform(
    translation: np.ndarray, scale: np.ndarray, target_size: int = TARGET_SIZE, rescale_factor: float = RESCALE_FACTOR
) -> np.ndarray:
    """[..., 2], [...] -> [..., 2, 3]: frame pixels -> crop pixels, t to the crop centre, zoom 102/s."""
    zoom = rescale_factor / np.asarray(scale, np.float64)
    matrix = np.zeros(np.shape(zoom) + (2, 3))
    matrix[..., 0, 0] = matrix[..., 1, 1] = zoom
    matrix[..., :, 2] = target_size / 2 - zoom[..., None] * translation
    return matrix


def alignment_transform(landmarks: np.ndarray, target_size: int = TARGET_SIZE, rescale_factor: float = RESCALE_FACTOR) -> np.ndarray:
    """Landmarks [..., 68, 2] -> the R-Net crop transform [..., 2, 3]."""
    return crop_transform(*pos_fit(five_points(landmarks)), target_size, rescale_factor)


def deep3d_crop(
    landmarks: np.ndarray, frame_size: tuple[int, int], target_size: int = TARGET_SIZE,
    rescale_factor: float = RESCALE_FACTOR,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Landmarks [68, 2] (our convention) and (height, width) -> ((w, h) of the resized frame, (left, up) of the crop).

    The integers of `align_img`: its landmarks are ours - 0.5 with y flipped, which moves the fitted
    template origin the same way and leaves the scale alone (the fit is affine-equivariant).
    """
    height, width = frame_size
    translation, scale = pos_fit(five_points(landmarks))
    zoom = rescale_factor / scale
    t_x, t_up = translation[0] - 0.5, height - 0.5 - translation[1]  # their x, their y (up)
    w, h = int(width * zoom), int(height * zoom)  # truncated, as its astype(np.int32)
    left = int(np.trunc(w / 2 - target_size / 2 + (t_x - width / 2) * zoom))
    up = int(np.trunc(h / 2 - target_size / 2 + (height / 2 - t_up) * zoom))
    return (w, h), (left, up)


def _deep3d_align(image: np.ndarray, landmarks: np.ndarray, target_size: int,
                  rescale_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [H, W, 3] -> (crop uint8 [size, size, 3], transform [2, 3]) exactly as Deep3DFaceRecon's align_img."""
    from PIL import Image

    if not (image.ndim == 3 and image.dtype == np.uint8 and image.shape[2] == 3):
        raise ValueError(f"the deep3d crop takes uint8 [H, W, 3] frames, got {image.dtype} {list(image.shape)}")
    height, width = image.shape[:2]
    (w, h), (left, up) = deep3d_crop(landmarks, (height, width), target_size, rescale_factor)
    resized = Image.fromarray(image).resize((w, h), resample=Image.Resampling.BICUBIC)
    crop = np.asarray(resized.crop((left, up, left + target_size, up + target_size)))
    # PIL maps pixel centres (i + 0.5) of the resized frame to (i + 0.5) W / w of the frame
    matrix = np.array([[w / width, 0.0, -left], [0.0, h / height, -up]])
    return crop, matrix


def invert_transform(matrix: np.ndarray) -> np.ndarray:
    """Inverse of 2x3 affine transforms [..., 2, 3]."""
    linear = np.linalg.inv(matrix[..., :2])
    return np.concatenate([linear, -linear @ matrix[..., 2:]], axis=-1)


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points [..., N, 2] through transforms [..., 2, 3]."""
    return points @ np.swapaxes(matrix[..., :2], -1, -2) + matrix[..., None, :, 2]


def _warp_hwc(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Resample an [H, W, C] image through `matrix` (continuous coordinates) into [size, size, C].

    Only the region the crop needs is blurred and warped. When shrinking, a Gaussian pre-blur of
    sigma (1/zoom - 1)/2 (skimage's `rescale` anti-aliasing default) stands in for the
    anti-aliased resize of the original pipeline; the warp itself is the only resampling.
    """
    height, width = image.shape[:2]
    zoom = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    sigma = max(0.0, (1.0 / zoom - 1.0) / 2.0)
    margin = int(np.ceil(3 * sigma)) + 2
    corners = apply_transform(invert_transform(matrix), np.array([[0.0, 0.0], [size, 0], [0, size], [size, size]]))
    x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int) - margin, 0, [width, height])
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int) + margin, 0, [width, height])
    if x1 <= x0 or y1 <= y0:  # the crop lies wholly outside the frame
        return np.zeros((size, size) + image.shape[2:], image.dtype)
    region = image[y0:y1, x0:x1]
    if sigma > 0:
        region = cv2.GaussianBlur(region, (0, 0), sigma)
    local = matrix.copy()
    local[:, 2] += matrix[:, :2] @ [x0, y0]  # region pixel p is frame pixel p + (x0, y0)
    local[:, 2] += local[:, :2] @ [0.5, 0.5] - 0.5  # OpenCV indexes pixel centres from 0
    return cv2.warpAffine(region, local, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)


def warp_image(image: np.ndarray | torch.Tensor, matrix: np.ndarray, size: int) -> np.ndarray | torch.Tensor:
    """Warp uint8 [H, W, 3] or float [3, H, W] (numpy or torch) into the same layout at size x size.

    Outside the frame is black. Bicubic, like the original's crop; floats are clipped to [0, 1].
    """
    if isinstance(image, torch.Tensor):
        return torch.from_numpy(warp_image(image.detach().cpu().numpy(), matrix, size)).to(image.device)
    if image.ndim == 3 and image.dtype == np.uint8 and image.shape[2] == 3:
        return _warp_hwc(image, matrix, size)
    if image.ndim == 3 and image.dtype.kind == "f" and image.shape[0] == 3:
        hwc = np.ascontiguousarray(image.transpose(1, 2, 0), dtype=np.float32)
        return np.ascontiguousarray(_warp_hwc(hwc, matrix, size).clip(0, 1).transpose(2, 0, 1))
    raise ValueError(f"expected an image uint8 [H, W, 3] or float [3, H, W], got {image.dtype} {list(image.shape)}")


@dataclass(frozen=True)
class AlignedFace:
    """An R-Net input crop, its landmarks, and how it maps to the frame it came from."""

    crop: np.ndarray | torch.Tensor  # uint8 [224, 224, 3] or float [3, 224, 224], as the frame was
    landmarks: np.ndarray  # float32 [68, 2], crop pixels
    transform: np.ndarray  # float64 [2, 3], frame pixels -> crop pixels

    @property
    def inverse(self) -> np.ndarray:
        """float64 [2, 3], crop pixels -> frame pixels."""
        return invert_transform(self.transform)


@dataclass(frozen=True)
class AlignedFaces:
    """A batch of AlignedFace, stacked along a first dimension T."""

    crops: np.ndarray | torch.Tensor  # uint8 [T, 224, 224, 3] or float [T, 3, 224, 224]
    landmarks: np.ndarray  # float32 [T, 68, 2]
    transforms: np.ndarray  # float64 [T, 2, 3]

    @property
    def inverses(self) -> np.ndarray:
        return invert_transform(self.transforms)


def align_face(
    image: np.ndarray | torch.Tensor,
    landmarks: np.ndarray,
    target_size: int = TARGET_SIZE,
    rescale_factor: float = RESCALE_FACTOR,
    mode: str = "exact",
) -> AlignedFace:
    """Crop one frame (uint8 [H, W, 3] or float [3, H, W]) for the R-Net from its landmarks [68, 2].

    mode "exact" or "deep3d" (module docstring; "deep3d" takes uint8 [H, W, 3] frames only).
    """
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (68, 2) or not np.isfinite(landmarks).all():
        raise ValueError(f"expected finite landmarks [68, 2], got {list(landmarks.shape)}")
    if mode == "deep3d":
        crop, matrix = _deep3d_align(np.asarray(image), landmarks, target_size, rescale_factor)
    elif mode == "exact":
        matrix = alignment_transform(landmarks, target_size, rescale_factor)
        crop = warp_image(image, matrix, target_size)
    else:
        raise ValueError(f"unknown crop mode {mode!r}; valid: {', '.join(CROP_MODES)}")
    return AlignedFace(crop, apply_transform(matrix, landmarks).astype(np.float32), matrix)


def align_faces(
    images: np.ndarray | torch.Tensor,
    landmarks: np.ndarray,
    target_size: int = TARGET_SIZE,
    rescale_factor: float = RESCALE_FACTOR,
    mode: str = "exact",
) -> AlignedFaces:
    """Batched `align_face`: images uint8 [T, H, W, 3] or float [T, 3, H, W], landmarks [T, 68, 2]."""
    if len(images) != len(landmarks):
        raise ValueError(f"got {len(images)} images and {len(landmarks)} landmark sets")
    faces = [align_face(image, points, target_size, rescale_factor, mode) for image, points in zip(images, landmarks)]
    stack = torch.stack if isinstance(images, torch.Tensor) else np.stack
    return AlignedFaces(
        stack([face.crop for face in faces]),
        np.stack([face.landmarks for face in faces]),
        np.stack([face.transform for face in faces]),
    )


