"""Synthetic subjects and their "real" frames.

A subject is a 3DMM identity, texture and lighting plus everything the 3DMM does not model:
skin detail (skin.py), hair, eyes, mouth interior, neck, shirt and a background (scenery.py),
a head-motion style (motion.py) and a framing of the face in the frame. Its "real" frames are
the synthetic model rendered with all of that detail, so a plain 3DMM render of the same
coefficients (low-frequency albedo, SH-lit) is visibly different from them: the GAN's job.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from talkface.audio import VIDEO_FPS
from talkface.face3d.camera import Camera
from talkface.face3d.coeffs import (
    ANGLES, EXPRESSION, GAMMA, IDENTITY, N_ANGLES, N_COEFFS, N_EXPRESSION, N_TRANSLATION, TEXTURE, TRANSLATION,
)
from talkface.synth import scenery, skin
from talkface.synth.motion import HeadStyle, sample_head_style
from talkface.synth.scenery import Canvas, Look
from talkface.synth.skin import CANONICAL_SIZE, SkinDetail


_HAIR_COLOURS = ((0.06, 0.05, 0.05), (0.18, 0.11, 0.07), (0.33, 0.21, 0.12), (0.45, 0.2, 0.1),
                 (0.72, 0.58, 0.34), (0.58, 0.57, 0.55))
_IRIS_COLOURS = ((0.33, 0.19, 0.1), (0.14, 0.09, 0.06), (0.3, 0.45, 0.6), (0.3, 0.45, 0.3), (0.45, 0.35, 0.2))


@dataclass(frozen=True)
class Subject:
    """One synthetic person."""

    seed: int
    identity: np.ndarray  # [80] shape coefficients
    texture: np.ndarray  # [80] albedo coefficients
    gamma: np.ndarray  # [27] SH lighting, channel-major (RGB x 9 bands)
    style: HeadStyle
    skin: SkinDetail
    look: Look
    zoom: float  # face size in the frame relative to the canonical 224 crop
    offset: tuple[float, float]  # face centre shift in the frame, fractions of the frame size

    def coeffs(self, expression: np.ndarray, angles: np.ndarray, translation: np.ndarray) -> np.ndarray:
        """Full coefficients [T, 257] float32 from per-frame motion (expression [T,64], angles, translation [T,3])."""
        n = len(expression)
        out = np.zeros((n, N_COEFFS), np.float32)
        out[:, IDENTITY] = self.identity
        out[:, TEXTURE] = self.texture
        out[:, GAMMA] = self.gamma
        out[:, EXPRESSION] = expression
        out[:, ANGLES] = angles
        out[:, TRANSLATION] = translation
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything but the coefficient vectors (those are in coeffs.npy), as JSON-able data."""
        return {
            "seed": self.seed,
            "style": dataclasses.asdict(self.style),
            "skin": dataclasses.asdict(self.skin),
            "look": dataclasses.asdict(self.look),
            "zoom": self.zoom,
            "offset": list(self.offset),
        }


def sample_subject(seed: int) -> Subject:
    """Subject `seed`: identity ~ N(0, 0.7), texture ~ N(0, 1), mild plausible light, a look and a framing."""
    rng = np.random.default_rng([seed, 0x5B1E])
    hair = np.clip(np.asarray(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))]) * rng.uniform(0.85, 1.15), 0, 1)
    return Subject(
        seed=int(seed),
        identity=rng.normal(0, 0.7, 80).astype(np.float32),
        texture=rng.normal(0, 1.0, 80).astype(np.float32),
        gamma=_sample_gamma(rng),
        style=sample_head_style(seed),
        skin=_sample_skin(rng, hair),
        look=_sample_look(rng, hair),
        zoom=float(rng.uniform(0.62, 0.78)),
        offset=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.02, 0.05))),
    )


