"""Measurement table → clinician-readable HTML tables (wide by level, T12 … S1 order)."""

from __future__ import annotations

import math

import pandas as pd

from spinemetrics.errors import InputError
from spinemetrics.labels import lumbar_order, vertebra_id
from spinemetrics.report._html import esc

__all__ = [
    "MEASURE_NAMES",
    "UNIT_TEXT",
    "measure_title",
    "split_levels",
    "wide_tables_html",
    "check_table",
    "zscore_table_html",
]

#: Display names (the contract names stay visible next to them for researchers).
MEASURE_NAMES: dict[str, str] = {
    "disc_height_anterior_mm": "Disc height, anterior",
    "disc_height_middle_mm": "Disc height, middle",
    "disc_height_posterior_mm": "Disc height, posterior",
    "disc_height_index": "Disc height index (Farfan)",
    "disc_depth_mm": "Disc depth (AP)",
    "disc_wedge_angle_deg": "Disc wedge angle",
    "disc_volume_mm3": "Disc volume",
    "disc_height_dabbs_mm": "Disc height, Dabbs (ant+post)/2",
    "disc_height_index_vertebral": "Disc height index (to vertebral height)",
    "vertebral_height_anterior_mm": "Vertebral height, anterior",
    "vertebral_height_middle_mm": "Vertebral height, middle",
    "vertebral_height_posterior_mm": "Vertebral height, posterior",
    "vertebral_depth_mm": "Vertebral depth (AP)",
    "vertebral_wedge_index": "Vertebral wedge index (ant/post)",
    "vertebral_volume_mm3": "Vertebral body volume",
    "vertebral_biconcavity_index": "Vertebral biconcavity index (mid/max)",
    "vertebral_crush_index": "Vertebral crush index (post/ant)",
    "vertebral_height_reduction_percent": "Vertebral height reduction",
    "genant_sq_grade": "Genant grade (surrogate)",
    "dural_sac_area_mm2": "Dural sac area",
    "dural_sac_ap_mm": "Dural sac AP diameter",
    "canal_ap_mm": "Bony canal AP diameter",
    "foraminal_height_mm": "Foraminal height",
    "foraminal_width_mm": "Foraminal width",
    "foraminal_area_mm2": "Foraminal area",
    "lumbar_lordosis_deg": "Lumbar lordosis (L1–S1)",
    "segmental_angle_deg": "Segmental angle",
    "slip_percent": "Slip (listhesis)",
    "sacral_slope_deg": "Sacral slope",
    "ligamentum_flavum_thickness_mm": "Ligamentum flavum thickness",
    "paraspinal_muscle_area_mm2": "Paraspinal muscle area",
    "epidural_fat_area_mm2": "Epidural fat area",
}

_MEASURE_ORDER = {m: i for i, m in enumerate(MEASURE_NAMES)}

UNIT_TEXT = {"mm": "mm", "mm2": "mm²", "mm3": "mm³", "deg": "°", "%": "%", "1": ""}

REQUIRED_COLUMNS = ("level", "measure", "value")


def check_table(table: pd.DataFrame) -> pd.DataFrame:
    """Validate a long measurement table (contract §5) and fill optional columns."""
    if not isinstance(table, pd.DataFrame):
        raise InputError("table must be a pandas DataFrame in the long format of contract §5; "
                         "read it with spinemetrics.io.read_table or pandas")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"measurement table lacks column(s) {', '.join(missing)}; "
                         "use the long format of contract §5 (level, measure, value, unit, …)")
    out = table.copy()
    for col, default in (("side", ""), ("unit", ""), ("qc", "ok"), ("subject", ""), ("scan", "")):
        if col not in out.columns:
            out[col] = default
    out["side"] = out["side"].fillna("").astype(str)
    out["qc"] = out["qc"].fillna("ok").astype(str)
    out["level"] = out["level"].astype(str)
    out["measure"] = out["measure"].astype(str)
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    return out


def measure_title(measure: str) -> str:
    """Readable name; unknown measures get their snake_case name with spaces."""
    return MEASURE_NAMES.get(measure, measure.replace("_", " "))


