"""Pure-PyTorch triangle rasterizer: runs on any device (docs/method.md, "Rendering").

A face mesh at 224 px has ~0.3 px² triangles: most hold zero or one pixel centre. So coverage is
found in two vectorised passes, never a Python loop over triangles or pixels:

1. one dense pass tests each triangle's first candidate pixel (the top-left pixel centre of its
   bounding box);
2. the few triangles whose box holds more than one pixel centre are expanded into
   (triangle, pixel) pairs, in chunks of at most `_PAIR_CHUNK` pairs so a huge triangle cannot
   exhaust memory.

Each pair's coverage test evaluates the edge functions from per-edge data that is bit-identical in
the two triangles sharing an edge, so a pixel centre exactly on a shared edge is never dropped by
both (no cracks). Each covering pair writes one int64 key into a per-pixel z-buffer with a single
scatter-max: the float32 bit pattern of the inverse depth (monotone for positive floats) above the
triangle id. So the depth test and the winner choice are one integer reduction, with no float
scatter or sort.

Barycentrics of the winners are then recomputed by `barycentrics`, a torch.autograd.Function with
a hand-written backward (analytic gradients w.r.t. the winning corners' screen positions and
depths, accumulated per vertex with scatter_add_, the 1-D form of index_add_), which costs about half
of autograd through the same formula. Back faces are not culled:
both windings render. Triangles with a corner at depth <= 0 are dropped, not clipped.

On glibc, large temporaries above the malloc mmap threshold are mapped and unmapped on every
call, so each call page-faults on fresh memory (about 2x slower; measured here at 224 px
under load: twice the page faults and ~1.25x the CPU time for forward+backward). That is a
process-wide allocator setting, so this module leaves it alone; benchmarks/bench_rasterizer.py
shows how to raise it (mallopt M_MMAP_THRESHOLD / M_TRIM_THRESHOLD).
"""

from __future__ import annotations

import torch
from torch import Tensor

# The z-buffer key: float32 bits of 1/z in the high 32 bits, triangle id in the low 32 bits. Equal
# depths (after rounding to float32) resolve to the larger triangle id.
_ID_BITS = 32
_ID_MASK = (1 << _ID_BITS) - 1
# (triangle, pixel) pairs per expansion chunk: ~40 temporaries of 4-8 bytes each, ~250 MiB at most.
_PAIR_CHUNK = 1 << 20
# Coverage data per triangle: 4 numbers for each of its 3 edges and 3 depth factors (_TriangleSetup).
_ROW = 15


