"""Alignment measures (contract §5 "alignment"; MEASURES.md §5).

Every angle is a difference of sagittal tilts (:func:`~spinemetrics.geometry.frame.tilt_deg`)
of fitted endplate normals, projected on a mid-sagittal plane; + = lordotic.

* ``segmental_angle_deg`` [disc]: superior endplate of the upper vertebra vs superior
  endplate of the lower vertebra (sacral plate for L5-S1), in the disc frame.
* ``lumbar_lordosis_deg`` [L1-S1]: superior endplate of L1 vs sacral plate, in the global
  mid-sagittal plane (mean of the per-level SI and AP axes).
* ``sacral_slope_deg`` [S1]: angle between the sacral plate and the scanner's AP axis (world
  +y) projected on the global mid-sagittal plane (supine surrogate; depends on patient
  position, so it is the one measure that is *not* invariant to rotating the image).
* ``slip_percent`` [disc]: displacement of the upper inferior-endplate centre relative to the
  lower superior-endplate centre along the lower endplate's AP axis, % of that endplate's
  depth (Meyerding/Taillard). An endplate's centre and depth come from its AP extent along
  the fitted plane: the run of positions where the bone surface lies within 4 mm of the
  plane (:func:`endplate_centre`), which follows domed plates to their corners. ``slip_mm``
  gives the same displacement in mm (MEASURES.md §5 asks for both).
"""

from __future__ import annotations

import numpy as np

from spinemetrics.geometry._table import MeasureInfo, Record
from spinemetrics.geometry.disc import disc_level_name
from spinemetrics.geometry.frame import Frame, Plane, orthogonalise, tilt_deg, unit
from spinemetrics.geometry.model import SpineModel
from spinemetrics.labels import SACRUM_ID

__all__ = ["MEASURES", "compute", "endplate_centre"]

MEASURES: dict[str, MeasureInfo] = {
    "lumbar_lordosis_deg": MeasureInfo(
        "deg", "Cobb angle between the superior endplates of L1 and S1 in the global "
        "mid-sagittal plane, + = lordosis", "MEASURES §5; R52 [V]", "L1-S1"),
    "segmental_angle_deg": MeasureInfo(
        "deg", "angle between the superior endplates of the upper and lower vertebra, "
        "+ = lordotic", "MEASURES §5; R51 [V]", "disc"),
    "slip_percent": MeasureInfo(
        "%", "upper inferior-endplate centre minus lower superior-endplate centre along the "
        "lower endplate's AP axis, % of its depth; + = anterolisthesis",
        "MEASURES §5; R13 (Meyerding) [V]", "disc"),
    "slip_mm": MeasureInfo(
        "mm", "the displacement of slip_percent in mm", "MEASURES §5; Rai 2019 (≥ 3 mm) [V]",
        "disc"),
    "sacral_slope_deg": MeasureInfo(
        "deg", "angle between the sacral plate and the scanner AP axis in the mid-sagittal "
        "plane (supine; position dependent)", "MEASURES §5 [D]; R53", "S1"),
}

#: The endplate's AP extent is where the bone's surface lies within this distance of the
#: fitted plane (mm): endplates are domed, sacral plates especially, and their rims lie off
#: any plane fitted over the central part of the section.
_BAND_MM = 4.0
_STEP_MM = 0.25
_REACH_MM = 45.0


def endplate_centre(model: SpineModel, key: str, plane: Plane, axis_point: np.ndarray,
                    axis_dir: np.ndarray, ap: np.ndarray, inward: float):
    """Centre and AP depth of an endplate, on its fitted plane.

    Along the AP line of the plane through the point where the bone's axis meets it, every
    0.25 mm a ray is cast from ``_BAND_MM`` outside the plane (disc side) into the bone; the
    endplate is the contiguous run of positions whose ray meets the bone within
    ``_BAND_MM`` of the plane (or starts inside it). Its mid-point is the centre and its
    length the depth. Following the surface this way keeps the rounded posterior corner of a
    domed sacral plate, which a straight chord a few millimetres under a plane fitted to the
    central part misses (on the panoptica SPINEPS map it cut 4–5 mm off the S1 plate and read
    −18 % slip at L5-S1; MEASURES.md §5 measures along the plate to its corners). 4 mm
    takes in rounded rims (phantoms: up to 2.5 mm) without reaching far down the walls,
    where two segmentations of one scan disagree most.

    Parameters
    ----------
    key : str
        Field of the bone (``body:<id>`` or ``sacrum``).
    plane : Plane
        Fitted endplate plane.
    axis_point, axis_dir : arrays
        A line through the bone (its SI axis); where it meets the plane seeds the search.
    ap : array
        AP direction (orthogonalised to the plane normal here).
    inward : float
        +1 if the bone lies on the cranial side of the plane, −1 if caudal.

    Returns
    -------
    (centre, depth, ap_in_plane) or None
        None when the run is not closed within ±45 mm or does not reach the seed.
    """
    t = plane.height_along(axis_point, axis_dir)
    if not np.isfinite(t):
        return None
    p0 = axis_point + t * axis_dir
    ap_p = orthogonalise(ap, plane.normal)
    s = np.arange(-_REACH_MM, _REACH_MM + 1e-9, _STEP_MM)
    into = inward * plane.normal
    starts = p0 + s[:, None] * ap_p - _BAND_MM * into
    inside0 = np.nan_to_num(model.field(key).inside(starts), nan=0.0) >= 0.5
    hit = model.exits(key, starts, into, 2.0 * _BAND_MM, entering=True)
    covered = inside0 | np.isfinite(hit)
    i0 = len(s) // 2
    if not covered[i0]:
        near = np.nonzero(covered & (np.abs(s) <= 5.0))[0]
        if not len(near):
            return None
        i0 = int(near[np.argmin(np.abs(s[near]))])
    gaps = np.nonzero(~covered)[0]
    below, above = gaps[gaps < i0], gaps[gaps > i0]
    if not len(below) or not len(above):
        return None  # runs off the search range: no closed endplate
    lo, hi = below.max() + 1, above.min() - 1
    centre = p0 + 0.5 * (s[lo] + s[hi]) * ap_p
    return centre, float(s[hi] - s[lo] + _STEP_MM), ap_p


