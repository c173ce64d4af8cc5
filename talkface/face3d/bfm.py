"""BFM_model_front.mat: read and validate it, write it, and build it from the raw BFM files.

The file format is Deep3DFaceRecon's (docs/formats.md, "BFM_model_front.mat"), N vertices, F triangles:
    meanshape [1, 3N]   idBase [3N, 80]   exBase [3N, 64]   (model units: decimetres)
    meantex [1, 3N]     texBase [3N, 80]  (0-255)            xyz / rgb interleaved per vertex
    tri [F, 3]          point_buf [N, K] (triangles around each vertex, padded with F + 1)
    keypoints [68]      skinmask [N] (1 on skin)  frontmask2_idx [M]  tri_mask2 [F2, 3]
All indices are 1-based (MATLAB). Deep3DFaceRecon's tri_mask2 indexes the M vertices of
frontmask2_idx although it is used as mesh vertex ids (a known bug); files we write store it mapped
to mesh ids and carry TALKFACE_FORMAT_KEY, and files without that key are mapped when read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from talkface.atomic import atomic_path
from talkface.errors import MissingWeightsError, TalkfaceError
from talkface.face3d.coeffs import N_EXPRESSION, N_IDENTITY, N_TEXTURE

REQUIRED_KEYS = (
    "meanshape", "idBase", "exBase", "meantex", "texBase",
    "tri", "point_buf", "keypoints", "skinmask", "frontmask2_idx", "tri_mask2",
)
TALKFACE_FORMAT_KEY = "talkface_format"  # present: tri_mask2 holds mesh vertex ids
N_KEYPOINTS = 68

DEFAULT_PATH = Path("checkpoints/BFM/BFM_model_front.mat")
HOW_TO_GET = (
    "build it with `talkface bfm convert checkpoints/BFM` from the raw BFM files "
    "(checkpoints/README.md), or use the synthetic model ('synthetic')"
)

# The raw inputs of `talkface bfm convert` and where users get them (checkpoints/README.md).
RAW_SOURCES = {
    "01_MorphableModel.mat": (
        "Basel Face Model 2009, https://faces.dmi.unibas.ch/bfm/ (registration; licence forbids redistribution)"
    ),
    "Exp_Pca.bin": "Guo et al. 3DFace, CoarseData release, https://github.com/Juyong/3DFace",
    "BFM_front_idx.mat": "Deep3DFaceRecon_pytorch BFM/ folder, https://github.com/sicxu/Deep3DFaceRecon_pytorch",
    "BFM_exp_idx.mat": "Deep3DFaceRecon_pytorch BFM/ folder",
    "std_exp.txt": "Deep3DFaceRecon_pytorch BFM/ folder",
    "facemodel_info.mat": "Deep3DFaceRecon_pytorch BFM/ folder",
}
BFM09_SCALE = 1e5  # BFM09 shapes and Guo's expressions -> decimetres (Deep3DFaceRecon's units)


def read_bfm(path: str | Path) -> dict[str, np.ndarray]:
    """Load and validate a BFM_model_front.mat; arrays in canonical shapes, tri_mask2 as mesh ids."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(path, "morphable model (BFM)", HOW_TO_GET)
    raw = _loadmat(path, REQUIRED_KEYS + (TALKFACE_FORMAT_KEY,), optional=(TALKFACE_FORMAT_KEY,))
    arrays = canonical_arrays({key: raw[key] for key in REQUIRED_KEYS}, path)
    if TALKFACE_FORMAT_KEY not in raw:
        arrays["tri_mask2"] = _front_to_mesh_ids(arrays["tri_mask2"], arrays["frontmask2_idx"], path)
    validate_bfm(arrays, path)
    return arrays


