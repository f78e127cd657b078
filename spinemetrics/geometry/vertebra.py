"""Vertebral body measures (contract §5 "vertebra"; MEASURES.md §2).

In the vertebra's mid-sagittal plane and local frame
(:class:`~spinemetrics.geometry.model.VertebraGeom`: SI = bisector of the fitted endplate
planes, AP = body → canal reversed):

* depth: AP chord of the body on the line through its centroid (mid-height), trimmed mean of
  9 parallel lines within ±1.5 mm;
* heights at 10 / 50 / 90 % of depth from the anterior edge: SI chord of the body mask
  (superior to inferior endplate), trimmed mean of 25 parallel rays on a ±1 × ±1.5 mm patch;
* wedge index ``Ha / Hp``; volume = voxel count × voxel volume.

Field of view: a body cut across the spine is NaN (``partial_fov``); one cut only on the
left/right faces, with its mid-sagittal slab in view (``partial_fov_lr``), keeps the
mid-sagittal heights, depth and wedge index and loses only the volume.
"""

from __future__ import annotations

from spinemetrics.geometry._table import MeasureInfo, Record
from spinemetrics.geometry.model import SpineModel, patch_offsets, trimmed_mean
from spinemetrics.labels import vertebra_name

__all__ = ["MEASURES", "compute", "body_heights"]

MEASURES: dict[str, MeasureInfo] = {
    "vertebral_height_anterior_mm": MeasureInfo(
        "mm", "SI chord of the body at 10 % of depth from the anterior edge, along the local "
        "SI axis (bisector of the endplates), mid-sagittal plane",
        "MEASURES §2.1 (QM 6-point analogue) [D]; R69", "vertebra"),
    "vertebral_height_middle_mm": MeasureInfo(
        "mm", "as anterior height, at 50 % of depth", "MEASURES §2.1 [D]; R69", "vertebra"),
    "vertebral_height_posterior_mm": MeasureInfo(
        "mm", "as anterior height, at 90 % of depth", "MEASURES §2.1 [D]; R69", "vertebra"),
    "vertebral_depth_mm": MeasureInfo(
        "mm", "AP extent of the body on the AP line through its centroid (mid-height)",
        "MEASURES §2.1, §2.3 [S]", "vertebra"),
    "vertebral_wedge_index": MeasureInfo(
        "1", "anterior / posterior height (< 1 = anterior wedging)", "MEASURES §2.1, §2.2 [S]",
        "vertebra"),
    "vertebral_volume_mm3": MeasureInfo(
        "mm3", "body voxel count × voxel volume", "MEASURES §2.1 [D]", "vertebra"),
}

_FRACTIONS = {"anterior": 0.1, "middle": 0.5, "posterior": 0.9}


def body_heights(model: SpineModel, vid: int) -> dict[str, float]:
    """Depth and heights of body ``vid`` (mm)."""
    g = model.vertebra(vid)
    key = f"body:{vid}"
    fr = g.frame
    tp, tm = model.chord_patch(key, fr.origin, fr.ap, patch_offsets(fr.si, fr.lr, 1.5, 1.5, 3))
    depth = tp + tm
    out = {"depth": depth}
    patch = patch_offsets(fr.ap, fr.lr, 1.0, 1.5, 5)
    for name, f in _FRACTIONS.items():
        starts = fr.point(tp - f * depth) + patch
        up = model.exits(key, starts, fr.si, 60.0)
        dn = model.exits(key, starts, -fr.si, 60.0)
        out[name] = trimmed_mean(up + dn)
    return out


def compute(model: SpineModel) -> list[Record]:
    """All vertebral-body measures for every body in the level map."""
    recs: list[Record] = []
    for vid in model.vertebrae:
        g = model.vertebra(vid)
        qc = set(g.qc)
        name = vertebra_name(vid)
        if "partial_fov" in qc or "endplate_fit_failed" in qc:
            vals = dict.fromkeys(MEASURES, float("nan"))
        else:
            h = body_heights(model, vid)
            vals = {
                "vertebral_height_anterior_mm": h["anterior"],
                "vertebral_height_middle_mm": h["middle"],
                "vertebral_height_posterior_mm": h["posterior"],
                "vertebral_depth_mm": h["depth"],
                "vertebral_wedge_index": h["anterior"] / h["posterior"],
                "vertebral_volume_mm3": model.body_volume_mm3(vid),
            }
        cut = model.fov_cut(f"body:{vid}")
        if cut == "partial_fov":
            # Cut across the spine (or laterally into the mid-sagittal region): a level the
            # field of view cuts is not measured (contract §3/§5).
            vals = dict.fromkeys(MEASURES, float("nan"))
        if cut:
            # partial_fov_lr: mid-sagittal heights/depth/wedge stand; the volume does not.
            qc.add(cut)
            vals["vertebral_volume_mm3"] = float("nan")
        for m in MEASURES:
            recs.append(Record(name, m, vals[m], qc=set(qc)))
    return recs