def rasterize_torch(
    screen: Tensor, depth: Tensor, triangles: Tensor, image_size: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """Rasterize [B,N,2] pixel positions with [B,N] depths: triangle_id [B,H,W], bary [B,H,W,3], depth [B,H,W]."""
    triangle_id = visible_triangles(screen.detach(), depth.detach(), triangles, image_size)
    bary, zbuf = barycentrics(screen, depth, triangles, triangle_id)
    return triangle_id, bary, zbuf


@torch.no_grad()
def visible_triangles(screen: Tensor, depth: Tensor, triangles: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Id of the nearest triangle covering each pixel centre, -1 where none: [B,H,W] int64."""
    height, width = image_size
    batch, n_faces = depth.shape[0], triangles.shape[0]
    zbuf = torch.full((batch * height * width,), -1, dtype=torch.int64, device=screen.device)
    if n_faces > 0:
        setup = _TriangleSetup(screen, depth, triangles, height, width)
        # Pass 1: every triangle's first candidate pixel, aligned with the triangles (no gather).
        setup.splat(zbuf)
        # Pass 2: the other candidates of the triangles whose box holds more than one pixel centre.
        big = torch.nonzero(setup.count > 1).squeeze(1)  # [T] flat (image, triangle) indices
        extra = setup.count.index_select(0, big) - 1  # candidates 1 .. count-1 of each
        ends = torch.cumsum(extra, 0)
        starts = ends - extra  # [T] first pair of each triangle
        total = int(ends[-1]) if len(ends) else 0
        for start in range(0, total, _PAIR_CHUNK):
            stop = min(start + _PAIR_CHUNK, total)
            first, last = torch.searchsorted(ends, ends.new_tensor([start, stop - 1]), right=True).tolist()
            # Owner of each pair: mark where each later triangle's pairs begin, prefix-sum the marks
            # (a per-pair searchsorted costs ~20x more).
            mark = torch.zeros(stop - start, dtype=torch.int64, device=screen.device)
            mark.index_fill_(0, starts[first + 1 : last + 1] - start, 1)
            owner = mark.cumsum_(0).add_(first)  # [P] index into `big`
            local = (torch.arange(start, stop, device=screen.device) - starts.index_select(0, owner) + 1).double()
            tri = big.index_select(0, owner)
            # Float64 division is exact here and much faster than int64 // and % on CPU.
            box_width = setup.nx.index_select(0, tri)
            dy = torch.floor((local + 0.5) / box_width)
            dx = local - dy * box_width
            py = setup.y0.index_select(0, tri).double() + dy
            setup.splat(zbuf, tri, py, setup.x0.index_select(0, tri).double() + dx)
    triangle_id = torch.where(zbuf >= 0, zbuf & _ID_MASK, zbuf)
    return triangle_id.view(batch, height, width)


class _TriangleSetup:
    """Per (image, triangle) data for the coverage test, flattened to B*F entries.

    Written as float elementwise ops on whole [B*F] rows: on CPU, advanced indexing, reductions
    over a size-3 dimension, `where` and comparisons producing bools cost 5-20x a float multiply.
    """

    def __init__(self, screen: Tensor, depth: Tensor, triangles: Tensor, height: int, width: int):
        batch, n_vertices = depth.shape
        n_faces = triangles.shape[0]
        self.width = width
        # Corner k of every (image, triangle): x[k], y[k], d[k] are [B*F].
        offset = torch.arange(batch, device=screen.device).view(1, batch, 1) * n_vertices
        corner_ids = (triangles.t().unsqueeze(1) + offset).reshape(-1)  # [3*B*F]
        x, y, d = (t.reshape(-1).index_select(0, corner_ids).view(3, -1) for t in screen.unbind(-1) + (depth,))
        # Twice the signed area; its sign is the winding (both windings render).
        area2 = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
        # Rows: per corner i, the edge opposite it (a -> b = i+1 -> i+2) as S = pa + pb and
        # V = pb - pa, and f_i = 1 / (4A·d_i), so that λ_i = E_i / (2A·d_i) = f_i · cross(V, 2c - S)
        # S and V are the same bits, up to V's sign, in the two triangles sharing
        # the edge (+ commutes exactly in IEEE arithmetic), so a pixel centre on a shared edge is
        # inside at least one of them: no cracks between triangles.
        self.rows = rows = screen.new_empty(_ROW, batch * n_faces)
        for i in range(3):
            a, b = (i + 1) % 3, (i + 2) % 3
            torch.add(x[a], x[b], out=rows[4 * i])
            torch.add(y[a], y[b], out=rows[4 * i + 1])
            torch.sub(x[b], x[a], out=rows[4 * i + 2])
            torch.sub(y[b], y[a], out=rows[4 * i + 3])
            torch.reciprocal(2.0 * area2 * d[i], out=rows[12 + i])
        x0, x1 = _centre_range(_min3(x), _max3(x), width)  # candidate columns
        y0, y1 = _centre_range(_min3(y), _max3(y), height)  # candidate rows
        self.nx = (x1 - x0 + 1).clamp_(min=0).double()  # float64: exact products beyond 2^24 pixels
        count = self.nx * (y1 - y0 + 1).clamp_(min=0).double()
        # Unusable: zero or non-finite area, a corner at depth <= 0 or non-finite (NaN fails all).
        usable = (torch.minimum(_min3(d), area2.abs()) > 0) & (_max3(d) + area2.abs() < float("inf"))
        count.mul_(usable)
        # 0 for triangles with a candidate pixel, -1 without: pass 1 folds it into its inside test.
        self.penalty = (count.clamp(max=1) - 1).to(rows.dtype)  # [B*F]
        self.count = count.long()  # [B*F] candidate pixel centres
        self.x0 = x0.clamp_(max=width - 1)  # [B*F] top-left candidate pixel (exact integers)
        self.y0 = y0.clamp_(max=height - 1)
        self.face = torch.arange(n_faces, device=screen.device).repeat(batch)  # [B*F] triangle id
        self.first = self.y0.long() * width + self.x0.long()  # [B*F] flat pixel index in the batch
        self.plane = None
        if batch > 1:  # offset of each (image, triangle)'s image in the z-buffer
            self.plane = torch.arange(batch, device=screen.device).repeat_interleave(n_faces) * (height * width)
            self.first += self.plane

    def splat(self, zbuf: Tensor, tri: Tensor | None = None, py: Tensor | None = None, px: Tensor | None = None):
        """Scatter-max the z-buffer keys of covering pairs.

        Without `tri`: each triangle's first candidate. Otherwise pairs (tri, row py, column px).
        """
        if tri is None:
            rows, cx, cy, face, pixel = self.rows, self.x0, self.y0, self.face, self.first
        else:
            rows, face = self.rows.index_select(1, tri), self.face.index_select(0, tri)
            pixel = py.long() * self.width + px.long()
            if self.plane is not None:
                pixel += self.plane.index_select(0, tri)
            cx, cy = px.to(rows.dtype), py.to(rows.dtype)
        cx2 = 2.0 * cx + 1.0  # 2c: twice the pixel centre
        cy2 = 2.0 * cy + 1.0
        lam = [  # λ_i = f_i · (V_x (2c_y - S_y) - V_y (2c_x - S_x))
            (rows[4 * i + 2] * (cy2 - rows[4 * i + 1]) - rows[4 * i + 3] * (cx2 - rows[4 * i])) * rows[12 + i]
            for i in range(3)
        ]
        # Inside <=> min λ_i >= 0. Give 1/z = Σ λ_i the sign of min λ_i (+0.0 turns -0.0 on an
        # edge into +0.0, i.e. inside): outside pairs then get negative keys and lose to the
        # empty key -1 without a `where`. NaN (only from unusable triangles) maps to -1 too.
        worst = torch.minimum(torch.minimum(lam[0], lam[1]), lam[2])
        if tri is None:
            worst = torch.minimum(worst, self.penalty)
        inverse_depth = torch.copysign(lam[0] + lam[1] + lam[2], worst + 0.0).nan_to_num_(nan=-1.0)
        key = (inverse_depth.to(torch.float32).view(torch.int32).to(torch.int64) << _ID_BITS) | face
        zbuf.scatter_reduce_(0, pixel, key, "amax")


def barycentrics(screen: Tensor, depth: Tensor, triangles: Tensor, triangle_id: Tensor) -> tuple[Tensor, Tensor]:
    """Perspective-correct barycentrics [B,H,W,3] and depth [B,H,W] at each pixel centre of its `triangle_id`.

    Both are 0 where triangle_id is -1; differentiable w.r.t. `screen` and `depth`.
    """
    return _Barycentrics.apply(screen, depth, triangles, triangle_id)


class _Barycentrics(torch.autograd.Function):
    """Barycentrics of given winners, with analytic gradients w.r.t. screen positions and depths.

    Everything runs on contiguous [K] vectors per component and corner (corner-major gathers):
    on CPU, arithmetic on [K,2] / [K,3] column slices and sums over a size-3 dimension cost 5-10x more.
    """

    @staticmethod
    def forward(ctx, screen: Tensor, depth: Tensor, triangles: Tensor, triangle_id: Tensor) -> tuple[Tensor, Tensor]:
        batch, n_vertices = depth.shape
        _, height, width = triangle_id.shape
        flat = triangle_id.reshape(-1)
        pix = torch.nonzero(flat >= 0).squeeze(1)  # [K] covered pixels of the whole batch
        image, cx, cy = _pixel_centres(pix, batch, height, width)
        vid = corner_vertices(triangles, flat.index_select(0, pix), image * n_vertices if batch > 1 else None)  # [3K]
        x, y, d = (t.reshape(-1).index_select(0, vid).view(3, -1) for t in screen.unbind(-1) + (depth,))
        cx, cy = cx.to(screen.dtype), cy.to(screen.dtype)
        # Screen-space barycentrics relative to corner 0 (a plain 3x3 inverse loses
        # ~1 % depth precision in fp32 on sub-pixel triangles).
        e1x, e1y, e2x, e2y = x[1] - x[0], y[1] - y[0], x[2] - x[0], y[2] - y[0]
        qx, qy = cx - x[0], cy - y[0]
        area2 = e1x * e2y - e1y * e2x  # [K] twice the signed area
        b1 = (qx * e2y - qy * e2x) / area2
        b2 = (e1x * qy - e1y * qx) / area2
        b0 = 1.0 - b1 - b2
        lam = torch.stack([b0 / d[0], b1 / d[1], b2 / d[2]])  # [3,K] λ_i = b_i / d_i, linear in 1/z
        z = 1.0 / (lam[0] + lam[1] + lam[2])  # [K] depth: 1/z = Σ λ_i
        beta = lam * z  # [3,K] perspective-correct barycentrics
        bary = screen.new_zeros(batch * height * width, 3).index_copy_(0, pix, beta.t())
        zbuf = screen.new_zeros(batch * height * width).index_copy_(0, pix, z)
        ctx.save_for_backward(pix, vid, d, e1x, e1y, e2x, e2y, area2, b1, b2, lam, beta, z)
        ctx.vertex_count = batch * n_vertices
        return bary.view(batch, height, width, 3), zbuf.view(batch, height, width)

    @staticmethod
    def backward(ctx, grad_bary: Tensor, grad_depth: Tensor):
        pix, vid, d, e1x, e1y, e2x, e2y, area2, b1, b2, lam, beta, z = ctx.saved_tensors
        g_beta = grad_bary.reshape(-1, 3).index_select(0, pix).t()  # [3,K]
        g_z = grad_depth.reshape(-1).index_select(0, pix)  # [K]
        # β = λ / Σλ and z = 1 / Σλ  ->  dL/dλ_j = (g_β_j - Σ_i g_β_i β_i) · z - g_z · z².
        common = (g_beta[0] * beta[0] + g_beta[1] * beta[1] + g_beta[2] * beta[2]) * z + g_z * z * z
        g_lam = g_beta * z - common  # [3,K]
        g_b = g_lam / d  # λ_i = b_i / d_i
        g_d = -g_lam * lam / d
        # Screen barycentrics solve Σ b_k p_k = c, Σ b_k = 1, so ∂b/∂p_k = -b_k ∂b/∂c, where
        # ∂b1/∂c = (e2.y, -e2.x)/2A, ∂b2/∂c = (-e1.y, e1.x)/2A and ∂b0/∂c = -(∂b1/∂c + ∂b2/∂c).
        g1 = (g_b[1] - g_b[0]) / area2
        g2 = (g_b[2] - g_b[0]) / area2
        g_cx = g1 * e2y - g2 * e1y  # [K] dL/dc
        g_cy = g2 * e1x - g1 * e2x
        b = torch.stack([1.0 - b1 - b2, b1, b2])  # [3,K]
        grad_screen = grad_depth_in = None
        count = ctx.vertex_count
        if ctx.needs_input_grad[0]:  # 1-D scatter_add_ per component: ~1.5x faster than a 2-D index_add_ on CPU
            grad_screen = torch.stack([_accumulate(-b * g_c, vid, count) for g_c in (g_cx, g_cy)], -1)
            grad_screen = grad_screen.view(grad_bary.shape[0], -1, 2)
        if ctx.needs_input_grad[1]:
            grad_depth_in = _accumulate(g_d, vid, count).view(grad_bary.shape[0], -1)
        return grad_screen, grad_depth_in, None, None


def _min3(v: Tensor) -> Tensor:
    """Elementwise minimum of the 3 rows of [3, M] (faster than amin over a size-3 dimension)."""
    return torch.minimum(torch.minimum(v[0], v[1]), v[2])


def _max3(v: Tensor) -> Tensor:
    return torch.maximum(torch.maximum(v[0], v[1]), v[2])


def _centre_range(low: Tensor, high: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """First and last index j in [0, size) whose pixel centre j + 0.5 lies in [low, high], as floats.

    The range is empty where last < first. The clamps keep far-off coordinates castable to
    integers; NaN gives an empty range.
    """
    bound = float(size + 1)
    first = torch.ceil(low.nan_to_num_(nan=-1.0).clamp_(-1.0, bound) - 0.5).clamp_(min=0)
    last = torch.floor(high.nan_to_num_(nan=-1.0).clamp_(-1.0, bound) - 0.5).clamp_(max=size - 1)
    return first, last


def _accumulate(values: Tensor, index: Tensor, count: int) -> Tensor:
    """Sum per-corner values [3,K] into [count] per-vertex totals at corner-major flat vertex ids `index` [3K]."""
    return values.new_zeros(count).scatter_add_(0, index, values.reshape(-1))


def corner_vertices(triangles: Tensor, face: Tensor, offset: Tensor | None) -> Tensor:
    """Corner-major flat vertex ids [3K] of triangles `face` [K], plus `offset` [K] (its image's first vertex)."""
    vid = torch.stack([triangles[:, k].index_select(0, face) for k in range(3)])  # [3,K]
    if offset is not None:
        vid += offset
    return vid.view(-1)


def _pixel_centres(pix: Tensor, batch: int, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Image index [K] and pixel centre x [K], y [K] of flat pixel indices into [B,H,W].

    Floor division in floating point is exact here (float32 while indices < 2^23: the fractional
    part of index / width is at least 1 / width) and several times faster than int64 // and % on CPU.
    """
    flat = pix.to(torch.float32 if batch * height * width < 2**23 else torch.float64)
    row = torch.floor((flat + 0.5) / width)  # b * H + i
    image = torch.floor((row + 0.5) / height)
    return image.long(), flat - row * width + 0.5, row - image * height + 0.5
