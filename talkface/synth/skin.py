"""Fine detail painted onto the synthetic face: what the 3DMM's low-frequency albedo lacks.

Everything lives in a "detail atlas" over the mean face's canonical 224 px image plane (zero
pose, canonical camera), looked up at each rendered pixel's interpolated canonical image position,
so the detail is attached to the skin (it moves and deforms with the mesh) and is independent of
the mesh resolution:
- a procedural 3D noise (mottling, fine unevenness, pores) evaluated at the canonical 3D surface
  point seen at each atlas texel, i.e. at the pixel's canonical position, baked once per subject
  so a frame costs one lookup;
- region colours painted with the mean face's landmarks: lips, eyebrows, freckles, moles, blush,
  stubble.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Atlas channels (build_atlas): tint RGB (the colour blended towards), alpha (how much), gloss
# (specular scale), shade (albedo multiplier from the 3D noise), redness (hue shift of blotches).

# The atlas covers the canonical 224 px plane at this many texels per canonical pixel: ~2.5 texels
# per frame pixel at 256 px frames (the face fills ~0.7 of the canonical crop's scale there).
ATLAS_SCALE = 2
CANONICAL_SIZE = 224  # the 3DMM camera's image side (docs/method.md)

# 68-point landmark groups (iBUG numbering) used to place regions on the mean face.
BROW_RIGHT = list(range(17, 22))
BROW_LEFT = list(range(22, 27))
OUTER_LIPS = list(range(48, 60))
NOSE = list(range(27, 36))


@dataclass(frozen=True)
class SkinDetail:
    """Per-subject skin detail: strengths are fractions of the albedo."""

    mottle: float  # low-frequency blotchiness
    pores: float  # high-frequency pores
    freckles: int  # number of freckles on cheeks and nose
    moles: tuple[tuple[float, float, float], ...]  # (x, y, radius): offset from the nose tip, in eye distances
    blush: float  # cheek redness
    stubble: float  # darkening speckle on the chin and upper lip (0 for none)
    lip_colour: tuple[float, float, float]
    brow_colour: tuple[float, float, float]
    noise_seed: int


class NoiseField:
    """Smooth 3D value noise in [-1, 1] from a seeded lattice (a hashed 256-entry table)."""

    def __init__(self, seed: int):
        rng = np.random.default_rng([seed, 0x401E])
        self.perm = np.tile(rng.permutation(256), 2)  # [512]
        self.values = rng.uniform(-1, 1, 256).astype(np.float32)  # [256]

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """points [P, 3] in lattice units -> [P] float32."""
        base = np.floor(points)
        frac = (points - base).astype(np.float32)
        fade = frac * frac * frac * (frac * (frac * 6 - 15) + 10)  # quintic: C2-smooth across cells
        cell = base.astype(np.int64) & 255  # [P, 3]
        out = np.zeros(len(points), np.float32)
        for dx in (0, 1):
            wx = fade[:, 0] if dx else 1 - fade[:, 0]
            hx = self.perm[cell[:, 0] + dx]
            for dy in (0, 1):
                wxy = wx * (fade[:, 1] if dy else 1 - fade[:, 1])
                hy = self.perm[hx + cell[:, 1] + dy]
                for dz in (0, 1):
                    wz = fade[:, 2] if dz else 1 - fade[:, 2]
                    out += wxy * wz * self.values[self.perm[hy + cell[:, 2] + dz]]
        return out

    def fbm(self, points: np.ndarray, octaves: int) -> np.ndarray:
        """Fractal sum of `octaves` octaves (each twice the frequency, half the amplitude), ~[-1, 1]."""
        total = np.zeros(len(points), np.float32)
        amplitude, norm = 1.0, 0.0
        for octave in range(octaves):
            # The offset decorrelates octaves that would otherwise share lattice points at the origin.
            total += amplitude * self(points * 2**octave + 17.3 * octave)
            norm += amplitude
            amplitude *= 0.5
        return total / norm


def build_atlas(
    keypoints: np.ndarray, detail: SkinDetail, seed: int, positions: np.ndarray, covered: np.ndarray, eye_distance: float
) -> np.ndarray:
    """Paint the detail atlas of a mean face whose canonical 224 px landmarks are `keypoints` [68, 2].

    positions [S, S, 3]: the mean face's canonical 3D position seen at each atlas texel (S = 224 *
    ATLAS_SCALE), covered [S, S]: where the face is; eye_distance: outer eye corners, same units.
    The 3D noise is evaluated at those positions once here (baked), so a frame only looks it up.
    Returns float32 [S, S, 7]: tint RGB, alpha, gloss, shade, redness.
    """
    rng = np.random.default_rng(seed)
    size = CANONICAL_SIZE * ATLAS_SCALE
    tint = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    gloss = np.ones((size, size), np.float32)
    pts = keypoints.astype(np.float64) * ATLAS_SCALE - 0.5  # continuous px -> OpenCV pixel-centre coordinates
    eye_px = float(np.linalg.norm(pts[45] - pts[36]))

    def paint(mask: np.ndarray, colour: tuple[float, float, float], strength: float) -> None:
        weight = mask * strength
        tint[:] = tint * (1 - weight[..., None]) + np.asarray(colour, np.float32) * weight[..., None]
        alpha[:] = np.maximum(alpha, weight)

    _paint_blush(paint, pts, eye_px, detail)
    _paint_freckles(paint, rng, pts, eye_px, detail)
    _paint_stubble(paint, rng, pts, eye_px, detail, size)
    lips = _polygon_mask(size, pts[OUTER_LIPS], blur=0.03 * eye_px)
    paint(lips, detail.lip_colour, 0.75)
    gloss += 1.5 * lips
    for brow in (BROW_RIGHT, BROW_LEFT):
        paint(_brow_mask(rng, size, pts[brow], eye_px), detail.brow_colour, 0.9)
    for x, y, radius in detail.moles:
        centre = pts[30] + np.array([x, y]) * eye_px
        paint(_disc_mask(size, centre, radius * eye_px), (0.25, 0.15, 0.1), 0.85)
    shade, redness = _skin_noise(positions, covered, eye_distance, detail)
    return np.concatenate([tint, alpha[..., None], gloss[..., None], shade[..., None], redness[..., None]], -1)


def _skin_noise(
    positions: np.ndarray, covered: np.ndarray, eye_distance: float, detail: SkinDetail
) -> tuple[np.ndarray, np.ndarray]:
    """Albedo multiplier and redness [S, S] from 3D noise at the canonical positions (1 off the face)."""
    noise = NoiseField(detail.noise_seed)
    shade = np.ones(covered.shape, np.float32)
    redness = np.ones(covered.shape, np.float32)
    p = positions[covered] / eye_distance  # frequencies per eye distance, whatever the model's units
    mottle = noise.fbm(p * 3.0, octaves=3)  # blotches
    fine = noise(p * 14.0 + 53.0)  # fine unevenness
    pores = noise(p * 30.0 + 101.0)  # ~2.5 px cells on a 256 px frame
    shade[covered] = 1 + detail.mottle * mottle + 0.04 * fine - 2.5 * detail.pores * np.maximum(pores - 0.3, 0)
    redness[covered] = 1 + 0.5 * detail.mottle * np.maximum(mottle, 0)  # blotches are redder, not only darker
    return shade, redness


def _paint_blush(paint, pts: np.ndarray, eye_distance: float, detail: SkinDetail) -> None:
    if detail.blush <= 0:
        return
    size = CANONICAL_SIZE * ATLAS_SCALE
    for eye in (slice(36, 42), slice(42, 48)):
        centre = pts[eye].mean(0) + np.array([0.0, 0.55 * eye_distance])
        mask = _disc_mask(size, centre, 0.35 * eye_distance, blur=0.25 * eye_distance)
        paint(mask, (0.85, 0.35, 0.35), detail.blush)


def _paint_freckles(paint, rng: np.random.Generator, pts: np.ndarray, eye_distance: float, detail: SkinDetail) -> None:
    """Small brown dots scattered over the nose bridge and cheeks (a band below the eyes)."""
    if detail.freckles == 0:
        return
    size = CANONICAL_SIZE * ATLAS_SCALE
    centre = pts[NOSE].mean(0)
    layer = np.zeros((size, size), np.uint8)
    offsets = rng.normal(0, 1, (detail.freckles, 2)) * np.array([0.55, 0.2]) * eye_distance
    radii = rng.uniform(0.006, 0.014, detail.freckles) * eye_distance
    shades = rng.uniform(120, 255, detail.freckles)
    for (dx, dy), radius, shade in zip(offsets, radii, shades):
        x, y = centre + (dx, dy - 0.1 * eye_distance)
        cv2.circle(layer, (int(x * 16), int(y * 16)), max(1, int(radius * 16)), int(shade), -1, cv2.LINE_AA, 4)
    paint(cv2.GaussianBlur(layer.astype(np.float32) / 255, (0, 0), 0.7), (0.55, 0.33, 0.2), 0.35)


def _paint_stubble(paint, rng, pts: np.ndarray, eye_distance: float, detail: SkinDetail, size: int) -> None:
    """Sparse dark speckle over the jaw, chin and upper lip (not on the lips themselves)."""
    if detail.stubble <= 0:
        return
    region = _polygon_mask(size, np.concatenate([pts[3:14], pts[[35, 33, 31]]]), blur=0.1 * eye_distance)
    region *= 1 - _polygon_mask(size, pts[OUTER_LIPS], blur=0.02 * eye_distance)
    speckle = (rng.random((size, size)) < 0.25).astype(np.float32)
    paint(region * cv2.GaussianBlur(speckle, (0, 0), 0.5), (0.2, 0.15, 0.12), detail.stubble)


def _polygon_mask(size: int, polygon: np.ndarray, blur: float = 0.0) -> np.ndarray:
    layer = np.zeros((size, size), np.uint8)
    cv2.fillPoly(layer, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    mask = layer.astype(np.float32) / 255
    return cv2.GaussianBlur(mask, (0, 0), blur) if blur > 0.3 else mask


def _disc_mask(size: int, centre: np.ndarray, radius: float, blur: float = 0.0) -> np.ndarray:
    layer = np.zeros((size, size), np.uint8)
    cv2.circle(layer, tuple(np.round(centre * 16).astype(int)), max(1, int(radius * 16)), 255, -1, cv2.LINE_AA, 4)
    mask = layer.astype(np.float32) / 255
    return cv2.GaussianBlur(mask, (0, 0), blur) if blur > 0.3 else mask


def _brow_mask(rng: np.random.Generator, size: int, line: np.ndarray, eye_distance: float) -> np.ndarray:
    """An eyebrow: many short slanted hair strokes along the landmark polyline, thicker at the inner end."""
    layer = np.zeros((size, size), np.uint8)
    n_strokes = 160
    along = rng.random(n_strokes) * (len(line) - 1)
    index = np.minimum(along.astype(int), len(line) - 2)
    t = (along - index)[:, None]
    base = line[index] * (1 - t) + line[index + 1] * t
    # Thickness tapers from the inner end (nearer the nose) to the outer end.
    inner = 0 if abs(line[0, 0] - size / 2) < abs(line[-1, 0] - size / 2) else len(line) - 1
    thickness = 0.12 * eye_distance * (1.0 - 0.5 * np.abs(along - inner) / (len(line) - 1))
    base[:, 1] += rng.uniform(-0.5, 0.5, n_strokes) * thickness
    direction = np.sign(line[-1, 0] - line[0, 0]) * (1 if inner == 0 else -1)
    length = 0.06 * eye_distance
    tips = base + np.stack([direction * length * np.ones(n_strokes), -0.5 * length * np.ones(n_strokes)], 1)
    for start, end in zip(base, tips):
        cv2.line(layer, tuple(np.round(start * 16).astype(int)), tuple(np.round(end * 16).astype(int)), 230, 1, cv2.LINE_AA, 4)
    return cv2.GaussianBlur(layer.astype(np.float32) / 255, (0, 0), 0.6)


def detail_albedo(albedo: np.ndarray, sampled: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add skin detail to the low-frequency albedo [P, 3] of P face pixels.

    sampled [P, 7]: the atlas at the pixels' canonical positions; weight [P]: 1 on the visible
    surface of the mean face, 0 on parts hidden in it (the mouth cavity), which keep their albedo.
    Returns (albedo [P, 3], gloss [P]).
    """
    tint, alpha, gloss, shade, redness = sampled[:, :3], sampled[:, 3:4], sampled[:, 4], sampled[:, 5], sampled[:, 6]
    w = weight[:, None]
    hue = np.stack([redness, np.ones_like(redness), 1 / redness], 1)
    out = albedo * (1 + w * (shade[:, None] * hue - 1))
    # Regions keep some of the underlying albedo's brightness variation (lips are skin-lit too).
    luminance = np.clip(albedo.mean(1, keepdims=True) / 0.6, 0.6, 1.4)
    a = alpha * w
    out = out * (1 - a) + tint * luminance * a
    return np.clip(out, 0, 1), 1 + (gloss - 1) * weight