def _level_kind(level: str) -> str:
    """``"disc"`` for adjacent pairs, ``"vertebra"``, or ``"spine"`` (e.g. ``"L1-S1"``)."""
    text = level.strip().upper()
    try:
        if "-" in text:
            up, _, low = text.partition("-")
            from spinemetrics.labels import VERTEBRA_IDS

            iu, il = VERTEBRA_IDS.index(vertebra_id(up)), VERTEBRA_IDS.index(vertebra_id(low))
            # Adjacent in the id order, or across an optional vertebra (T13, L6) when absent.
            skipped = VERTEBRA_IDS[iu + 1 : il]
            adjacent = il > iu and all(v in (28, 25) for v in skipped)
            return "disc" if adjacent else "spine"
        vertebra_id(text)
        return "vertebra"
    except Exception:
        return "spine"


def split_levels(levels: list[str]) -> dict[str, list[str]]:
    """Group level names into disc / vertebra / spine lists, each in cranio-caudal order."""
    groups: dict[str, list[str]] = {"disc": [], "vertebra": [], "spine": []}
    for lv in dict.fromkeys(levels):
        groups[_level_kind(lv)].append(lv)
    for k in ("disc", "vertebra"):
        groups[k] = lumbar_order(groups[k])
    groups["spine"] = sorted(groups["spine"])
    return groups


