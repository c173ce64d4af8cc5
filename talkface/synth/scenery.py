"""The 2D layers of a "real" frame around and inside the rendered face (numpy + OpenCV).

Back to front: background (a wall texture drifting slowly), neck, shoulders, hair behind the head,
mouth interior (seen through the mesh's open lips), the face itself (rendered elsewhere), then
the hair in front of the forehead and temples, and the eyes. Head-attached layers are painted
once per subject as "sprites" in a reference canvas around the canonical 224 px frontal face and
warped into each frame by the 2D affine that best maps the reference landmarks onto the frame's.
Colours are float32 RGB in [0, 1]; images are [H, W, 3]; sprites are premultiplied RGBA.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Points that move with the head but not with expression (no mouth, jaw tip, brows or eyelids).
RIGID_POINTS = [0, 1, 2, 14, 15, 16, 27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45]
SUBPIXEL = 16  # OpenCV drawing with shift=4: coordinates in 1/16 px


@dataclass(frozen=True)
class Look:
    """Per-subject colours and shapes of everything outside the skin."""

    hair_colour: tuple[float, float, float]
    hair_volume: float  # skull half-width over face half-width
    hair_top: float  # hair thickness above the face, in eye distances
    hair_length: float  # how far side hair falls below the eyes, in eye distances
    hairline: float  # hairline height above the brows, in eye distances
    iris_colour: tuple[float, float, float]
    shirt_colour: tuple[float, float, float]
    wall_colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    drift: float  # background drift amplitude, in fractions of the frame size
    drift_period: float  # seconds per drift cycle


@dataclass(frozen=True)
class Canvas:
    """The reference canvas: canonical 224 px coordinates scaled by `scale` and shifted by `pad`."""

    scale: float
    pad: float  # canonical px of margin on each side
    size: int  # canvas side in canvas px

    @classmethod
    def around_face(cls, scale: float, pad: float = 112.0) -> "Canvas":
        return cls(scale, pad, int(round((224 + 2 * pad) * scale)))

    def from_canonical(self) -> np.ndarray:
        """2x3 map from canonical continuous px to canvas continuous px."""
        s, t = self.scale, self.pad * self.scale
        return np.array([[s, 0, t], [0, s, t]], np.float64)

    def to_canvas(self, points: np.ndarray) -> np.ndarray:
        """Canonical continuous px [K, 2] -> canvas continuous px."""
        return (points + self.pad) * self.scale

    def frame_warp(self, affine: np.ndarray) -> np.ndarray:
        """2x3 map from canvas continuous px to frame continuous px, given canonical->frame `affine`."""
        to_canonical = np.linalg.inv(np.vstack([self.from_canonical(), [0, 0, 1]]))
        return (np.vstack([affine[:2], [0, 0, 1]]) @ to_canonical)[:2]


def fit_affine(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 affine mapping source [K, 2] points onto target [K, 2]."""
    design = np.concatenate([source, np.ones((len(source), 1))], 1)  # [K, 3]
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)  # [3, 2]
    return solution.T.astype(np.float64)


