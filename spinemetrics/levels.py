"""Vertebra and disc instances, named per contract §3, from a semantic label map.

:func:`derive_levels` turns the 11-structure map of contract §2 into the level map of §3
(vertebra ids 8–25, sacrum 26, discs 100 + id of the vertebra above). It is used by
``spinemetrics measure`` when no level map is given and by the segmentation step to write
``<stem>_levels.nii.gz``, so it is written for noisy CNN output:

1. Vertebral bodies (label 1) are split into 6-connected components; fragments smaller than
   ``max(500 mm³, 8 % of the median body)`` are dropped (warning).
2. Components are ordered along the spine axis (first principal axis of the body centroids,
   oriented so that the sacrum is caudal, else so that world +z is cranial).
3. A component much longer along that axis than its neighbours (> 1.6 × the median extent)
   is taken for merged bodies and split at the narrowest cross-section(s) (warning, qc
   ``merged_split``).
4. Naming is anchored at the sacrum (label 3): the body directly above it is L5 (24), then
   L4 … L1, T12, T11 … (contract §3). Without a sacrum the lowest body is *assumed* to be L5
   and every level gets qc ``level_uncertain``.
5. LSTV heuristic (no ribs are segmented, so T12 cannot be recognised directly). Primary
   cue, the transverse processes: thoracic ones are short (the ribs carry on), lumbar ones
   long, longest at L3. A vertebra whose posterior elements reach laterally beyond its
   pedicles by ≥ 55 % of the longest reach in view is lumbar-type; counting up from the body
   on the sacrum, a run of 6 (or of 4 with a thoracic-type vertebra above it) raises the
   warning and qc ``lstv_suspected`` on every level. When posterior elements are missing or
   cut by the field of view (narrow slabs cut the transverse processes), the fallback is
   body size: thoracic bodies are smaller (T12 ~65 % of the L3–L5 volume on the maps in
   ``/work/shared/data/panoptica_lumbar_labels``, L1 ~76 %), bodies ≥ 70 % of the median of
   the three above the sacrum count as lumbar-sized. The names are *not* changed (contract
   §3: never a silent relabelling). Both are weak cues — whole-spine counting is the only
   reliable method (MEASURES.md §8, Tokgoz 2014).
6. Posterior elements (label 2) get the id of the body they are attached to: a flood fill
   through the posterior-element mask from the voxels touching each body (geodesic nearest
   body); parts not connected to any body take the id of the nearest body.
7. Discs (label 4) take ``100 + id`` of the body above their centroid position along the axis;
   a disc in several comparable parts (each ≥ 20 % of the largest) gets qc ``merged_split``.
8. Bodies touching the image border get qc ``partial_fov``, or ``partial_fov_lr`` when the
   only faces they touch are the left/right ones and a slab of ±5 mm around their
   mid-sagittal plane (dural sac, else posterior elements, at that level) lies inside the
   image (:func:`fov_cut`; narrow sagittal slabs cut every body laterally, yet mid-sagittal
   heights, depths and angles are intact). Bodies whose volume is < 50 % of their
   neighbours' median get ``size_outlier`` (cut bodies of either kind are not compared).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from spinemetrics.errors import LabelError
from spinemetrics.image import Image
from spinemetrics.labels import DISC_OFFSET, SACRUM_ID, VERTEBRA_IDS, Structure, level_name

__all__ = ["LevelResult", "derive_levels", "level_qc_from_map", "fov_cut", "lr_axes",
           "spine_axis_of", "midline_points_near", "mid_sagittal_point", "MID_SLAB_MM"]

log = logging.getLogger(__name__)

_SIX = ndimage.generate_binary_structure(3, 1)
_MIN_BODY_MM3 = 500.0
_MIN_DISC_MM3 = 100.0
#: A disc part smaller than this share of its level's largest part is a sliver, not a split.
_DISC_PART_MIN = 0.2
_LUMBAR_SIZED = 0.70
#: Transverse-process reach of a lumbar-type vertebra, as a fraction of the longest in view
#: (L3's, normally). Phantoms (1.5 mm, oblique up to 10°): thoracic ≤ 0.52, L1 ≥ 0.57.
_TP_LUMBAR = 0.55


@dataclass
class LevelResult:
    """Output of :func:`derive_levels`.

    Attributes
    ----------
    levels : Image
        Level map (contract §3 ids) on the grid of the input segmentation.
    warnings : list of str
        Human-readable warnings (one line each).
    qc : dict
        Level name (``"L4"``, ``"L4-L5"``, ``"S1"``) → ``"ok"`` or ``;``-joined reasons.
    lumbar_sized_count : int or None
        Number of lumbar-type vertebrae directly above the sacrum (heuristic, module doc
        point 5: transverse processes, else body size); None when neither cue is usable.
    """

    levels: Image
    warnings: list[str] = field(default_factory=list)
    qc: dict[str, str] = field(default_factory=dict)
    lumbar_sized_count: int | None = None


def _world_points(idx: np.ndarray, affine: np.ndarray) -> np.ndarray:
    # Converting first lets numpy use BLAS: integer @ float takes a loop ~1.5× slower.
    return idx.astype(np.float64, copy=False) @ affine[:3, :3].T + affine[:3, 3]


def _world_centroid(idx: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World centroid of voxel indices (the affine is linear: map the mean index only)."""
    return _world_points(idx.mean(axis=0, keepdims=True), affine)[0]


