"""A synthetic morphable model in the BFM_model_front.mat format, our stand-in for the licensed BFM.

The mean face is a height field over a face-shaped grid in BFM's units (decimetres) and placement
(head centre at the origin, face towards +z, y up): forehead, brows, eyes with lids, nose, cheeks,
a mouth whose upper and lower lips are separate rows of vertices (a slit that can open, with a dark
mouth cavity behind it) and a chin. The 68 keypoints sit at their iBUG places. Identity and texture
bases are orthogonal smooth fields with decaying, PCA-like scales, so coefficients ~ N(0, 1) give
plausible faces. Six expression directions have fixed meanings (EXPRESSION_DIRECTIONS, 1.0 = a full
natural motion); the other 58 are small smooth deformations orthogonal to them that leave the lips
still, so that the mouth directions stay identifiable from landmarks.

Mesh indices follow the file format of talkface.face3d.bfm: 1-based, point_buf padded with F + 1,
tri_mask2 indexing the whole mesh.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from talkface.errors import TalkfaceError
from talkface.face3d.coeffs import N_EXPRESSION, N_IDENTITY, N_TEXTURE

EXPRESSION_DIRECTIONS = {"jaw_open": 0, "lip_spread": 1, "lip_round": 2, "smile": 3, "brow_raise": 4, "blink": 5}

MIN_VERTICES = 500
MAX_VERTICES = 100_000  # ~3x the BFM's 35,709 (which takes ~0.5 GB to build); memory grows linearly

# Face layout in model units (decimetres, y up). x is the image's right, so iBUG point 0 has x < 0.
Y_BOTTOM, Y_TOP = -0.9, 0.9  # chin bottom, top of the forehead
Y_MOUTH, MOUTH_CORNER = -0.41, 0.25  # mouth line height, half-width of the lip slit
EYE_X, EYE_Y, EYE_HALF_WIDTH = 0.32, 0.30, 0.14  # eye centres at (±EYE_X, EYE_Y)
EYE_UP, EYE_DOWN = 0.05, 0.03  # lid heights above/below the eye's corner line
FACE_DEPTH = 0.9  # front of the face ahead of the head centre (BFM's centre lies behind the face)
CAVITY_DEPTH = 0.1  # the mouth cavity lies this far behind the head surface

# Per-entry RMS of the leading basis vectors (model units; texture in 0-255), decaying with index.
ID_SCALE, EXP_EXTRA_SCALE, TEX_SCALE = 0.02, 0.004, 8.0

_COLOURS = {  # mean albedo, 0-255 RGB
    "skin": (205, 160, 135), "lips": (178, 96, 96), "brow": (80, 60, 45), "sclera": (235, 230, 225),
    "iris": (90, 62, 42), "pupil": (22, 16, 16), "lash": (60, 45, 40), "nostril": (140, 92, 82),
    "cavity": (70, 25, 30),
}


@dataclass
class _Grid:
    """The face mesh in grid terms: rows of equal column count, the lower-lip copies, the cavity."""

    rows: np.ndarray  # [R] row heights y
    n_cols: int  # C (odd: a centre column at x = 0)
    mouth_row: int
    slit_cols: np.ndarray  # [S] columns strictly between the mouth corners
    lower_ids: np.ndarray  # [S] vertex ids of the lower-lip copies of the slit vertices
    vertices: np.ndarray  # [N, 3] mean shape, model space
    triangles: np.ndarray  # [F, 3] 0-based, counter-clockwise seen from +z
    lower: np.ndarray  # [N] bool: below the mouth line (lower-lip copies included)
    cavity: np.ndarray  # [N] bool: the mouth cavity
    mirror: np.ndarray  # [N] id of the vertex mirrored about x = 0

    def vertex(self, row: int, col: int) -> int:
        return row * self.n_cols + col


def build_synthetic_model_arrays(n_vertices: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays of a synthetic model of about `n_vertices` vertices, keyed and shaped as in bfm.py."""
    if not MIN_VERTICES <= n_vertices <= MAX_VERTICES:
        raise TalkfaceError(f"a synthetic face needs at least {MIN_VERTICES} and at most {MAX_VERTICES} vertices, "
                            f"got {n_vertices}")
    if seed < 0:
        raise TalkfaceError(f"the seed must be >= 0, got {seed}")
    rng = np.random.default_rng(seed)
    grid = _build_grid(n_vertices)
    v = grid.vertices
    n = len(v)
    keypoints = _keypoints(grid)
    front = _front_region(grid)
    front_tris = grid.triangles[np.all(front[grid.triangles], axis=1)]
    basis = _smooth_basis(v)
    exp_semantic = _expression_fields(grid)  # [N, 3, 6]
    return {
        "meanshape": v.reshape(1, -1).astype(np.float32),
        "idBase": _orthogonal_fields(basis, rng, N_IDENTITY, ID_SCALE, decay=2.0).astype(np.float32),
        "exBase": _expression_base(grid, basis, rng, exp_semantic).astype(np.float32),
        "meantex": _mean_texture(grid).reshape(1, -1).astype(np.float32),
        "texBase": _texture_base(basis, rng).astype(np.float32),
        "tri": (grid.triangles + 1).astype(np.int32),
        "point_buf": (_point_buf(grid.triangles, n) + 1).astype(np.int32),
        "keypoints": (keypoints + 1).astype(np.int32),
        "skinmask": _skin_mask(grid).astype(np.float32),
        "frontmask2_idx": (np.flatnonzero(front) + 1).astype(np.int32),
        "tri_mask2": (front_tris + 1).astype(np.int32),
    }


