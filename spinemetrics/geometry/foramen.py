"""Neural foramen measures (contract §5 "foramen"; MEASURES.md §4).

Foraminal plane (per disc and side): parallel to the disc's mid-sagittal plane (in-plane axes
the disc's AP and SI axes), through the pedicle centroids — at the mean left-right position,
relative to the disc centroid, of the upper and the lower vertebra's pedicle centroid
(MEASURES §4.1: "the offset through the pedicle centroids"). A pedicle is the
posterior-element part of a vertebra within 3 mm of the posterior body wall (AP), more than
3 mm off the mid-sagittal plane. When the two pedicles lie so far apart left-right that the
plane is off either centroid by more than 0.75 of that pedicle's half-width, the plane
grazes it: NaN, qc ``pedicle_grazed``.

On that plane, sampled every 0.2 mm, "solid" = vertebral body, posterior elements, sacrum,
disc and ligamentum flavum (nerve roots, fat and vessels count as free space). The foramen is
the connected free region containing the first free point behind the disc on the disc's
mid-row, inside a window that closes the foramen where anatomy leaves it open: SI from the
upper to the lower pedicle centre (12 mm below the disc for a sacral lower neighbour) and AP
from 3 mm in front of the disc to 1.5 mm behind the anterior face of the upper lamina.

* ``foraminal_height_mm``: largest SI extent of the region over AP columns.
* ``foraminal_width_mm``: on the disc mid-row, the free run from the disc wall back to the
  first solid sample (articular process, ligamentum flavum) — MEASURES §4.1 "posterior disc
  margin to the anterior margin of the superior articular process, at disc level"; both ends
  at the sub-sample 0.5 crossing. (Not the region's AP extent on that row, which spans the
  articular process when its tip rises above the row and the region wraps round it.) NaN,
  qc ``foramen_open``, when nothing closes the run behind.
* ``foraminal_area_mm2``: area of the region.

If the region reaches the window's upper or lower edge (which runs through the pedicle
centres), the plane has missed a pedicle and the foramen is open: NaN, qc ``foramen_open``.
A region under 20 mm² or under 5 mm high is a gap between labels, not a foramen: NaN, qc
``foramen_not_found``.

Thick slices (largest spacing > 1.5 × the finest, e.g. 0.5 × 0.5 × 4 mm sagittal): the plane
is parallel to the slices and falls between them, and the walls that bound the foramen (the
disc's lateral wall, the articular process) cross the slices. Linear interpolation of a binary
mask is then nearest-slice, up to half a slice (2 mm) off along LR, 1–2 mm in width. Behind
the disc the "solid" mask is therefore read from a shape-based field (signed distance,
cubic B-splines; Raya & Udupa 1990) on a local crop, which moves the walls smoothly between
slices (:func:`~spinemetrics.geometry.sampling.local_sdf_field`). Values there keep qc
``low_confidence`` (MEASURES §0b): a wall parallel to the slices is still known to one slice.

This is the definition of the phantom's truth (``spinemetrics.phantom.truth.foramen``), so the
validation compares like with like.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from spinemetrics.geometry._table import MeasureInfo, Record
from spinemetrics.geometry.canal import bony_canal_ap
from spinemetrics.geometry.disc import disc_level_name
from spinemetrics.geometry.model import SpineModel
from spinemetrics.geometry.sampling import MaskField, local_sdf_field, plane_grid
from spinemetrics.labels import SACRUM_ID

__all__ = ["MEASURES", "ForamenSection", "compute", "foramen_region", "foramen_width",
           "pedicle_centres", "solid_field"]

MEASURES: dict[str, MeasureInfo] = {
    "foraminal_height_mm": MeasureInfo(
        "mm", "largest SI extent of the foramen on the parasagittal plane through the pedicles",
        "MEASURES §4.1; R12 (≤ 15 mm critical) [V]", "disc", sided=True),
    "foraminal_width_mm": MeasureInfo(
        "mm", "free AP run at disc mid-height from the disc wall to the articular process / "
        "ligamentum flavum, on the parasagittal plane through the pedicles",
        "MEASURES §4.1; R70 [V]", "disc", sided=True),
    "foraminal_area_mm2": MeasureInfo(
        "mm2", "area of the free region bounded by pedicles, body/disc and articular process "
        "on that plane", "MEASURES §4.1; R70 [V]", "disc", sided=True),
}

STEP_MM = 0.2


def pedicle_centres(model: SpineModel, vid: int) -> dict[str, tuple]:
    """Left and right pedicle centres of vertebra ``vid``.

    Returns, per side: the signed LR offset (mm, vertebra frame), the world point on the
    body's axis at the pedicle's height (the foramen window is bounded at that height), the
    pedicle centroid (world) and its LR half-width (mm).
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
                    # Half-width (box model: √3 · SD), each voxel spread over its LR extent
                    # so that a pedicle seen in one thick slice is not zero wide.
                    ext = float(np.max(np.abs(model.affine[:3, :3].T @ g.frame.lr)))
                    half = float(np.sqrt(3.0 * (loc[s, 1].var() + ext**2 / 12.0)))
                    out[side] = (lr, g.frame.point(g.centre_ap, g.centre_lr, si),
                                 pts[s].mean(axis=0), half)
    cache[vid] = out
    return out