def _axis_extent(idx: np.ndarray, affine: np.ndarray, axis: np.ndarray) -> float:
    """Extent (mm) of voxel indices along world direction ``axis``."""
    return float(np.ptp(idx.astype(np.float64, copy=False) @ (affine[:3, :3].T @ axis)))


def _touches_border(mask_idx: np.ndarray, shape: tuple[int, ...],
                    spacing: tuple[float, ...] | None = None, margin_mm: float = 1.5) -> bool:
    """Within ``margin_mm`` of the image edge (label maps are often cropped by a voxel or two
    along fine axes; along thick-slice axes only the edge slice itself counts)."""
    lo = mask_idx.min(axis=0)
    hi = mask_idx.max(axis=0)
    sp = np.ones(len(shape)) if spacing is None else np.asarray(spacing, dtype=float)
    margin = np.floor(margin_mm / sp).astype(int)
    return bool(np.any(lo <= margin) or np.any(hi >= np.asarray(shape) - 1 - margin))


#: Half-width (mm) of the slab around a structure's mid-sagittal plane that must lie inside
#: the image for a left/right cut to spare its mid-sagittal measures: the widest mid-sagittal
#: reads are the ±1.5-mm ray patches (the endplate fits use whatever part of the section
#: is in view), so ±5 mm leaves ~3 mm for error in the mid-plane estimate.
MID_SLAB_MM = 5.0


def lr_axes(affine: np.ndarray) -> list[int]:
    """Array axes that run mostly left–right (world x within 45°) on grid ``affine``.

    World RAS coordinates are patient coordinates, so this holds for oblique acquisitions
    too; with no axis within 45° (unusual obliquity) the closest one is taken.
    """
    a = np.asarray(affine, dtype=np.float64)[:3, :3]
    cos_x = np.abs(a[0]) / np.linalg.norm(a, axis=0)
    ax = [int(k) for k in np.nonzero(cos_x > np.sqrt(0.5))[0]]
    return ax or [int(np.argmax(cos_x))]


def fov_cut(
    mask_idx: np.ndarray, shape: tuple[int, ...], affine: np.ndarray,
    mid_point: np.ndarray | None = None, margin_mm: float = 1.5,
    slab_mm: float = MID_SLAB_MM,
) -> str | None:
    """How the field of view cuts a structure: ``None``, ``"partial_fov_lr"`` or ``"partial_fov"``.

    Parameters
    ----------
    mask_idx : numpy.ndarray
        (N, 3) voxel indices of the structure.
    shape : tuple of int
        Image shape.
    affine : numpy.ndarray
        4×4 voxel → world (RAS mm) matrix.
    mid_point : numpy.ndarray, optional
        A world point on the structure's mid-sagittal plane at its level (e.g. the dural-sac
        centre next to it). Without it a left/right cut counts as a full cut.
    margin_mm : float
        A structure within this distance of an image face touches it (label maps are often
        cropped by a voxel or two; along thick-slice axes only the edge slice counts).
    slab_mm : float
        Half-width of the slab around the mid-sagittal plane that must be inside the image.

    Returns
    -------
    str or None
        ``None`` if the structure is inside the image; ``"partial_fov_lr"`` if it touches
        only left/right faces (array axes of :func:`lr_axes`) and the mid-sagittal slab
        through ``mid_point`` is inside; else ``"partial_fov"``.
    """
    idx = np.asarray(mask_idx)
    if not len(idx):
        return None
    aff = np.asarray(affine, dtype=np.float64)
    sp = np.linalg.norm(aff[:3, :3], axis=0)
    margin = np.floor(margin_mm / sp).astype(int)
    top = np.asarray(shape) - 1 - margin
    cut = (idx.min(axis=0) <= margin) | (idx.max(axis=0) >= top)
    if not cut.any():
        return None
    lr = lr_axes(aff)
    if any(cut[k] for k in range(3) if k not in lr) or mid_point is None:
        return "partial_fov"
    ijk = np.linalg.solve(aff[:3, :3], np.asarray(mid_point, dtype=np.float64) - aff[:3, 3])
    for k in lr:
        room_lo = (ijk[k] - margin[k]) * sp[k]
        room_hi = (top[k] - ijk[k]) * sp[k]
        if min(room_lo, room_hi) < slab_mm:
            return "partial_fov"
    return "partial_fov_lr"


def spine_axis_of(centroids: np.ndarray) -> np.ndarray:
    """Unit first principal axis of body centroids (sign arbitrary; world z when < 2)."""
    return _spine_axis(np.asarray(centroids, dtype=np.float64), None)


def midline_points_near(centre: np.ndarray, axis: np.ndarray, *clouds: np.ndarray,
                        half_mm: float = 5.0) -> np.ndarray | None:
    """Points of the first cloud (world mm; dural sac, then posterior elements) with ≥ 10
    points within ``half_mm`` of ``centre`` along ``axis`` and 60 mm of it; None if none has.

    The mid-sagittal reference at a level, shared by the level qc here and the geometry
    model (:class:`~spinemetrics.geometry.model.SpineModel`), so that both judge a
    left/right cut from the same plane.
    """
    for pts in clouds:
        if pts is None or not len(pts):
            continue
        d = pts - centre
        sel = (np.abs(d @ axis) < half_mm) & (np.linalg.norm(d, axis=1) < 60.0)
        if sel.sum() >= 10:
            return pts[sel]
    return None


