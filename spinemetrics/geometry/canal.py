"""Central canal measures (contract §5 "canal"; MEASURES.md §3).

The canal centreline (:class:`~spinemetrics.geometry.frame.Centreline`) is a smoothing spline
through 2-mm dural-sac section centroids. At each disc (vertebra) the measurement point is
where the disc's (body's) mid-plane — through its centroid, normal to its SI axis — crosses
the centreline; the section plane is perpendicular to the centreline tangent there, with
in-plane axes AP (level AP orthogonalised to the tangent) and LR.

* ``dural_sac_area_mm2``: area of thecal sac ∪ cord on that plane, sampled on a 0.25-mm grid
  of the interpolated mask (connected part containing the centreline point).
* ``dural_sac_ap_mm``: AP chord of the sac through the section centroid.
* ``canal_ap_mm``: at a vertebra, from the posterior body wall to the anterior margin of the
  posterior elements (spinolaminar junction) along the body's AP axis near its centre
  (Verbiest-type bony measure, see :func:`bony_canal_ap`); at a disc, along the section's AP
  axis through the centreline point from the disc / body wall to the ligamentum flavum or
  posterior elements — NaN when the ligamentum flavum is not segmented (MEASURES §3.1: at disc
  level this is a soft-tissue measure).

Field of view: at a level cut across the spine (``partial_fov``) the section position is
unknown, so all three are NaN; at a level cut only left/right (``partial_fov_lr``) they are
kept, the sac area and AP only if the sac section itself is not cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spinemetrics.geometry._table import MeasureInfo, Record
from spinemetrics.geometry.disc import disc_level_name
from spinemetrics.geometry.frame import orthogonalise, unit
from spinemetrics.geometry.model import SpineModel, patch_offsets, trimmed_mean
from spinemetrics.geometry.sampling import plane_grid
from spinemetrics.labels import vertebra_name

__all__ = ["MEASURES", "compute", "Section", "level_section", "section_area", "bony_canal_ap"]

MEASURES: dict[str, MeasureInfo] = {
    "dural_sac_area_mm2": MeasureInfo(
        "mm2", "area of thecal sac ∪ cord on the plane ⟂ canal centreline at the level's "
        "mid-plane crossing (0.25-mm grid, interpolated mask)",
        "MEASURES §3.1; R3, R4, R21, R32 [V]", "disc+vertebra"),
    "dural_sac_ap_mm": MeasureInfo(
        "mm", "AP extent of that section through its centroid", "MEASURES §3.1; R33 [V]",
        "disc+vertebra"),
    "canal_ap_mm": MeasureInfo(
        "mm", "posterior body/disc wall to anterior margin of the posterior elements along "
        "the section's AP axis (mid-sagittal)", "MEASURES §3.1; R7 [S], R22 [V]",
        "disc+vertebra"),
}

SECTION_STEP_MM = 0.25


@dataclass
class Section:
    """Canal cross-section at one level: point, tangent and in-plane axes."""

    level: str
    point: np.ndarray
    tangent: np.ndarray
    u: np.ndarray  # AP (anterior)
    v: np.ndarray  # LR (right)


def level_section(model: SpineModel, kind: str, lid: int) -> Section | None:
    """The canal section of a vertebra (``kind="vertebra"``) or disc (``kind="disc"``)."""
    cache = model.__dict__.setdefault("_sections", {})
    if (kind, lid) in cache:
        return cache[(kind, lid)]
    cl = model.centreline
    sec = None
    geom = model.vertebra(lid) if kind == "vertebra" else model.disc(lid)
    if cl is not None and geom is not None:
        hit = cl.crossing(geom.frame.origin, geom.frame.si)
        if hit is not None:
            p, t = hit
            u = orthogonalise(geom.frame.ap, t)
            v = unit(np.cross(u, t))
            name = vertebra_name(lid) if kind == "vertebra" else disc_level_name(model, lid)
            sec = Section(name, p, t, u, v)
    cache[(kind, lid)] = sec
    return sec


def section_area(model: SpineModel, key: str, sec: Section, half: float = 20.0,
                 step: float = SECTION_STEP_MM, connected: bool = True):
    """Area (mm²) of field ``key`` on the section plane, and the in-mask sample coordinates.

    Returns ``(area, mask2d, uu, vv, touches_fov)``.
    """
    uu, vv, pts = plane_grid(sec.point, sec.u, sec.v, (-half, half), (-half, half), step)
    vals = model.field(key).inside(pts)
    nan = np.isnan(vals)
    m = np.nan_to_num(vals, nan=0.0) >= 0.5
    if connected and m.any():
        lab, n = ndimage.label(m)
        ci = len(uu) // 2, len(vv) // 2
        keep = lab[ci] if lab[ci] else (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
        m = lab == keep
    touches = bool(nan.any() and (ndimage.binary_dilation(m, iterations=2) & nan).any())
    border = bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
    return float(m.sum() * step * step), m, uu, vv, touches or border


def bony_canal_ap(model: SpineModel, vid: int) -> float:
    """Bony canal AP of vertebra ``vid`` (mm), mid-sagittal, Verbiest-type.

    Rays along the body's AP axis at heights within ±30 % of the body height around its
    centre: from the posterior body wall (found on each ray) to the first posterior-element
    voxel. Interlaminar gaps let single rays run past the lamina, so the value is the median
    of the rays within 1 mm of the shortest one.
    """
    g = model.vertebra(vid)
    if g is None or not np.isfinite(g.semi_ap) or g.superior is None or g.inferior is None:
        return float("nan")
    fr = g.frame
    height = g.superior.height_along(fr.origin, fr.si) - g.inferior.height_along(fr.origin, fr.si)
    offs = np.arange(-0.3 * height, 0.3 * height + 1e-6, 1.0)
    axis_pts = fr.point(g.centre_ap, g.centre_lr, offs)
    wall = model.exits(f"body:{vid}", axis_pts, -fr.ap, 60.0)
    starts = axis_pts - (wall + 0.2)[:, None] * fr.ap
    t = model.exits("posterior_wall", starts, -fr.ap, 40.0, entering=True) + 0.2
    t = t[np.isfinite(t)]
    if len(t) < 3:
        return float("nan")
    return float(np.median(t[t <= t.min() + 1.0]))


def _sac_values(model: SpineModel, sec: Section) -> tuple[dict[str, float], set[str]]:
    qc: set[str] = set()
    area, m, uu, vv, partial = section_area(model, "sac", sec)
    if partial:
        qc.add("partial_fov")
        area = float("nan")
    elif not m.any():
        # An empty section means the sac was not segmented here, not a 0-mm² canal:
        # reporting 0 would be read as absolute stenosis.
        qc.add("not_segmented")
        area = float("nan")
    ap = float("nan")
    if m.any() and not partial:
        iu, iv = np.nonzero(m)
        c = sec.point + uu[iu].mean() * sec.u + vv[iv].mean() * sec.v
        # Parallel rays ±0.5 mm (LR and along the centreline) average the voxel staircase.
        tp, tm = model.chord_patch("sac", c, sec.u, patch_offsets(sec.v, sec.tangent, 0.5, 0.5,
                                                                  3), 40.0)
        ap = tp + tm
    return {"dural_sac_area_mm2": area, "dural_sac_ap_mm": ap}, qc


def _disc_canal_ap(model: SpineModel, sec: Section) -> float:
    """Disc-level canal AP: disc/body wall to ligamentum flavum or posterior elements."""
    if not model.has_structure("ligamentum_flavum"):
        # Without the ligament the ray runs through the interlaminar window: no wall.
        return float("nan")
    # 25 parallel rays (±1 mm LR and along the centreline): the ligamenta flava of the two
    # sides meet near the mid-line, where a single ray is unstable.
    o = sec.point + patch_offsets(sec.v, sec.tangent, 1.0, 1.0, 5)
    ant = model.exits("anterior_wall", o, sec.u, 40.0, entering=True)
    post = model.exits("posterior_wall_disc", o, -sec.u, 40.0, entering=True)
    return trimmed_mean(ant + post)


def compute(model: SpineModel) -> list[Record]:
    """Canal measures at every disc and vertebra with a centreline crossing."""
    recs: list[Record] = []
    items = [("vertebra", v) for v in model.vertebrae] + [("disc", d) for d in model.discs]
    for kind, lid in items:
        sec = level_section(model, kind, lid)
        if sec is None:
            name = vertebra_name(lid) if kind == "vertebra" else disc_level_name(model, lid)
            for m in MEASURES:
                recs.append(Record(name, m, float("nan"), qc={"no_canal"}))
            continue
        key = f"body:{lid}" if kind == "vertebra" else f"disc:{lid}"
        if model.fov_cut(key) == "partial_fov":
            # The level itself is cut across the spine: its centroid, hence the mid-plane
            # where the section is taken, is not where it should be.
            for m in MEASURES:
                recs.append(Record(sec.level, m, float("nan"), qc={"partial_fov"}))
            continue
        vals, qc = _sac_values(model, sec)
        vals["canal_ap_mm"] = (bony_canal_ap(model, lid) if kind == "vertebra"
                               else _disc_canal_ap(model, sec))
        for m in MEASURES:
            # The canal AP is read on rays of its own (NaN if they reach the edge); a cut
            # sac section says nothing about it.
            q = set(qc) - {"partial_fov"} if m == "canal_ap_mm" else set(qc)
            if m == "canal_ap_mm" and kind == "disc" and not model.has_structure(
                    "ligamentum_flavum"):
                q.add("no_ligamentum_flavum")
            recs.append(Record(sec.level, m, vals[m], qc=q))
    return recs