def _fmt_value(value: float, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if unit == "mm3":
        return f"{value:,.0f}"
    if unit == "1" or abs(value) < 2:
        return f"{value:.2f}"
    return f"{value:.1f}"


def wide_tables_html(table: pd.DataFrame, flags: dict[tuple[str, str, str, str], int]) -> str:
    """HTML for three wide tables (disc levels, vertebral levels, whole spine).

    ``flags`` maps ``(level, side, measure, "")`` to a severity (1, 2) for cell colouring.
    """
    groups = split_levels(table["level"].unique().tolist())
    parts = []
    titles = {"disc": "Disc levels", "vertebra": "Vertebral levels", "spine": "Whole lumbar spine"}
    for kind in ("disc", "vertebra", "spine"):
        cols = groups[kind]
        if not cols:
            continue
        sub = table[table["level"].isin(cols)]
        rows = sub[["measure", "side", "unit"]].drop_duplicates()
        rows = rows.assign(_o=rows["measure"].map(lambda m: _MEASURE_ORDER.get(m, 999)))
        rows = rows.sort_values(["_o", "measure", "side"])
        cells = {
            (r.level, r.side, r.measure): r for r in sub.itertuples(index=False)
        }
        head = "".join(f"<th scope=\"col\">{esc(c)}</th>" for c in cols)
        body = []
        for r in rows.itertuples(index=False):
            side = f" ({'left' if r.side == 'L' else 'right' if r.side == 'R' else r.side})" \
                if r.side else ""
            unit = UNIT_TEXT.get(str(r.unit), str(r.unit))
            name = (f"<th scope=\"row\">{esc(measure_title(r.measure))}{esc(side)}"
                    f"<span class=\"unit\">{esc(unit)}</span>"
                    f"<div class=\"code\">{esc(r.measure)}</div></th>")
            tds = []
            for c in cols:
                cell = cells.get((c, r.side, r.measure))
                if cell is None:
                    tds.append("<td class=\"na\"></td>")
                    continue
                sev = flags.get((c, r.side, r.measure), 0)
                cls = f"sev{sev}" if sev > 0 else ""
                text = _fmt_value(float(cell.value), str(cell.unit))
                qc = str(cell.qc)
                title = ""
                if qc and qc != "ok":
                    cls += " qc"
                    text += "†"
                    title = f" title=\"QC: {esc(qc)}\""
                tds.append(f"<td class=\"{cls.strip()}\"{title}>{esc(text)}</td>")
            body.append(f"<tr>{name}{''.join(tds)}</tr>")
        parts.append(
            f"<h3>{titles[kind]}</h3><div class=\"tablewrap\"><table class=\"measures\" "
            f"data-kind=\"{kind}\"><thead><tr><th scope=\"col\">Measure</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )
    return "\n".join(parts)


def zscore_table_html(zscores: pd.DataFrame, threshold: float = 1.96) -> str:
    """Normative comparison table: z-score, centile and a flag when |z| ≥ ``threshold``."""
    z = zscores.copy().reset_index(drop=True)
    zcol = next((c for c in ("z", "zscore", "z_score") if c in z.columns), None)
    ccol = next((c for c in ("centile", "percentile") if c in z.columns), None)
    if zcol is None and ccol is None:
        raise InputError("zscores table needs a 'z' (or 'zscore') or 'centile' column; "
                         "pass the per-subject output of the stats norms step")
    if "norm_flag" in z.columns:
        # Rows without a reference cell carry no information for the reader.
        z = z[~z["norm_flag"].isin(["no_norm", "no_covariates"])]
        if z.empty:
            return ("<p>No normative reference available for these measures (normative "
                    "comparison needs age, sex and a reference cell).</p>")
    if "side" not in z.columns:
        z["side"] = ""
    z["side"] = z["side"].fillna("")
    if zcol is None:
        from scipy.stats import norm

        z["z"] = norm.ppf(pd.to_numeric(z[ccol], errors="coerce") / 100.0)
        zcol = "z"
    if ccol is None:
        from scipy.stats import norm

        z["centile"] = norm.cdf(pd.to_numeric(z[zcol], errors="coerce")) * 100.0
        ccol = "centile"
    z["absz"] = pd.to_numeric(z[zcol], errors="coerce").abs()
    z["lvname"] = z["level"].astype(str)
    order = {lv: i for i, lv in enumerate(
        lumbar_order([lv for lv in z["lvname"].unique() if _level_kind(lv) != "spine"]))}
    z["_o"] = z["lvname"].map(lambda lv: order.get(lv, 999))
    z = z.sort_values(["_o", "measure", "side"])
    rows = []
    flagged = []
    n_flag = 0
    for r in z.itertuples(index=False):
        zv = float(getattr(r, zcol)) if pd.notna(getattr(r, zcol)) else float("nan")
        cv = float(getattr(r, ccol)) if pd.notna(getattr(r, ccol)) else float("nan")
        flag = ""
        cls = ""
        if math.isfinite(zv) and abs(zv) >= threshold:
            n_flag += 1
            flag = "below normal range" if zv < 0 else "above normal range"
            cls = " class=\"sev1\""
        if str(getattr(r, "norm_flag", "")) == "extrapolated":
            flag = (flag + "; " if flag else "") + "age outside the reference range"
        val = getattr(r, "value", float("nan"))
        unit = UNIT_TEXT.get(str(getattr(r, "unit", "")), "")
        val_text = _fmt_value(float(val), str(getattr(r, "unit", ""))) if pd.notna(val) else "—"
        row = (
            f"<tr{cls}><td>{esc(r.lvname)}</td><td>{esc(measure_title(str(r.measure)))}"
            f"{esc(' (' + r.side + ')' if r.side else '')}</td>"
            f"<td>{esc(val_text)} {esc(unit)}</td>"
            f"<td>{esc(f'{zv:+.2f}' if math.isfinite(zv) else '—')}</td>"
            f"<td>{esc(f'{cv:.0f}' if math.isfinite(cv) else '—')}</td><td>{esc(flag)}</td></tr>"
        )
        rows.append(row)
        if cls:
            flagged.append(row)

    def table(body: list[str], cls: str) -> str:
        return ("<div class=\"tablewrap\"><table class=\"zscores " + cls + "\"><thead><tr>"
                "<th>Level</th><th>Measure</th><th>Value</th><th>z-score</th><th>Centile</th>"
                f"<th>Flag</th></tr></thead><tbody>{''.join(body)}</tbody></table></div>")

    summary = (f"<p>{n_flag} of {len(rows)} value(s) outside the normal range (|z| ≥ "
               f"{threshold:g}, i.e. below the 2.5th or above the 97.5th centile of the "
               "reference group).</p>")
    # Flagged values first; the full list stays one click away (it can run to 150 rows).
    return (summary + (table(flagged, "flagged") if flagged else "")
            + f"<details><summary>All compared values ({len(rows)})</summary>"
            + table(rows, "all") + "</details>")