def warp_sprite(sprite: np.ndarray, warp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp a premultiplied RGBA sprite [h, w, 4] by a continuous-px 2x3 `warp` into (H, W)."""
    return cv2.warpAffine(sprite, _opencv_affine(warp), (size[1], size[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))


def over(image: np.ndarray, layer: np.ndarray) -> None:
    """Composite a premultiplied RGBA layer [H, W, 4] over `image` [H, W, 3] in place."""
    image *= 1 - layer[..., 3:]
    image += layer[..., :3]


def _opencv_affine(warp: np.ndarray) -> np.ndarray:
    """Continuous-px affine -> OpenCV's pixel-centre-at-integer convention (both sides shift by 0.5)."""
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    unshift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    return (unshift @ np.vstack([warp, [0, 0, 1]]) @ shift)[:2]


def _cv_points(points: np.ndarray) -> np.ndarray:
    """Continuous px -> OpenCV fixed-point vertices (pixel centres at integers, 4 fractional bits)."""
    return np.round((np.asarray(points, np.float64) - 0.5) * SUBPIXEL).astype(np.int32)


def polygon_mask(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage [H, W] float32 of a polygon given in continuous px."""
    layer = np.zeros(shape, np.uint8)
    cv2.fillPoly(layer, [_cv_points(polygon)], 255, cv2.LINE_AA, 4)
    return layer.astype(np.float32) / 255


def _streaks(rng: np.random.Generator, size: int, along: float, across: float) -> np.ndarray:
    """Noise stretched along y: hair-like strands, roughly in [-1, 1]."""
    noise = rng.standard_normal((size, size)).astype(np.float32)
    streaks = cv2.GaussianBlur(noise, (0, 0), sigmaX=across, sigmaY=along)
    return streaks / (streaks.std() + 1e-6)


# ---------------------------------------------------------------------------------------------
# Background


def make_wall(seed: int, look: Look, height: int, width: int) -> np.ndarray:
    """A background larger than the frame (margin for drift): gradient, blotches, shapes, grain."""
    rng = np.random.default_rng(seed)
    margin = int(np.ceil(look.drift * max(height, width))) + 2
    h, w = height + 2 * margin, width + 2 * margin
    top, bottom = (np.asarray(c, np.float32) for c in look.wall_colours)
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    wall = top * (1 - ramp) + bottom * ramp * np.ones((1, w, 1), np.float32)
    blotches = cv2.resize(rng.uniform(0.85, 1.15, (6, 6)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    wall *= blotches[..., None]
    for _ in range(rng.integers(2, 5)):  # furniture, frames, windows: soft-edged rectangles
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(w // 8, w // 2), y0 + rng.integers(h // 8, h // 2)
        shape = np.zeros((h, w), np.float32)
        cv2.rectangle(shape, (int(x0), int(y0)), (int(x1), int(y1)), 1.0, -1)
        shape = cv2.GaussianBlur(shape, (0, 0), 1.5)[..., None]
        wall = wall * (1 - shape) + rng.uniform(0.15, 0.9, 3).astype(np.float32) * shape
    grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.8)
    wall *= 1 + 0.05 * grain[..., None]
    return np.clip(wall, 0, 1)


def wall_at(wall: np.ndarray, look: Look, seconds: float, height: int, width: int, phase: float) -> np.ndarray:
    """The frame-sized view of `wall` at time `seconds`: a slow sub-pixel drift (a hand-held camera)."""
    margin = (wall.shape[0] - height) / 2
    angle = 2 * np.pi * seconds / look.drift_period + phase
    amplitude = look.drift * max(height, width)
    dx = margin + amplitude * np.sin(angle)
    dy = margin + amplitude * np.sin(0.7 * angle + 1.3)
    shift = np.array([[1, 0, -dx], [0, 1, -dy]], np.float64)
    return cv2.warpAffine(wall, shift, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# ---------------------------------------------------------------------------------------------
# Head-attached sprites (painted in the reference canvas)


def hair_sprites(
    seed: int, look: Look, keypoints: np.ndarray, face_mask: np.ndarray, canvas: Canvas
) -> tuple[np.ndarray, np.ndarray]:
    """(behind, in_front) premultiplied RGBA sprites [S, S, 4] for a frontal reference face.

    keypoints [68, 2]: the reference face's canonical landmarks; face_mask [224, 224]: its
    rendered coverage, so the hair surely covers the top edge of the (front-only) face mesh.
    """
    rng = np.random.default_rng(seed)
    pts = canvas.to_canvas(keypoints)
    eye = float(np.linalg.norm(pts[45] - pts[36]))
    rows = np.nonzero(face_mask.max(1) > 0)[0]
    face_top = canvas.to_canvas(np.array([[0.0, rows.min() if len(rows) else keypoints[19, 1] - 60]]))[0, 1]
    cx = float(pts[[0, 16, 27, 30]][:, 0].mean())
    eye_y = float(pts[36:48, 1].mean())
    half_width = 0.5 * float(pts[16, 0] - pts[0, 0]) * look.hair_volume
    top = min(face_top, float(pts[17:27, 1].min()) - 0.6 * eye) - look.hair_top * eye
    # Outline: an arc over the skull from ear level, side hair falling to `hair_length` below the eyes.
    arc = np.linspace(np.pi, 0, 40)
    skull = np.stack([cx + half_width * np.cos(arc), eye_y - (eye_y - top) * np.sin(arc)], 1)
    bottom = eye_y + look.hair_length * eye
    sides = np.array([[cx + 0.97 * half_width, bottom], [cx - 0.97 * half_width, bottom]])
    behind_mask = polygon_mask((canvas.size, canvas.size), np.concatenate([skull, sides]))
    # In front: everything above the hairline, and the temples down to about eye level.
    ys, xs = np.mgrid[0 : canvas.size, 0 : canvas.size].astype(np.float32) + 0.5
    brow_y = float(pts[17:27, 1].min())
    wobble = cv2.resize(rng.normal(0, 0.06 * eye, (1, 12)).astype(np.float32), (canvas.size, 1), interpolation=cv2.INTER_CUBIC)
    hairline = brow_y - look.hairline * eye + 0.6 * eye * ((xs - cx) / half_width) ** 2 + wobble
    # Never above the mesh's own top edge (column by column): the hair must hide that edge.
    mesh = cv2.warpAffine(face_mask.astype(np.float32), _opencv_affine(canvas.from_canonical()),
                          (canvas.size, canvas.size)) > 0.5
    mesh_top = np.where(mesh.any(0), mesh.argmax(0), -np.inf).astype(np.float32)
    hairline = np.maximum(hairline, mesh_top[None, :] + 0.2 * eye)
    # The skull arc may cut the mesh's upper corners: the hair covers all of the mesh above the brows.
    upper_mesh = (mesh & (ys < brow_y)).astype(np.uint8)
    grown = cv2.dilate(upper_mesh, np.ones((3, 3), np.uint8), iterations=max(1, int(0.05 * eye))).astype(np.float32)
    behind_mask = np.maximum(behind_mask, grown)
    temples = (np.abs(xs - cx) > 0.62 * eye) & (ys < eye_y - 0.15 * eye)
    front_region = ((ys < hairline) | temples).astype(np.float32)
    front_mask = behind_mask * cv2.GaussianBlur(front_region, (0, 0), 0.8 * canvas.scale)
    colour = _hair_colour(rng, look, canvas, cx, top, half_width)
    return _premultiply(colour, behind_mask), _premultiply(colour, front_mask)


def _hair_colour(rng, look: Look, canvas: Canvas, cx: float, top: float, half_width: float) -> np.ndarray:
    """Strand texture with a sheen band across the crown and darker roots near the outline."""
    base = np.asarray(look.hair_colour, np.float32)
    strands = _streaks(rng, canvas.size, along=6 * canvas.scale, across=0.7 * canvas.scale)
    ys, xs = np.mgrid[0 : canvas.size, 0 : canvas.size].astype(np.float32)
    radial = np.hypot((xs - cx) / half_width, (ys - top - half_width) / half_width)
    sheen = np.exp(-(((radial - 0.75) / 0.12) ** 2))
    brightness = (1 + 0.22 * strands + 0.35 * sheen) * (1 - 0.25 * np.clip(radial - 0.8, 0, 1))
    return np.clip(base * brightness[..., None] + 0.04 * sheen[..., None], 0, 1)


def neck_sprite(keypoints: np.ndarray, skin: np.ndarray, canvas: Canvas) -> np.ndarray:
    """The neck below the jaw and the ears beside the cheeks, in the skin colour, shadowed."""
    pts = canvas.to_canvas(keypoints)
    eye = float(np.linalg.norm(pts[45] - pts[36]))
    jaw = pts[3:14]
    centre = jaw.mean(0)
    upper = centre + (jaw - centre) * np.array([0.8, 0.6])  # tucked under the jaw line
    bottom = canvas.size
    width = 0.42 * float(jaw[:, 0].max() - jaw[:, 0].min())
    polygon = np.concatenate([upper, [[centre[0] + width, bottom], [centre[0] - width, bottom]]])
    shape = (canvas.size, canvas.size)
    mask = polygon_mask(shape, polygon)
    ys = np.arange(canvas.size, dtype=np.float32)[:, None, None]
    shadow = 0.7 + 0.25 * np.clip((ys - pts[8, 1]) / (1.2 * eye), 0, 1)  # darker right under the chin
    xs = np.arange(canvas.size, dtype=np.float32)[None, :, None]
    rounding = 1 - 0.3 * ((xs - centre[0]) / width) ** 2  # a cylinder lit from the front
    colour = np.clip(skin * shadow * np.clip(rounding, 0.5, 1), 0, 1).astype(np.float32)
    # Ears: between eye and nose-tip height, just outside the face outline (hidden by long hair).
    ear_y = 0.5 * (float(pts[36:48, 1].mean()) + float(pts[33, 1]))
    for side, outline in ((-1, pts[0:3]), (1, pts[14:17])):
        ear_x = float(outline[:, 0].mean()) + side * 0.05 * eye
        ear = np.zeros(shape, np.uint8)
        axes = (int(0.14 * eye * SUBPIXEL), int(0.3 * eye * SUBPIXEL))
        cv2.ellipse(ear, tuple(_cv_points(np.array([ear_x, ear_y]))), axes, side * 10, 0, 360, 255, -1, cv2.LINE_AA, 4)
        ear_mask = ear.astype(np.float32) / 255
        hollow = cv2.GaussianBlur(ear_mask, (0, 0), 0.08 * eye)  # darker towards the ear's middle
        colour = colour * (1 - ear_mask[..., None]) + skin * (0.9 - 0.25 * hollow[..., None]) * ear_mask[..., None]
        mask = np.maximum(mask, ear_mask)
    return _premultiply(colour, mask)


def _premultiply(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    alpha = alpha.astype(np.float32)[..., None]
    colour = np.broadcast_to(colour, alpha.shape[:2] + (3,))
    return np.concatenate([colour * alpha, alpha], -1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Frame-space layers


def shoulders_layer(seed: int, look: Look, landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Shirt-covered shoulders below the head of the first frame's `landmarks` [68, 2], RGBA [H, W, 4]."""
    rng = np.random.default_rng(seed)
    eye = float(np.linalg.norm(landmarks[45] - landmarks[36]))
    centre_x = float(landmarks[[8, 27]][:, 0].mean())
    top = float(landmarks[8, 1]) + 0.3 * eye
    body = np.zeros((height, width), np.uint8)
    cv2.ellipse(body, (int(centre_x * SUBPIXEL), int((top + 1.6 * eye) * SUBPIXEL)),
                (int(2.6 * eye * SUBPIXEL), int(1.6 * eye * SUBPIXEL)), 0, 0, 360, 255, -1, cv2.LINE_AA, 4)
    collar = np.zeros((height, width), np.uint8)
    cv2.ellipse(collar, (int(centre_x * SUBPIXEL), int(top * SUBPIXEL)),
                (int(0.45 * eye * SUBPIXEL), int(0.5 * eye * SUBPIXEL)), 0, 0, 180, 255, -1, cv2.LINE_AA, 4)
    mask = np.clip(body.astype(np.float32) - collar.astype(np.float32), 0, 255) / 255
    folds = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 0.12 * eye)
    folds /= folds.std() + 1e-6
    xs = np.arange(width, dtype=np.float32)[None, :]
    light = 1 - 0.25 * np.abs(xs - centre_x) / (2.6 * eye) + 0.08 * folds
    colour = np.clip(np.asarray(look.shirt_colour, np.float32) * light[..., None], 0, 1)
    return _premultiply(colour, mask)


def draw_mouth_interior(image: np.ndarray, landmarks: np.ndarray, light: float) -> None:
    """Paint the mouth cavity, teeth and tongue inside the inner-lip outline (landmarks 60-67), in place.

    Drawn over the rendered face: where the lips part, the mesh shows only its flat dark cavity.
    """
    inner = landmarks[60:68].astype(np.float64)
    centre = inner.mean(0)
    mouth_width = float(np.linalg.norm(inner[4] - inner[0]))
    opening = float(np.linalg.norm(inner[6] - inner[2]))
    if opening < 0.3 or mouth_width < 1:
        return
    box = _clipped_box(inner, 4, image.shape)
    if box is None:
        return
    x0, y0, x1, y1 = box
    offset = np.array([x0, y0], np.float64)
    shape = (y1 - y0, x1 - x0)
    cavity = polygon_mask(shape, inner - offset)
    patch = np.empty(shape + (3,), np.float32)
    patch[:] = np.array([0.22, 0.05, 0.06], np.float32) * light
    tongue = np.zeros(shape, np.uint8)
    tongue_centre = inner[6] - offset + np.array([0.0, -0.2 * opening])
    cv2.ellipse(tongue, tuple(_cv_points(tongue_centre)), (int(0.3 * mouth_width * SUBPIXEL), int(0.35 * opening * SUBPIXEL)),
                0, 0, 360, 255, -1, cv2.LINE_AA, 4)
    _blend(patch, tongue.astype(np.float32) / 255, np.array([0.72, 0.3, 0.32]) * light)
    teeth = np.array([0.86, 0.83, 0.75]) * light
    # Teeth fill the middle of the opening; the corners stay dark (the cheeks' shadow).
    inward = centre - offset + (inner - centre) * np.array([0.75, 1.0])
    upper = inward[[0, 1, 2, 3, 4]]
    upper_height = min(0.45 * opening, 0.1 * mouth_width)
    _blend(patch, polygon_mask(shape, np.concatenate([upper, upper[::-1] + [0, upper_height]])), teeth)
    lower = inward[[4, 5, 6, 7, 0]]
    lower_height = min(0.15 * opening, 0.04 * mouth_width)
    _blend(patch, polygon_mask(shape, np.concatenate([lower, lower[::-1] - [0, lower_height]])), teeth * 0.85)
    # Gaps between the upper teeth.
    for k in (-2, -1, 0, 1, 2):
        x = centre[0] - offset[0] + k * 0.1 * mouth_width
        _stroke(patch, np.array([[x, upper[2, 1]], [x, upper[2, 1] + 0.9 * upper_height]]), teeth * 0.7, 1)
    region = image[y0:y1, x0:x1]
    region[:] = region * (1 - cavity[..., None]) + patch * cavity[..., None]


def _clipped_box(points: np.ndarray, margin: float, image_shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Integer box (x0, y0, x1, y1) around points [K, 2] plus `margin`, clipped to the image; None if empty."""
    x0, y0 = np.maximum(np.floor(points.min(0) - margin).astype(int), 0)
    x1, y1 = np.ceil(points.max(0) + margin).astype(int)
    x1, y1 = min(x1, image_shape[1]), min(y1, image_shape[0])
    if x1 <= x0 or y1 <= y0:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def draw_eyes(image: np.ndarray, landmarks: np.ndarray, iris_colour: np.ndarray, light: float, gaze: np.ndarray) -> None:
    """Paint sclera, iris, pupil, catch-light and lid lines into both eye outlines (36-41, 42-47), in place.

    gaze [2]: iris offset in fractions of the eye width (x right, y down).
    """
    for start in (36, 42):
        outline = landmarks[start : start + 6].astype(np.float64)
        width = float(np.linalg.norm(outline[3] - outline[0]))
        if width < 2:
            continue
        box = _clipped_box(outline, 3, image.shape)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        offset = np.array([x0, y0], np.float64)
        shape = (y1 - y0, x1 - x0)
        region = image[y0:y1, x0:x1]
        mask = polygon_mask(shape, outline - offset)
        patch = np.empty(shape + (3,), np.float32)
        patch[:] = np.array([0.9, 0.87, 0.84], np.float32) * light
        centre = outline.mean(0) - offset + gaze * width
        radius = 0.21 * width
        ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32) + 0.5
        distance = np.hypot(xs - centre[0], ys - centre[1]) / radius
        iris = np.clip(1.5 * (1 - distance) + 0.5, 0, 1)  # ~1 px soft edge
        ring = np.clip(distance, 0, 1) ** 3  # darker limbal ring
        _blend(patch, iris, np.asarray(iris_colour) * light * (1 - 0.5 * ring)[..., None])
        _blend(patch, np.clip(1.5 * (1 - distance / 0.42) + 0.5, 0, 1), np.array([0.03, 0.03, 0.03]))
        glint = np.clip(1 - np.hypot(xs - centre[0] - 0.3 * radius, ys - centre[1] + 0.3 * radius) / (0.18 * radius + 0.5), 0, 1)
        _blend(patch, glint, np.array([1.0, 1.0, 1.0]))
        region[:] = region * (1 - mask[..., None]) + patch * mask[..., None]
        lash = max(1, int(round(0.06 * width)))
        _stroke(region, outline[[0, 1, 2, 3]] - offset, np.array([0.08, 0.06, 0.05]), lash)
        _stroke(region, outline[[3, 4, 5, 0]] - offset, np.array([0.45, 0.3, 0.28]) * light, 1)


def _stroke(patch: np.ndarray, points: np.ndarray, colour: np.ndarray, thickness: int) -> None:
    """An anti-aliased polyline (OpenCV anti-aliases only 8-bit images: draw coverage, then blend)."""
    coverage = np.zeros(patch.shape[:2], np.uint8)
    cv2.polylines(coverage, [_cv_points(points)], False, 255, thickness, cv2.LINE_AA, 4)
    _blend(patch, coverage.astype(np.float32) / 255, colour)


def _blend(patch: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    alpha = alpha[..., None] if alpha.ndim == 2 else alpha
    patch[:] = patch * (1 - alpha) + np.asarray(colour, np.float32) * alpha