@functools.lru_cache(maxsize=4)
def cached_synthetic_model_arrays(n_vertices: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    """build_synthetic_model_arrays, memoised (callers must not modify the arrays)."""
    return build_synthetic_model_arrays(n_vertices, seed)


def write_synthetic_model(path: str | Path, n_vertices: int = 4000, seed: int = 0) -> None:
    """Write a synthetic model to `path` in the format of BFM_model_front.mat."""
    from talkface.face3d.bfm import write_bfm

    arrays = build_synthetic_model_arrays(n_vertices, seed)
    write_bfm(path, arrays, source=f"synthetic morphable model (n_vertices={n_vertices}, seed={seed})")


# ---------------------------------------------------------------------------------------------
# Geometry


def _half_width(y: np.ndarray) -> np.ndarray:
    """Half-width of the face outline at height y: a narrow chin, widest at the cheekbones."""
    below = 0.2 + 0.5 * np.sqrt(np.clip(1.0 - ((y - 0.15) / 1.05) ** 2, 0.0, 1.0))
    above = 0.7 - 0.1 * ((y - 0.15) / 0.8) ** 2
    return np.where(y < 0.15, below, above)


def _row_heights(n_rows: int) -> tuple[np.ndarray, int]:
    """Row heights, denser around the eyes and lips; one row exactly on the mouth line."""
    y = np.linspace(Y_BOTTOM, Y_TOP, 2001)
    density = 1.0 + 1.0 * np.exp(-(((y - EYE_Y) / 0.07) ** 2)) + 2.0 * np.exp(-(((y - Y_MOUTH) / 0.1) ** 2))
    mass = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(y))])
    mouth_mass = np.interp(Y_MOUTH, y, mass)
    mouth_row = int(round(mouth_mass / mass[-1] * (n_rows - 1)))
    below = np.linspace(0.0, mouth_mass, mouth_row + 1)
    above = np.linspace(mouth_mass, mass[-1], n_rows - mouth_row)[1:]
    return np.interp(np.concatenate([below, above]), mass, y), mouth_row