def _sample_gamma(rng: np.random.Generator) -> np.ndarray:
    """Ambient light plus one directional light from the front half, slightly tinted; tiny 2nd order."""
    azimuth = rng.uniform(-1.0, 1.0)
    elevation = rng.uniform(0.0, 0.9)
    direction = np.array([np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)])
    strength = rng.uniform(0.12, 0.35)
    tint = 1 + rng.normal(0, 0.04, 3)
    gamma = np.zeros((3, 9))
    gamma[:, 0] = rng.uniform(-0.05, 0.2)
    # SH band 1 is (-y, z, -x) (docs/method.md), so these signs light normals facing `direction`.
    gamma[:, 1:4] = strength * np.array([-direction[1], direction[2], -direction[0]])
    gamma[:, 4:] = rng.normal(0, 0.02, (3, 5))
    return (gamma * tint[:, None]).reshape(27).astype(np.float32)


def _sample_skin(rng: np.random.Generator, hair: np.ndarray) -> SkinDetail:
    n_moles = int(rng.integers(0, 4))
    moles = tuple((float(rng.uniform(-0.9, 0.9)), float(rng.uniform(-0.6, 1.3)), float(rng.uniform(0.012, 0.03)))
                  for _ in range(n_moles))
    lip = np.clip(np.array([0.62, 0.3, 0.3]) * rng.uniform(0.8, 1.15, 3), 0, 1)
    brow = np.clip(hair * 0.8 + 0.02, 0, 1)
    return SkinDetail(
        mottle=float(rng.uniform(0.03, 0.1)),
        pores=float(rng.uniform(0.03, 0.08)),
        freckles=int(rng.integers(20, 150)) if rng.random() < 0.35 else 0,
        moles=moles,
        blush=float(rng.uniform(0.0, 0.25)),
        stubble=float(rng.uniform(0.1, 0.3)) if rng.random() < 0.3 else 0.0,
        lip_colour=tuple(float(v) for v in lip),
        brow_colour=tuple(float(v) for v in brow),
        noise_seed=int(rng.integers(2**31)),
    )


def _sample_look(rng: np.random.Generator, hair: np.ndarray) -> Look:
    long_hair = rng.random() < 0.4
    wall = rng.uniform(0.25, 0.85, (2, 3))
    wall = 0.6 * wall + 0.4 * wall.mean(1, keepdims=True)  # muted, like real rooms
    return Look(
        hair_colour=tuple(float(v) for v in hair),
        hair_volume=float(rng.uniform(1.05, 1.3)),
        hair_top=float(rng.uniform(0.1, 0.45)),
        hair_length=float(rng.uniform(1.5, 3.5) if long_hair else rng.uniform(-0.3, 0.6)),
        hairline=float(rng.uniform(0.55, 1.0)),
        iris_colour=_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))],
        shirt_colour=tuple(float(v) for v in rng.uniform(0.1, 0.85, 3)),
        wall_colours=(tuple(float(v) for v in wall[0]), tuple(float(v) for v in wall[1])),
        drift=float(rng.uniform(0.005, 0.02)),
        drift_period=float(rng.uniform(4.0, 12.0)),
    )


def frame_transform(subject: Subject, size: int) -> np.ndarray:
    """2x3 map from canonical 224 px coordinates to `size` px frame coordinates (continuous px)."""
    scale = size / CANONICAL_SIZE * subject.zoom
    centre = size / 2 + np.asarray(subject.offset) * size
    shift = centre - scale * CANONICAL_SIZE / 2
    return np.array([[scale, 0, shift[0]], [0, scale, shift[1]]], np.float64)


@dataclass(frozen=True)
class MeanFace:
    """Where each vertex and each detail-atlas texel sits on the model's mean face (zero coefficients).

    The same for every subject of a model, so computed once per model (`mean_face`).
    """

    uv: np.ndarray  # [N, 2] canonical 224 px position of each vertex
    surface: np.ndarray  # [N] 1 where the mean face shows the vertex, 0 where it is hidden (mouth cavity)
    positions: np.ndarray  # [S, S, 3] canonical 3D position seen at each atlas texel
    covered: np.ndarray  # [S, S] bool: texels on the face
    keypoints: np.ndarray  # [68, 2] canonical 224 px landmarks
    eye_distance: float  # between the outer eye corners, model units


