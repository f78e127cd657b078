"""Exact truth table of a phantom, in the contract §5 long format.

Closed forms (from :mod:`spinemetrics.phantom.model`):

* disc heights: distance between the two endplate planes along the disc axis ``u`` on the
  lines ``M + t·a + s·u`` with t = +0.4 D (anterior, 10 % of depth from the anterior rim),
  0 (middle), −0.4 D (posterior); depth = D (AP extent of the section ⟂ u at mid-height);
  Farfan index = (Ha + Hp)/D; wedge = angle between the two planes (lordotic +);
  volume = π/4·D·W·Hm + the rounded-rim volumes of the two adjacent endplates (closed form).
* vertebral heights / depth likewise; wedge index = Ha/Hp; volume = π/4·D·W·Hm − 2 rims.
* derived ratios from those analytic heights (never from measured ones): Dabbs height
  (Ha + Hp)/2; vertebral-height disc index = disc Hm / upper body Hm; biconcavity index
  Hm/max(Ha, Hp); crush index Hp/Ha; Genant height reduction 100·(1 − min/reference) with
  reference = mean posterior height of the two bodies sharing a disc with this one when both
  have an own-height reduction < 20 %, else the largest own height; Genant grade 0 (< 20 %),
  1 (20–25 %), 2 (25–40 %), 3 (> 40 %) — MEASURES.md §1.1, §2.1, §2.2
  (:func:`add_derived_truth`, which also completes truth tables cached before these rows).
* segmental angle (disc) = superior endplate of the upper vs the lower vertebra;
  lumbar lordosis (``L1-S1``) = L1 superior vs S1 superior endplate; slip = (P2 − P1)·a1 /
  (AP extent of the lower superior endplate) × 100, P1/P2 = centres of the lower superior /
  upper inferior endplates (points on the body axes), a1 = AP axis of the lower endplate.
* sacral slope = angle between the S1 plate and the *world* AP axis projected on the
  mid-sagittal plane (so it changes with a sagittal rotation of the phantom, unlike every
  other measure, which is invariant).
* canal: dural sac area = π·r_ap·r_lr and AP = 2·r_ap at the arc length where the disc (body)
  mid-plane crosses the canal centreline; canal AP = the parameter (posterior body wall to the
  anterior face of the spinolaminar block along the body AP axis at the body centre).
* ligamentum flavum thickness = the band thickness parameter (maximal inscribed diameter).

By dense sampling of the analytic shapes (never of the rendered voxels):

* foraminal height / width / area: on the parasagittal plane x = ±x_f (x_f = mean of the
  pedicle-centre offsets of the two vertebrae; spanned by the disc axes a, u through M), at
  0.1 mm: the connected free region (not bone 1–3, disc 4 or LF 9) containing the first free
  point behind the disc on the disc mid-line, bounded by a window from the upper to the lower
  pedicle centre (SI) and from the disc front to the posterior end of the upper pedicle (AP).
  FA = its area, FH = its largest SI extent over AP columns, FW = the length of its free run
  on the disc mid-line (row through M) that starts at the disc wall.
* paraspinal muscle area per side: label 10 on the plane through M ⟂ u (disc axis), 0.2 mm.
* epidural fat area: label 8 on the plane ⟂ the canal centreline at the disc crossing, 0.1 mm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from spinemetrics.phantom.model import X_AXIS, Anatomy, a_tilt
from spinemetrics.phantom.render import rasterize
from spinemetrics.phantom.shapes import rim_volume

COLUMNS = ["subject", "scan", "level", "side", "measure", "value", "unit", "qc"]
#: measures whose truth comes from dense sampling of the analytic shapes
SAMPLED_MEASURES = frozenset(
    {
        "foraminal_height_mm",
        "foraminal_width_mm",
        "foraminal_area_mm2",
        "paraspinal_muscle_area_mm2",
        "epidural_fat_area_mm2",
    }
)
WALLS = (1, 2, 3, 4, 9)


def plane_sample(an: Anatomy, origin, e1, e2, r1, r2, step):
    """Labels on the plane ``origin + p·e1 + q·e2`` for p ∈ r1, q ∈ r2 (grid ``step``).

    The plane is treated as a one-voxel-thick grid and painted with the same exact shape
    functions as a volume (no voxel of any rendered image is involved).
    """
    p = np.arange(r1[0], r1[1] + step / 2, step)
    q = np.arange(r2[0], r2[1] + step / 2, step)
    e1, e2 = np.asarray(e1, float), np.asarray(e2, float)
    nrm = np.cross(e1, e2)
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2] = e1 * step, e2 * step, nrm * step
    aff[:3, 3] = np.asarray(origin, float) + p[0] * e1 + q[0] * e2
    seg, lev, _ = rasterize(an, aff, (len(p), len(q), 1), np.eye(3), np.zeros(3), with_tissue=False)
    return p, q, seg[:, :, 0], lev[:, :, 0]


def foramen(an: Anatomy, dname: str, side: str, step: float = 0.1) -> dict[str, float]:
    """Foraminal height, width and area (see the module docstring)."""
    p = an.params
    d = an.discs[dname]
    up = an.bodies[d.upper]
    sgn = 1.0 if side == "R" else -1.0
    xu = an.pedicle_x[d.upper]
    xl = an.pedicle_x.get(d.lower, xu)
    xf = 0.5 * (xu + xl)
    origin = d.centre + sgn * xf * X_AXIS
    ea, eu = d.a, d.u
    # window limits in disc coordinates
    ped_u = up.to_anat(0, 0, an.pedicle_u(d.upper, side))
    q_top = float((ped_u - d.centre) @ eu)
    if d.lower in an.bodies:
        lo_b = an.bodies[d.lower]
        q_bot = float((lo_b.to_anat(0, 0, an.pedicle_u(d.lower, side)) - d.centre) @ eu)
    else:
        q_bot = -d.height_at(0.0) / 2.0 - 12.0
    C = p.canal_ap_mm[d.upper]
    post_end = up.to_anat(0, -up.depth_mm / 2.0 - C - 1.5, 0)
    p_back = float((post_end - d.centre) @ ea)
    pa, qa, seg, _ = plane_sample(
        an, origin, ea, eu, (p_back, d.depth_mm / 2.0 + 3.0), (q_bot, q_top), step
    )
    free = ~np.isin(seg, WALLS)
    row = int(np.argmin(np.abs(qa)))
    # seed: first free point going posterior from the disc on the mid row
    col = np.nonzero(free[:, row])[0]
    front = col[col < int(np.argmin(np.abs(pa)))] if len(col) else col
    if len(front) == 0:
        return {"height": np.nan, "width": np.nan, "area": np.nan}
    seed = (int(front.max()), row)
    lab, _ = ndimage.label(free)
    region = lab == lab[seed]
    area = float(region.sum()) * step * step
    cols = np.nonzero(region.any(axis=1))[0]
    height = 0.0
    for c in cols:
        qs = np.nonzero(region[c])[0]
        height = max(height, (qs.max() - qs.min() + 1) * step)
    # width: the free run on the mid line that starts at the disc wall (MEASURES §4.1: disc
    # margin to the articular process). Not max − min of the region on that line, which spans
    # the articular process when its tip rises above the disc mid-line and the region wraps
    # round it (up to 15 mm too wide).
    solid = np.nonzero(~free[: seed[0], row])[0]
    width = (seed[0] - (solid.max() if len(solid) else -1)) * step
    return {"height": float(height), "width": float(width), "area": area}


def muscle_areas(an: Anatomy, dname: str, step: float = 0.2) -> dict[str, float]:
    d = an.discs[dname]
    pa, qa, seg, _ = plane_sample(an, d.centre, X_AXIS, d.a, (-130.0, 130.0), (-150.0, 80.0), step)
    m = seg == 10
    right = m & (pa[:, None] > 0)
    left = m & (pa[:, None] < 0)
    return {"R": float(right.sum()) * step * step, "L": float(left.sum()) * step * step}


def epidural_fat_area(an: Anatomy, dname: str, step: float = 0.1) -> float:
    s0 = an.s_level[dname]
    t, nrm = an.canal.frame(s0)
    _, _, seg, _ = plane_sample(
        an, an.canal.point(s0), X_AXIS, nrm, (-30.0, 30.0), (-30.0, 30.0), step
    )
    return float((seg == 8).sum()) * step * step


def sacral_slope_world(an: Anatomy, R: np.ndarray) -> float:
    """Angle (deg) between the S1 plate and the world AP axis (projected, mid-sagittal)."""
    e_y = R.T @ np.array([0.0, 1.0, 0.0])  # world AP axis in anatomical coordinates
    phi = np.degrees(np.arctan2(e_y[2], e_y[1]))
    return float(an.sacrum[0].superior.tilt_deg + phi)


def _rim(b, p) -> float:
    """Volume removed by the rounded rim at one endplate of body ``b`` (closed form)."""
    if p.endplate_rim_mm <= 0:
        return 0.0
    return rim_volume(b.depth_mm / 2.0, b.width_mm / 2.0, p.endplate_rim_mm, b.wedge_deg / 2.0)


def truth_table(
    an: Anatomy, R: np.ndarray | None = None, scan: str = "phantom", sampled: bool = True
) -> pd.DataFrame:
    """All truth rows for the phantom (``sampled=False`` skips the dense-sampling measures)."""
    p = an.params
    R = np.eye(3) if R is None else R
    rows: list[tuple] = []

    def add(level, measure, value, unit, side=""):
        rows.append((p.subject, scan, level, side, measure, float(value), unit, "ok"))

    for v in p.vertebrae:
        b = an.bodies[v]
        ha, hp = p.body_height_anterior_mm[v], p.body_height_posterior_mm[v]
        add(v, "vertebral_height_anterior_mm", ha, "mm")
        add(v, "vertebral_height_middle_mm", b.height_mm, "mm")
        add(v, "vertebral_height_posterior_mm", hp, "mm")
        add(v, "vertebral_depth_mm", b.depth_mm, "mm")
        add(v, "vertebral_wedge_index", ha / hp, "1")
        add(
            v,
            "vertebral_volume_mm3",
            np.pi / 4.0 * b.depth_mm * b.width_mm * b.height_mm - 2.0 * _rim(b, p),
            "mm3",
        )
        ra, rl = an.sac_radii(an.s_level[v])
        add(v, "dural_sac_area_mm2", np.pi * ra * rl, "mm2")
        add(v, "dural_sac_ap_mm", 2 * ra, "mm")
        add(v, "canal_ap_mm", p.canal_ap_mm[v], "mm")

    for dname in p.discs:
        d = an.discs[dname]
        ha, hm, hp = d.height_at(0.4 * d.depth_mm), d.height_at(0.0), d.height_at(-0.4 * d.depth_mm)
        add(dname, "disc_height_anterior_mm", ha, "mm")
        add(dname, "disc_height_middle_mm", hm, "mm")
        add(dname, "disc_height_posterior_mm", hp, "mm")
        add(dname, "disc_height_index", (ha + hp) / d.depth_mm, "1")
        add(dname, "disc_depth_mm", d.depth_mm, "mm")
        add(dname, "disc_wedge_angle_deg", d.wedge_deg, "deg")
        lower_geom = an.bodies.get(d.lower, an.sacrum[0])
        rims = _rim(an.bodies[d.upper], p) + _rim(lower_geom, p)
        add(dname, "disc_volume_mm3", np.pi / 4.0 * d.depth_mm * d.width_mm * hm + rims, "mm3")
        up = an.bodies[d.upper]
        lower_sup = an.bodies[d.lower].superior if d.lower in an.bodies else an.sacrum[0].superior
        add(dname, "segmental_angle_deg", lower_sup.tilt_deg - up.superior.tilt_deg, "deg")
        e1 = a_tilt(d.inferior.tilt_deg)
        slip = float((d.superior.point - d.inferior.point) @ e1) / d.lower_endplate_depth_mm * 100
        add(dname, "slip_percent", slip, "%")
        ra, rl = an.sac_radii(an.s_level[dname])
        add(dname, "dural_sac_area_mm2", np.pi * ra * rl, "mm2")
        add(dname, "dural_sac_ap_mm", 2 * ra, "mm")
        for side in ("L", "R"):
            add(
                dname,
                "ligamentum_flavum_thickness_mm",
                p.lf_thickness_mm[f"{dname}:{side}"],
                "mm",
                side,
            )
        if sampled:
            for side in ("L", "R"):
                f = foramen(an, dname, side)
                add(dname, "foraminal_height_mm", f["height"], "mm", side)
                add(dname, "foraminal_width_mm", f["width"], "mm", side)
                add(dname, "foraminal_area_mm2", f["area"], "mm2", side)
            mus = muscle_areas(an, dname)
            for side in ("L", "R"):
                add(dname, "paraspinal_muscle_area_mm2", mus[side], "mm2", side)
            add(dname, "epidural_fat_area_mm2", epidural_fat_area(an, dname), "mm2")

    if "L1" in an.bodies:
        add(
            "L1-S1",
            "lumbar_lordosis_deg",
            an.sacrum[0].superior.tilt_deg - an.bodies["L1"].superior.tilt_deg,
            "deg",
        )
    add("S1", "sacral_slope_deg", sacral_slope_world(an, R), "deg")
    return add_derived_truth(pd.DataFrame(rows, columns=COLUMNS), list(p.discs))


#: Truth rows computed by :func:`add_derived_truth` from the analytic height rows.
DERIVED_MEASURES = (
    "disc_height_dabbs_mm",
    "disc_height_index_vertebral",
    "vertebral_biconcavity_index",
    "vertebral_crush_index",
    "vertebral_height_reduction_percent",
    "genant_sq_grade",
)


def _genant_truth(r_percent: float) -> float:
    # Genant 1993 via Wáng 2019 (MEASURES.md §2.2): < 20 % normal, 20–25 % mild,
    # 25–40 % moderate, > 40 % severe.
    if r_percent > 40.0:
        return 3.0
    if r_percent >= 25.0:
        return 2.0
    if r_percent >= 20.0:
        return 1.0
    return 0.0


def add_derived_truth(truth: pd.DataFrame, discs: list[str] | None = None) -> pd.DataFrame:
    """Append the derived-measure truth rows computed from the table's analytic height rows.

    Parameters
    ----------
    truth : pandas.DataFrame
        Truth table (contract §5 columns) holding the disc and vertebral height rows.
    discs : list of str, optional
        Disc level names ``"L4-L5"`` that define which bodies are adjacent; default: the disc
        levels present in ``truth``.

    Returns
    -------
    pandas.DataFrame
        ``truth`` with the rows of :data:`DERIVED_MEASURES` (replaced if already there).
    """
    base = truth[~truth["measure"].isin(DERIVED_MEASURES)]
    heights = base[base["measure"].str.contains("height") & base["measure"].str.endswith("_mm")]
    val = {(lv, m): float(v) for lv, m, v in
           zip(heights["level"], heights["measure"], heights["value"], strict=True)}
    subj = base["subject"].iloc[0] if len(base) else ""
    scan = base["scan"].iloc[0] if len(base) else ""
    if discs is None:
        discs = sorted({lv for lv, m in val if m.startswith("disc_height")})
    rows: list[tuple] = []

    def add(level, measure, value, unit):
        rows.append((subj, scan, level, "", measure, float(value), unit, "ok"))

    def body(v):
        k = ("vertebral_height_anterior_mm", "vertebral_height_middle_mm",
             "vertebral_height_posterior_mm")
        if any((v, m) not in val for m in k):
            return None
        return tuple(val[(v, m)] for m in k)

    above: dict[str, str] = {}
    below: dict[str, str] = {}
    for dname in discs:
        up, lo = dname.split("-")
        ha = val.get((dname, "disc_height_anterior_mm"))
        hm = val.get((dname, "disc_height_middle_mm"))
        hp = val.get((dname, "disc_height_posterior_mm"))
        if ha is not None and hp is not None:
            add(dname, "disc_height_dabbs_mm", (ha + hp) / 2.0, "mm")
        hu = body(up)
        if hm is not None and hu is not None:
            add(dname, "disc_height_index_vertebral", hm / hu[1], "1")
        if hu is not None and body(lo) is not None:
            below[up], above[lo] = lo, up
    verts = sorted({lv for lv, m in val if m.startswith("vertebral_")})
    for v in verts:
        h = body(v)
        if h is None:
            continue
        ha, hm, hp = h
        add(v, "vertebral_biconcavity_index", hm / max(ha, hp), "1")
        add(v, "vertebral_crush_index", hp / ha, "1")
        ref = max(h)
        nb = [body(above[v]) if v in above else None, body(below[v]) if v in below else None]
        if all(n is not None and 1.0 - min(n) / max(n) < 0.20 for n in nb):
            ref = (nb[0][2] + nb[1][2]) / 2.0
        r = 100.0 * (1.0 - min(h) / ref)
        add(v, "vertebral_height_reduction_percent", r, "%")
        add(v, "genant_sq_grade", _genant_truth(r), "1")
    out = pd.concat([base, pd.DataFrame(rows, columns=COLUMNS)], ignore_index=True)
    return out
