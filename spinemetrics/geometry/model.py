"""Per-scan geometric model: masks as fields, level frames, endplates and the centreline.

:class:`SpineModel` is built once per label map and shared by the measure families
(disc, vertebra, canal, foramen, alignment, soft tissue), so that every family uses the same
frames and endplate planes. Construction is lazy: a frame is fitted the first time a
family asks for it.

Frame fitting (MEASURES.md §0):

* vertebra: origin = body centroid; SI starts along the line joining the neighbouring body
  centroids (principal thinnest axis when alone) and is then refined to the bisector of the
  two fitted endplate planes (2 iterations); AP = body centroid → dural-sac (else posterior
  elements) centroid at that level, reversed and orthogonalised to SI; LR = AP × SI.
* endplates: rays cast along ±SI from a 13 × 9 grid over the body section, within 85 % of
  its elliptic outline; the sub-voxel exit points are fitted with a plane
  (:func:`~.frame.fit_plane`; a nearly grid-flat endplate, a voxel staircase with at most two
  steps, as the centre of the planes consistent with it: :meth:`SpineModel.fit_endplate`).
* disc: origin = disc centroid; the bounding endplates are re-fitted from inside the disc
  (rays along ±SI to the first entry into the upper body / lower body or sacrum); SI = their
  bisector; AP from the upper vertebra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy import ndimage

from spinemetrics.geometry.frame import Centreline, Frame, Plane, fit_plane, unit
from spinemetrics.geometry.sampling import TIE_TOL, MaskField, first_crossing, ray_grid
from spinemetrics.image import Image
from spinemetrics.labels import DISC_OFFSET, SACRUM_ID, VERTEBRA_IDS, Structure
from spinemetrics.levels import fov_cut, midline_points_near, spine_axis_of
from spinemetrics.levels import mid_sagittal_point as _mid_sagittal_point

__all__ = ["SpineModel", "VertebraGeom", "DiscGeom"]

# Endplate ray starts: a 13 × 9 grid over the section, kept within 85 % of its elliptic
# outline — wide enough to see the voxel staircase of a nearly grid-flat endplate over most of
# its depth, clear of the rounded rim.
_GRID_AP = np.linspace(-0.85, 0.85, 13)
_GRID_LR = np.linspace(-0.85, 0.85, 9)
_GRID_IN = (_GRID_AP[:, None] ** 2 + _GRID_LR[None, :] ** 2 <= 0.85**2 + 1e-9).ravel()


@dataclass
class VertebraGeom:
    """Fitted geometry of one vertebral body."""

    vid: int
    frame: Frame
    superior: Plane | None
    inferior: Plane | None
    semi_ap: float
    semi_lr: float
    centre_ap: float
    centre_lr: float
    qc: set[str] = field(default_factory=set)


@dataclass
class DiscGeom:
    """Fitted geometry of one disc (upper/lower = vertebra ids, lower may be the sacrum)."""

    did: int
    upper: int
    lower: int | None
    frame: Frame
    upper_plane: Plane | None  # inferior endplate of the upper vertebra (normal cranial)
    lower_plane: Plane | None  # superior endplate of the lower vertebra / sacral plate
    qc: set[str] = field(default_factory=set)


def _as_label_array(arr: np.ndarray) -> np.ndarray:
    """Unsigned/signed integer arrays go to ``find_objects`` as they are (no copy)."""
    return arr if np.issubdtype(arr.dtype, np.integer) else arr.astype(np.int32)


def trimmed_mean(values: np.ndarray, tol: float = 1.0) -> float:
    """Mean of the finite values within ``tol`` mm of their median (NaN if < half finite)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < max(1, np.size(values) // 2):
        return float("nan")
    med = np.median(v)
    return float(v[np.abs(v - med) <= tol].mean())


def patch_offsets(u: np.ndarray, v: np.ndarray, half_u: float, half_v: float, n: int = 5):
    """(n*n, 3) offsets on a small square patch spanned by unit vectors ``u`` and ``v``."""
    a = np.linspace(-half_u, half_u, n)
    b = np.linspace(-half_v, half_v, n)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    return aa.reshape(-1, 1) * u + bb.reshape(-1, 1) * v


class SpineModel:
    """Shared geometric model of one scan.

    Parameters
    ----------
    seg : Image
        Semantic map (contract §2).
    levels : Image
        Level map (contract §3) on the same grid.
    mode : {"auto", "linear", "sdf"}
        Mask interpolant; ``"auto"`` uses ``"sdf"`` when the voxels are anisotropic
        (largest / smallest spacing > 1.5), else ``"linear"``.
    """

    def __init__(self, seg: Image, levels: Image, mode: str = "auto",
                 smooth_sigma: float = 0.6) -> None:
        self.seg = np.asarray(seg.array)
        self.lev = np.asarray(levels.array)
        self.affine = np.asarray(seg.affine, dtype=np.float64)
        self.spacing = np.asarray(seg.spacing)
        self.voxel_mm3 = seg.voxel_volume_mm3
        if mode == "auto":
            mode = "linear"
        self.mode = mode
        self._edge_margin = np.floor(1.5 / self.spacing)
        # σ = 0.6 voxel along the fine axes; none along thick-slice axes (> 1.5 × finest),
        # where linear interpolation already spreads the boundary over a whole slice.
        fine = self.spacing <= 1.5 * self.spacing.min()
        #: Thick slices (an axis coarser than 1.5 × the finest, e.g. 0.5 × 0.5 × 4 mm): walls
        #: crossing the slices are read from shape-based fields (foramina, epidural fat).
        self.thick_slices = bool(not fine.all())
        self.smooth_vox = tuple(float(v) for v in np.where(fine, smooth_sigma, 0.0))
        self._fields: dict[str, MaskField] = {}
        self._vert: dict[int, VertebraGeom | None] = {}
        self._disc: dict[int, DiscGeom | None] = {}
        self._cuts: dict[str, str | None] = {}
        # Per-structure results that several measure families need (e.g. a body's heights
        # for the vertebra table and the disc index): computed once per model.
        self.memo: dict[tuple, Any] = {}
        self._seg_objs = ndimage.find_objects(_as_label_array(self.seg))
        self._lev_objs = ndimage.find_objects(_as_label_array(self.lev))
        present = [i + 1 for i, sl in enumerate(self._lev_objs) if sl is not None]
        order = {v: i for i, v in enumerate(VERTEBRA_IDS)}
        self._body_centroid: dict[int, np.ndarray] = {}
        self._body_count: dict[int, int] = {}
        for v in present:
            if v in order and v != SACRUM_ID:
                idx = self.voxels(f"body:{v}")
                if len(idx):
                    self._body_centroid[v] = self.world(idx).mean(axis=0)
                    self._body_count[v] = len(idx)
        #: Vertebra ids with body voxels, cranial → caudal.
        self.vertebrae: list[int] = sorted(self._body_centroid, key=order.get)
        self.has_sacrum = self.has_structure("sacrum")
        discs = [d for d in present if d > DISC_OFFSET and d - DISC_OFFSET in order
                 and len(self.voxels(f"disc:{d}"))]
        self.discs: list[int] = sorted(discs, key=lambda d: order[d - DISC_OFFSET])

    # ------------------------------------------------------------------ basics
    def world(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(idx, dtype=np.float64) @ self.affine[:3, :3].T + self.affine[:3, 3]

    #: Fields that get the staircase-removing pre-filter (bone and disc surfaces, sac).
    SMOOTHED = ("body", "disc", "sacrum", "sac")

    #: Composite mask keys → contract label ids (``mask("sac")`` is thecal sac ∪ cord, …).
    COMPOSITE_LABELS = {
        "sac": (5, 6),
        "solid": (1, 2, 3, 4, 9),
        "anterior_wall": (1, 3, 4),
        "posterior_wall": (2,),
        "posterior_wall_disc": (2, 9),
    }

    def _crop(self, key: str) -> tuple[np.ndarray, tuple[int, int, int]]:
        """Mask ``key`` cropped to its bounding box, and the box's first index."""
        kind, _, arg = key.partition(":")
        if kind in ("body", "disc", "pe"):
            lid = int(arg)
            label = {"body": 1, "disc": 4, "pe": 2}[kind]
            sl = self._lev_objs[lid - 1] if lid - 1 < len(self._lev_objs) else None
            if sl is None:
                return np.zeros((1, 1, 1), bool), (0, 0, 0)
            crop = (self.seg[sl] == label) & (self.lev[sl] == lid)
        else:
            labels = self.COMPOSITE_LABELS.get(kind) or (int(Structure[kind]),)
            sls = [self._seg_objs[v - 1] for v in labels
                   if v - 1 < len(self._seg_objs) and self._seg_objs[v - 1] is not None]
            if not sls:
                return np.zeros((1, 1, 1), bool), (0, 0, 0)
            sl = tuple(slice(min(s[k].start for s in sls), max(s[k].stop for s in sls))
                       for k in range(3))
            crop = np.isin(self.seg[sl], labels)
        return crop, tuple(s.start for s in sl)

    def mask(self, key: str) -> np.ndarray:
        """Full-size boolean mask by key: ``body:<id>``, ``disc:<id>``, ``pe:<id>``, a
        structure name, ``sac`` (thecal sac ∪ cord), ``solid`` (bone, disc, ligamentum
        flavum), ``anterior_wall`` (body, disc, sacrum), ``posterior_wall``."""
        crop, lo = self._crop(key)
        out = np.zeros(self.seg.shape, bool)
        out[lo[0]:lo[0] + crop.shape[0], lo[1]:lo[1] + crop.shape[1],
            lo[2]:lo[2] + crop.shape[2]] = crop
        return out

    def voxels(self, key: str) -> np.ndarray:
        """Voxel indices (N, 3) of mask ``key``."""
        crop, lo = self._crop(key)
        return np.argwhere(crop) + np.asarray(lo)

    def has_structure(self, name: str) -> bool:
        """Whether structure ``name`` (contract §2) has any voxel."""
        v = int(Structure[name])
        return v - 1 < len(self._seg_objs) and self._seg_objs[v - 1] is not None

    def touches_border(self, key: str) -> bool:
        """Whether mask ``key`` lies within 1.5 mm of the image edge (cut by the FOV)."""
        idx = self.voxels(key)
        if not len(idx):
            return False
        lo, hi = idx.min(axis=0), idx.max(axis=0)
        top = np.asarray(self.seg.shape) - 1 - self._edge_margin
        return bool(np.any(lo <= self._edge_margin) or np.any(hi >= top))

    def fov_cut(self, key: str) -> str | None:
        """How the field of view cuts mask ``key``: None, ``"partial_fov_lr"`` (left/right
        faces only, mid-sagittal slab inside) or ``"partial_fov"``.

        Same rule and inputs as the level qc of :func:`spinemetrics.levels.derive_levels`
        (:func:`spinemetrics.levels.fov_cut`; mid-sagittal plane from the dural sac, else the
        posterior elements, within 5 mm of the mask centroid along the spine axis), so a
        row's values and its level qc agree.
        """
        if key not in self._cuts:
            idx = self.voxels(key)
            mid = None
            if len(idx):
                mid = self.mid_sagittal_point(self.world(idx).mean(axis=0), self.spine_axis)
            self._cuts[key] = fov_cut(idx, self.seg.shape, self.affine, mid)
        return self._cuts[key]

    @cached_property
    def spine_axis(self) -> np.ndarray:
        """First principal axis of the body centroids (sign arbitrary)."""
        return spine_axis_of(np.array([self._body_centroid[v] for v in self.vertebrae]))

    def mid_sagittal_point(self, centre: np.ndarray, si: np.ndarray) -> np.ndarray | None:
        """``centre`` moved along world x (patient LR) onto the mid-sagittal plane at its
        level: the x of the dural-sac (else posterior-element) points within 5 mm along
        ``si``; None when neither is there (the level qc's rule,
        :func:`spinemetrics.levels.fov_cut`)."""
        return _mid_sagittal_point(centre, si, self.sac_points, self.pe_points)

    def onto_mid_sagittal(self, centre: np.ndarray, si: np.ndarray,
                          ap0: np.ndarray) -> np.ndarray:
        """``centre`` moved along the level's own LR axis onto its mid-sagittal plane.

        The plane is the one through the dural-sac (else posterior-element) points within
        5 mm of ``centre`` along ``si``; moving along the anatomical LR axis (not world x)
        keeps the shift right when the spine is rotated about its long axis, where the
        canal, 20–30 mm behind the body, is offset in world x from the body's midline.
        """
        near = midline_points_near(centre, si, self.sac_points, self.pe_points)
        if near is None:
            return centre
        lr = Frame.from_si_ap(centre, si, ap0).lr
        return centre + float((near.mean(axis=0) - centre) @ lr) * lr

    def fov_distance(self, point: np.ndarray, direction: np.ndarray) -> float:
        """Distance (mm) from ``point`` along ``direction`` to 1.5 mm inside the image edge."""
        inv = np.linalg.inv(self.affine)
        p = inv[:3, :3] @ np.asarray(point, dtype=np.float64) + inv[:3, 3]
        d = inv[:3, :3] @ np.asarray(direction, dtype=np.float64)
        lo = self._edge_margin - 0.5
        hi = np.asarray(self.seg.shape) - 0.5 - self._edge_margin
        t = np.inf
        for k in range(3):
            if abs(d[k]) < 1e-12:
                continue
            edge = hi[k] if d[k] > 0 else lo[k]
            t = min(t, (edge - p[k]) / d[k])
        return float(max(t, 0.0))

    def field(self, key: str) -> MaskField:
        if key not in self._fields:
            crop, lo = self._crop(key)
            smooth = None
            if key.split(":")[0] in self.SMOOTHED:
                smooth = self.smooth_vox
            self._fields[key] = MaskField(crop, self.affine, mode=self.mode, lo=lo,
                                          full_shape=self.seg.shape, smooth_vox=smooth)
        return self._fields[key]

    def body_centroid(self, vid: int) -> np.ndarray:
        return self._body_centroid[vid]

    def body_volume_mm3(self, vid: int) -> float:
        return self._body_count[vid] * self.voxel_mm3

    def neighbours(self, vid: int) -> tuple[int | None, int | None]:
        """(vertebra above, vertebra below) among those present (below may be the sacrum)."""
        i = self.vertebrae.index(vid)
        above = self.vertebrae[i - 1] if i > 0 else None
        below = self.vertebrae[i + 1] if i + 1 < len(self.vertebrae) else None
        if below is None and self.has_sacrum:
            below = SACRUM_ID
        return above, below

    @cached_property
    def sac_points(self) -> np.ndarray:
        return self.world(self.voxels("sac"))

    @cached_property
    def pe_points(self) -> np.ndarray:
        return self.world(self.voxels("posterior_elements"))

    @cached_property
    def centreline(self) -> Centreline | None:
        pts = self.sac_points
        if len(pts) < 50 or not self.vertebrae:
            return None
        guide = np.array([self._body_centroid[v] for v in reversed(self.vertebrae)])
        # Shift the guide posteriorly is unnecessary: binning uses nearest guide parameter.
        cl = Centreline(pts, guide)
        return cl if cl.valid else None

    # ------------------------------------------------------------------ rays
    def exits(self, key: str, origins: np.ndarray, direction: np.ndarray, t_max: float,
              entering: bool = False) -> np.ndarray:
        """First boundary crossing of field ``key`` along rays (mm; NaN if none).

        Coarse-to-fine: samples every 0.5 mm locate the crossing, 0.05-mm samples inside
        that bracket refine it (linear interpolation of the inside score).
        """
        fld = self.field(key)
        origins = np.atleast_2d(np.asarray(origins, dtype=np.float64))
        direction = np.asarray(direction, dtype=np.float64)
        t, pts = ray_grid(origins, direction, t_max, step=0.5)
        coarse = first_crossing(fld.inside(pts), t, entering=entering)
        ok = np.isfinite(coarse)
        if not ok.any():
            return coarse
        # Refine within [bracket start, bracket end] (one coarse step before the crossing).
        t0 = np.floor(coarse[ok] / 0.5) * 0.5
        fine = np.arange(0.0, 0.5 + 1e-9, 0.05)
        tt = t0[:, None] + fine[None, :]
        d = direction if direction.ndim == 1 else direction[ok]
        d = np.broadcast_to(d, (ok.sum(), 3))
        pf = origins[ok][:, None, :] + tt[:, :, None] * d[:, None, :]
        vals = fld.inside(pf)
        inside = vals >= 0.5
        hit = inside if entering else ~inside
        hit &= ~np.isnan(vals)
        j = np.argmax(hit, axis=1)
        rows = np.arange(len(j))
        good = hit[rows, j] & (j > 0)
        v0 = vals[rows, np.maximum(j - 1, 0)]
        v1 = vals[rows, j]
        den = np.where(np.abs(v1 - v0) < 1e-12, 1.0, v1 - v0)
        frac = np.clip((0.5 - v0) / den, 0.0, 1.0)
        refined = tt[rows, np.maximum(j - 1, 0)] + frac * 0.05
        out = coarse.copy()
        out[np.nonzero(ok)[0][good]] = refined[good]
        # A boundary met within 1.5 mm of the image edge may be the edge of the field of
        # view, not anatomy: no value rather than a wrong one.
        fin = np.isfinite(out)
        if fin.any():
            d = direction if direction.ndim == 1 else direction[fin]
            hit = origins[fin] + out[fin][:, None] * d
            ijk = fld.to_index(hit)
            # (a hit exactly on the margin line counts as inside: see sampling.TIE_TOL)
            bad = np.any((ijk < self._edge_margin - 0.5 - TIE_TOL)
                         | (ijk > np.asarray(self.seg.shape) - 0.5 - self._edge_margin + TIE_TOL),
                         axis=1)
            out[np.nonzero(fin)[0][bad]] = np.nan
        return out

    def chord_patch(self, key: str, point: np.ndarray, direction: np.ndarray,
                    offsets: np.ndarray, t_max: float = 80.0) -> tuple[float, float]:
        """Robust chord: (t_plus, t_minus) averaged over parallel rays from ``point + offsets``.

        Voxelised oblique surfaces are staircases (±¼ voxel); averaging parallel rays over a
        few millimetres removes that without blurring the geometry (trimmed mean: values
        within 1 mm of the median).
        """
        starts = np.asarray(point)[None, :] + np.asarray(offsets)
        tp = self.exits(key, starts, direction, t_max)
        tm = self.exits(key, starts, -direction, t_max)
        return trimmed_mean(tp), trimmed_mean(tm)

    def chord(self, key: str, point: np.ndarray, direction: np.ndarray, t_max: float = 80.0):
        """(t_plus, t_minus) exits of ``key`` from ``point`` along ±direction (mm)."""
        o = np.atleast_2d(point)
        tp = self.exits(key, o, direction, t_max)[0]
        tm = self.exits(key, o, -direction, t_max)[0]
        return tp, tm

    # ------------------------------------------------------------------ frames
    def _initial_si(self, vid: int) -> np.ndarray:
        above, below = self.neighbours(vid)
        c = self._body_centroid[vid]
        if above is not None and below is not None and below != SACRUM_ID:
            return unit(self._body_centroid[above] - self._body_centroid[below])
        if above is not None:
            return unit(self._body_centroid[above] - c)
        if below is not None and below != SACRUM_ID:
            return unit(c - self._body_centroid[below])
        pts = self.world(self.voxels(f"body:{vid}"))
        _, _, vt = np.linalg.svd(pts - pts.mean(axis=0), full_matrices=False)
        si = vt[2]
        return si if si[2] >= 0 else -si

    def _canal_point(self, vid: int, c: np.ndarray, si: np.ndarray) -> np.ndarray | None:
        pts = self.sac_points
        if len(pts):
            d = pts - c
            sel = (np.abs(d @ si) < 5.0) & (np.linalg.norm(d, axis=1) < 60.0)
            if sel.sum() >= 10:
                return pts[sel].mean(axis=0)
        pe = self.world(self.voxels(f"pe:{vid}"))
        if len(pe) >= 10:
            return pe.mean(axis=0)
        return None

    def vertebra(self, vid: int) -> VertebraGeom | None:
        """Fitted frame and endplates of vertebra ``vid`` (None if absent)."""
        if vid in self._vert:
            return self._vert[vid]
        if vid not in self.vertebrae:
            self._vert[vid] = None
            return None
        qc: set[str] = set()
        c = self._body_centroid[vid]
        si = self._initial_si(vid)
        canal = self._canal_point(vid, c, si)
        if canal is None:
            ap0 = np.array([0.0, 1.0, 0.0])
            qc.add("ap_from_scanner")
        else:
            ap0 = c - canal
        key = f"body:{vid}"
        sup = inf = None
        lr_cut = self.fov_cut(key) == "partial_fov_lr"
        if lr_cut:
            # Cut on the left/right faces only: the mid-sagittal part is intact. The centroid
            # of what is in view is biased toward the less-cut side, so measure on the
            # mid-sagittal plane (dural sac / posterior elements) instead.
            qc.add("partial_fov_lr")
            c = self.onto_mid_sagittal(c, si, ap0)
        for _ in range(2):
            fr = Frame.from_si_ap(c, si, ap0)
            section = self._section_grid(key, c, fr, lr_cut)
            if section is None:
                qc.add("partial_fov")
                break
            starts, semi_ap, semi_lr, cen_ap, cen_lr = section
            top = self.exits(key, starts, fr.si, 40.0)
            bot = self.exits(key, starts, -fr.si, 40.0)
            sup = self.fit_endplate(starts + top[:, None] * fr.si, fr.si)
            inf = self.fit_endplate(starts - bot[:, None] * fr.si, fr.si)
            if sup is None or inf is None:
                qc.add("endplate_fit_failed")
                break
            si = unit(sup.normal + inf.normal)
        else:
            fr = Frame.from_si_ap(c, si, ap0)
        if "partial_fov" in qc or "endplate_fit_failed" in qc:
            geom = VertebraGeom(vid, Frame.from_si_ap(c, si, ap0), sup, inf, np.nan, np.nan,
                                0.0, 0.0, qc)
        else:
            fr = Frame.from_si_ap(c, si, ap0)
            if lr_cut:
                # The width is unknown; the origin already lies on the mid-sagittal plane.
                semi_lr, cen_lr = float("nan"), 0.0
            geom = VertebraGeom(vid, fr, sup, inf, semi_ap, semi_lr, cen_ap, cen_lr, qc)
        self._vert[vid] = geom
        return geom

    def lower_key(self, lower: int) -> str:
        return "sacrum" if lower == SACRUM_ID else f"body:{lower}"

    def disc(self, did: int) -> DiscGeom | None:
        """Fitted frame and bounding endplates of disc ``did``."""
        if did in self._disc:
            return self._disc[did]
        if did not in self.discs:
            self._disc[did] = None
            return None
        upper = did - DISC_OFFSET
        order = list(VERTEBRA_IDS)
        lower: int | None = None
        if upper in self.vertebrae:
            _, lower = self.neighbours(upper)
        if lower is None:
            # Upper body not in view (top disc) or lower missing: next id below by convention.
            nxt = SACRUM_ID if upper in (24, 25) else order[order.index(upper) + 1]
            if nxt in self.vertebrae or (nxt == SACRUM_ID and self.has_sacrum):
                lower = nxt
        qc: set[str] = set()
        dmask_key = f"disc:{did}"
        pts = self.world(self.voxels(dmask_key))
        c = pts.mean(axis=0)
        vu = self.vertebra(upper) if upper in self.vertebrae else None
        vl = self.vertebra(lower) if lower is not None and lower != SACRUM_ID else None
        both = vu is not None and vl is not None
        if both and vu.inferior is not None and vl.superior is not None:
            si = unit(vu.inferior.normal + vl.superior.normal)
        else:
            _, _, vt = np.linalg.svd(pts - c, full_matrices=False)
            si = vt[2]
            ref = vu.frame.si if vu is not None else (vl.frame.si if vl is not None else None)
            if ref is None:
                ref = np.array([0.0, 0.0, 1.0])
            if si @ ref < 0:
                si = -si
        ref_fr = vu.frame if vu is not None else (vl.frame if vl is not None else None)
        if ref_fr is not None:
            ap0 = ref_fr.ap
        else:
            canal = self._canal_point(upper, c, si)
            ap0 = c - canal if canal is not None else np.array([0.0, 1.0, 0.0])
        up_key = f"body:{upper}" if upper in self.vertebrae else None
        lo_key = self.lower_key(lower) if lower is not None else None
        upper_plane = lower_plane = None
        lr_cut = self.fov_cut(dmask_key) == "partial_fov_lr"
        if lr_cut:  # as for vertebrae: measure on the mid-sagittal plane
            qc.add("partial_fov_lr")
            c = self.onto_mid_sagittal(c, si, ap0)
        for _ in range(2):
            fr = Frame.from_si_ap(c, si, ap0)
            section = self._section_grid(dmask_key, c, fr, lr_cut)
            if section is None:
                qc.add("partial_fov")
                break
            starts = section[0]
            top = self.surface_distance(starts, fr.si, up_key, dmask_key)
            bot = self.surface_distance(starts, -fr.si, lo_key, dmask_key)
            upper_plane = self.fit_endplate(starts + top[:, None] * fr.si, fr.si)
            lower_plane = self.fit_endplate(starts - bot[:, None] * fr.si, fr.si)
            if upper_plane is None or lower_plane is None:
                qc.add("endplate_fit_failed")
                break
            si = unit(upper_plane.normal + lower_plane.normal)
        fr = Frame.from_si_ap(c, si, ap0)
        geom = DiscGeom(did, upper, lower, fr, upper_plane, lower_plane, qc)
        self._disc[did] = geom
        return geom

    def fit_endplate(self, points: np.ndarray, up: np.ndarray) -> Plane | None:
        """Endplate plane through sub-voxel surface points (least squares, one outlier round).

        A plane within about two voxel layers of a grid plane is a staircase with at most
        two steps over the endplate: its points sit on flat terraces half a voxel from the
        true plane and the least-squares tilt follows where the steps fall (up to 3 × the
        true tilt when one step is central, 0 when none is in range: ~2-3° at 1 mm). Such a
        plane is fitted as the centre of the set of planes consistent with the staircase —
        every point within half a voxel (+5 %) of the plane, along that grid axis (a digital
        plane; linear programs in index space) — when that set is not empty.
        """
        plane = fit_plane(points, up)
        if plane is None:
            return None
        pts = np.asarray(points, dtype=np.float64)
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        inv = np.linalg.inv(self.affine)
        ijk = pts @ inv[:3, :3].T + inv[:3, 3]
        n_idx = self.affine[:3, :3].T @ plane.normal  # the plane's normal in index space
        k = int(np.argmax(np.abs(n_idx)))
        o = [a for a in range(3) if a != k]
        slope = -n_idx[o] / n_idx[k]
        span = ijk[:, o].max(axis=0) - ijk[:, o].min(axis=0)
        if float(np.abs(slope) @ span) > 2.0:  # ≥ 2 steps: least squares is fine
            return plane
        from scipy.optimize import linprog

        # Points off the least-squares plane by more than a terrace can be (a rim, a node)
        # would make the staircase inconsistent: leave them out of the consistency test.
        ok = np.abs((pts - plane.point) @ plane.normal) <= 0.8 * float(
            np.abs(self.affine[:3, k] @ plane.normal))
        if ok.sum() < 6:
            return plane
        ijk = ijk[ok]
        pts = pts[ok]
        uv = ijk[:, o] - ijk[:, o].mean(axis=0)
        h = ijk[:, k]
        tol = 0.55
        # |a + b·u + c·w − h| ≤ tol  →  two rows per point, variables (a, b, c).
        a_ub = np.vstack([np.c_[np.ones(len(h)), uv], -np.c_[np.ones(len(h)), uv]])
        b_ub = np.r_[h + tol, tol - h]
        bounds = [(None, None)] * 3
        ext = []
        for j in (1, 2):
            for sgn in (1.0, -1.0):
                c = np.zeros(3)
                c[j] = sgn
                r = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
                if r.status != 0:
                    return plane  # not a clean staircase (curved or noisy endplate)
                ext.append(r.x[j])
        b, c = 0.5 * (ext[0] + ext[1]), 0.5 * (ext[2] + ext[3])
        resid = h - uv @ np.array([b, c])
        a = 0.5 * (float((resid - tol).max()) + float((resid + tol).min()))
        n_new = np.zeros(3)
        n_new[k], n_new[o[0]], n_new[o[1]] = 1.0, -b, -c
        normal = unit(inv[:3, :3].T @ n_new)  # back to world (normals map with A^-T)
        if normal @ up < 0:
            normal = -normal
        centre_idx = np.zeros(3)
        centre_idx[o] = ijk[:, o].mean(axis=0)
        centre_idx[k] = a
        point = self.affine[:3, :3] @ centre_idx + self.affine[:3, 3]
        res = (pts - point) @ normal
        return Plane(point=point, normal=normal, rms_mm=float(np.sqrt(np.mean(res**2))),
                     n_points=len(pts))

    def _section_grid(
        self, key: str, c: np.ndarray, fr: Frame, lr_cut: bool = False
    ) -> tuple[np.ndarray, float, float, float, float] | None:
        """Start points spread over the AP × LR section of mask ``key`` through ``c``.

        Returns ``(starts, semi_ap, semi_lr, cen_ap, cen_lr)``, or None when a chord leaves
        the field of view (the endplates cannot then be fitted over the whole section).
        With ``lr_cut`` (structure cut on the left/right faces only) a left/right chord that
        leaves the field of view ends at the image edge instead: the endplates are then
        fitted over the part in view, which fixes their sagittal tilt all the same.
        """
        ap_p, ap_m = self.chord(key, c, fr.ap, 50.0)
        lr_p, lr_m = self.chord(key, c, fr.lr, 50.0)
        if lr_cut:
            if not np.isfinite(lr_p):
                lr_p = self.fov_distance(c, fr.lr)
            if not np.isfinite(lr_m):
                lr_m = self.fov_distance(c, -fr.lr)
        if not np.all(np.isfinite([ap_p, ap_m, lr_p, lr_m])):
            return None
        semi_ap, semi_lr = (ap_p + ap_m) / 2, (lr_p + lr_m) / 2
        cen_ap, cen_lr = (ap_p - ap_m) / 2, (lr_p - lr_m) / 2
        a, l_ = np.meshgrid(cen_ap + _GRID_AP * semi_ap, cen_lr + _GRID_LR * semi_lr,
                            indexing="ij")
        a, l_ = a.ravel()[_GRID_IN], l_.ravel()[_GRID_IN]
        return fr.point(a, l_), semi_ap, semi_lr, cen_ap, cen_lr

    def surface_distance(self, starts: np.ndarray, direction: np.ndarray, body_key: str | None,
                         disc_key: str, t_max: float = 20.0) -> np.ndarray:
        """Distance from points inside a disc to the bounding endplate along ``direction``.

        Entry into the neighbouring body (or sacrum) when it is segmented — the contract's
        "distance between endplates" — else the exit from the disc mask.
        """
        out = np.full(len(starts), np.nan)
        if body_key is not None:
            out = self.exits(body_key, starts, direction, t_max, entering=True)
        miss = ~np.isfinite(out)
        if miss.any():
            out[miss] = self.exits(disc_key, starts[miss], direction, t_max)
        return out