@functools.lru_cache(maxsize=4)
def mean_face(model: Any, backend: str = "auto") -> MeanFace:
    """The mean face of `model` (an nn.Module: cached by identity), rasterized at the atlas resolution."""
    from talkface.render.rasterize import interpolate, rasterize

    scale = skin.ATLAS_SCALE
    side = CANONICAL_SIZE * scale
    triangles = torch.as_tensor(model.triangles, dtype=torch.int64)
    with torch.no_grad():
        mean = model.forward(torch.zeros(1, N_COEFFS), Camera())
        depth = mean.vertices[..., 2]
        fragments = rasterize(mean.screen * scale, depth, triangles, (side, side), backend)
        positions = interpolate(mean.vertices, fragments, triangles)[0].numpy()  # [S, S, 3]
    uv = mean.screen[0].numpy()
    ids = np.asarray(model.keypoints).reshape(-1)
    vertices = mean.vertices[0].numpy()
    eye_distance = float(np.linalg.norm(vertices[ids[36]] - vertices[ids[45]]))
    # Vertices behind the visible mean face (the mouth cavity behind the closed lips) share the
    # lips' atlas place: mark them so they get no lip colour or skin detail.
    zbuffer = fragments.depth[0].numpy()
    pixel = np.clip((uv * scale).astype(int), 0, side - 1)
    seen = zbuffer[pixel[:, 1], pixel[:, 0]]
    hidden = (seen > 0) & (vertices[:, 2] > seen + 0.05 * eye_distance)
    return MeanFace(uv, (~hidden).astype(np.float32), positions, fragments.mask[0].numpy() > 0,
                    mean.landmarks[0].numpy().astype(np.float64), eye_distance)