def mid_sagittal_point(centre: np.ndarray, axis: np.ndarray, *clouds: np.ndarray,
                        half_mm: float = 5.0) -> np.ndarray | None:
    """A point of the mid-sagittal plane at the level of ``centre``: ``centre``'s SI/AP
    position with the world-x (LR) mean of :func:`midline_points_near`."""
    near = midline_points_near(centre, axis, *clouds, half_mm=half_mm)
    if near is None:
        return None
    out = np.array(centre, dtype=np.float64)
    out[0] = near[:, 0].mean()
    return out


def _components(mask: np.ndarray, min_vox: float,
                offset: np.ndarray | None = None) -> tuple[list[np.ndarray], int]:
    """Voxel index arrays of the 6-connected components with at least ``min_vox`` voxels
    (indices of ``mask`` plus ``offset`` when given)."""
    lab, n = ndimage.label(mask, structure=_SIX)
    if n == 0:
        return [], 0
    objs = ndimage.find_objects(lab)
    comps, dropped = [], 0
    for k, sl in enumerate(objs, start=1):
        sub = np.argwhere(lab[sl] == k)
        if len(sub) < min_vox:
            dropped += 1
            continue
        start = np.array([s.start for s in sl])
        comps.append(sub + (start if offset is None else start + offset))
    return comps, dropped


#: Structures that level naming reads (bodies, posterior elements, sacrum, discs, canal).
_LEVEL_INPUTS = (Structure.vertebral_body, Structure.posterior_elements, Structure.sacrum,
                 Structure.intervertebral_disc, Structure.thecal_sac, Structure.spinal_cord)


