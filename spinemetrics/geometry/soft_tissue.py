"""Soft-tissue measures (contract §5 "soft tissue"; MEASURES.md §6–7).

* ``ligamentum_flavum_thickness_mm`` [disc, side]: on the canal section plane at the disc
  (⟂ centreline, see :mod:`.canal`), the maximal inscribed diameter of the ligamentum
  flavum on each side: ``2 × max EDT − step`` on a 0.2-mm grid (the ``− step`` removes the
  half-sample bias of a sampled distance map).
* ``paraspinal_muscle_area_mm2`` [disc, side]: muscle area on the plane ⟂ the disc's SI axis
  through the disc centroid (mid-disc), 0.5-mm grid, split by the disc's mid-sagittal plane.
* ``epidural_fat_area_mm2`` [disc]: epidural fat area on the canal section plane at the disc.

Sides: ``"R"`` = patient right (+LR), ``"L"`` = left.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spinemetrics.geometry._table import MeasureInfo, Record
from spinemetrics.geometry.canal import level_section, section_area
from spinemetrics.geometry.disc import disc_level_name
from spinemetrics.geometry.model import SpineModel
from spinemetrics.geometry.sampling import plane_grid

__all__ = ["MEASURES", "compute"]

MEASURES: dict[str, MeasureInfo] = {
    "ligamentum_flavum_thickness_mm": MeasureInfo(
        "mm", "maximal inscribed diameter (2 × max distance transform) of the ligamentum "
        "flavum per side on the plane ⟂ canal centreline at the disc level",
        "MEASURES §7; R44, R45, R46 [V]", "disc", sided=True),
    "paraspinal_muscle_area_mm2": MeasureInfo(
        "mm2", "paraspinal muscle (multifidus, erector spinae, quadratus lumborum, psoas) area "
        "per side on the plane ⟂ the disc SI axis through the disc centroid",
        "MEASURES §6; R40 [V]", "disc", sided=True),
    "epidural_fat_area_mm2": MeasureInfo(
        "mm2", "epidural fat area on the plane ⟂ canal centreline at the disc level",
        "MEASURES §7; R16 [V]", "disc"),
}

LF_STEP_MM = 0.2
MUSCLE_STEP_MM = 0.5


def _lf(model: SpineModel, sec) -> tuple[dict[str, float], set[str]]:
    out = {"L": float("nan"), "R": float("nan")}
    qc: set[str] = set()
    if not model.has_structure("ligamentum_flavum"):
        return out, {"not_segmented"}
    step = LF_STEP_MM
    uu, vv, pts = plane_grid(sec.point, sec.u, sec.v, (-30.0, 10.0), (-25.0, 25.0), step)
    vals = model.field("ligamentum_flavum").inside(pts)
    if np.isnan(vals).any():
        qc.add("partial_fov")
    m = np.nan_to_num(vals, nan=0.0) >= 0.5
    for side, sel in (("R", vv > 0), ("L", vv < 0)):
        ms = m.copy()
        ms[:, ~sel] = False
        if not ms.any():
            continue
        edt = ndimage.distance_transform_edt(ms, sampling=step)
        out[side] = max(2.0 * float(edt.max()) - step, 0.0)
    through = float(np.max(model.spacing))
    for val in out.values():
        if np.isfinite(val) and through > 0.5 * val:
            qc.add("low_confidence")
    return out, qc


def _muscle(model: SpineModel, did: int) -> tuple[dict[str, float], set[str]]:
    out = {"L": float("nan"), "R": float("nan")}
    if not model.has_structure("paraspinal_muscle"):
        return out, {"not_segmented"}
    fr = model.disc(did).frame
    fld = model.field("paraspinal_muscle")
    # Coarse pass (3 mm) finds where the muscles cut the plane; the fine grid covers only that.
    cu, cv, cpts = plane_grid(fr.origin, fr.ap, fr.lr, (-150.0, 90.0), (-150.0, 150.0), 3.0)
    cvals = np.nan_to_num(fld.inside(cpts), nan=1.0) > 0.0
    if not cvals.any():
        return out, {"not_in_plane"}
    iu, iv = np.nonzero(cvals)
    u_rng = (cu[iu.min()] - 4.0, cu[iu.max()] + 4.0)
    v_rng = (min(cv[iv.min()] - 4.0, -1.0), max(cv[iv.max()] + 4.0, 1.0))
    step = MUSCLE_STEP_MM
    uu, vv, pts = plane_grid(fr.origin, fr.ap, fr.lr, u_rng, v_rng, step)
    vals = fld.inside(pts)
    nan = np.isnan(vals)
    m = np.nan_to_num(vals, nan=0.0) >= 0.5
    qc: set[str] = set()
    for side, sel in (("R", vv > 0), ("L", vv < 0)):
        ms = m[:, sel]
        ns = nan[:, sel]
        if ns.any() and (ndimage.binary_dilation(ms, iterations=2) & ns).any():
            qc.add("partial_fov")
            continue
        out[side] = float(ms.sum() * step * step)
    return out, qc


def compute(model: SpineModel) -> list[Record]:
    """Soft-tissue measures at every disc."""
    recs: list[Record] = []
    for did in model.discs:
        name = disc_level_name(model, did)
        sec = level_section(model, "disc", did)
        if sec is None:
            lf, lf_qc = {"L": float("nan"), "R": float("nan")}, {"no_canal"}
            fat, fat_qc = float("nan"), {"no_canal"}
        else:
            lf, lf_qc = _lf(model, sec)
            if model.has_structure("epidural_fat"):
                fat, _, _, _, partial = section_area(model, "epidural_fat", sec, half=25.0,
                                                     connected=False)
                fat_qc = {"partial_fov"} if partial else set()
                if float(np.max(model.spacing)) > 2.0:
                    # A thin layer across 3–4 mm slices: area known to ~±15 % only.
                    fat_qc.add("low_confidence")
                if partial:
                    fat = float("nan")
            else:
                fat, fat_qc = float("nan"), {"not_segmented"}
        mus, mus_qc = _muscle(model, did)
        for side in ("L", "R"):
            recs.append(Record(name, "ligamentum_flavum_thickness_mm", lf[side], side, set(lf_qc)))
        for side in ("L", "R"):
            q = set(mus_qc)
            if not np.isfinite(mus[side]) and not q:
                q = {"partial_fov"}
            recs.append(Record(name, "paraspinal_muscle_area_mm2", mus[side], side, q))
        recs.append(Record(name, "epidural_fat_area_mm2", fat, qc=set(fat_qc)))
    return recs