class ForamenSection(NamedTuple):
    """The foramen on its plane: free region and the samples it was found on."""

    region: np.ndarray  # (n_ap, n_si) bool, the foramen
    aa: np.ndarray  # AP coordinates of the columns (mm from the disc centre, + anterior)
    ss: np.ndarray  # SI coordinates of the rows (mm, + cranial)
    row: int  # the disc mid-row
    seed_col: int  # first free sample behind the disc on the mid-row
    scores: np.ndarray  # inside score of "solid" (≥ 0.5 solid; NaN outside the image)
    qc: set[str]
    centre: np.ndarray  # world point of the plane at the disc's mid-height


def solid_field(model: SpineModel, pts: np.ndarray) -> MaskField:
    """Shape-based "solid" field (bone, disc, ligamentum flavum) on a local crop round ``pts``.

    Used on thick slices (largest spacing > 1.5 × the finest), so that walls crossing the
    slices — the disc's lateral wall, the articular process — move smoothly between slices
    instead of jumping to the nearer slice (a linear blend of a binary mask is nearest-slice
    along the thick axis). See :func:`~spinemetrics.geometry.sampling.local_sdf_field`.
    """
    return local_sdf_field(model.seg, model.affine, model.COMPOSITE_LABELS["solid"], pts)


def foramen_region(model: SpineModel, did: int, side: str):
    """The foramen of disc ``did`` on one side (a :class:`ForamenSection`), or ``None``."""
    g = model.disc(did)
    if g is None or g.upper not in model.vertebrae or g.lower is None:
        return None
    fr = g.frame
    pu = pedicle_centres(model, g.upper).get(side)
    if pu is None:
        return None
    pl = pedicle_centres(model, g.lower).get(side) if g.lower != SACRUM_ID else None
    vu = model.vertebra(g.upper)
    # The plane passes through the pedicle centroids themselves: their LR position relative
    # to the disc centroid, not an offset from the body's LR chord centre, whose ends are only
    # known to about one slice on 3-4 mm sagittal stacks (a 1.6-mm shift seen there).
    peds = [pc for pc in (pu, pl) if pc is not None]
    xs = [float((pc[2] - fr.origin) @ fr.lr) for pc in peds]
    centre = fr.origin + float(np.mean(xs)) * fr.lr
    # Upper and lower pedicles far apart left-right: the plane between them grazes one, whose
    # cortex then bounds the foramen only here and there (height and area jump with a
    # fraction of a millimetre of plane position).
    grazed = any(abs(x - float(np.mean(xs))) > 0.75 * pc[3] for x, pc in zip(xs, peds, strict=True))
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
    if model.thick_slices:
        # The shape-based field only where the foramen's walls are: behind a line 6 mm in
        # front of the disc's posterior wall on this plane (the rest of the window only has to
        # read as solid, and the local distance maps cost in proportion to their crop).
        _, tm_here = model.chord(f"disc:{did}", centre, fr.ap, 60.0)
        ant = float((centre - fr.origin) @ fr.ap) - tm_here + 6.0
        if not np.isfinite(ant):
            ant = tp_ap + 3.0
        back = aa <= ant
        if back.any():
            vals[back] = solid_field(model, pts[back]).inside(pts[back])
    qc: set[str] = {"pedicle_grazed"} if grazed else set()
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
    return ForamenSection(region, aa, ss, row, seed[0], vals, qc, centre)


