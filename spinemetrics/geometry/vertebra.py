"""Vertebral body measures (contract §5 "vertebra"; MEASURES.md §2).

In the vertebra's mid-sagittal plane and local frame
(:class:`~spinemetrics.geometry.model.VertebraGeom`: SI = bisector of the fitted endplate
planes, AP = body → canal reversed):

* depth: AP chord of the body on the line through its centroid (mid-height), trimmed mean of
  9 parallel lines within ±1.5 mm;
* heights at 10 / 50 / 90 % of depth from the anterior edge: SI chord of the body mask
  (superior to inferior endplate), trimmed mean of 25 parallel rays on a ±1 × ±1.5 mm patch;
* wedge index ``Ha / Hp``; volume = voxel count × voxel volume;
* biconcavity index ``Hm / max(Ha, Hp)`` and crush index ``Hp / Ha`` (MEASURES.md §2.1);
* Genant semi-quantitative surrogate (MEASURES.md §2.2): height reduction
  ``r = 1 − min(Ha, Hm, Hp) / reference`` in %, reference = mean posterior height of the two
  adjacent bodies (the bodies sharing a disc with this one) when both are measured and not
  themselves reduced (own-height reduction < 20 %), else the largest of the body's own three
  heights; grade 0 (r < 20 %), 1 (20 ≤ r < 25 %), 2 (25 ≤ r ≤ 40 %), 3 (r > 40 %). ``r`` may
  be negative (the body is taller than its neighbours' posterior walls; grade 0). A
  morphometric surrogate, not a reading: Genant's SQ grade is visual and pure morphometry
  over- and under-calls fractures (Wáng 2019, MEASURES.md §2.2 [S]).

Every derived value is NaN whenever one of its heights is NaN (a cut, unfitted or missing
body), with that body's qc; a neighbour that is NaN is only dropped as a reference.

Section stability: the three heights are also taken on the planes 3 mm left and right of
the mid-sagittal one; if any differs by more than max(3 mm, 15 %), every value of the body
carries qc ``unstable_section`` and the height reduction and Genant grade are NaN (a
deformity spans the endplate; a segmentation notch on one or two slices does not).

Field of view: a body cut across the spine is NaN (``partial_fov``); one cut only on the
left/right faces, with its mid-sagittal slab in view (``partial_fov_lr``), keeps the
mid-sagittal heights, depth and wedge index and loses only the volume.
"""

from __future__ import annotations

import math

from spinemetrics.geometry._table import MeasureInfo, Record
from spinemetrics.geometry.model import SpineModel, patch_offsets, trimmed_mean
from spinemetrics.labels import vertebra_name

__all__ = [
    "MEASURES",
    "DERIVED",
    "GENANT_BOUNDS_PERCENT",
    "compute",
    "body_heights",
    "body_values",
    "genant_grade",
    "height_reduction_percent",
]

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
    "vertebral_biconcavity_index": MeasureInfo(
        "1", "middle / max(anterior, posterior) height (< 1 = central endplate depression)",
        "MEASURES §2.1, §2.3 (Spine 2002 Heidelberg [V])", "vertebra"),
    "vertebral_crush_index": MeasureInfo(
        "1", "posterior / anterior height (> 1 = anterior compression; the inverse of the "
        "wedge index)", "MEASURES §2.1 [D]", "vertebra"),
    "vertebral_height_reduction_percent": MeasureInfo(
        "%", "100 × (1 − min(anterior, middle, posterior height) / reference); reference = "
        "mean posterior height of the two adjacent bodies when both are measured and not "
        "reduced themselves, else the largest own height (may be < 0)",
        "MEASURES §2.2 [D]; Genant 1993 (R14) [S]", "vertebra"),
    "genant_sq_grade": MeasureInfo(
        # Contract §5 units are mm, mm2, mm3, deg, %, 1: a grade is a dimensionless "1".
        "1", "automated Genant semi-quantitative surrogate from the height reduction: "
        "0 < 20 %, 1 20–25 %, 2 25–40 %, 3 > 40 % (morphometric, not a visual SQ reading)",
        "MEASURES §2.2; Genant 1993 (R14) via Wáng 2019 [S]", "vertebra"),
}

