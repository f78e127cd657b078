"""Neural foramen measures (contract §5 "foramen"; MEASURES.md §4).

Foraminal plane (per disc and side): the parasagittal plane through the disc centre shifted
along the disc's LR axis by the mean left-right offset of the pedicle centres of the upper and
lower vertebra (MEASURES §4.1: "the offset through the pedicle centroids"); in-plane axes are
the disc's AP and SI axes. A pedicle is the posterior-element part of a vertebra lying within
12 mm behind the posterior body wall, more than 3 mm off the mid-sagittal plane.

On that plane, sampled every 0.2 mm, "solid" = vertebral body, posterior elements, sacrum,
disc and ligamentum flavum (nerve roots, fat and vessels count as free space). The foramen is
the connected free region containing the first free point behind the disc on the disc's
mid-row, inside a window that closes the foramen where anatomy leaves it open: SI from the
upper to the lower pedicle centre (12 mm below the disc for a sacral lower neighbour) and AP
from 3 mm in front of the disc to 1.5 mm behind the anterior face of the upper lamina.

* ``foraminal_height_mm``: largest SI extent of the region over AP columns.
* ``foraminal_width_mm``: AP extent of the region on the disc mid-row.
* ``foraminal_area_mm2``: area of the region.

If the region reaches the window's upper or lower edge (which runs through the pedicle
centres), the plane has missed a pedicle and the foramen is open: NaN, qc ``foramen_open``.
A region under 20 mm² or under 5 mm high is a gap between labels, not a foramen: NaN, qc
``foramen_not_found``.

This is the definition of the phantom's truth (``spinemetrics.phantom.truth.foramen``), so the
validation compares like with like. On 3–4 mm sagittal stacks the plane's position is known to
about one slice, hence qc ``low_confidence`` there (MEASURES §0b).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spinemetrics.geometry._table import MeasureInfo, Record
from spinemetrics.geometry.canal import bony_canal_ap
from spinemetrics.geometry.disc import disc_level_name
from spinemetrics.geometry.model import SpineModel
from spinemetrics.geometry.sampling import plane_grid
from spinemetrics.labels import SACRUM_ID

__all__ = ["MEASURES", "compute", "foramen_region", "pedicle_centres"]

MEASURES: dict[str, MeasureInfo] = {
    "foraminal_height_mm": MeasureInfo(
        "mm", "largest SI extent of the foramen on the parasagittal plane through the pedicles",
        "MEASURES §4.1; R12 (≤ 15 mm critical) [V]", "disc", sided=True),
    "foraminal_width_mm": MeasureInfo(
        "mm", "AP extent of the foramen at disc mid-height (disc margin to articular "
        "process / ligamentum flavum)", "MEASURES §4.1; R70 [V]", "disc", sided=True),
    "foraminal_area_mm2": MeasureInfo(
        "mm2", "area of the free region bounded by pedicles, body/disc and articular process "
        "on that plane", "MEASURES §4.1; R70 [V]", "disc", sided=True),
}

STEP_MM = 0.2


def pedicle_centres(model: SpineModel, vid: int) -> dict[str, tuple[float, np.ndarray]]:
    """Left and right pedicle centres of vertebra ``vid``.

    Returns, per side, the signed LR offset (mm, vertebra frame) and the world point on the
    body's axis at the pedicle's height (the foramen window is bounded at that height).
    """
    cache = model.__dict__.setdefault("_pedicles", {})
    if vid in cache:
        return cache[vid]
    g = model.vertebra(vid)
    out: dict[str, tuple[float, np.ndarray]] = {}
    if g is not None and np.isfinite(g.semi_ap):
        pts = model.world(model.voxels(f"pe:{vid}"))
        if len(pts) >= 10:
            loc = g.frame.local(pts)
            wall = g.centre_ap - g.semi_ap
            # Just behind the posterior wall the pedicles are the only posterior-element
            # bone (articular and transverse processes start further back).
            sel = (loc[:, 0] < wall + 3.0) & (loc[:, 0] > wall - 3.0)
            for side, sgn in (("R", 1.0), ("L", -1.0)):
                s = sel & (sgn * (loc[:, 1] - g.centre_lr) > 3.0)
                if s.sum() >= 5:
                    lr, si = float(loc[s, 1].mean()), float(loc[s, 2].mean())
                    out[side] = (lr, g.frame.point(g.centre_ap, g.centre_lr, si))
    cache[vid] = out
    return out


def foramen_region(model: SpineModel, did: int, side: str):
    """The foramen on the foraminal plane: ``(region, aa, ss, row, qc)`` or ``None``."""
    g = model.disc(did)
    if g is None or g.upper not in model.vertebrae or g.lower is None:
        return None
    fr = g.frame
    pu = pedicle_centres(model, g.upper).get(side)
    if pu is None:
        return None
    pl = pedicle_centres(model, g.lower).get(side) if g.lower != SACRUM_ID else None
    vu = model.vertebra(g.upper)
    vl = model.vertebra(g.lower) if pl is not None else None
    # LR offsets in the vertebra frames (the frames differ from the disc's by a few degrees).
    xu = abs(pu[0] - vu.centre_lr)
    xl = abs(pl[0] - vl.centre_lr) if pl is not None else xu
    sgn = 1.0 if side == "R" else -1.0
    centre = fr.origin + sgn * 0.5 * (xu + xl) * fr.lr
    q_top = float((pu[1] - fr.origin) @ fr.si)
    if pl is not None:
        q_bot = float((pl[1] - fr.origin) @ fr.si)
    else:
        tp, tm = model.chord(f"disc:{did}", fr.origin, fr.si, 30.0)
        q_bot = -0.5 * (tp + tm) - 12.0 if np.isfinite(tp + tm) else float("nan")
    c_up = bony_canal_ap(model, g.upper)
    tp_ap, _ = model.chord(f"disc:{did}", fr.origin, fr.ap, 60.0)
    if not np.all(np.isfinite([q_bot, c_up, tp_ap])) or q_top <= q_bot:
        return None
    wall = vu.frame.point(vu.centre_ap - vu.semi_ap - c_up - 1.5, vu.centre_lr)
    p_back = float((wall - fr.origin) @ fr.ap)
    aa, ss, pts = plane_grid(centre, fr.ap, fr.si, (p_back, tp_ap + 3.0), (q_bot, q_top), STEP_MM)
    vals = model.field("solid").inside(pts)
    qc: set[str] = set()
    if np.isnan(vals).any():
        qc.add("partial_fov")
    free = ~(np.nan_to_num(vals, nan=1.0) >= 0.5)
    row = int(np.argmin(np.abs(ss)))
    centre_col = int(np.argmin(np.abs(aa)))
    cols = np.nonzero(free[:centre_col, row])[0]
    if len(cols) == 0:
        return None
    seed = (int(cols.max()), row)
    lab, _ = ndimage.label(free)
    region = lab == lab[seed]
    if region[:, 0].any() or region[:, -1].any():
        # The window's SI edges run through the pedicle centres: reaching them means the
        # plane missed a pedicle (thick slices, unusual anatomy) and the foramen is open.
        qc.add("foramen_open")
    return region, aa, ss, row, qc


def compute(model: SpineModel) -> list[Record]:
    """Foraminal height, width and area per disc and side."""
    recs: list[Record] = []
    through = float(np.max(model.spacing))
    has_pe = model.has_structure("posterior_elements")
    for did in model.discs:
        name = disc_level_name(model, did)
        for side in ("L", "R"):
            vals = dict.fromkeys(MEASURES, float("nan"))
            qc: set[str] = {"not_segmented"} if not has_pe else {"foramen_not_found"}
            res = foramen_region(model, did, side) if has_pe else None
            if res is not None:
                reg, aa, ss, row, qc = res
                cols = np.nonzero(reg.any(axis=1))[0]
                heights = []
                for c in cols:
                    q = np.nonzero(reg[c])[0]
                    heights.append((q.max() - q.min() + 1) * STEP_MM)
                r = np.nonzero(reg[:, row])[0]
                vals = {
                    "foraminal_height_mm": float(max(heights)),
                    "foraminal_width_mm": float((r.max() - r.min() + 1) * STEP_MM),
                    "foraminal_area_mm2": float(reg.sum() * STEP_MM**2),
                }
                if vals["foraminal_area_mm2"] < 20.0 or vals["foraminal_height_mm"] < 5.0:
                    # A sliver between labels, not a foramen (label noise, plane off target).
                    qc = set(qc) | {"foramen_not_found"}
                if qc & {"partial_fov", "foramen_open", "foramen_not_found"}:
                    vals = dict.fromkeys(MEASURES, float("nan"))
                if through > 2.0:
                    qc = set(qc) | {"low_confidence"}
                if not model.has_structure("ligamentum_flavum"):
                    # Without the ligament the foramen is not closed posteriorly.
                    qc = set(qc) | {"no_ligamentum_flavum"}
            for m in MEASURES:
                recs.append(Record(name, m, vals[m], side, set(qc)))
    return recs
