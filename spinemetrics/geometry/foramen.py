"""Neural foramen measures (contract §5 "foramen"; MEASURES.md §4).

The foraminal plane of a disc and side is the parasagittal plane (normal = the disc's LR
axis) through the centroid of that side's pedicle of the upper vertebra. The pedicle is
taken as the posterior-element voxels of the upper vertebra lying within 15 mm behind the
posterior body wall and more than 3 mm from the mid-sagittal plane.

On that plane (0.25-mm grid, axes AP and SI of the disc) "solid" = vertebral body, posterior
elements, sacrum, disc and ligamentum flavum; the foramen is the free (non-solid) region that
contains the first free point behind the disc on the disc's mid-plane row, closed off by a
morphological closing of the solid of the smallest radius (0, 1, 2, 3 mm) that makes it
bounded. Nerve roots, fat and vessels inside it count as free space.

* ``foraminal_height_mm``: largest SI extent of the region (upper to lower pedicle).
* ``foraminal_width_mm``: AP extent of the region on the disc mid-plane row (posterior disc
  margin to articular process / ligamentum flavum).
* ``foraminal_area_mm2``: area of the region.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spinemetrics.geometry._table import MeasureInfo, Record
from spinemetrics.geometry.disc import disc_level_name
from spinemetrics.geometry.model import SpineModel
from spinemetrics.geometry.sampling import plane_grid

__all__ = ["MEASURES", "compute", "foramen_region"]

MEASURES: dict[str, MeasureInfo] = {
    "foraminal_height_mm": MeasureInfo(
        "mm", "largest SI extent of the foramen on the parasagittal plane through the pedicle",
        "MEASURES §4.1; R12 (≤ 15 mm critical) [V]", "disc", sided=True),
    "foraminal_width_mm": MeasureInfo(
        "mm", "AP extent of the foramen at disc mid-height (disc margin to articular "
        "process / ligamentum flavum)", "MEASURES §4.1; R70 [V]", "disc", sided=True),
    "foraminal_area_mm2": MeasureInfo(
        "mm2", "area of the free region bounded by pedicles, body/disc and articular process "
        "on that plane", "MEASURES §4.1; R70 [V]", "disc", sided=True),
}

STEP_MM = 0.25


def pedicle_offsets(model: SpineModel, vid: int) -> dict[str, float]:
    """Signed LR offsets (mm, in the vertebra frame) of the left and right pedicle centroids."""
    g = model.vertebra(vid)
    out: dict[str, float] = {}
    if g is None or not np.isfinite(g.semi_ap):
        return out
    pts = model.world(model.voxels(f"pe:{vid}"))
    if len(pts) < 10:
        return out
    loc = g.frame.local(pts)
    wall = g.centre_ap - g.semi_ap
    sel = (loc[:, 0] < wall + 1.0) & (loc[:, 0] > wall - 15.0)
    for side, sgn in (("R", 1.0), ("L", -1.0)):
        s = sel & (sgn * loc[:, 1] > 3.0)
        if s.sum() >= 5:
            out[side] = float(loc[s, 1].mean())
    return out


def foramen_region(model: SpineModel, did: int, side: str):
    """The foramen region on the foraminal plane: ``(mask2d, aa, ss, qc)`` or ``None``."""
    g = model.disc(did)
    if g is None or g.upper not in model.vertebrae:
        return None
    offs = pedicle_offsets(model, g.upper)
    if side not in offs:
        return None
    fr = g.frame
    vu = model.vertebra(g.upper)
    # Express the pedicle offset in the disc frame (frames differ by a few degrees).
    off = float(offs[side])
    centre = fr.origin + off * fr.lr + (vu.frame.origin - fr.origin) @ fr.lr * 0.0
    tp, tm = model.chord(f"disc:{did}", centre, fr.ap, 60.0)
    post = -tm if np.isfinite(tm) else -20.0
    aa, ss, pts = plane_grid(centre, fr.ap, fr.si, (post - 30.0, post + 6.0), (-30.0, 30.0),
                             STEP_MM)
    vals = model.field("solid").inside(pts)
    nan = np.isnan(vals)
    solid = np.nan_to_num(vals, nan=1.0) >= 0.5
    row = int(np.argmin(np.abs(ss)))
    behind = np.nonzero((aa <= post + 0.5) & ~solid[:, row])[0]
    if len(behind) == 0:
        return None
    seed_a = behind[np.argmax(aa[behind])]  # first free sample behind the disc margin
    qc: set[str] = set()
    for r_mm in (0.0, 1.0, 2.0, 3.0):
        if r_mm > 0:
            # Closing by a disc of radius r via two distance maps (fast on a fine grid).
            dil = ndimage.distance_transform_edt(~solid, sampling=STEP_MM) <= r_mm
            closed = (ndimage.distance_transform_edt(dil, sampling=STEP_MM) > r_mm) | solid
        else:
            closed = solid
        free = ~closed
        if not free[seed_a, row]:
            return None
        lab, _ = ndimage.label(free)
        reg = lab == lab[seed_a, row]
        if not (reg[0].any() or reg[-1].any() or reg[:, 0].any() or reg[:, -1].any()):
            if (ndimage.binary_dilation(reg, iterations=2) & nan).any():
                qc.add("partial_fov")
            if r_mm > 0:
                qc.add(f"closed_{int(r_mm)}mm")
            return reg, aa, ss, qc
    return None


def compute(model: SpineModel) -> list[Record]:
    """Foraminal height, width and area per disc and side."""
    recs: list[Record] = []
    if not model.has_structure("posterior_elements"):
        for did in model.discs:
            name = disc_level_name(model, did)
            for side in ("L", "R"):
                for m in MEASURES:
                    recs.append(Record(name, m, float("nan"), side, {"not_segmented"}))
        return recs
    through = float(np.max(model.spacing))
    for did in model.discs:
        name = disc_level_name(model, did)
        for side in ("L", "R"):
            res = foramen_region(model, did, side)
            vals = dict.fromkeys(MEASURES, float("nan"))
            qc: set[str] = {"foramen_not_found"}
            if res is not None:
                reg, aa, ss, qc = res
                cols = np.nonzero(reg.any(axis=1))[0]
                heights = [np.ptp(ss[reg[c]]) + STEP_MM for c in cols]
                row = int(np.argmin(np.abs(ss)))
                width = reg[:, row].sum() * STEP_MM
                vals = {
                    "foraminal_height_mm": float(max(heights)),
                    "foraminal_width_mm": float(width) if width > 0 else float("nan"),
                    "foraminal_area_mm2": float(reg.sum() * STEP_MM**2),
                }
                if "partial_fov" in qc:
                    vals = dict.fromkeys(MEASURES, float("nan"))
                # The foraminal plane's position is only known to about one slice.
                if through > 2.0:
                    qc = set(qc) | {"low_confidence"}
            for m in MEASURES:
                recs.append(Record(name, m, vals[m], side, set(qc)))
    return recs