def _base_depth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The head without features: the face front curving back towards the sides, top and jaw."""
    jaw = 0.2 * (x / 0.5) ** 2 * np.clip((-0.3 - y) / 0.5, 0.0, 1.0) ** 2
    return FACE_DEPTH - 0.55 * (x / 0.7) ** 2 - 0.25 * ((y - 0.1) / 0.9) ** 2 - jaw


def _bump(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-(((x - cx) / sx) ** 2) - ((y - cy) / sy) ** 2)


def _feature_depth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Facial relief added to the head: nose, eye sockets, brow ridge, cheekbones, lips, chin."""
    ax = np.abs(x)
    bridge = 0.02 + 0.28 * np.clip((0.36 - y) / 0.40, 0.0, 1.0) ** 1.5
    tip = 0.30 * np.clip(1.0 - ((-0.04 - y) / 0.10) ** 2, 0.0, 1.0)
    top = 0.02 * np.exp(-(((y - 0.36) / 0.05) ** 2))
    height = np.where(y > 0.36, top, np.where(y >= -0.04, bridge, tip))
    width = np.clip(0.06 + 0.07 * (0.36 - y) / 0.5, 0.06, 0.14)
    nose = height * np.exp(-((x / width) ** 2)) + 0.10 * _bump(ax, y, 0.11, -0.09, 0.06, 0.06)
    eyes = -0.10 * _bump(ax, y, EYE_X, EYE_Y - 0.01, 0.17, 0.10) + 0.04 * _bump(ax, y, EYE_X, EYE_Y, 0.10, 0.06)
    brow = 0.05 * np.exp(-(((y - 0.45) / 0.07) ** 2) - (x / 0.55) ** 4)
    cheeks = 0.06 * _bump(ax, y, 0.40, 0.05, 0.15, 0.15)
    lips = 0.07 * np.exp(-((x / 0.24) ** 4) - ((y + 0.36) / 0.06) ** 2)
    lips += 0.06 * np.exp(-((x / 0.22) ** 4) - ((y + 0.46) / 0.06) ** 2)
    chin = 0.08 * _bump(x, y, 0.0, -0.72, 0.2, 0.12) - 0.03 * _bump(x, y, 0.0, -0.56, 0.2, 0.04)
    return nose + eyes + brow + cheeks + lips + chin


def _grid_triangles(n_rows: int, n_cols: int, offset: int = 0) -> np.ndarray:
    """Two counter-clockwise (seen from +z) triangles per cell of a row-major grid, [2(R-1)(C-1), 3]."""
    r, c = np.meshgrid(np.arange(n_rows - 1), np.arange(n_cols - 1), indexing="ij")
    a = (r * n_cols + c).ravel() + offset  # (row, col); rows go up, columns go right
    b, d, e = a + 1, a + n_cols, a + n_cols + 1
    return np.concatenate([np.stack([a, b, d], 1), np.stack([b, e, d], 1)])


def _layout(n_vertices: int) -> tuple[int, int, int, int]:
    """Face rows and columns, cavity columns and rows, for about n_vertices vertices in all."""
    ys = np.linspace(Y_BOTTOM, Y_TOP, 400)
    face_area = float(np.trapezoid(2 * _half_width(ys), ys))
    spacing = np.sqrt(face_area / n_vertices)
    for _ in range(4):  # the lip copies and the (twice coarser) cavity add vertices: shrink to fit
        n_rows = int(round((Y_TOP - Y_BOTTOM) / spacing)) + 1
        n_cols = int(round(face_area / (Y_TOP - Y_BOTTOM) / spacing)) // 2 * 2 + 1
        cavity_cols, cavity_rows = int(round(0.72 / (2 * spacing))) + 1, int(round(0.48 / (2 * spacing))) + 1
        slit = n_cols * 2 * MOUTH_CORNER / (2 * _half_width(np.array(Y_MOUTH)))
        total = n_rows * n_cols + slit + cavity_cols * cavity_rows
        spacing *= np.sqrt(total / n_vertices)
    return n_rows, n_cols, cavity_cols, cavity_rows


def _build_grid(n_vertices: int) -> _Grid:
    """Lay out the face grid, split the mouth row into two lips and add the mouth cavity."""
    n_rows, n_cols, cavity_cols, cavity_rows = _layout(n_vertices)
    rows, mouth_row = _row_heights(n_rows)
    u = np.linspace(-1.0, 1.0, n_cols)
    y = np.repeat(rows, n_cols)
    x = np.tile(u, n_rows) * _half_width(y)
    face = np.stack([x, y, _base_depth(x, y) + _feature_depth(x, y)], 1)

    mouth_x = u * _half_width(np.array(Y_MOUTH))
    corner = int(np.argmin(np.abs(mouth_x + MOUTH_CORNER)))  # left corner column; right is mirrored
    slit_cols = np.arange(corner + 1, n_cols - 1 - corner)
    upper_ids = mouth_row * n_cols + slit_cols
    lower_ids = n_rows * n_cols + np.arange(len(slit_cols))
    triangles = _grid_triangles(n_rows, n_cols)
    # Cells of the band just below the mouth row take the lower-lip copies of the slit vertices.
    below_band = np.zeros(len(triangles), bool)
    band_cells = (n_rows - 1) * (n_cols - 1)
    below_band[: band_cells][np.repeat(np.arange(n_rows - 1), n_cols - 1) == mouth_row - 1] = True
    below_band[band_cells:] = below_band[:band_cells]
    remap = np.arange(n_rows * n_cols)
    remap[upper_ids] = lower_ids
    triangles[below_band] = remap[triangles[below_band]]

    cavity = _cavity(cavity_cols, cavity_rows)
    cavity_tris = _grid_triangles(cavity[1], cavity[2], offset=len(face) + len(lower_ids))
    vertices = np.concatenate([face, face[upper_ids], cavity[0]])
    lower = np.zeros(len(vertices), bool)
    lower[: n_rows * n_cols] = y < Y_MOUTH - 1e-9
    lower[lower_ids] = True
    is_cavity = np.zeros(len(vertices), bool)
    is_cavity[len(face) + len(lower_ids):] = True
    mirror = np.concatenate([
        _mirrored_grid(n_rows, n_cols), lower_ids[::-1], _mirrored_grid(cavity[1], cavity[2]) + lower_ids[-1] + 1
    ])
    return _Grid(rows, n_cols, mouth_row, slit_cols, lower_ids, vertices,
                 np.concatenate([triangles, cavity_tris]), lower, is_cavity, mirror)


