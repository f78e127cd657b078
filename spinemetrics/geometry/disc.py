"""Disc measures (contract §5 "disc"; MEASURES.md §1).

All distances are taken in the disc's mid-sagittal plane, in its local frame
(:class:`~spinemetrics.geometry.model.DiscGeom`): SI = bisector of the two bounding endplate
planes, AP from the upper vertebra.

* depth ``D``: AP chord of the disc mask on the line through the disc centroid (mid-height);
  trimmed mean of 9 parallel lines within ±0.5 mm (SI) × ±1.5 mm (LR).
* heights at 10 / 50 / 90 % of ``D`` from the anterior edge: distance along SI between the
  inferior endplate of the upper body and the superior endplate of the lower body (or sacral
  plate), i.e. the gap between the two bony surfaces, read on the interpolated masks (the disc
  mask's own surface where a neighbouring bone is missing); trimmed mean of 25 parallel rays
  on a ±1 mm (AP) × ±1.5 mm (LR) patch, which averages out the voxel staircase.
* Farfan disc height index ``(Ha + Hp) / D``.
* Dabbs 2-point height ``(Ha + Hp) / 2`` (MEASURES.md §1.1, R35/R36b). The Hurxthal
  (centre-line) height is ``disc_height_middle_mm`` itself.
* vertebral-height disc index ``Hm / Hm_v(upper)``: middle disc height over the middle
  height of the vertebral body above (Sima method 2, R36), both in their own mid-sagittal
  planes; NaN when either is (upper body missing, cut or unfitted: qc of the disc plus
  ``missing_neighbour``/``partial_fov`` of the body).
* wedge angle: difference of the sagittal tilts of the two fitted endplate planes in the disc
  frame, + = lordotic (anterior opening).
* volume: voxel count × voxel volume (|det A|).

Field of view: a disc cut across the spine is NaN (``partial_fov``); one cut only on the
left/right faces, with its mid-sagittal slab in view (``partial_fov_lr``), keeps every
mid-sagittal value and loses only the volume.
"""

from __future__ import annotations

import math

from spinemetrics.geometry import vertebra
from spinemetrics.geometry._table import MeasureInfo, Record
from spinemetrics.geometry.frame import tilt_deg
from spinemetrics.geometry.model import SpineModel, patch_offsets, trimmed_mean
from spinemetrics.labels import disc_name, vertebra_name

__all__ = ["MEASURES", "compute", "disc_level_name"]

MEASURES: dict[str, MeasureInfo] = {
    "disc_height_anterior_mm": MeasureInfo(
        "mm", "endplate-to-endplate distance along the disc SI axis at 10 % of disc depth from "
        "the anterior edge, mid-sagittal plane", "MEASURES §1.1 [D]; R35, R36", "disc"),
    "disc_height_middle_mm": MeasureInfo(
        "mm", "as anterior height, at 50 % of depth (Hurxthal centre-line height)",
        "MEASURES §1.1; R35 [V]", "disc"),
    "disc_height_posterior_mm": MeasureInfo(
        "mm", "as anterior height, at 90 % of depth", "MEASURES §1.1 [D]; R12 (≤ 4 mm critical)",
        "disc"),
    "disc_height_index": MeasureInfo(
        "1", "Farfan index (anterior + posterior height) / disc depth",
        "MEASURES §1.1; R36 method 1 [V]", "disc"),
    "disc_depth_mm": MeasureInfo(
        "mm", "AP extent of the disc on the AP line through its centroid (mid-height)",
        "MEASURES §1.1 [D]", "disc"),
    "disc_wedge_angle_deg": MeasureInfo(
        "deg", "angle between the two endplates bounding the disc in the mid-sagittal plane, "
        "+ = lordotic", "MEASURES §1.1 [D]", "disc"),
    "disc_volume_mm3": MeasureInfo(
        "mm3", "disc voxel count × voxel volume", "MEASURES §1.1 [D]; R74, R75", "disc"),
    "disc_height_dabbs_mm": MeasureInfo(
        "mm", "Dabbs 2-point height: mean of the anterior and posterior heights",
        "MEASURES §1.1; R35 [V], R36b [U]", "disc"),
    "disc_height_index_vertebral": MeasureInfo(
        "1", "middle disc height / middle height of the vertebral body above",
        "MEASURES §1.1; R36 method 2 [V]", "disc"),
}

_FRACTIONS = {"anterior": 0.1, "middle": 0.5, "posterior": 0.9}


def disc_level_name(model: SpineModel, did: int) -> str:
    """Table name of a disc, using the actual lower neighbour (``L6-S1``, ``L4-S1``…)."""
    g = model.disc(did)
    if g is not None and g.lower is not None:
        return f"{vertebra_name(g.upper)}-{vertebra_name(g.lower)}"
    return disc_name(did)


