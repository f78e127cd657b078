"""Soft-tissue measures (contract §5 "soft tissue"; MEASURES.md §6–7).

* ``ligamentum_flavum_thickness_mm`` [disc, side]: on the canal section plane at the disc
  (⟂ centreline, see :mod:`.canal`), the maximal inscribed diameter of the ligamentum
  flavum on each side: ``2 × max EDT − step`` on a 0.2-mm grid (the ``− step`` removes the
  half-sample bias of a sampled distance map).
* ``paraspinal_muscle_area_mm2`` [disc, side]: muscle area on the plane ⟂ the disc's SI axis
  through the disc centroid (mid-disc), 0.5-mm grid, split by the disc's mid-sagittal plane.
* ``epidural_fat_area_mm2`` [disc]: epidural fat area on the canal section plane at the disc
  (0.25-mm grid; on thick slices as (fat ∪ sac) − sac from shape-based fields, see
  :func:`_fat`).

Sides: ``"R"`` = patient right (+LR), ``"L"`` = left.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spinemetrics.geometry._table import MeasureInfo, Record
from spinemetrics.geometry.canal import SECTION_STEP_MM, level_section, section_area
from spinemetrics.geometry.disc import disc_level_name
from spinemetrics.geometry.model import SpineModel
from spinemetrics.geometry.sampling import local_sdf_field, plane_grid
from spinemetrics.labels import Structure

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
        # Muscle reaching the edge of the field of view, or none in view on a side whose
        # window runs off the image (it may all lie beyond the edge): not measured, never 0.
        if ns.any() and (not ms.any()
                         or (ndimage.binary_dilation(ms, iterations=2) & ns).any()):
            qc.add("partial_fov")
            continue
        out[side] = float(ms.sum() * step * step)
    return out, qc


def _fat(model: SpineModel, sec) -> tuple[float, bool]:
    """Epidural fat area on the canal section and whether the field of view cuts it.

    Near-isotropic voxels: the area of the interpolated fat mask (0.25-mm grid). Thick slices
    (largest spacing > 1.5 × the finest): the fat is a 1–3-mm shell round the dural sac and
    the section crosses the slices, so its lateral parts, parallel to the slices, are either
    missed or smeared over a whole slice, whatever the interpolant (±15–20 %). The shell is
    therefore read as the difference of the two filled shapes that bound it — fat ∪ dural sac
    minus dural sac, each from a local shape-based field (signed distance, cubic;
    :func:`~.sampling.local_sdf_field`) — which are what interpolation between slices handles
    well. The two are the same set on exact anatomy (fat and sac are disjoint labels).
    """
    half, step = 25.0, SECTION_STEP_MM
    if not model.thick_slices:
        area, _, _, _, partial = section_area(model, "epidural_fat", sec, half=half, step=step,
                                              connected=False)
        return area, partial
    uu, vv, pts = plane_grid(sec.point, sec.u, sec.v, (-half, half), (-half, half), step)
    lin = model.field("epidural_fat").inside(pts)
    nan = np.isnan(lin)
    # Only samples within 2 mm of the fat can differ between the two filled shapes.
    near = ndimage.binary_dilation(np.nan_to_num(lin, nan=0.0) > 0.0, iterations=8) & ~nan
    m = np.zeros(lin.shape, bool)
    if near.any():
        fat = (int(Structure.epidural_fat),)
        sac = tuple(int(v) for v in model.COMPOSITE_LABELS["sac"])
        p = pts[near]
        union = local_sdf_field(model.seg, model.affine, fat + sac, p).inside(p) >= 0.5
        inner = local_sdf_field(model.seg, model.affine, sac, p).inside(p) >= 0.5
        m[near] = union & ~inner
    touches = bool(nan.any() and (ndimage.binary_dilation(m, iterations=2) & nan).any())
    border = bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
    return float(m.sum() * step * step), touches or border


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
                fat, partial = _fat(model, sec)
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