def _mirrored_grid(n_rows: int, n_cols: int) -> np.ndarray:
    """[R*C] ids of a row-major grid with its columns reversed."""
    return (np.arange(n_rows)[:, None] * n_cols + np.arange(n_cols)[::-1]).ravel()


def _cavity(n_cols: int, n_rows: int) -> tuple[np.ndarray, int, int]:
    """A dark surface behind the lips that fills the open mouth; returns (vertices, rows, cols)."""
    x, y = np.meshgrid(np.linspace(-0.36, 0.36, n_cols), np.linspace(-0.74, -0.26, n_rows))
    x, y = x.ravel(), y.ravel()
    return np.stack([x, y, _base_depth(x, y) - CAVITY_DEPTH], 1), n_rows, n_cols


# ---------------------------------------------------------------------------------------------
# Keypoints and regions


def _upper_lid(x: np.ndarray) -> np.ndarray:
    t = np.clip((np.abs(x) - EYE_X) / EYE_HALF_WIDTH, -1.0, 1.0)
    return EYE_Y + EYE_UP * (1.0 - t**2)


def _lower_lid(x: np.ndarray) -> np.ndarray:
    t = np.clip((np.abs(x) - EYE_X) / EYE_HALF_WIDTH, -1.0, 1.0)
    return EYE_Y - EYE_DOWN * (1.0 - t**2)


def _lip_top(x: np.ndarray) -> np.ndarray:
    return Y_MOUTH + 0.09 * np.clip(1.0 - (x / 0.27) ** 2, 0.0, 1.0) ** 0.7


def _lip_bottom(x: np.ndarray) -> np.ndarray:
    return Y_MOUTH - 0.09 * np.clip(1.0 - (x / 0.27) ** 2, 0.0, 1.0) ** 0.8


def _brow_line(x: np.ndarray) -> np.ndarray:
    return 0.43 + 0.07 * np.clip(1.0 - ((np.abs(x) - 0.36) / 0.22) ** 2, 0.0, 1.0)


_Pair = Callable[[int, int, int], None]  # pair(left keypoint, right keypoint, left vertex id)


def _keypoints(grid: _Grid) -> np.ndarray:
    """[68] iBUG keypoint vertex ids: the left half snapped to the grid, the right half mirrored."""
    points: dict[int, int] = {}

    def pair(left: int, right: int, vertex: int) -> None:
        points[left], points[right] = vertex, int(grid.mirror[vertex])

    for k, vertex in enumerate(_jaw_points(grid)):
        pair(k, 16 - k, vertex)
    for k, x in enumerate((-0.56, -0.46, -0.36, -0.25, -0.14)):
        pair(17 + k, 26 - k, _snap(grid, x, float(_brow_line(np.array(x)))))
    for k, y in enumerate((0.30, 0.20, 0.10, -0.04)):
        points[27 + k] = _snap(grid, 0.0, y)
    pair(31, 35, _snap(grid, -0.12, -0.12))
    pair(32, 34, _snap(grid, -0.06, -0.14))
    points[33] = _snap(grid, 0.0, -0.15)
    _eye_points(grid, pair)
    _lip_points(grid, points, pair)
    return np.array([points[k] for k in range(68)], np.int64)