def _sacral_plate(model: SpineModel) -> tuple[Plane | None, int | None]:
    for did in model.discs:
        g = model.disc(did)
        if g.lower == SACRUM_ID:
            return g.lower_plane, did
    return None, None


def _superior(model: SpineModel, vid: int) -> Plane | None:
    if vid == SACRUM_ID:
        return _sacral_plate(model)[0]
    g = model.vertebra(vid)
    return g.superior if g is not None else None


def global_frame(model: SpineModel) -> Frame | None:
    frames = [model.vertebra(v).frame for v in model.vertebrae if model.vertebra(v) is not None]
    if not frames:
        return None
    si = unit(np.mean([f.si for f in frames], axis=0))
    ap = unit(np.mean([f.ap for f in frames], axis=0))
    return Frame.from_si_ap(np.mean([f.origin for f in frames], axis=0), si, ap)


def compute(model: SpineModel) -> list[Record]:
    """All alignment measures."""
    recs: list[Record] = []
    for did in model.discs:
        g = model.disc(did)
        name = disc_level_name(model, did)
        qc = set(g.qc)
        seg_angle = slip = slip_mm = float("nan")
        if g.lower is not None and g.upper in model.vertebrae:
            up_sup = _superior(model, g.upper)
            lo_sup = _superior(model, g.lower)
            if up_sup is not None and lo_sup is not None:
                seg_angle = tilt_deg(lo_sup.normal, g.frame.si, g.frame.ap) - tilt_deg(
                    up_sup.normal, g.frame.si, g.frame.ap)
            vu = model.vertebra(g.upper)
            if g.upper_plane is not None and g.lower_plane is not None:
                cu = endplate_centre(model, f"body:{g.upper}", g.upper_plane, vu.frame.origin,
                                     vu.frame.si, vu.frame.ap, +1.0)
                if g.lower == SACRUM_ID:
                    lo_pt, lo_dir, lo_ap = g.frame.origin, g.frame.si, g.frame.ap
                else:
                    vl = model.vertebra(g.lower)
                    lo_pt, lo_dir, lo_ap = vl.frame.origin, vl.frame.si, vl.frame.ap
                cl = endplate_centre(model, model.lower_key(g.lower), g.lower_plane, lo_pt,
                                     lo_dir, lo_ap, -1.0)
                if cu is not None and cl is not None:
                    slip_mm = float((cu[0] - cl[0]) @ cl[2])
                    slip = 100.0 * slip_mm / cl[1]
        else:
            qc.add("missing_neighbour")
        recs.append(Record(name, "segmental_angle_deg", seg_angle, qc=set(qc)))
        recs.append(Record(name, "slip_percent", slip, qc=set(qc)))
        recs.append(Record(name, "slip_mm", slip_mm, qc=set(qc)))

    gf = global_frame(model)
    plate, _ = _sacral_plate(model)
    if gf is not None and 20 in model.vertebrae:
        l1 = _superior(model, 20)
        val = float("nan")
        qc: set[str] = set()
        if l1 is not None and plate is not None:
            val = tilt_deg(plate.normal, gf.si, gf.ap) - tilt_deg(l1.normal, gf.si, gf.ap)
        else:
            qc.add("missing_endplate")
        recs.append(Record("L1-S1", "lumbar_lordosis_deg", val, qc=qc))
    if plate is not None and gf is not None:
        # Plate tilt relative to the anatomical SI/AP axes, plus the elevation of the scanner
        # AP axis (world +y) above the anatomical AP axis, both in the mid-sagittal plane.
        y = np.array([0.0, 1.0, 0.0])
        phi = float(np.degrees(np.arctan2(y @ gf.si, y @ gf.ap)))
        recs.append(Record("S1", "sacral_slope_deg", tilt_deg(plate.normal, gf.si, gf.ap) + phi))
    return recs