#: Measures derived from the three heights (NaN whenever one input height is NaN).
DERIVED = ("vertebral_biconcavity_index", "vertebral_crush_index",
           "vertebral_height_reduction_percent", "genant_sq_grade")

#: Lower bounds of Genant grades 1, 2 and 3 on the height reduction in % (MEASURES §2.2):
#: grade 1 from 20 %, grade 2 from 25 %, grade 3 above 40 %.
GENANT_BOUNDS_PERCENT = (20.0, 25.0, 40.0)

_FRACTIONS = {"anterior": 0.1, "middle": 0.5, "posterior": 0.9}


#: Parasagittal planes (mm either side of the mid-sagittal one) that must agree on the heights.
SECTION_CHECK_MM = 3.0
#: Largest allowed height difference to those planes: max(3 mm, 15 % of the height).
SECTION_TOLERANCE = (3.0, 0.15)


def body_heights(model: SpineModel, vid: int, lr_offset_mm: float = 0.0) -> dict[str, float]:
    """Depth and heights of body ``vid`` (mm), on its mid-sagittal plane or on the parallel
    plane ``lr_offset_mm`` to its right."""
    g = model.vertebra(vid)
    key = f"body:{vid}"
    fr = g.frame
    shift = lr_offset_mm * fr.lr
    tp, tm = model.chord_patch(key, fr.origin + shift, fr.ap,
                               patch_offsets(fr.si, fr.lr, 1.5, 1.5, 3))
    depth = tp + tm
    out = {"depth": depth}
    patch = patch_offsets(fr.ap, fr.lr, 1.0, 1.5, 5)
    for name, f in _FRACTIONS.items():
        starts = fr.point(tp - f * depth) + patch + shift
        up = model.exits(key, starts, fr.si, 60.0)
        dn = model.exits(key, starts, -fr.si, 60.0)
        out[name] = trimmed_mean(up + dn)
    return out


def section_unstable(model: SpineModel, vid: int, h: dict[str, float]) -> bool:
    """True when the heights ``SECTION_CHECK_MM`` left and right of the mid-sagittal plane
    differ from ``h`` by more than ``SECTION_TOLERANCE``.

    A real wedge or crush deformity spans the endplate's width, so the three heights barely
    change 3 mm off the midline; a segmentation notch (a disc label biting into one corner on
    one or two slices) does not. Planes that leave the body (NaN) are not judged.
    """
    abs_mm, rel = SECTION_TOLERANCE
    for off in (-SECTION_CHECK_MM, SECTION_CHECK_MM):
        other = body_heights(model, vid, off)
        for name in _FRACTIONS:
            a, b = h[name], other[name]
            if math.isfinite(a) and math.isfinite(b) and abs(b - a) > max(abs_mm, rel * a):
                return True
    return False


def _own_reduction_percent(h: tuple[float, float, float]) -> float:
    """Height reduction (%) of a body against the largest of its own three heights."""
    return 100.0 * (1.0 - min(h) / max(h))


def height_reduction_percent(
    h: tuple[float, float, float],
    above: tuple[float, float, float] | None = None,
    below: tuple[float, float, float] | None = None,
) -> float:
    """Genant height reduction (%) of one body (MEASURES.md §2.2).

    Parameters
    ----------
    h : tuple of float
        Anterior, middle and posterior height of the body (mm).
    above, below : tuple of float, optional
        The same three heights of the adjacent bodies (``None`` when there is none).

    Returns
    -------
    float
        ``100 × (1 − min(h) / reference)``: reference = mean posterior height of the two
        neighbours when both are given, finite and not reduced themselves (own reduction
        < 20 %), else ``max(h)``. NaN when any of ``h`` is not finite.
    """
    if not all(math.isfinite(x) and x > 0 for x in h):
        return math.nan
    ref = max(h)
    nbrs = [n for n in (above, below) if n is not None]
    if len(nbrs) == 2 and all(
        all(math.isfinite(x) and x > 0 for x in n)
        and _own_reduction_percent(n) < GENANT_BOUNDS_PERCENT[0]
        for n in nbrs
    ):
        ref = 0.5 * (nbrs[0][2] + nbrs[1][2])
    return 100.0 * (1.0 - min(h) / ref)


