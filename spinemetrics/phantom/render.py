"""Rasterise the analytic anatomy on a voxel grid (any spacing, rotation and orientation).

Each shape is evaluated only on the voxels of its bounding box (transformed to index space),
at voxel centres, in paint order (later shapes win). World = ``R · (anat − pivot)``, so the
anatomy is rotated about the pivot (centre of the lumbar spine) while the grid stays
axis-aligned in RAS+ world coordinates.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from spinemetrics.errors import InputError
from spinemetrics.phantom.model import Anatomy

__all__ = ["rotation_matrix", "grid_for", "rasterize", "reorient"]


def rotation_matrix(rotation_deg: tuple[float, float, float]) -> np.ndarray:
    """``Rz @ Ry @ Rx`` for rotations (degrees) about world x (LR), y (AP), z (SI)."""
    rx, ry, rz = (np.radians(float(v)) for v in rotation_deg)
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def anatomy_box(an: Anatomy, fov_mm: tuple[float, float, float] | None = None):
    """Anatomical box rendered by default: T-top to coccyx, ±80 mm LR, skin-to-prevertebral AP."""
    pts = np.array([b.centre for b in an.bodies.values()] + [s.centre for s in an.sacrum])
    top = an.bodies[an.params.vertebrae[0]]
    zmax = top.superior.point[2] + 25.0
    zmin = an.sacrum[-1].centre[2] - 10.0
    yc = float(np.mean(pts[:, 1]))
    lo = np.array([-80.0, yc - an.params.posterior_depth_mm - 35.0, zmin])
    hi = np.array([80.0, yc + 95.0, zmax])
    if fov_mm is not None:
        c = 0.5 * (lo + hi)
        half = 0.5 * np.asarray(fov_mm, float)
        lo, hi = c - half, c + half
    return lo, hi


def grid_for(an: Anatomy, spacing, R: np.ndarray, pivot: np.ndarray, fov_mm=None):
    """RAS+ affine and shape of an axis-aligned grid covering the rotated anatomy box."""
    sp = np.asarray(spacing, float)
    if sp.shape != (3,) or np.any(sp <= 0):
        raise InputError(f"spacing must be three positive mm values, got {spacing}; e.g. 1,1,1")
    lo, hi = anatomy_box(an, fov_mm)
    corners = np.array(
        [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
    )
    w = (corners - pivot) @ R.T
    wlo, whi = w.min(axis=0), w.max(axis=0)
    if fov_mm is not None:  # keep the requested size in world axes
        c = 0.5 * (wlo + whi)
        wlo, whi = c - 0.5 * np.asarray(fov_mm, float), c + 0.5 * np.asarray(fov_mm, float)
    shape = tuple(int(v) for v in np.maximum(np.ceil((whi - wlo) / sp), 1))
    affine = np.eye(4)
    affine[:3, :3] = np.diag(sp)
    affine[:3, 3] = wlo + 0.5 * sp
    return affine, shape


def _block(M, b, Minv, n, lo, hi):
    """Index sub-block of the grid covering the anatomical box [lo, hi], with anat coords."""
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    ijk = (corners - b) @ Minv.T
    i0 = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, n)
    i1 = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 1, 0, n)
    if np.any(i1 <= i0):
        return None
    ii = np.arange(i0[0], i1[0], dtype=np.float32)[:, None, None]
    jj = np.arange(i0[1], i1[1], dtype=np.float32)[None, :, None]
    kk = np.arange(i0[2], i1[2], dtype=np.float32)[None, None, :]
    M32 = M.astype(np.float32)
    b32 = b.astype(np.float32)
    x = (M32[0, 0] * ii + M32[0, 1] * jj) + (M32[0, 2] * kk + b32[0])
    y = (M32[1, 0] * ii + M32[1, 1] * jj) + (M32[1, 2] * kk + b32[1])
    z = (M32[2, 0] * ii + M32[2, 1] * jj) + (M32[2, 2] * kk + b32[2])
    x, y, z = np.broadcast_arrays(x, y, z)
    return tuple(slice(a0, a1) for a0, a1 in zip(i0, i1, strict=False)), x, y, z


def _in_capsule(x, y, z, p0, p1, r):
    d = (p1 - p0).astype(np.float32)
    L2 = float(d @ d) or 1.0
    dx, dy, dz = x - np.float32(p0[0]), y - np.float32(p0[1]), z - np.float32(p0[2])
    t = np.clip((dx * d[0] + dy * d[1] + dz * d[2]) * np.float32(1.0 / L2), 0.0, 1.0)
    dx -= t * d[0]
    dy -= t * d[1]
    dz -= t * d[2]
    return dx * dx + dy * dy + dz * dz <= np.float32(r * r)


def _paint(sh, sl, x, y, z, mask, seg, lev, tis):
    """Evaluate ``sh`` on the block points selected by ``mask`` (None = all) and paint."""
    if mask is None:
        m = sh.inside(x, y, z)
        if not m.any():
            return
        full = m
    else:
        xs, ys, zs = x[mask], y[mask], z[mask]
        m = sh.inside(xs, ys, zs)
        if not m.any():
            return
        full = np.zeros(mask.shape, bool)
        full[mask] = m
    seg[sl][full] = sh.label
    lev[sl][full] = sh.level
    if tis is not None:
        tv = np.full(int(full.sum()), sh.tissue, np.uint8)
        if sh.core_tissue is not None:
            c = sh.core(x[full], y[full], z[full])
            if c is not None:
                tv[c] = sh.core_tissue
        tis[sl][full] = tv


def _coarse(sh, M, b, shape, tis, factor):
    """Tissue-only shape on a grid ``factor`` times coarser, expanded by repetition."""
    n = np.asarray(shape)
    nc = -(-n // factor)
    off = (factor - 1) / 2.0
    Mc = M * factor
    bc = b + M @ np.full(3, off)
    blk = _block(Mc, bc, np.linalg.inv(Mc), nc, sh.lo, sh.hi)
    if blk is None:
        return
    sl, x, y, z = blk
    m = sh.inside(x, y, z)
    val = np.zeros(m.shape, np.int16) - 1
    val[m] = sh.tissue
    if sh.core_tissue is not None:
        c = sh.core(x, y, z)
        if c is not None:
            val[m & c] = sh.core_tissue
    full = np.full(tuple(nc), -1, np.int16)
    full[sl] = val
    for ax in range(3):
        full = np.repeat(full, factor, axis=ax)
    full = full[: n[0], : n[1], : n[2]]
    sel = full >= 0
    tis[sel] = full[sel]


def rasterize(
    an: Anatomy,
    affine: np.ndarray,
    shape,
    R: np.ndarray,
    pivot: np.ndarray,
    with_tissue: bool = True,
):
    """Paint seg / level / tissue arrays on the grid (``affine`` maps index → world).

    Returns
    -------
    seg, lev, tis : numpy.ndarray
        uint8 arrays of ``shape`` (``tis`` is None when ``with_tissue`` is False).
    """
    seg = np.zeros(shape, np.uint8)
    lev = np.zeros(shape, np.uint8)
    tis = np.zeros(shape, np.uint8) if with_tissue else None
    # index -> anatomical: anat = R^T (A ijk + t) + pivot
    M = R.T @ affine[:3, :3]
    b = R.T @ affine[:3, 3] + pivot
    Minv = np.linalg.inv(M)
    n = np.asarray(shape)
    vox = float(np.max(np.linalg.norm(M, axis=0)))
    for sh in an.shapes:
        if sh.coarse:
            if tis is not None:
                factor = max(1, int(round(4.0 / vox)))
                _coarse(sh, M, b, shape, tis, factor)
            continue
        if sh.pieces:
            for p0, p1, r in sh.pieces:
                lo = np.maximum(np.minimum(p0, p1) - r, sh.lo)
                hi = np.minimum(np.maximum(p0, p1) + r, sh.hi)
                if np.any(hi < lo):
                    continue
                blk = _block(M, b, Minv, n, lo, hi)
                if blk is None:
                    continue
                sl, x, y, z = blk
                cand = _in_capsule(x, y, z, p0, p1, r)
                if cand.any():
                    _paint(sh, sl, x, y, z, cand, seg, lev, tis)
        else:
            blk = _block(M, b, Minv, n, sh.lo, sh.hi)
            if blk is not None:
                _paint(sh, blk[0], *blk[1:], None, seg, lev, tis)
    return seg, lev, tis


def reorient(arrays, affine: np.ndarray, orientation: str):
    """Flip/permute RAS arrays and affine to the axis codes ``orientation`` (e.g. ``"PIR"``)."""
    codes = tuple(orientation.upper())
    try:
        target = nib.orientations.axcodes2ornt(codes)
    except Exception:
        raise InputError(
            f"orientation {orientation!r} is not three axis codes; use e.g. 'RAS', 'PIR', 'LPS'"
        ) from None
    if len(codes) != 3 or np.isnan(target).any():
        raise InputError(f"orientation {orientation!r} is invalid; use e.g. 'RAS', 'PIR', 'LPS'")
    src = nib.orientations.io_orientation(affine)
    tr = nib.orientations.ornt_transform(src, target)
    shape = arrays[0].shape
    new_aff = affine @ nib.orientations.inv_ornt_aff(tr, shape)
    out = [
        None if a is None else np.ascontiguousarray(nib.orientations.apply_orientation(a, tr))
        for a in arrays
    ]
    return out, new_aff