class RealFrames:
    """Renders one subject's "real" frames at `size` px from coefficients in the canonical 224 px convention.

    The face comes from the synthetic morphable model through the rasterizer (its fragments and
    interpolated per-vertex attributes carry the skin detail); the rest is 2D layers (scenery.py).
    `transform` is the canonical -> frame 2x3 map: the frame sees the canonical crop scaled by
    `subject.zoom` and shifted by `subject.offset`.
    """

    def __init__(self, subject: Subject, model: Any, size: int = 256, backend: str = "auto"):
        self.subject, self.model, self.size, self.backend = subject, model, size, backend
        self.camera = Camera()
        self.transform = frame_transform(subject, size)
        self.triangles = torch.as_tensor(model.triangles, dtype=torch.int64)
        self._triangles = self.triangles.numpy()
        mean = mean_face(model, backend)
        self._uv, self._surface = mean.uv, mean.surface
        self._atlas = skin.build_atlas(mean.keypoints, subject.skin, subject.seed, mean.positions, mean.covered,
                                       mean.eye_distance)
        self._half_vector = _half_vector(subject.gamma)
        with torch.no_grad():
            neutral = model.forward(torch.as_tensor(subject.coeffs(*_rest(1))), self.camera)
        self.reference_landmarks = neutral.landmarks[0].numpy().astype(np.float64)  # [68, 2] canonical px
        # The neutral face's outline (its hull is close enough for placing hair over its edge).
        outline = cv2.convexHull(neutral.screen[0].numpy().astype(np.float32))[:, 0]
        face_mask = scenery.polygon_mask((CANONICAL_SIZE, CANONICAL_SIZE), outline)
        self._canvas = Canvas.around_face(size / CANONICAL_SIZE * subject.zoom)
        look = subject.look
        self._hair_behind, self._hair_front = scenery.hair_sprites(subject.seed, look, self.reference_landmarks,
                                                                   face_mask, self._canvas)
        self._neck = scenery.neck_sprite(self.reference_landmarks, _mean_skin_colour(neutral, model), self._canvas)
        self._wall = scenery.make_wall(subject.seed, look, size, size)
        framed = _apply(self.transform, self.reference_landmarks)
        self._shoulders = scenery.shoulders_layer(subject.seed, look, framed, size, size)
        self._iris = np.asarray(look.iris_colour, np.float32)
        # Sensor noise: a bank of 8 frames drawn once (fresh normals every frame cost as much as the compositing).
        grain = np.random.default_rng([subject.seed, 0x6A1]).normal(0, 1.2 / 255, (8, size, size, 3))
        self._grain = grain.astype(np.float32)

    def render(self, coeffs: np.ndarray | torch.Tensor, first_frame: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """coeffs [B, 257] for frames first_frame.. -> (frames uint8 [B, H, W, 3], landmarks float32 [B, 68, 2] frame px)."""
        from talkface.render.rasterize import rasterize

        coeffs = torch.as_tensor(coeffs, dtype=torch.float32)
        affine = torch.tensor(self.transform, dtype=torch.float32)
        with torch.no_grad():
            mesh = self.model.forward(coeffs, self.camera)
            screen = mesh.screen @ affine[:, :2].T + affine[:, 2]  # [B, N, 2] frame px
            fragments = rasterize(screen, mesh.vertices[..., 2], self.triangles, (self.size, self.size), self.backend)
        # Per-vertex attributes: uv 2, surface weight 1, albedo 3, lit colour 3, normal 3.
        batch = coeffs.shape[0]
        n = len(self._uv)
        attributes = np.concatenate([
            np.broadcast_to(self._uv, (batch, n, 2)), np.broadcast_to(self._surface[None, :, None], (batch, n, 1)),
            mesh.albedo.numpy(), mesh.colors.numpy(), mesh.normals.numpy(),
        ], -1).astype(np.float32)
        triangle_id, bary = fragments.triangle_id.numpy(), fragments.bary.numpy()
        canonical_landmarks = mesh.landmarks.numpy().astype(np.float64)  # [B, 68, 2]
        frames = np.empty((batch, self.size, self.size, 3), np.uint8)
        landmarks = np.empty((batch, 68, 2), np.float32)
        for b in range(batch):
            face, mask, light = self._face(attributes[b], triangle_id[b], bary[b])
            landmarks[b] = _apply(self.transform, canonical_landmarks[b])
            frames[b] = self._compose(face, mask, light, canonical_landmarks[b], landmarks[b], first_frame + b)
        return frames, landmarks

    def _face(self, attributes: np.ndarray, triangle_id: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Detailed, lit face colours [H, W, 3], coverage [H, W] bool and the typical shading level.

        Interpolates the fragments' vertex attributes only at covered pixels (the face covers a
        fraction of the frame; the renderer's dense `interpolate` would do every pixel).
        """
        covered = triangle_id >= 0
        corners = self._triangles[triangle_id[covered]]  # [P, 3]
        p = np.einsum("pk,pkc->pc", bary[covered], attributes[corners])  # [P, 12]
        albedo, lit = p[:, 3:6], p[:, 6:9]
        shading = lit / np.maximum(albedo, 1e-3)  # SH irradiance per channel, recovered from the plain render
        sampled = _lookup(self._atlas, p[:, :2] * skin.ATLAS_SCALE)
        detailed, gloss = skin.detail_albedo(albedo, sampled, p[:, 2])
        normal = p[:, 9:12] / np.maximum(np.linalg.norm(p[:, 9:12], axis=1, keepdims=True), 1e-6)
        highlight = np.maximum(normal @ self._half_vector, 0) ** 24  # Blinn-Phong sheen: skin is slightly glossy
        colour = detailed * shading + (0.06 * gloss * highlight * shading.mean(1))[:, None]
        face = np.zeros(covered.shape + (3,), np.float32)
        face[covered] = colour
        light = float(np.median(shading.mean(1))) if len(shading) else 1.0
        return face, covered, light

    def _compose(self, face: np.ndarray, mask: np.ndarray, light: float, canonical: np.ndarray,
                 landmarks: np.ndarray, index: int) -> np.ndarray:
        """Layer background, body, hair, mouth interior, face and eyes into one uint8 frame."""
        size = (self.size, self.size)
        seconds = index / VIDEO_FPS
        image = scenery.wall_at(self._wall, self.subject.look, seconds, self.size, self.size, phase=self.subject.seed % 7)
        head = scenery.fit_affine(self.reference_landmarks[scenery.RIGID_POINTS], canonical[scenery.RIGID_POINTS])
        warp = self._canvas.frame_warp(self.transform @ np.vstack([head, [0, 0, 1]]))  # canvas -> frame
        scenery.over(image, scenery.warp_sprite(self._neck, warp, size))
        scenery.over(image, self._shoulders)
        scenery.over(image, scenery.warp_sprite(self._hair_behind, warp, size))
        np.copyto(image, face, where=mask[..., None])
        scenery.draw_mouth_interior(image, landmarks, light)
        scenery.over(image, scenery.warp_sprite(self._hair_front, warp, size))
        scenery.draw_eyes(image, landmarks, self._iris, light, _gaze(self.subject.seed, seconds))
        image += self._grain[index % len(self._grain)]
        np.clip(image, 0, 1, out=image)
        return (image * 255 + 0.5).astype(np.uint8)


def _rest(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neutral expression, frontal pose, no translation, for n frames."""
    return (np.zeros((n, N_EXPRESSION), np.float32), np.zeros((n, N_ANGLES), np.float32),
            np.zeros((n, N_TRANSLATION), np.float32))


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to points [..., 2]."""
    return points @ affine[:, :2].T + affine[:, 2]


def _mean_skin_colour(mesh: Any, model: Any) -> np.ndarray:
    """Average lit colour [3] over the model's skin vertices (for the neck)."""
    colours = mesh.colors[0]  # [N, 3]
    weights = torch.as_tensor(model.skin_mask, dtype=torch.float32).reshape(-1)
    if weights.numel() != colours.shape[0] or weights.sum() == 0:
        weights = torch.ones(colours.shape[0])
    return ((colours * weights[:, None]).sum(0) / weights.sum()).numpy().astype(np.float32)


def _lookup(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples [P, C] of image [H, W, C] at continuous px points [P, 2]."""
    n = len(points)
    width = 256  # OpenCV maps must stay below 32767 px wide: sample in rows of 256
    padded = np.zeros((-(-n // width) * width, 2), np.float32)
    padded[:n] = points - 0.5  # continuous px -> OpenCV pixel-centre coordinates
    grid = padded.reshape(-1, width, 2)
    out = cv2.remap(image, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, image.shape[2])[:n]


def _half_vector(gamma: np.ndarray) -> np.ndarray:
    """Blinn-Phong half vector between the viewer (+z) and the SH lighting's dominant direction."""
    band1 = np.asarray(gamma, np.float64).reshape(3, 9)[:, 1:4].mean(0)
    light = np.array([-band1[2], -band1[0], band1[1]])  # undo the (-y, z, -x) signs of SH band 1
    light = light / (np.linalg.norm(light) + 1e-9)
    half = light + np.array([0.0, 0.0, 1.0])
    return (half / (np.linalg.norm(half) + 1e-9)).astype(np.float32)


def _gaze(seed: int, seconds: float) -> np.ndarray:
    """Iris offset (fractions of the eye width): fixations that jump every ~0.8 s (saccades)."""
    segment = int(seconds / 0.8)
    rng = np.random.default_rng([seed, 0x6A2E, segment])
    return np.array([rng.uniform(-0.07, 0.07), rng.uniform(-0.03, 0.03)])