def _crossing(aa: np.ndarray, vals: np.ndarray, i: int, j: int) -> float:
    """AP position of the 0.5 crossing of the inside score between samples ``i`` and ``j``."""
    v0, v1 = float(vals[i]), float(vals[j])
    if not np.isfinite(v0 + v1) or abs(v1 - v0) < 1e-9:
        return 0.5 * (aa[i] + aa[j])
    return float(aa[i] + np.clip((0.5 - v0) / (v1 - v0), 0.0, 1.0) * (aa[j] - aa[i]))


def foramen_width(sec: ForamenSection) -> float:
    """Foraminal width (mm): the free run on the disc mid-row that starts at the disc wall.

    From the disc wall back to the first solid sample (articular process, ligamentum flavum,
    lamina) — MEASURES §4.1 "disc margin to the anterior margin of the superior articular
    process". Not the region's AP extent on that row, which spans the articular process when
    its tip rises above the mid-row and the region wraps round it. Both ends are refined to
    the 0.5 crossing of the inside score (sub-sample). NaN when the run reaches the window's
    posterior edge (nothing closes the foramen behind).
    """
    row_vals = np.nan_to_num(sec.scores[:, sec.row], nan=1.0)
    free = row_vals < 0.5
    j = sec.seed_col
    solid = np.nonzero(~free[:j])[0]
    if not len(solid) or j + 1 >= len(free):
        return float("nan")
    back = int(solid.max())
    return _crossing(sec.aa, row_vals, j, j + 1) - _crossing(sec.aa, row_vals, back, back + 1)


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
                reg, qc = res.region, set(res.qc)
                cols = np.nonzero(reg.any(axis=1))[0]
                heights = []
                for c in cols:
                    q = np.nonzero(reg[c])[0]
                    heights.append((q.max() - q.min() + 1) * STEP_MM)
                vals = {
                    "foraminal_height_mm": float(max(heights)),
                    "foraminal_width_mm": foramen_width(res),
                    "foraminal_area_mm2": float(reg.sum() * STEP_MM**2),
                }
                if not np.isfinite(vals["foraminal_width_mm"]):
                    qc.add("foramen_open")
                if vals["foraminal_area_mm2"] < 20.0 or vals["foraminal_height_mm"] < 5.0:
                    # A sliver between labels, not a foramen (label noise, plane off target).
                    qc = set(qc) | {"foramen_not_found"}
                if qc & {"partial_fov", "foramen_open", "foramen_not_found", "pedicle_grazed"}:
                    vals = dict.fromkeys(MEASURES, float("nan"))
                if through > 2.0:
                    qc = set(qc) | {"low_confidence"}
                if not model.has_structure("ligamentum_flavum"):
                    # Without the ligament the foramen is not closed posteriorly.
                    qc = set(qc) | {"no_ligamentum_flavum"}
            for m in MEASURES:
                recs.append(Record(name, m, vals[m], side, set(qc)))
    return recs