def heights_at(model: SpineModel, did: int, fractions: dict[str, float]) -> dict[str, float]:
    """Disc heights at fractions of depth from the anterior edge, plus ``depth``/``ant_edge``."""
    g = model.disc(did)
    key = f"disc:{did}"
    fr = g.frame
    # Depth on lines through the centroid ±0.5 mm (SI) and ±1.5 mm (LR): thin posterior
    # disc rims stay clear of the endplates.
    tp, tm = model.chord_patch(key, fr.origin, fr.ap, patch_offsets(fr.si, fr.lr, 0.5, 1.5, 3))
    depth = tp + tm
    out: dict[str, float] = {"depth": depth, "ant_edge": tp}
    up_key = f"body:{g.upper}" if g.upper in model.vertebrae else None
    lo_key = model.lower_key(g.lower) if g.lower is not None else None
    patch = patch_offsets(fr.ap, fr.lr, 1.0, 1.5, 5)
    for name, f in fractions.items():
        a = tp - f * depth
        starts = fr.point(a) + patch
        up = model.surface_distance(starts, fr.si, up_key, key)
        dn = model.surface_distance(starts, -fr.si, lo_key, key)
        out[name] = trimmed_mean(up + dn)
    return out


def compute(model: SpineModel) -> list[Record]:
    """All disc measures for every disc in the level map."""
    recs: list[Record] = []
    body_hm = _upper_body_middle_heights(model)
    for did in model.discs:
        g = model.disc(did)
        name = disc_level_name(model, did)
        qc = set(g.qc)
        ratio_qc: set[str] = set()  # reasons that concern only the vertebral-height index
        missing_bone = g.upper not in model.vertebrae or g.lower is None
        if missing_bone:
            qc.add("endplate_from_disc_mask")
        if "partial_fov" in qc:
            vals = dict.fromkeys(MEASURES, float("nan"))
        else:
            h = heights_at(model, did, _FRACTIONS)
            d = h["depth"]
            vals = {
                "disc_height_anterior_mm": h["anterior"],
                "disc_height_middle_mm": h["middle"],
                "disc_height_posterior_mm": h["posterior"],
                "disc_height_index": (h["anterior"] + h["posterior"]) / d,
                "disc_depth_mm": d,
                "disc_wedge_angle_deg": float("nan"),
                "disc_height_dabbs_mm": 0.5 * (h["anterior"] + h["posterior"]),
            }
            hm_v, vqc = body_hm.get(g.upper, (math.nan, {"missing_neighbour"}))
            vals["disc_height_index_vertebral"] = h["middle"] / hm_v
            if not math.isfinite(hm_v):
                # The disc's own values stand; only the ratio needs the upper body.
                ratio_qc = vqc
            if g.upper_plane is not None and g.lower_plane is not None:
                vals["disc_wedge_angle_deg"] = tilt_deg(
                    g.lower_plane.normal, g.frame.si, g.frame.ap
                ) - tilt_deg(g.upper_plane.normal, g.frame.si, g.frame.ap)
        vol = float(len(model.voxels(f"disc:{did}")) * model.voxel_mm3)
        cut = model.fov_cut(f"disc:{did}")
        if cut == "partial_fov":  # cut across the spine: not measured (contract §3/§5)
            vals = dict.fromkeys(MEASURES, float("nan"))
        if cut:
            # partial_fov_lr: mid-sagittal heights/depth/wedge stand; the volume does not.
            qc.add(cut)
            vol = float("nan")
        vals["disc_volume_mm3"] = float("nan") if qc & {"partial_fov", "partial_fov_lr"} else vol
        for m in MEASURES:
            mqc = set(qc) | (ratio_qc if m == "disc_height_index_vertebral" else set())
            recs.append(Record(name, m, vals.get(m, float("nan")), qc=mqc))
    return recs


def _upper_body_middle_heights(model: SpineModel) -> dict[int, tuple[float, set[str]]]:
    """Middle height (mm) and qc of every body that is the upper neighbour of a disc.

    The very value ``vertebral_height_middle_mm`` reports (:func:`vertebra.body_values`), so
    the ratio never divides by a height the vertebra table would not report; the qc names
    why it is missing.
    """
    out: dict[int, tuple[float, set[str]]] = {}
    for did in model.discs:
        g = model.disc(did)
        vid = g.upper if g is not None else None
        if vid is None or vid in out or vid not in model.vertebrae:
            continue
        vals, qc = vertebra.body_values(model, vid)
        hm = vals["vertebral_height_middle_mm"]
        why = qc & {"partial_fov", "endplate_fit_failed"}
        out[vid] = (hm, set() if math.isfinite(hm) else (why or {"not_measurable"}))
    return out
