"""Assemble every contract §5 measure into the long table (and a wide pivot).

``measure(seg, levels)`` builds one :class:`~spinemetrics.geometry.model.SpineModel` and runs
each family module in turn. Values that cannot be taken are NaN with a qc reason; the qc of
a row also carries the level's own qc from :func:`spinemetrics.levels.derive_levels`
(``partial_fov``, ``partial_fov_lr``, ``level_uncertain``, ``lstv_suspected`` …).

Field of view: a level cut across the spine is NaN (``partial_fov``); a level cut only on the
left/right faces with its mid-sagittal slab in view (``partial_fov_lr``, narrow sagittal
slabs) keeps its mid-sagittal measures and loses volumes, foramina (:data:`LR_DEPENDENT`)
and muscle areas that reach the edge.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from spinemetrics.geometry import alignment, canal, disc, foramen, soft_tissue, vertebra
from spinemetrics.geometry._table import MeasureInfo, Record, qc_text
from spinemetrics.geometry.model import SpineModel
from spinemetrics.image import Image
from spinemetrics.labels import level_name, lumbar_order
from spinemetrics.levels import derive_levels

__all__ = ["measure", "to_wide", "MEASURE_UNITS", "MEASURE_INFO", "COLUMNS", "LR_DEPENDENT"]

log = logging.getLogger(__name__)

FAMILIES = {
    "disc": disc,
    "vertebra": vertebra,
    "canal": canal,
    "foramen": foramen,
    "alignment": alignment,
    "soft_tissue": soft_tissue,
}

#: measure name → :class:`MeasureInfo` (unit, definition, citation, level kind, sided).
MEASURE_INFO: dict[str, MeasureInfo] = {}
for _fam in FAMILIES.values():
    MEASURE_INFO.update(_fam.MEASURES)

#: measure name → unit string of contract §5.
MEASURE_UNITS: dict[str, str] = {k: v.unit for k, v in MEASURE_INFO.items()}

#: Column order of the long table (contract §5).
COLUMNS = ["subject", "scan", "level", "side", "measure", "value", "unit", "qc"]


#: Measures that need the lateral parts of a level (pedicles, foramina), not only its
#: mid-sagittal region: NaN (qc ``partial_fov``) at levels cut on the left/right faces
#: (``partial_fov_lr``). Volumes and muscle areas are handled by their families, which see
#: the cut themselves; see docs/measures.md "Field of view".
LR_DEPENDENT = frozenset({"foraminal_height_mm", "foraminal_width_mm", "foraminal_area_mm2"})


def _lr_cut_discs(model: SpineModel, level_qc: dict[str, str]) -> set[str]:
    """Table names of discs whose disc or bounding bodies are cut on the left/right faces."""
    out: set[str] = set()
    for did in model.discs:
        name = disc.disc_level_name(model, did)
        g = model.disc(did)
        keys = [f"disc:{did}"] + [f"body:{v}" for v in (g.upper, g.lower)
                                  if v in model.vertebrae]
        if ("partial_fov_lr" in level_qc.get(name, "").split(";")
                or any(model.fov_cut(k) == "partial_fov_lr" for k in keys)):
            out.add(name)
    return out


def _level_reasons(level_qc: dict[str, str], level: str) -> set[str]:
    names = level.split("-") if level == "L1-S1" else [level]
    out: set[str] = set()
    for n in names:
        q = level_qc.get(n, "ok")
        if q and q != "ok":
            out.update(q.split(";"))
    if level == "L1-S1":
        out.discard("partial_fov")
    return out


def _order_key(level: str) -> float:
    try:
        return float(lumbar_order([level, "S1"]).index(level))  # validates the name
    except Exception:
        return math.inf


def measure(
    seg: Image,
    levels: Image | None = None,
    *,
    subject: str = "",
    scan: str = "",
    provenance: dict[str, Any] | None = None,
    mode: str = "auto",
    families: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """All per-level measures of contract §5 from label maps.

    Parameters
    ----------
    seg : Image
        Semantic label map (contract §2 ids).
    levels : Image, optional
        Level map (contract §3) on the same grid; derived with
        :func:`spinemetrics.levels.derive_levels` when omitted.
    subject, scan : str
        Values of the ``subject`` and ``scan`` columns.
    provenance : dict, optional
        Stored in ``table.attrs["provenance"]`` (not in the table itself).
    mode : {"auto", "linear", "sdf"}
        Mask interpolant (see :mod:`spinemetrics.geometry.sampling`).
    families : tuple of str, optional
        Subset of ``disc, vertebra, canal, foramen, alignment, soft_tissue``.

    Returns
    -------
    pandas.DataFrame
        Long table with columns ``subject, scan, level, side, measure, value, unit, qc``;
        ``attrs["warnings"]`` lists level-naming and measurement warnings.
    """
    lev_res = derive_levels(seg, levels=levels)
    model = SpineModel(seg, lev_res.levels, mode=mode)
    # Level qc is keyed by default names ("L4-L5" for id 123); tables name discs by their
    # actual lower neighbour ("L4-S1" with four lumbar vertebrae): re-key by id.
    level_qc = dict(lev_res.qc)
    for did in model.discs:
        default, actual = level_name(did), disc.disc_level_name(model, did)
        if default in lev_res.qc:
            level_qc[actual] = lev_res.qc[default]
    warnings = list(lev_res.warnings)
    records: list[Record] = []
    for name, fam in FAMILIES.items():
        if families is not None and name not in families:
            continue
        try:
            records.extend(fam.compute(model))
        except Exception as exc:  # keep the other families' values; say what failed
            log.warning("geometry family %s failed: %s", name, exc, exc_info=True)
            warnings.append(f"{name} measures failed: {exc}")
    lr_cut = _lr_cut_discs(model, level_qc)
    rows = []
    for r in records:
        qc = set(r.qc) | _level_reasons(level_qc, r.level)
        value = r.value
        if r.measure in LR_DEPENDENT and r.level in lr_cut:
            # The pedicles are cut or nearly so: their centroids (hence the foraminal plane)
            # would be biased toward the midline without any NaN showing it.
            qc |= {"partial_fov", "partial_fov_lr"}
            value = float("nan")
        if value is not None and not np.isfinite(value):
            value = float("nan")
            if not qc:
                qc = {"not_measurable"}
        rows.append((subject, scan, r.level, r.side, r.measure, value, MEASURE_UNITS[r.measure],
                     qc_text(qc)))
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["value"] = table["value"].astype(float)
    if len(table):
        table["_o"] = table["level"].map(_order_key)
        table = table.sort_values(["_o", "measure", "side"], kind="stable").drop(columns="_o")
        table = table.reset_index(drop=True)
    table.attrs["warnings"] = warnings
    table.attrs["level_qc"] = dict(lev_res.qc)
    if provenance:
        table.attrs["provenance"] = dict(provenance)
    return table


def to_wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (subject, scan); one column per ``measure.level[.side]``.

    Parameters
    ----------
    table : pandas.DataFrame
        Long table of :func:`measure` (contract §5).

    Returns
    -------
    pandas.DataFrame
        Index ``(subject, scan)``; column names like ``disc_height_middle_mm.L4-L5`` and
        ``foraminal_area_mm2.L4-L5.L``. qc is dropped (filter the long table first).
    """
    t = table.copy()
    side = t["side"].fillna("").astype(str)
    t["column"] = t["measure"] + "." + t["level"] + np.where(side != "", "." + side, "")
    wide = t.pivot_table(index=["subject", "scan"], columns="column", values="value",
                         aggfunc="first", dropna=False)
    wide.columns.name = None
    return wide