def canonical_arrays(arrays: dict[str, np.ndarray], path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Cast to float32 / int64 and the shapes of the module docstring (MATLAB adds singleton dims)."""
    out = {}
    for key in ("meanshape", "meantex"):
        out[key] = np.asarray(arrays[key], np.float32).reshape(1, -1)
    for key in ("idBase", "exBase", "texBase"):
        out[key] = np.atleast_2d(np.asarray(arrays[key], np.float32))
    for key in ("tri", "point_buf", "tri_mask2"):
        out[key] = np.atleast_2d(_integers(arrays[key], key, path))
    for key in ("keypoints", "frontmask2_idx"):
        out[key] = _integers(arrays[key], key, path).ravel()
    out["skinmask"] = np.asarray(arrays["skinmask"], np.float32).ravel()
    return out


def validate_bfm(arrays: dict[str, np.ndarray], path: str | Path | None = None) -> None:
    """Check that sizes agree and indices are in range; raise TalkfaceError naming the first mismatch."""
    size = arrays["meanshape"].size
    if size == 0 or size % 3:
        raise TalkfaceError(f"meanshape has {size} values, not a positive multiple of 3", path)
    n = size // 3
    expected = {
        "meantex": (1, 3 * n), "idBase": (3 * n, N_IDENTITY), "exBase": (3 * n, N_EXPRESSION),
        "texBase": (3 * n, N_TEXTURE), "keypoints": (N_KEYPOINTS,), "skinmask": (n,),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise TalkfaceError(f"{key} has shape {arrays[key].shape}, expected {shape} for {n} vertices", path)
    n_tri = len(arrays["tri"])
    if arrays["point_buf"].shape[0] != n:
        raise TalkfaceError(f"point_buf has {arrays['point_buf'].shape[0]} rows, expected {n}", path)
    for key in ("tri", "tri_mask2"):
        if arrays[key].shape[1:] != (3,):
            raise TalkfaceError(f"{key} has shape {arrays[key].shape}, expected (F, 3)", path)
    limits = {"tri": n, "keypoints": n, "frontmask2_idx": n, "tri_mask2": n, "point_buf": n_tri + 1}
    for key, limit in limits.items():
        values = arrays[key]
        if values.size and (values.min() < 1 or values.max() > limit):
            raise TalkfaceError(
                f"{key} holds ids {values.min()}..{values.max()}, expected 1-based ids up to {limit}", path
            )


def write_bfm(path: str | Path, arrays: dict[str, np.ndarray], **provenance_fields: object) -> None:
    """Validate `arrays` (tri_mask2 as mesh ids) and write them atomically as a BFM_model_front.mat."""
    from scipy.io import savemat

    from talkface.provenance import provenance

    arrays = canonical_arrays(arrays, path)
    validate_bfm(arrays, path)
    contents = {key: arrays[key] for key in REQUIRED_KEYS}
    for key in ("tri", "point_buf", "tri_mask2", "keypoints", "frontmask2_idx"):
        contents[key] = contents[key].astype(np.int32)
    contents[TALKFACE_FORMAT_KEY] = np.int32(1)
    contents["talkface_provenance"] = json.dumps(provenance(**provenance_fields))
    with atomic_path(path) as tmp:
        savemat(str(tmp), contents, do_compression=False)


def convert_bfm(raw_dir: str | Path, out: str | Path) -> dict[str, np.ndarray]:
    """Build BFM_model_front.mat at `out` from the raw files in `raw_dir` (docs/method.md, 3D morphable model)."""
    raw_dir = Path(raw_dir)
    missing = [name for name in RAW_SOURCES if not (raw_dir / name).is_file()]
    if missing:
        listing = "; ".join(f"{name} ({RAW_SOURCES[name]})" for name in missing)
        raise TalkfaceError(f"missing raw BFM file(s): {listing}", raw_dir)
    bfm = _loadmat(raw_dir / "01_MorphableModel.mat", ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV"))
    front = _index_file(raw_dir / "BFM_front_idx.mat", "idx")  # front vertex -> trimmed vertex, 1-based
    trim = _index_file(raw_dir / "BFM_exp_idx.mat", "trimIndex")  # trimmed vertex -> BFM09 vertex, 1-based
    n_full = _rows_of_three(bfm["shapeMU"], "shapeMU", raw_dir / "01_MorphableModel.mat")
    if bfm["texMU"].size != bfm["shapeMU"].size:
        raise TalkfaceError(f"texMU has {bfm['texMU'].size} values, shapeMU {bfm['shapeMU'].size}",
                            raw_dir / "01_MorphableModel.mat")
    _check_ids(trim, n_full, "trimIndex", raw_dir / "BFM_exp_idx.mat")
    _check_ids(front, len(trim), "idx", raw_dir / "BFM_front_idx.mat")
    exp_pc, exp_ev = _expression_basis(raw_dir, n_trim=len(trim))
    from_full = trim[front - 1] - 1  # 0-based BFM09 ids of the front vertices
    from_trim = front - 1  # 0-based ids into Guo's 53,215 trimmed vertices

    arrays = {
        "meanshape": _select(bfm["shapeMU"].reshape(-1, 1) / BFM09_SCALE, from_full).reshape(1, -1),
        "idBase": _select(_scaled_pcs(bfm, "shape", N_IDENTITY, raw_dir) / BFM09_SCALE, from_full),
        "exBase": _select(exp_pc[:, :N_EXPRESSION] * exp_ev[:N_EXPRESSION] / BFM09_SCALE, from_trim),
        "meantex": _select(bfm["texMU"].reshape(-1, 1), from_full).reshape(1, -1),
        "texBase": _select(_scaled_pcs(bfm, "tex", N_TEXTURE, raw_dir), from_full),
    }
    info_path = raw_dir / "facemodel_info.mat"
    info = _loadmat(info_path, REQUIRED_KEYS[5:])
    arrays = canonical_arrays({**arrays, **{key: info[key] for key in REQUIRED_KEYS[5:]}}, info_path)
    arrays["tri_mask2"] = _front_to_mesh_ids(arrays["tri_mask2"], arrays["frontmask2_idx"], info_path)
    validate_bfm(arrays, info_path)  # the mesh arrays must fit the selected vertices
    write_bfm(out, arrays, source=str(raw_dir), inputs=sorted(RAW_SOURCES))
    return arrays


def _loadmat(path: Path, keys: tuple[str, ...] | None = None, optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """scipy.io.loadmat of `keys` (all variables when None), each required unless `optional`."""
    from scipy.io import loadmat

    try:
        data = loadmat(str(path), variable_names=keys)
    except Exception as error:  # scipy raises several types for corrupt or non-MATLAB files
        raise TalkfaceError(f"not a readable MATLAB .mat file ({error})", path) from error
    missing = [key for key in keys or () if key not in data and key not in optional]
    if missing:
        raise TalkfaceError(f"missing key(s) {', '.join(missing)}", path)
    return data


def _integers(values: np.ndarray, key: str, path: str | Path | None) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "f" and values.size and not np.all(values == np.round(values)):
        raise TalkfaceError(f"{key} holds non-integer indices", path)
    return values.astype(np.int64)


def _front_to_mesh_ids(tri_mask2: np.ndarray, front_idx: np.ndarray, path: str | Path | None) -> np.ndarray:
    """Map tri_mask2 from 1-based ids into frontmask2_idx to 1-based mesh vertex ids (the bug fix)."""
    if tri_mask2.size and (tri_mask2.min() < 1 or tri_mask2.max() > len(front_idx)):
        raise TalkfaceError(
            f"tri_mask2 holds ids {tri_mask2.min()}..{tri_mask2.max()}, "
            f"expected 1-based ids into frontmask2_idx ({len(front_idx)} vertices)", path,
        )
    return front_idx[tri_mask2 - 1]


def _index_file(path: Path, key: str) -> np.ndarray:
    data = _loadmat(path, (key,))
    return _integers(data[key], key, path).ravel()


def _check_ids(ids: np.ndarray, limit: int, key: str, path: Path) -> None:
    if ids.size == 0 or ids.min() < 1 or ids.max() > limit:
        found = f"{ids.min(initial=0)}..{ids.max(initial=0)}"
        raise TalkfaceError(f"{key} must hold 1-based ids up to {limit}, found {found}", path)


def _rows_of_three(values: np.ndarray, key: str, path: Path) -> int:
    if values.size % 3:
        raise TalkfaceError(f"{key} has {values.size} values, not a multiple of 3", path)
    return values.size // 3


def _scaled_pcs(bfm: dict[str, np.ndarray], prefix: str, count: int, raw_dir: Path) -> np.ndarray:
    """[3n, count] principal components times their standard deviations (the BFM09 `EV`)."""
    pcs, ev = bfm[f"{prefix}PC"], np.asarray(bfm[f"{prefix}EV"], np.float64).ravel()
    if pcs.ndim != 2 or pcs.shape[0] != bfm[f"{prefix}MU"].size or pcs.shape[1] < count or len(ev) < count:
        raise TalkfaceError(
            f"{prefix}PC {pcs.shape} / {prefix}EV {ev.shape} do not give {count} components over "
            f"{bfm[f'{prefix}MU'].size} values", raw_dir / "01_MorphableModel.mat",
        )
    return pcs[:, :count].astype(np.float64) * ev[:count]


def _expression_basis(raw_dir: Path, n_trim: int) -> tuple[np.ndarray, np.ndarray]:
    """Guo et al.'s Exp_Pca.bin -> PCs [3n, dim] (interleaved xyz) and std_exp.txt -> stds [dim].

    Read as Deep3DFaceRecon's util/load_mats.py `LoadExpBasis` reads it: int32 dim, float32 mean [3n],
    float32 PCs [dim, 3n], and whatever follows ignored (trailing bytes are tolerated). A dimension
    below 64, one that disagrees with std_exp.txt, or a file too short for it is an error.
    """
    path = raw_dir / "Exp_Pca.bin"
    data = path.read_bytes()
    dim = int(np.frombuffer(data[:4], np.int32)[0]) if len(data) >= 4 else 0
    expected = 4 + 4 * 3 * n_trim * (1 + dim)  # int32 dim, float32 mean [3n], float32 PCs [dim, 3n]
    if dim < N_EXPRESSION or len(data) < expected:
        raise TalkfaceError(
            f"expected an int32 dimension >= {N_EXPRESSION} and at least {expected} bytes for {n_trim} vertices, "
            f"found dimension {dim} and {len(data)} bytes", path,
        )
    pcs = np.frombuffer(data, np.float32, count=dim * 3 * n_trim, offset=4 + 4 * 3 * n_trim)
    std_path = raw_dir / "std_exp.txt"
    try:
        std = np.loadtxt(std_path, dtype=np.float64).ravel()
    except ValueError as error:
        raise TalkfaceError(f"not a list of numbers ({error})", std_path) from error
    if len(std) != dim:
        raise TalkfaceError(f"has {len(std)} values, expected {dim} (the dimension in Exp_Pca.bin)", std_path)
    return pcs.reshape(dim, 3 * n_trim).T.astype(np.float64), std


def _select(values: np.ndarray, vertex_ids: np.ndarray) -> np.ndarray:
    """Rows of the given vertices from a [3n, k] per-vertex-interleaved (xyz / rgb) array -> [3m, k]."""
    per_vertex = values.reshape(-1, 3, values.shape[-1])  # [n, 3, k]
    return per_vertex[vertex_ids].reshape(3 * len(vertex_ids), -1).astype(np.float32)