def _spine_box(arr: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of the :data:`_LEVEL_INPUTS` labels grown by one voxel (whole array
    when none is present)."""
    # Comparisons, not find_objects: label maps may arrive as floats or with large ids.
    mask = np.zeros(arr.shape, bool)
    for s in _LEVEL_INPUTS:
        mask |= arr == s
    box = []
    for d in range(arr.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(k for k in range(arr.ndim) if k != d)))
        if not hit.size:
            return tuple(slice(0, n) for n in arr.shape)
        box.append(slice(max(int(hit[0]) - 1, 0), min(int(hit[-1]) + 2, arr.shape[d])))
    return tuple(box)


def _split_discs_at_bodies(
    comps: list[np.ndarray], affine: np.ndarray, axis: np.ndarray,
    anchors: list[tuple[float, int]], min_vox: float,
) -> tuple[list[np.ndarray], int]:
    """Split disc components that reach over a vertebral body into one part per gap.

    A CNN can join two discs through a thin rim of "disc" along the posterior or anterior
    vertebral wall; named by its centroid, the joined component would give one level and
    lose the other. Each voxel is given to the gap between consecutive body centroids (along
    the spine axis) that it lies in; a component is split only when at least two gaps hold
    a disc-sized part, and the parts are trimmed to their largest connected piece so the
    wall bridge does not end up inside a disc.
    """
    if len(anchors) < 2:
        return comps, 0
    bounds = np.array([p for p, _ in anchors])
    out: list[np.ndarray] = []
    n_split = 0
    for dc in comps:
        proj = _world_points(dc, affine) @ axis
        gap = np.searchsorted(bounds, proj)  # 0 below the lowest anchor … len above the top
        ids, counts = np.unique(gap, return_counts=True)
        big = ids[counts >= min_vox]
        if len(big) < 2:
            out.append(dc)
            continue
        n_split += 1
        for g in big:
            part = dc[gap == g]
            lo = part.min(axis=0)
            mask = np.zeros(part.max(axis=0) - lo + 1, bool)
            mask[tuple((part - lo).T)] = True
            pieces, _ = _components(mask, 0)
            part = max(pieces, key=len) + lo
            if len(part) >= min_vox:
                out.append(part)
    return out, n_split


def _split_merged(idx: np.ndarray, pts: np.ndarray, axis: np.ndarray, n_parts: int) -> list:
    """Split one component into ``n_parts`` at the narrowest sections along ``axis``."""
    s = pts @ axis
    edges = np.arange(s.min(), s.max() + 1.0, 1.0)
    counts, _ = np.histogram(s, bins=edges)
    cuts: list[float] = []
    for _ in range(n_parts - 1):
        lo, hi = s.min(), s.max()
        best, best_val = None, np.inf
        for b in range(len(counts)):
            centre = 0.5 * (edges[b] + edges[b + 1])
            # Ignore the caps and a neighbourhood of the cuts already made.
            if centre < lo + 8 or centre > hi - 8 or any(abs(centre - c) < 10 for c in cuts):
                continue
            if counts[b] < best_val:
                best, best_val = centre, counts[b]
        if best is None:
            break
        cuts.append(best)
    cuts = sorted(cuts)
    part_id = np.searchsorted(np.asarray(cuts), s)
    return [idx[part_id == k] for k in range(len(cuts) + 1) if np.any(part_id == k)]


def _spine_axis(centroids: np.ndarray, sacrum_c: np.ndarray | None) -> np.ndarray:
    """Unit vector along the spine, pointing cranially."""
    if len(centroids) >= 2:
        centred = centroids - centroids.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        axis = vt[0]
    else:
        axis = np.array([0.0, 0.0, 1.0])
    if sacrum_c is not None and len(centroids):
        if (centroids.mean(axis=0) - sacrum_c) @ axis < 0:
            axis = -axis
    elif axis[2] < 0:
        axis = -axis
    return axis / np.linalg.norm(axis)


def derive_levels(seg: Image, *, levels: Image | None = None, threads: int = 1) -> LevelResult:
    """Name vertebrae and discs from a semantic label map (contract §3).

    Parameters
    ----------
    seg : Image
        Semantic label map (contract §2 ids).
    levels : Image, optional
        An existing level map on the same grid. It is kept as is and only checked (qc and
        warnings: sacrum present, L6 present, levels cut by the field of view).
    threads : int
        Threads for the independent connected-component passes (bodies, sacrum, discs,
        canal); the result does not depend on it.

    Returns
    -------
    LevelResult
        Level map on the grid of ``seg``, warnings and per-level qc.

    Raises
    ------
    LabelError
        If ``seg`` has no vertebral body or sacrum voxels at all, or ``levels`` is on
        another grid.
    """
    arr = np.asarray(seg.array)
    if levels is not None:
        if levels.shape != seg.shape or not np.allclose(levels.affine, seg.affine, atol=1e-3):
            raise LabelError(
                "level map and segmentation are on different grids; pass the level map made "
                "for this segmentation (or omit it to derive levels)"
            )
        qc, warnings = level_qc_from_map(np.asarray(levels.array), arr, seg.spacing,
                                         affine=seg.affine)
        return LevelResult(levels=levels, warnings=warnings, qc=qc)

    affine = seg.affine
    vox_mm3 = seg.voxel_volume_mm3
    warnings: list[str] = []
    reasons: dict[int, set[str]] = {}

    # Array work runs inside the box of the structures that name levels (bodies, posterior
    # elements, sacrum, discs, canal), grown by one voxel: muscle, vessels and background
    # fill most of a segmented volume, and whole-volume passes took most of the time.
    # Voxel indices are shifted back to the full grid, so nothing else changes.
    shape = arr.shape
    box = _spine_box(arr)
    off = np.array([b.start for b in box])
    arr = arr[box]
    body_mask = arr == Structure.vertebral_body
    if not body_mask.any():
        raise LabelError(
            "segmentation has no vertebral body voxels (label 1); check the label scheme or "
            "convert foreign labels with `spinemetrics convert`"
        )
    jobs = {
        "body": lambda: _components(body_mask, _MIN_BODY_MM3 / vox_mm3, off),
        "sacrum": lambda: _components(arr == Structure.sacrum, _MIN_BODY_MM3 / vox_mm3, off),
        "disc": lambda: _components(arr == Structure.intervertebral_disc,
                                    _MIN_DISC_MM3 / vox_mm3, off),
        "canal": lambda: _world_points(np.argwhere((arr == Structure.thecal_sac)
                                                   | (arr == Structure.spinal_cord)) + off,
                                       affine),
        "pe": lambda: _world_points(np.argwhere(arr == Structure.posterior_elements) + off,
                                    affine),
    }
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(threads, len(jobs))) as pool:
            futures = {k: pool.submit(f) for k, f in jobs.items()}
            got = {k: f.result() for k, f in futures.items()}
    else:
        got = {k: f() for k, f in jobs.items()}
    comps, dropped_small = got["body"]
    if not comps:
        raise LabelError(
            "all vertebral body components are smaller than 500 mm3; the segmentation is "
            "unusable for level naming — check the input image and segmentation"
        )
    vols = np.array([len(c) * vox_mm3 for c in comps])
    keep = vols >= 0.08 * np.median(vols)
    dropped_small += int((~keep).sum())
    comps = [c for c, k in zip(comps, keep, strict=False) if k]
    if dropped_small:
        warnings.append(f"dropped {dropped_small} small vertebral-body fragment(s)")

    sac_comps, _ = got["sacrum"]
    sacrum_idx = max(sac_comps, key=len) if sac_comps else None
    sacrum_c = _world_centroid(sacrum_idx, affine) if sacrum_idx is not None else None

    cents = np.array([_world_centroid(c, affine) for c in comps])
    axis = _spine_axis(cents, sacrum_c)

    # Lateral fragments: every vertebral body crosses the mid-sagittal plane. A small body
    # piece that stays clear of it (a partial-volumed lateral wall cut off by a disc seam)
    # is not a vertebra: counted as one it shifts every name above it. It joins the
    # nearest vertebra's level instead.
    canal_w, pe_w = got["canal"], got["pe"]
    med_vox = float(np.median([len(c) for c in comps]))
    lateral = []
    for i, (c, ct) in enumerate(zip(comps, cents, strict=False)):
        mid = mid_sagittal_point(ct, axis, canal_w, pe_w) if len(c) < 0.5 * med_vox else None
        off_mid = None if mid is None else np.abs(_world_points(c, affine)[:, 0] - mid[0])
        if off_mid is not None and off_mid.min() > MID_SLAB_MM:
            lateral.append(i)
    fragments = [comps[i] for i in lateral]
    if fragments:
        comps = [c for i, c in enumerate(comps) if i not in lateral]
        cents = np.delete(cents, lateral, axis=0)
        warnings.append(f"{len(fragments)} vertebral-body fragment(s) off the mid-sagittal "
                        "plane joined to the nearest vertebra")

    # Split merged bodies: components much longer than the typical one along the axis.
    extents = np.array([_axis_extent(c, affine, axis) for c in comps])
    split_parts: set[int] = set()  # id() of the parts of split bodies, for their qc
    if len(comps) >= 3:
        typical = float(np.median(extents))
        new_comps: list[np.ndarray] = []
        for c, ext in zip(comps, extents, strict=False):
            if ext > 1.6 * typical:
                n_parts = max(2, int(round(ext / (typical * 1.3))))
                parts = _split_merged(c, _world_points(c, affine), axis, n_parts)
                if len(parts) > 1:
                    split_parts.update(id(p) for p in parts)
                new_comps.extend(parts)
            else:
                new_comps.append(c)
        if split_parts:
            warnings.append("merged vertebral bodies were split at their narrowest section")
        comps = new_comps
        cents = np.array([_world_centroid(c, affine) for c in comps])

    # Order caudal → cranial; drop "bodies" below the top of the sacrum (fragments in S1).
    proj = cents @ axis
    order = np.argsort(proj)
    comps = [comps[i] for i in order]
    cents = cents[order]
    proj = proj[order]
    if sacrum_idx is not None:
        # "Inside the sacrum" is judged on the sacrum under each body (within 15 mm of the
        # line through its centroid along the axis): the sacrum's highest point overall is
        # often its posterior/lateral rim, level with a steeply tilted L5 (or L6) body.
        sac_pts = _world_points(sacrum_idx, affine)
        sac_s = sac_pts @ axis
        above = np.ones(len(comps), bool)
        sac_sq = (sac_pts * sac_pts).sum(axis=1)
        for i, ct in enumerate(cents):
            # |d|² − (d·axis)², d = sac_pts − ct, without forming d (N × 3) per body
            along = sac_s - float(ct @ axis)
            radial_sq = sac_sq - 2.0 * (sac_pts @ ct) + float(ct @ ct) - along * along
            near = radial_sq < 15.0 ** 2
            if near.sum() >= 10:
                above[i] = proj[i] > np.percentile(sac_s[near], 99) - 5.0
        if not above.all():
            warnings.append(
                f"ignored {int((~above).sum())} vertebral-body component(s) inside the sacrum"
            )
        comps = [c for c, a in zip(comps, above, strict=False) if a]
        cents = cents[above]
        proj = proj[above]
    if not comps:
        raise LabelError("no vertebral body above the sacrum; check the segmentation")

    ids = [24 - i for i in range(len(comps))]
    # Ids below 8 (above T1) are not named; drop those bodies.
    if ids[-1] < 8:
        n_ok = sum(1 for v in ids if v >= 8)
        comps, ids = comps[:n_ok], ids[:n_ok]
        warnings.append("more bodies than T1-L5 above the sacrum; the top ones were left out")

    uncertain = sacrum_idx is None
    if uncertain:
        warnings.append(
            "no sacrum in the field of view: the lowest vertebral body is assumed to be L5 and "
            "every level is marked level_uncertain"
        )

    vols = np.array([len(c) * vox_mm3 for c in comps])
    # Mid-sagittal reference: dural sac, else posterior elements (both near the midline).
    cuts = [fov_cut(c, shape, affine, mid_sagittal_point(ct, axis, canal_w, pe_w))
            for c, ct in zip(comps, cents, strict=False)]
    # Volumes (size checks, LSTV count) need the whole body: any cut counts.
    partial = [cut is not None for cut in cuts]
    for vid, cut, c in zip(ids, cuts, comps, strict=False):
        reasons.setdefault(vid, set())
        if cut:
            reasons[vid].add(cut)
        if id(c) in split_parts:
            reasons[vid].add("merged_split")
    for i, vid in enumerate(ids):
        neigh = [vols[j] for j in (i - 1, i + 1) if 0 <= j < len(vols) and not partial[j]]
        if neigh and not partial[i] and vols[i] < 0.5 * float(np.median(neigh)):
            reasons[vid].add("size_outlier")
            warnings.append(f"{level_name(vid)} body is less than half the size of its neighbours")

    out = np.zeros(shape, dtype=np.uint16)
    for vid, c in zip(ids, comps, strict=False):
        out[tuple(c.T)] = vid
    named = cents[: len(ids)]
    for c in fragments:
        dist = np.linalg.norm(named - _world_centroid(c, affine), axis=1)
        if dist.min() < 40.0:
            out[tuple(c.T)] = ids[int(np.argmin(dist))]
    if sacrum_idx is not None:
        # All sacrum voxels (incl. small fragments) belong to S1.
        out[box][arr == Structure.sacrum] = SACRUM_ID
    _assign_posterior(out[box], arr == Structure.posterior_elements, ids, affine)

    # LSTV heuristic (module docstring, point 5): transverse-process reach first, body size
    # when the posterior elements are cut or missing.
    lumbar_count: int | None = None
    lstv = False
    if not uncertain and len(comps) >= 3:
        run, bounded, cue = _lumbar_run_tp(out[box], arr, off, shape, comps, ids,
                                           affine, axis)
        if run is None and not any(partial[:3]):
            run, bounded, cue = _lumbar_run_size(vols, partial), None, "size"
            bounded = run is not None and run < len(comps)
        if run is not None:
            lumbar_count = run
            if run >= 6 or (run == 4 and bounded):
                lstv = True
                what = ("lumbar-type vertebrae (transverse processes)" if cue == "tp"
                        else "lumbar-sized vertebral bodies")
                warnings.append(
                    f"{run} {what} above the sacrum: possible lumbosacral transitional "
                    "vertebra; levels keep sacrum-anchored names (qc lstv_suspected) — "
                    "confirm the count on a whole-spine localiser"
                )

    # Discs: 100 + the vertebra above, from the position along the axis.
    anchors = []  # (proj, id) caudal → cranial, sacrum first when present
    if sacrum_idx is not None:
        anchors.append((float(sacrum_c @ axis), SACRUM_ID))
    anchors.extend((float(p), vid) for p, vid in zip(proj, ids, strict=False))
    disc_comps, dropped_discs = got["disc"]
    if dropped_discs:
        warnings.append(f"dropped {dropped_discs} small disc fragment(s)")
    disc_comps, n_bridged = _split_discs_at_bodies(disc_comps, affine, axis, anchors,
                                                   _MIN_DISC_MM3 / vox_mm3)
    if n_bridged:
        warnings.append(f"{n_bridged} disc component(s) spanning several levels (discs "
                        "joined along a vertebral wall) split between the vertebral bodies")
    disc_parts: dict[int, list[int]] = {}
    for dc in disc_comps:
        dc_c = _world_centroid(dc, affine)
        dp = float(dc_c @ axis)
        upper = None
        for (p_lo, _), (p_hi, vid_hi) in zip(anchors[:-1], anchors[1:], strict=False):
            if p_lo <= dp < p_hi:
                upper = vid_hi
                break
        if upper is None:
            if dp >= anchors[-1][0] and ids[-1] - 1 >= 8:
                upper = ids[-1] - 1  # disc above the top body in view
            else:
                continue
        did = DISC_OFFSET + upper
        out[tuple(dc.T)] = did
        disc_parts.setdefault(did, []).append(len(dc))
        reasons.setdefault(did, set())
        dcut = fov_cut(dc, shape, affine, mid_sagittal_point(
            dc_c, axis, canal_w, pe_w))
        if dcut:
            reasons[did].add(dcut)
    for did, sizes in disc_parts.items():
        # A lateral sliver of disc cut off by a thick slice is not a split disc; only parts
        # of at least _DISC_PART_MIN × the largest count (else every 4-mm scan warns).
        n = sum(v >= _DISC_PART_MIN * max(sizes) for v in sizes)
        if n > 1:
            warnings.append(f"disc {level_name(did)} is split into {n} components")
            reasons[did].add("merged_split")
    if sacrum_idx is not None:
        reasons.setdefault(SACRUM_ID, set())
        scut = fov_cut(sacrum_idx, shape, affine,
                       mid_sagittal_point(sacrum_c, axis, canal_w, pe_w, half_mm=15.0))
        if scut:
            reasons[SACRUM_ID].add(scut)

    global_reasons = set()
    if uncertain:
        global_reasons.add("level_uncertain")
    if lstv:
        global_reasons.add("lstv_suspected")
    if sacrum_idx is not None and disc_comps and DISC_OFFSET + ids[0] not in disc_parts:
        # Discs were found, but none between the lowest body and the sacrum. Either S1 was
        # segmented as a vertebral body (then it is named L5 and every name above is one
        # level high), or the lumbosacral disc is collapsed or absent (transitional
        # vertebra). The label map cannot tell these apart; say so on every level.
        global_reasons.add("lumbosacral_disc_missing")
        warnings.append(
            f"no disc between the lowest vertebral body ({level_name(ids[0])}) and the "
            "sacrum: if that body is really S1, every level name is one too high; check the "
            "lumbosacral junction (qc lumbosacral_disc_missing)"
        )
    qc = {}
    for lid, rs in reasons.items():
        rs = rs | global_reasons
        qc[level_name(lid)] = ";".join(sorted(rs)) if rs else "ok"

    for w in warnings:
        log.info("levels: %s", w)
    img = seg.with_array(out)
    return LevelResult(levels=img, warnings=warnings, qc=qc, lumbar_sized_count=lumbar_count)


def _tp_reach(body_idx: np.ndarray, pe_idx: np.ndarray, affine: np.ndarray,
              axis: np.ndarray) -> float | None:
    """How far a vertebra's posterior elements reach laterally beyond its pedicles (mm).

    In the vertebra's frame (SI = spine axis, AP = posterior elements → body, LR = their
    cross product), per side: the 99th percentile of the lateral posterior-element extent
    minus the mean lateral position of the pedicles (posterior-element voxels within 6 mm
    behind the posterior body wall, > 3 mm off the midline); mean of both sides. Subtracting
    the pedicles removes the canal width, so what is left is essentially the transverse
    process length. None when a side has no pedicle or no lateral voxels.
    """
    if len(pe_idx) < 20:
        return None
    body = _world_points(body_idx, affine)
    pe = _world_points(pe_idx, affine)
    c = body.mean(axis=0)
    ap = c - pe.mean(axis=0)
    ap = ap - (ap @ axis) * axis
    if np.linalg.norm(ap) < 1e-6:
        return None
    ap /= np.linalg.norm(ap)
    lr = np.cross(ap, axis)
    wall = float(np.percentile((body - c) @ ap, 1))
    pap, plr = (pe - c) @ ap, (pe - c) @ lr
    band = (pap < wall) & (pap > wall - 6.0)
    reach = []
    for sgn in (1.0, -1.0):
        side = sgn * plr
        ped = band & (side > 3.0)
        if ped.sum() < 4 or (side > 0).sum() < 4:
            return None
        reach.append(float(np.percentile(side[side > 0], 99)) - float(side[ped].mean()))
    return float(np.mean(reach))


def _lumbar_run_tp(out: np.ndarray, arr: np.ndarray, offset: np.ndarray,
                   shape: tuple[int, ...], comps: list, ids: list[int],
                   affine: np.ndarray, axis: np.ndarray):
    """Lumbar-type vertebrae directly above the sacrum, from transverse-process reach.

    Thoracic transverse processes are short (the ribs carry on), lumbar ones long, longest
    at L3: a vertebra is lumbar-type when its reach (:func:`_tp_reach`) is at least
    ``_TP_LUMBAR`` × the longest reach in view. Counting starts with the body on the sacrum
    and stops at the first thoracic-type one. Not used (None) on left/right spacing > 2 mm
    or when the run is shorter than 3 (both mean the processes are not resolved).

    ``out`` and ``arr`` are the level and label maps inside a box starting at ``offset``
    of an image of ``shape``; ``comps`` hold full-grid indices.

    Returns
    -------
    (run, bounded, "tp") or (None, None, None)
        ``bounded``: a thoracic-type vertebra was seen above the run. None when a vertebra
        the count needs has its posterior elements cut by the field of view or missing.
    """
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    if max(spacing[k] for k in lr_axes(affine)) > 2.0:
        # Transverse processes are thin, oblique plates: 3–4 mm sagittal slices sample them
        # too coarsely (the SPINEPS maps in /work/shared/data, 3.3 mm: L4/L5 read shorter
        # than T12).
        return None, None, None
    pe_idx = np.argwhere(arr == Structure.posterior_elements)
    if not len(pe_idx):
        return None, None, None
    pe_ids = out[tuple(pe_idx.T)]
    pe_idx = pe_idx + offset
    reach: list[float | None] = []
    for vid, c in zip(ids, comps, strict=False):
        mine = pe_idx[pe_ids == vid]
        if not len(mine) or fov_cut(mine, shape, affine) is not None:
            reach.append(None)
        else:
            reach.append(_tp_reach(c, mine, affine, axis))
    known = [r for r in reach if r is not None]
    if not known or reach[0] is None:
        return None, None, None
    ref = max(known)
    run = 1  # the body on the sacrum (L5, or L6 / a sacralised L5)
    bounded = False
    for r in reach[1:]:
        if r is None:
            return None, None, None
        if r < _TP_LUMBAR * ref:
            bounded = True
            break
        run += 1
    if run < 3:
        # L3–L5 carry the longest processes: a run this short means the cue failed
        # (processes missed by the segmentation), not a spine with two lumbar vertebrae.
        return None, None, None
    return run, bounded, "tp"


def _lumbar_run_size(vols: np.ndarray, partial: list[bool]) -> int | None:
    """Lumbar-sized bodies directly above the sacrum (≥ ``_LUMBAR_SIZED`` × the median of
    the three lowest); None when a body the count needs is cut by the field of view."""
    ref = float(np.median(vols[:3]))
    run = 0
    for v, p in zip(vols, partial, strict=False):
        if p:
            return None
        if v >= _LUMBAR_SIZED * ref:
            run += 1
        else:
            break
    return run


def _assign_posterior(out: np.ndarray, pe: np.ndarray, ids: list[int], affine: np.ndarray) -> None:
    """Give posterior-element voxels the id of their body (geodesic, then nearest)."""
    if not pe.any():
        return
    from skimage.segmentation import watershed

    table = np.zeros(max(int(out.max()), max(ids)) + 1, bool)
    table[ids] = True
    # Crop to the bounding box of posterior elements and bodies (speed). A tighter box
    # (posterior elements only) floods the same voxels but breaks geodesic ties otherwise.
    sl = ndimage.find_objects((pe | table[out]).view(np.uint8))[0]
    sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
    sub_out = out[sl]
    sub_pe = pe[sl]
    is_body = table[sub_out]
    markers = np.where(is_body, sub_out, 0).astype(np.int32)
    flooded = watershed(np.zeros(sub_pe.shape, dtype=np.uint8), markers=markers,
                        mask=sub_pe | is_body, connectivity=1)
    got = sub_pe & (flooded > 0)
    sub_out[got] = flooded[got]
    rest = sub_pe & (flooded == 0)
    if rest.any():
        body_idx = np.argwhere(table[out])
        if len(body_idx):
            tree = cKDTree(_world_points(body_idx, affine))
            r_idx = np.argwhere(rest) + [s.start for s in sl]
            _, nn = tree.query(_world_points(r_idx, affine))
            out[tuple(r_idx.T)] = out[tuple(body_idx[nn].T)]


def level_qc_from_map(
    levels: np.ndarray, seg: np.ndarray | None = None, spacing: tuple[float, ...] | None = None,
    *, affine: np.ndarray | None = None,
) -> tuple[dict, list]:
    """Per-level qc and warnings for an existing level map.

    Parameters
    ----------
    levels : numpy.ndarray
        Level map (contract §3 ids).
    seg : numpy.ndarray, optional
        Matching semantic map: body volumes for the ``size_outlier`` check.
    spacing : tuple of float, optional
        Voxel size (mm) for the field-of-view margin.
    affine : numpy.ndarray, optional
        Voxel → world matrix; with it (and ``seg``), levels cut only on the left/right faces
        get ``partial_fov_lr`` instead of ``partial_fov`` (:func:`fov_cut`).

    Returns
    -------
    (qc, warnings)
    """
    lev_arr = levels if np.issubdtype(levels.dtype, np.integer) else levels.astype(np.int32)
    objs = ndimage.find_objects(lev_arr)
    present = [i + 1 for i, sl in enumerate(objs) if sl is not None]
    warnings: list[str] = []
    global_reasons: set[str] = set()
    if SACRUM_ID not in present:
        warnings.append("no sacrum (26) in the level map: level names are uncertain")
        global_reasons.add("level_uncertain")
    if 25 in present:
        warnings.append("L6 (25) present: lumbosacral transitional anatomy (6 lumbar vertebrae)")
        global_reasons.add("lstv")
    elif SACRUM_ID in present and 24 not in present and 23 in present:
        warnings.append("no L5 above the sacrum: 4 lumbar vertebrae or a naming gap")
        global_reasons.add("lstv")
    qc: dict[str, str] = {}
    lev32 = lev_arr
    reasons: dict[int, set[str]] = {}
    vols: dict[int, int] = {}
    cut_any: set[int] = set()
    mid_clouds: tuple[np.ndarray, ...] = ()
    axis = np.array([0.0, 0.0, 1.0])
    if affine is not None and seg is not None:
        verts = [v for v in present if v in VERTEBRA_IDS and v != SACRUM_ID]
        if len(verts) >= 2:
            axis = spine_axis_of(np.array([
                _world_points(np.argwhere(lev_arr[objs[v - 1]] == v)
                              + np.array([s_.start for s_ in objs[v - 1]]), affine).mean(axis=0)
                for v in verts]))
        mid_clouds = (
            _world_points(np.argwhere((seg == Structure.thecal_sac)
                                      | (seg == Structure.spinal_cord)), affine),
            _world_points(np.argwhere(seg == Structure.posterior_elements), affine),
        )
    for lid in present:
        sl = objs[lid - 1] if lid - 1 < len(objs) else None
        rs = set(global_reasons)
        if sl is not None:
            part = lev32[sl] == lid
            if seg is not None:
                sub_seg = seg[sl]
                body = part & (sub_seg == Structure.vertebral_body)
                if body.any():
                    vols[lid] = int(body.sum())
                    part = body if lid != SACRUM_ID else part
            idx = np.argwhere(part) + np.array([s_.start for s_ in sl])
            if affine is not None and len(idx):
                cut = fov_cut(idx, levels.shape, affine, mid_sagittal_point(
                    _world_points(idx, affine).mean(axis=0), axis, *mid_clouds,
                    half_mm=15.0 if lid == SACRUM_ID else 5.0))
            else:
                cut = ("partial_fov" if len(idx) and _touches_border(idx, levels.shape, spacing)
                       else None)
            if cut:
                rs.add(cut)
                cut_any.add(lid)
        if "partial_fov" in rs:  # cut at any face governs cut only at the left/right faces
            rs.discard("partial_fov_lr")
        reasons[lid] = rs
    order = [v for v in VERTEBRA_IDS if v in vols and v != SACRUM_ID]
    for i, v in enumerate(order):
        neigh = [vols[order[j]] for j in (i - 1, i + 1) if 0 <= j < len(order)
                 and order[j] not in cut_any]
        if neigh and v not in cut_any and vols[v] < 0.5 * float(np.median(neigh)):
            reasons[v].add("size_outlier")
            warnings.append(f"{level_name(v)} body is less than half the size of its neighbours")
    for lid, rs in reasons.items():
        try:
            name = level_name(lid)
        except Exception:  # unknown ids (e.g. SPINEPS endplates 2xx) are not levels
            continue
        qc[name] = ";".join(sorted(rs)) if rs else "ok"
    return qc, warnings