def genant_grade(reduction_percent: float) -> float:
    """Genant SQ surrogate grade (0–3) of a height reduction in %; NaN stays NaN.

    0: < 20 %; 1: 20 to < 25 %; 2: 25 to 40 %; 3: > 40 % (MEASURES.md §2.2).
    """
    r = reduction_percent
    if not math.isfinite(r):
        return math.nan
    g1, g2, g3 = GENANT_BOUNDS_PERCENT
    if r > g3:
        return 3.0
    if r >= g2:
        return 2.0
    if r >= g1:
        return 1.0
    return 0.0


def _neighbours(model: SpineModel, vid: int) -> tuple[int | None, int | None]:
    """Bodies sharing a disc with ``vid`` (above, below); the sacrum is not a neighbour."""
    above = below = None
    for did in model.discs:
        g = model.disc(did)
        if g is None:
            continue
        if g.lower == vid and g.upper in model.vertebrae:
            above = g.upper
        if g.upper == vid and g.lower in model.vertebrae:
            below = g.lower
    return above, below


def body_values(model: SpineModel, vid: int) -> tuple[dict[str, float], set[str]]:
    """Direct measures (heights, depth, wedge index, volume) and qc of body ``vid``.

    Memoised on ``model``: the disc family reads the same middle height for its
    vertebral-height index, so both tables apply one cut/failed-fit rule and the rays are
    cast once. The caller gets copies.
    """
    key = ("body_values", vid)
    if key not in model.memo:
        g = model.vertebra(vid)
        qc = set(g.qc)
        if "partial_fov" in qc or "endplate_fit_failed" in qc:
            vals = dict.fromkeys(MEASURES, float("nan"))
        else:
            h = body_heights(model, vid)
            if section_unstable(model, vid, h):
                qc.add("unstable_section")
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
        model.memo[key] = (vals, qc)
    vals, qc = model.memo[key]
    return dict(vals), set(qc)


def compute(model: SpineModel) -> list[Record]:
    """All vertebral-body measures for every body in the level map."""
    vals_by: dict[int, dict[str, float]] = {}
    qc_by: dict[int, set[str]] = {}
    for vid in model.vertebrae:
        vals_by[vid], qc_by[vid] = body_values(model, vid)

    def heights(vid: int | None) -> tuple[float, float, float] | None:
        if vid is None:
            return None
        v = vals_by[vid]
        return (v["vertebral_height_anterior_mm"], v["vertebral_height_middle_mm"],
                v["vertebral_height_posterior_mm"])

    recs: list[Record] = []
    for vid in model.vertebrae:
        vals = vals_by[vid]
        ha, hm, hp = h = heights(vid)
        ok = all(math.isfinite(x) and x > 0 for x in h)
        # A grade from a section that the neighbouring planes contradict would call a
        # segmentation notch a fracture: no grade, the heights keep the qc flag.
        stable = "unstable_section" not in qc_by[vid]
        # Derived ratios only from three finite heights: a cut or failed body gives NaN
        # (with its qc), never a ratio of what happened to be in view.
        vals["vertebral_biconcavity_index"] = hm / max(ha, hp) if ok else math.nan
        vals["vertebral_crush_index"] = hp / ha if ok else math.nan
        above, below = _neighbours(model, vid)
        r = height_reduction_percent(h, heights(above), heights(below))
        vals["vertebral_height_reduction_percent"] = r if stable else math.nan
        vals["genant_sq_grade"] = genant_grade(r) if stable else math.nan
        name = vertebra_name(vid)
        for m in MEASURES:
            recs.append(Record(name, m, vals[m], qc=set(qc_by[vid])))
    return recs