def _snap(grid: _Grid, x: float, y: float) -> int:
    """Id of the face-grid vertex nearest to (x, y) (the row first, then the column in it)."""
    row = int(np.argmin(np.abs(grid.rows - y)))
    xs = grid.vertices[grid.vertex(row, 0) : grid.vertex(row, grid.n_cols), 0]
    return grid.vertex(row, int(np.argmin(np.abs(xs - x))))


def _jaw_points(grid: _Grid) -> list[int]:
    """Points 0-8 spread evenly by arc length along the outline, from the left temple to the chin."""
    top = int(np.argmin(np.abs(grid.rows - 0.28)))
    outline = [grid.vertex(r, 0) for r in range(top, -1, -1)] + [grid.vertex(0, c) for c in range(1, grid.n_cols)]
    xy = grid.vertices[outline, :2]
    length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    half = length[outline.index(grid.vertex(0, grid.n_cols // 2))]
    return [outline[int(np.argmin(np.abs(length - half * k / 8)))] for k in range(9)]


def _eye_points(grid: _Grid, pair: _Pair) -> None:
    """36-47: corners on the lid line; lid points on the outermost grid rows between the lids."""
    pair(36, 45, _snap(grid, -EYE_X - EYE_HALF_WIDTH, EYE_Y))
    pair(39, 42, _snap(grid, -EYE_X + EYE_HALF_WIDTH, EYE_Y))
    for up_k, down_k, dx in ((37, 41, -0.05), (38, 40, 0.05)):
        col = _snap(grid, -EYE_X + dx, EYE_Y) % grid.n_cols
        up, down = _lid_rows(grid, col)
        pair(up_k, 81 - up_k, grid.vertex(up, col))  # 37 <-> 44, 38 <-> 43
        pair(down_k, 87 - down_k, grid.vertex(down, col))  # 41 <-> 46, 40 <-> 47


def _lid_rows(grid: _Grid, col: int) -> tuple[int, int]:
    """Highest and lowest rows inside the eye opening in `col` (the nearest rows when it is thinner)."""
    x = grid.vertices[grid.vertex(0, col) + grid.n_cols * np.arange(len(grid.rows)), 0]
    up, down = _upper_lid(x), _lower_lid(x)
    inside = np.flatnonzero((grid.rows >= down) & (grid.rows <= up))
    if len(inside) == 0:
        return int(np.argmin(np.abs(grid.rows - up))), int(np.argmin(np.abs(grid.rows - down)))
    return int(inside.max()), int(inside.min())


def _lip_points(grid: _Grid, points: dict[int, int], pair: _Pair) -> None:
    """48-67: outer contour on the lip outline, inner contour on the two copies of the slit."""
    pair(48, 54, _snap(grid, -0.28, Y_MOUTH))
    for k, x in enumerate((-0.17, -0.07)):
        pair(49 + k, 53 - k, _snap(grid, x, float(_lip_top(np.array(x)))))
        pair(59 - k, 55 + k, _snap(grid, x, float(_lip_bottom(np.array(x)))))
    points[51] = _snap(grid, 0.0, float(_lip_top(np.array(0.0))))
    points[57] = _snap(grid, 0.0, float(_lip_bottom(np.array(0.0))))
    pair(60, 64, grid.vertex(grid.mouth_row, int(grid.slit_cols[0]) - 1))  # the shared corners
    centre = len(grid.slit_cols) // 2
    offset = int(np.argmin(np.abs(grid.vertices[grid.lower_ids, 0] + 0.1)))  # slit column near x = -0.1
    pair(61, 63, grid.vertex(grid.mouth_row, int(grid.slit_cols[offset])))
    points[62] = grid.vertex(grid.mouth_row, int(grid.slit_cols[centre]))
    pair(67, 65, int(grid.lower_ids[offset]))
    points[66] = int(grid.lower_ids[centre])


def _front_region(grid: _Grid) -> np.ndarray:
    """[N] bool: the inner face used for the photometric loss (BFM's frontmask2)."""
    x, y = grid.vertices[:, 0], grid.vertices[:, 1]
    return ((x / 0.62) ** 2 + (y / 0.85) ** 2 < 1.0) & ~grid.cavity


def _regions(grid: _Grid) -> dict[str, np.ndarray]:
    """Soft [N] weights of the coloured regions of the mean face."""
    x, y = grid.vertices[:, 0], grid.vertices[:, 1]
    ax = np.abs(x)
    in_eye = np.abs(ax - EYE_X) < EYE_HALF_WIDTH
    opening = in_eye & (y >= _lower_lid(x) - 1e-9) & (y <= _upper_lid(x) + 1e-9)
    iris_r = np.hypot(ax - EYE_X, y - EYE_Y - 0.005)
    lash = in_eye & (y > _upper_lid(x)) & (y < _upper_lid(x) + 0.015)
    brow = np.clip(1.0 - np.abs(y - _brow_line(x)) / 0.03, 0.0, 1.0) * ((ax > 0.13) & (ax < 0.59))
    in_lips = (ax < 0.27) & (y <= _lip_top(x)) & (y >= _lip_bottom(x))
    return {
        "sclera": opening * 1.0, "iris": opening * (iris_r < 0.045), "pupil": opening * (iris_r < 0.018),
        "lash": lash * 1.0, "brow": brow, "lips": in_lips * 1.0,
        "nostril": _bump(ax, y, 0.07, -0.13, 0.03, 0.02), "cavity": grid.cavity * 1.0,
    }


def _mean_texture(grid: _Grid) -> np.ndarray:
    """[N, 3] mean albedo in 0-255: skin with rosy cheeks, painted features on top."""
    x, y = grid.vertices[:, 0], grid.vertices[:, 1]
    colour = np.tile(np.array(_COLOURS["skin"], float), (len(x), 1))
    colour += np.outer(_bump(np.abs(x), y, 0.38, -0.05, 0.15, 0.15), (12.0, -6.0, -4.0))
    for name, weight in _regions(grid).items():
        colour += weight[:, None] * (np.array(_COLOURS[name], float) - colour)
    return colour


def _skin_mask(grid: _Grid) -> np.ndarray:
    """[N] 1 on skin, 0 on eyes, lashes, brows, lips and the mouth cavity."""
    regions = _regions(grid)
    not_skin = sum(regions[k] for k in ("sclera", "lash", "brow", "lips", "cavity"))
    return (not_skin < 0.5).astype(np.float32)


def _point_buf(triangles: np.ndarray, n_vertices: int) -> np.ndarray:
    """[N, K] triangles around each vertex (0-based), padded with len(triangles)."""
    vertex = triangles.ravel()
    face = np.repeat(np.arange(len(triangles)), 3)
    order = np.argsort(vertex, kind="stable")
    vertex, face = vertex[order], face[order]
    counts = np.bincount(vertex, minlength=n_vertices)
    slot = np.arange(len(vertex)) - np.repeat(np.cumsum(counts) - counts, counts)
    buf = np.full((n_vertices, max(8, int(counts.max()))), len(triangles), np.int64)
    buf[vertex, slot] = face
    return buf


# ---------------------------------------------------------------------------------------------
# Bases


def _smooth_basis(vertices: np.ndarray, order: int = 6) -> np.ndarray:
    """[N, order²] low-frequency cosine products over the face's bounding box, weighted by 1/(1+k+l)²."""
    xn = (vertices[:, 0] + 0.8) / 1.6
    yn = (vertices[:, 1] - Y_BOTTOM) / (Y_TOP - Y_BOTTOM)
    k = np.arange(order)
    fx, fy = np.cos(np.pi * np.outer(xn, k)), np.cos(np.pi * np.outer(yn, k))
    weight = 1.0 / (1.0 + k[:, None] + k[None, :]) ** 2
    return (fx[:, :, None] * fy[:, None, :] * weight).reshape(len(vertices), -1)


def _orthogonal_fields(basis: np.ndarray, rng: np.random.Generator, count: int, scale: float,
                       decay: float, against: np.ndarray | None = None) -> np.ndarray:
    """[3N, count] orthogonal random smooth xyz fields; column k has per-entry RMS scale/(1+k/decay)."""
    p = basis.shape[1]
    weights = rng.standard_normal((p, 3, count))
    if against is not None:
        # Fields are linear in the weights, so orthogonality to `against` is a linear constraint on
        # them: project the weights onto its null space. (Subtracting the projection from the fields
        # instead would mix the `against` columns into every field, wherever they move.)
        constraint = torch.from_numpy(against).T @ _fields(basis, np.eye(3 * p).reshape(p, 3, 3 * p))
        null = torch.linalg.svd(constraint).Vh[against.shape[1]:].T  # [3P, 3P - A]
        weights = (null @ (null.T @ torch.from_numpy(weights.reshape(3 * p, count)))).numpy()
    fields = _fields(basis, weights.reshape(p, 3, count))
    rms = scale / (1.0 + np.arange(count) / decay)
    return (_orthonormal_columns(fields) * torch.from_numpy(rms * np.sqrt(len(fields)))).numpy()


def _fields(basis: np.ndarray, weights: np.ndarray) -> torch.Tensor:
    """[N, P] scalar basis, [P, 3, K] weights -> [3N, K] float64 xyz fields (xyz interleaved per vertex)."""
    n, (p, _, k) = len(basis), weights.shape
    return (torch.from_numpy(basis) @ torch.from_numpy(weights).reshape(p, 3 * k)).reshape(3 * n, k)


def _orthonormal_columns(fields: torch.Tensor) -> torch.Tensor:
    """Orthonormalise the columns of a tall matrix (Cholesky QR, twice for accuracy).

    torch rather than numpy: numpy's threaded OpenBLAS slows down ~100x on a loaded 2-core machine.
    """
    for _ in range(2):
        chol = torch.linalg.cholesky(fields.T @ fields)
        fields = fields @ torch.linalg.inv(chol).T  # F L^-T: columns orthonormal
    return fields


def _expression_base(grid: _Grid, basis: np.ndarray, rng: np.random.Generator, semantic: np.ndarray) -> np.ndarray:
    """[3N, 64]: the six named motions, then 58 small smooth fields orthogonal to them, still on the mouth.

    The extras vanish on the lips: otherwise, smooth and free of scale in a fit, they span most of
    the mouth's landmark motion and can stand in for the named mouth directions (lip_round was 99 %
    reproducible from the other 63 directions before this taper).
    """
    named = semantic.reshape(-1, semantic.shape[-1])
    tapered = basis * _mouth_taper(grid.vertices[:, 0], grid.vertices[:, 1])[:, None]
    extra = _orthogonal_fields(tapered, rng, N_EXPRESSION - named.shape[1], EXP_EXTRA_SCALE, decay=8.0, against=named)
    return np.concatenate([named, extra], axis=1)


def _mouth_taper(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[N] 0 on the lips and just around them (an ellipse ~5 mm past the corners), 1 from ~2.5 cm beyond them."""
    r = np.hypot(x / 0.4, (y - Y_MOUTH) / 0.2)
    return _smoothstep(0.75, 1.3, r)


def _texture_base(basis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[3N, 80] orthogonal colour fields: smooth maps of skin tone, redness and yellowness."""
    n, p = basis.shape
    maps = _orthonormal_columns(torch.from_numpy(basis) @ torch.from_numpy(rng.standard_normal((p, p))))
    tone = np.array([1.0, 0.85, 0.75])
    redness = np.cross(tone, [0.0, 0.0, 1.0])
    colours = [tone, redness, np.cross(tone, redness)]  # orthogonal, so every column is orthogonal
    columns = [(scale / (1.0 + j / 2.0), c, j) for c, scale in enumerate((TEX_SCALE, 3.0, 2.0)) for j in range(p)]
    columns = sorted(columns, key=lambda column: -column[0])[:N_TEXTURE]
    base = np.empty((n, 3, len(columns)))
    for k, (rms, c, j) in enumerate(columns):
        colour = colours[c] / np.linalg.norm(colours[c])
        base[:, :, k] = np.outer(maps[:, j].numpy(), colour) * rms * np.sqrt(n)
    return base.reshape(3 * n, -1)


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _expression_fields(grid: _Grid) -> np.ndarray:
    """[N, 3, 6] displacements of the named expressions at full strength (EXPRESSION_DIRECTIONS order)."""
    x, y = grid.vertices[:, 0], grid.vertices[:, 1]
    fields = np.zeros((len(x), 3, len(EXPRESSION_DIRECTIONS)))
    for name, index in EXPRESSION_DIRECTIONS.items():
        fields[:, :, index] = _EXPRESSIONS[name](grid, x, y)
    return fields


def _jaw_open(grid: _Grid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The lower lip, chin and jaw drop (~2 cm at the lip: a wide vowel); the upper lip lifts a little."""
    taper = np.clip(1.0 - (x / MOUTH_CORNER) ** 2, 0.0, 1.0)
    below = _smoothstep(0.0, 0.25, Y_MOUTH - y)
    jaw_weight = 1.0 - 0.6 * _smoothstep(0.2, 0.7, np.abs(x))
    weight = np.where(grid.lower, (1.0 - below) * taper + below * jaw_weight, 0.0)
    weight[grid.cavity] = 0.0
    drop = 0.20 + 0.06 * np.clip((Y_MOUTH - y) / (Y_MOUTH - Y_BOTTOM), 0.0, 1.0)
    lift = np.where(grid.lower | grid.cavity, 0.0, 0.02 * taper * np.exp(-(((y - Y_MOUTH) / 0.08) ** 2)))
    return np.stack([0.0 * x, lift - weight * drop, -0.05 * weight], 1)


def _mouth_weight(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.exp(-(((x / 0.40) ** 2 + ((y - Y_MOUTH) / 0.16) ** 2) ** 2))


def _lip_spread(grid: _Grid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Corners pull outwards (~6 mm each) and back; the lips thin."""
    m = _mouth_weight(x, y) * ~grid.cavity
    return np.stack([0.25 * x * m, -0.15 * (y - Y_MOUTH) * m, -0.3 * x**2 * m], 1)


def _lip_round(grid: _Grid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Lips purse into an "oo": corners come in (~4 mm each), the inner lips part in the middle (an
    ~8 mm aperture) and the lips protrude (~7 mm).

    Its 2D signature must differ from -lip_spread (corners in, lips thicker, aperture shut) and from
    jaw_open (the lower lip and chin drop, the upper lip hardly moves): here both inner lips move
    apart symmetrically with the chin still, and the inward pull is concentrated at the corners.
    """
    m = _mouth_weight(x, y) * ~grid.cavity
    inward = -0.045 * np.sign(x) * np.clip(np.abs(x) / MOUTH_CORNER, 0.0, 1.0) ** 3 * m
    # Each lip moves away from the slit most at its inner edge and little at its outer edge: the
    # protruding lips look fuller in depth, not in outline (an outline moving out like the inner
    # edge would copy -lip_spread and jaw_open: lip_round 28 % unexplained instead of 46 %, see
    # tests/test_face3d.py).
    arch = np.clip(1.0 - (x / MOUTH_CORNER) ** 2, 0.0, 1.0)
    body = np.interp(np.abs(y - Y_MOUTH), [0.0, 0.09, 0.14], [1.0, 0.1, 0.0])
    part = np.where(grid.lower, -0.04, 0.04) * arch * body * ~grid.cavity
    pout = np.exp(-((x / 0.3) ** 4) - ((y - Y_MOUTH) / 0.12) ** 2) * ~grid.cavity
    return np.stack([inward, part, 0.07 * pout], 1)


def _smile(grid: _Grid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mouth corners rise (~6 mm) and widen; cheeks lift and bulge."""
    corners = _bump(np.abs(x), y, MOUTH_CORNER, Y_MOUTH, 0.12, 0.12) * ~grid.cavity
    cheeks = _bump(np.abs(x), y, 0.35, -0.1, 0.12, 0.12)
    return np.stack([0.03 * np.tanh(x / 0.05) * corners, 0.06 * corners + 0.02 * cheeks, 0.03 * cheeks], 1)


def _brow_raise(grid: _Grid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Brows lift ~5 mm, the forehead less, the eyelids not at all."""
    rise = _smoothstep(EYE_Y + EYE_UP, 0.45, y) * (1.0 - 0.6 * _smoothstep(0.5, Y_TOP, y))
    weight = 0.05 * rise * np.exp(-((x / 0.65) ** 4))
    return np.stack([0.0 * x, weight, 0.0 * x], 1)


def _blink(grid: _Grid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The upper lid comes down onto the lower lid (95 % closed, so no triangle degenerates)."""
    up, down = _upper_lid(x), _lower_lid(x)
    in_eye = np.abs(np.abs(x) - EYE_X) < EYE_HALF_WIDTH
    inside = in_eye & (y >= down) & (y <= up)
    above = in_eye & (y > up)
    dy = np.where(inside, -0.95 * (y - down), 0.0)
    dy = np.where(above, -0.95 * (up - down) * (1.0 - _smoothstep(0.0, 0.08, y - up)), dy)
    return np.stack([0.0 * x, dy, 0.0 * x], 1)


_EXPRESSIONS = {
    "jaw_open": _jaw_open, "lip_spread": _lip_spread, "lip_round": _lip_round,
    "smile": _smile, "brow_raise": _brow_raise, "blink": _blink,
}
