"""Subject report: one self-contained HTML file per scan, readable by a clinician.

Sections: key findings, mid-sagittal view with the segmentation (structures toggled by
check boxes), axial-oblique views through every disc, a spine diagram coloured by findings,
the measurement tables (wide, T12 … S1), normative z-scores when given, quality-control
warnings, the finding definitions with their sources, and provenance.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spinemetrics.atomic import atomic_write_text
from spinemetrics.errors import InputError
from spinemetrics.findings import FINDING_RULES, SEVERITY_NAMES, classify_findings
from spinemetrics.image import Image
from spinemetrics.labels import STRUCTURE_COLORS, Structure, lumbar_order, vertebra_name
from spinemetrics.report import slices
from spinemetrics.report._html import (
    INLINE,
    asset_text,
    esc,
    figure_div,
    page,
    plotly_script_tag,
    script_json,
)
from spinemetrics.report.tables import (
    check_table,
    measure_title,
    split_levels,
    wide_tables_html,
    zscore_table_html,
)

__all__ = ["subject_report", "SEVERITY_COLORS"]

log = logging.getLogger(__name__)

#: Finding colours (colour-blind aware: blue-ish normal, orange moderate, vermilion severe)
#: — always paired with a text label, never colour alone.
SEVERITY_COLORS = {-1: "#bdbdbd", 0: "#4daf4a", 1: "#f5a623", 2: "#d7301f"}
_SEVERITY_MARK = {-1: "?", 0: "✓", 1: "!", 2: "!!"}


def _canonical(img: Image) -> Image:
    return img if img.orientation == ("R", "A", "S") else img.to_canonical()


def _present_ids(arr: np.ndarray) -> set[int]:
    """Label ids present, counted slab by slab (no full-size int64 copy of a big volume)."""
    if arr.dtype.kind not in "ui":
        return {int(v) for v in np.unique(arr)}
    counts = np.zeros(1, np.int64)
    step = max(1, arr.shape[0] // 8)
    for i in range(0, arr.shape[0], step):
        c = np.bincount(arr[i:i + step].ravel())
        if c.size > counts.size:
            c[:counts.size] += counts
            counts = c
        else:
            counts[:c.size] += c
    return {int(v) for v in np.flatnonzero(counts)}


def _rgb(structure: Structure) -> str:
    r, g, b = STRUCTURE_COLORS[structure]
    return f"rgb({r},{g},{b})"


# ------------------------------------------------------------------------------ figures
# Figures are plain plotly JSON dicts: building them through plotly.graph_objects validates
# every property on each call and took most of the report's build time.
Fig = dict


def _axis_names(k: int) -> tuple[str, str]:
    return ("x", "y") if k == 0 else (f"x{k + 1}", f"y{k + 1}")


def _image_figure(views: list[slices.View], structures: list[Structure], *,
                  titles: bool, cols: int, panel_px: int,
                  captions: dict[str, tuple[str, str]] | None = None) -> Fig:
    """One panel per view: grey picture + one RGBA overlay trace per structure."""
    n = len(views)
    rows = int(np.ceil(n / cols))
    gap_x, gap_y = 0.01, (0.06 if titles else 0.0)
    width = (1.0 - gap_x * (cols - 1)) / cols
    height = (1.0 - gap_y * (rows - 1)) / rows
    data: list[dict] = []
    layout: dict = {
        "margin": {"l": 4, "r": 4, "t": 30 if titles else 4, "b": 4},
        "height": panel_px * rows + (30 if titles else 0),
        "paper_bgcolor": "#111", "plot_bgcolor": "#111", "font": {"color": "#eee"},
        "showlegend": False, "dragmode": "pan", "annotations": [], "shapes": [],
    }
    for k, view in enumerate(views):
        r, c = k // cols, k % cols
        xa, ya = _axis_names(k)
        x0 = c * (width + gap_x)
        y1 = 1.0 - r * (height + gap_y)
        layout["xaxis" + xa[1:]] = {"domain": [x0, x0 + width], "visible": False,
                                    "constrain": "domain", "anchor": ya}
        # Square pixels: tie each y axis to its own x axis; images run top-down.
        layout["yaxis" + ya[1:]] = {"domain": [y1 - height, y1], "visible": False,
                                    "scaleanchor": xa, "anchor": xa, "autorange": "reversed"}
        if titles:
            # Panel title: level name, plus its dural sac area coloured by severity if known.
            extra, colour = (captions or {}).get(view.name, ("", "#fff"))
            text = f"<b>{esc(view.name)}</b>" + (
                f" <span style=\"color:{colour}\">{esc(extra)}</span>" if extra else "")
            layout["annotations"].append({
                "text": text, "x": x0 + width / 2, "y": y1, "xref": "paper",
                "yref": "paper", "xanchor": "center", "yanchor": "bottom", "showarrow": False,
                "font": {"size": 13, "color": "#fff"}})
        data.append({"type": "image", "source": slices.png_data_uri(view.grey),
                     "name": f"MRI {view.name}", "hoverinfo": "skip", "meta": {"role": "mri"},
                     "xaxis": xa, "yaxis": ya})
        for s in structures:
            rgba = slices.overlay_rgba(view.labels, s)
            if not rgba[..., 3].any():
                continue
            data.append({"type": "image", "source": slices.png_data_uri(rgba), "name": s.name,
                         "opacity": 0.8, "hoverinfo": "skip",
                         "meta": {"role": "overlay", "structure": s.name},
                         "xaxis": xa, "yaxis": ya})
    return {"data": data, "layout": layout}


def _level_annotations(fig: Fig, view: slices.View, levels: Image | None) -> None:
    """Write vertebra names (T12 … S1) anterior to each body on the sagittal picture."""
    if levels is None or view.levels is None:
        return
    lev = view.levels
    for vid in np.unique(lev):
        vid = int(vid)
        if vid <= 0 or vid >= 100:
            continue
        rows, cols = np.nonzero(lev == vid)
        if rows.size < 10:
            continue
        try:
            name = vertebra_name(vid)
        except Exception:
            continue
        fig["layout"]["annotations"].append({
            "x": float(cols.min()) - 4, "y": float(np.median(rows)), "text": esc(name),
            "showarrow": False, "xanchor": "right", "font": {"color": "#fff", "size": 13},
            "bgcolor": "rgba(0,0,0,0.55)"})


def _scale_bar(fig: Fig, view: slices.View, length_mm: float = 50.0) -> None:
    h, w = view.grey.shape
    px = length_mm / view.plane.pixel_mm
    x0, y0 = w - px - 8, h - 10
    fig["layout"]["shapes"].append({"type": "line", "x0": x0, "x1": x0 + px, "y0": y0, "y1": y0,
                                    "line": {"color": "#fff", "width": 3}})
    fig["layout"]["annotations"].append({
        "x": x0 + px / 2, "y": y0 - 4, "text": f"{length_mm:g} mm", "showarrow": False,
        "yanchor": "bottom", "font": {"color": "#fff", "size": 11}})


def _axial_lines(fig: Fig, sag: slices.View, planes: list[tuple[str, slices.Plane]]) -> None:
    """Dotted lines on the sagittal picture where the axial disc views cut it."""
    p = sag.plane
    for _name, plane in planes:
        pix = []
        for t in (plane.b_range[1], plane.b_range[0]):  # anterior end, posterior end
            e = plane.origin + t * plane.v
            a = float(np.dot(e - p.origin, p.u))
            b = float(np.dot(e - p.origin, p.v))
            pix.append(((a - p.a_range[0]) / p.pixel_mm, (p.b_range[1] - b) / p.pixel_mm))
        fig["layout"]["shapes"].append({
            "type": "line", "x0": pix[0][0], "y0": pix[0][1], "x1": pix[1][0], "y1": pix[1][1],
            "line": {"color": "rgba(255,255,255,0.7)", "width": 1, "dash": "dot"}})


def _spine_diagram(findings: pd.DataFrame, levels_present: list[str]) -> Fig:
    """Schematic column T12 … S1: bodies as blocks, discs as bars, coloured by worst finding."""
    groups = split_levels(levels_present)
    order = lumbar_order(groups["vertebra"] + groups["disc"])
    worst: dict[str, int] = {}
    text: dict[str, list[str]] = {}
    marks: dict[str, dict[str, int]] = {}  # level → short finding name → its own severity
    for r in findings.itertuples(index=False):
        worst[r.level] = max(worst.get(r.level, -1), int(r.severity))
        if r.severity >= 1:
            short = str(r.label).split(" (")[0]
            lv_marks = marks.setdefault(r.level, {})
            lv_marks[short] = max(lv_marks.get(short, 0), int(r.severity))
            side = f" {r.side}" if getattr(r, "side", "") else ""
            unit = ""
            text.setdefault(r.level, []).append(
                f"{r.label}{side}: {SEVERITY_NAMES[int(r.severity)]} "
                f"({measure_title(r.measure)} {r.value:.1f}{unit})"
            )
    shapes: list[dict] = []
    notes: list[dict] = []
    y = 0.0
    ys: dict[str, float] = {}
    for lv in order:
        is_disc = "-" in lv
        hgt = 0.9 if is_disc else 2.4
        sev = worst.get(lv, -1 if is_disc else 0)
        if lv not in worst and not is_disc:
            sev = -2  # vertebra without any finding rule applied: neutral grey-blue
        color = SEVERITY_COLORS.get(sev, "#9aa7b8")
        x0, x1 = (1.1, 3.9) if is_disc else (1.0, 4.0)
        line = {"color": "#333", "width": 1}
        if lv == "S1":
            hgt = 3.5
            shapes.append({"type": "path", "path": f"M 1,{-y} L 4,{-y} L 3.2,{-y - hgt} "
                           f"L 1.8,{-y - hgt} Z", "fillcolor": color, "line": line})
        else:
            shapes.append({"type": "rect", "x0": x0, "x1": x1, "y0": -y, "y1": -y - hgt,
                           "fillcolor": color, "line": line})
        ys[lv] = -y - hgt / 2
        y += hgt + 0.15
        notes.append({"x": 0.85, "y": ys[lv], "text": esc(lv), "showarrow": False,
                      "xanchor": "right", "font": {"size": 11 if is_disc else 13,
                                                   "color": "#555" if is_disc else "#222"}})
        if sev >= 1:
            # Short wording (label up to its bracket), one line per finding, each with its
            # own severity mark and colour (! moderate, !! severe).
            ordered = sorted(marks.get(lv, {}).items(), key=lambda kv: -kv[1])
            msg = "<br>".join(f"<span style=\"color:{SEVERITY_COLORS[k]}\">"
                              f"{esc(_SEVERITY_MARK[k] + ' ' + n)}</span>" for n, k in ordered)
            notes.append({"x": 4.2, "y": ys[lv], "text": msg, "showarrow": False,
                          "xanchor": "left", "align": "left",
                          "font": {"size": 11.5, "color": SEVERITY_COLORS[sev]}})
    hover_t = []
    for lv in ys:
        lines = text.get(lv) or [("no finding" if worst.get(lv, -1) == 0 else
                                  "no finding rule applies / not measured")]
        hover_t.append(esc(lv) + "<br>" + "<br>".join(esc(t) for t in lines))
    data = [{"type": "scatter", "x": [2.5] * len(ys), "y": list(ys.values()), "mode": "markers",
             "marker": {"opacity": 0, "size": 18}, "hovertext": hover_t, "hoverinfo": "text",
             "showlegend": False, "name": "levels"}]
    for sev, name in ((0, "no finding"), (1, "moderate / relative"), (2, "severe / absolute"),
                      (-1, "not measured")):
        data.append({"type": "scatter", "x": [None], "y": [None], "mode": "markers",
                     "name": name, "marker": {"symbol": "square", "size": 12,
                                              "color": SEVERITY_COLORS[sev]}})
    layout = {
        "xaxis": {"visible": False, "range": [-0.6, 14.5], "fixedrange": True},
        "yaxis": {"visible": False, "range": [-y - 0.2, 0.6], "fixedrange": True},
        "height": max(300, int(y * 17) + 60), "margin": {"l": 4, "r": 4, "t": 4, "b": 4},
        "plot_bgcolor": "#fff", "paper_bgcolor": "#fff", "dragmode": False,
        "legend": {"orientation": "h", "x": 0, "y": -0.02, "yanchor": "top"},
        "shapes": shapes, "annotations": notes,
    }
    return {"data": data, "layout": layout}


# ------------------------------------------------------------------------------ html parts
def _findings_summary(findings: pd.DataFrame) -> str:
    pos = findings[findings["severity"] >= 1].copy()
    if pos.empty:
        n_assessed = int((findings["severity"] >= 0).sum()) if not findings.empty else 0
        if n_assessed == 0:
            return ("<p class=\"warn\">No value could be checked against a finding threshold "
                    "(the measures were not computed or could not be measured). See "
                    "<a href=\"#qc\">Quality control</a>.</p>")
        return (f"<p class=\"ok\">No threshold finding at any measured level "
                f"({n_assessed} values checked).</p>")
    groups = split_levels(list(pos["level"].unique()))
    order = {lv: i for i, lv in enumerate(lumbar_order(groups["disc"] + groups["vertebra"]))}
    pos["_o"] = pos["level"].map(lambda lv: order.get(lv, 999))
    pos = pos.sort_values(["_o", "severity"], ascending=[True, False])
    items = []
    rules = {r.name: r for r in FINDING_RULES}
    for r in pos.itertuples(index=False):
        rule = rules.get(r.finding)
        unit = ""
        if rule is not None and not rule.relative:
            unit = {"mm2": " mm²", "mm": " mm", "percent": " %"}.get(
                rule.measure.rsplit("_", 1)[-1], "")
        side = f" ({'left' if r.side == 'L' else 'right'})" if getattr(r, "side", "") else ""
        val = (f"{r.score * 100:.0f} % of the other discs" if rule is not None and rule.relative
               else f"{r.value:.1f}{unit}")
        items.append(
            f"<li class=\"sev{int(r.severity)}\"><b>{esc(r.level)}</b>{esc(side)}: "
            f"{esc(r.label)} — <b>{esc(SEVERITY_NAMES[int(r.severity)])}</b> "
            f"({esc(measure_title(r.measure))} {esc(val)})</li>"
        )
    return "<ul class=\"findings\">" + "".join(items) + "</ul>"


_GLANCE = (
    ("dural_sac_area_mm2", "", "Dural sac area", "mm²"),
    ("disc_height_middle_mm", "", "Disc height (mid)", "mm"),
    ("disc_height_posterior_mm", "", "Disc height (post.)", "mm"),
    ("slip_percent", "", "Slip", "%"),
    ("foraminal_height_mm", "L", "Foramen height L", "mm"),
    ("foraminal_height_mm", "R", "Foramen height R", "mm"),
)


def _glance_html(tab: pd.DataFrame, flags: dict[tuple[str, str, str], int]) -> str:
    """Compact disc-level table of the measures behind the findings."""
    discs = split_levels(tab["level"].unique().tolist())["disc"]
    cols = [g for g in _GLANCE if ((tab["measure"] == g[0]) & (tab["side"] == g[1])).any()]
    if not discs or not cols:
        return ""
    vals = {(r.level, r.side, r.measure): r.value for r in tab.itertuples(index=False)}
    head = "".join(f"<th>{esc(t)}<span class=\"unit\">{esc(u)}</span></th>"
                   for _, _, t, u in cols)
    body = []
    for lv in discs:
        tds = []
        for m, side, _, _ in cols:
            v = vals.get((lv, side, m))
            sev = flags.get((lv, side, m), 0)
            txt = "—" if v is None or not np.isfinite(v) else f"{v:.1f}"
            tds.append(f"<td class=\"sev{sev}\">{esc(txt)}</td>" if sev else f"<td>{esc(txt)}</td>")
        body.append(f"<tr><th scope=\"row\">{esc(lv)}</th>{''.join(tds)}</tr>")
    return ("<h3>At a glance (disc levels)</h3><table class=\"glance\"><thead><tr><th>Level</th>"
            f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _spine_summary(tab: pd.DataFrame) -> str:
    rows = []
    for m, label in (("lumbar_lordosis_deg", "Lumbar lordosis (L1–S1)"),
                     ("sacral_slope_deg", "Sacral slope")):
        v = tab.loc[tab["measure"] == m, "value"]
        if len(v) and np.isfinite(v.iloc[0]):
            rows.append(f"<li>{esc(label)}: <b>{v.iloc[0]:.1f}°</b></li>")
    return f"<ul class=\"spine-sum\">{''.join(rows)}</ul>" if rows else ""


def _rules_html() -> str:
    rows = []
    for r in FINDING_RULES:
        rows.append(f"<tr><td>{esc(r.label)}</td><td><code>{esc(r.describe())}</code></td>"
                    f"<td>{esc(r.source)}</td></tr>")
    return ("<table class=\"rules\"><thead><tr><th>Finding</th><th>Rule</th><th>Source</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


#: Provenance keys that look like DICOM patient/study identifiers are never shown.
_IDENTIFYING = re.compile(r"patient|birth|accession|institution|physician|operator|"
                          r"referring|studyid|otherpatient|address|telephone", re.I)


def _safe_provenance(prov: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Drop identifying keys (privacy rule: no DICOM patient identifiers in reports)."""
    kept = {k: v for k, v in prov.items() if not _IDENTIFYING.search(str(k))}
    dropped = [str(k) for k in prov if k not in kept]
    return kept, dropped


def _provenance_html(prov: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in prov.items())
    return f"<table class=\"prov\"><tbody>{rows}</tbody></table>"


def _toggle_panel(structures: list[Structure]) -> str:
    boxes = []
    for s in structures:
        boxes.append(
            f"<label class=\"tog\"><input type=\"checkbox\" checked data-structure=\"{s.name}\">"
            f"<span class=\"sw\" style=\"background:{_rgb(s)}\"></span>{esc(s.label)}</label>"
        )
    return (
        "<div class=\"toggles\" id=\"structure-toggles\"><span class=\"lbl\">Structures:</span>"
        + "".join(boxes)
        + "<button type=\"button\" id=\"tog-all\">all</button>"
        "<button type=\"button\" id=\"tog-none\">none</button>"
        "<label class=\"op\">overlay opacity <input type=\"range\" id=\"overlay-opacity\" "
        "min=\"0\" max=\"1\" step=\"0.05\" value=\"0.8\"></label></div>"
    )


# ------------------------------------------------------------------------------ public API
def subject_report(
    image: Image,
    seg: Image,
    levels: Image | None,
    table: pd.DataFrame,
    out_path: str | os.PathLike[str],
    *,
    provenance: dict[str, Any],
    zscores: pd.DataFrame | None = None,
    warnings: Iterable[str] = (),
    subject: str | None = None,
    plotly_js: str | os.PathLike[str] = INLINE,
) -> Path:
    """Write a self-contained HTML report for one scan.

    Parameters
    ----------
    image : Image
        The MRI (any orientation; resliced in world space).
    seg : Image
        Semantic label map (contract §2). It may lie on a different grid than ``image``.
    levels : Image or None
        Level map (contract §3); names the vertebrae on the pictures and the disc views.
        Without it, disc views are named ``disc 1`` … from cranial to caudal.
    table : pandas.DataFrame
        Long measurement table of this scan (contract §5).
    out_path : path-like
        Output ``.html`` file (written atomically).
    provenance : dict
        Shown verbatim (package version, model version, input hash, date…); use
        :func:`spinemetrics.provenance.provenance`. Never put patient identifiers here.
    zscores : pandas.DataFrame, optional
        Normative comparison per value: ``level``, ``measure``, optional ``side``, ``value``,
        ``unit``, and ``z`` and/or ``centile``.
    warnings : iterable of str
        Quality-control warnings to show (e.g. from segmentation and level labelling).
    subject : str, optional
        Subject id shown in the title (default: the table's ``subject`` column, else the
        file stem). Shown escaped.
    plotly_js : str or path-like
        ``"inline"`` (default) embeds plotly.js, so the page is one self-contained file
        (~5 MB). A folder (absolute or relative to the page) instead holds one shared,
        versioned copy that the page loads by relative path (pages ~0.2–0.5 MB; still
        offline) — use it for batches of many reports.

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    tab = check_table(table)
    if not isinstance(image, Image) or not isinstance(seg, Image):
        raise InputError("image and seg must be spinemetrics.Image objects; read them with "
                         "spinemetrics.io.read_image / read_labels")
    image_c, seg_c = _canonical(image), _canonical(seg)
    levels_c = _canonical(levels) if levels is not None else None
    if subject is None:
        ids = [s for s in tab["subject"].astype(str).unique() if s]
        subject = ids[0] if ids else Path(out_path).name.split(".")[0]
    scans = [s for s in tab["scan"].astype(str).unique() if s]

    findings = classify_findings(tab)
    flags = {
        (r.level, r.side, r.measure): int(r.severity)
        for r in findings.itertuples(index=False) if r.severity >= 1
    }

    # --- pictures
    ids = _present_ids(seg_c.array)
    present = [s for s in Structure if s != Structure.background and int(s) in ids]
    sag_plane = slices.mid_sagittal_plane(image_c, seg_c)
    sag = slices.render_view("mid-sagittal", image_c, seg_c, sag_plane, levels_c)
    h, w = sag.grey.shape
    # ~430 px wide column: pick the height that keeps square pixels, within screen limits.
    sag_fig = _image_figure([sag], present, titles=False, cols=1,
                            panel_px=int(np.clip(430 * h / w, 420, 720)))
    _level_annotations(sag_fig, sag, levels_c)
    _scale_bar(sag_fig, sag)
    planes = slices.disc_planes(levels_c, seg_c)
    _axial_lines(sag_fig, sag, planes)
    axial_views = [slices.render_view(n, image_c, seg_c, p) for n, p in planes]
    captions = {}
    for r in tab[(tab["measure"] == "dural_sac_area_mm2") & (tab["side"] == "")].itertuples():
        if np.isfinite(r.value):
            sev = flags.get((r.level, "", "dural_sac_area_mm2"), 0)
            colour = {1: "#ffc15e", 2: "#ff6b5a"}.get(sev, "#d8e2ec")
            mark = f" {_SEVERITY_MARK[sev]}" if sev else ""
            captions[r.level] = (f"· dural sac {r.value:.0f} mm²{mark}", colour)
    ax_fig = (_image_figure(axial_views, present, titles=True, cols=min(3, len(axial_views)),
                            panel_px=230, captions=captions) if axial_views else None)

    spine_fig = _spine_diagram(findings, tab["level"].unique().tolist())

    provenance, dropped = _safe_provenance(dict(provenance))
    if dropped:
        log.warning("provenance fields not shown (patient identifiers): %s", ", ".join(dropped))

    # --- qc
    qc_rows = tab[(tab["qc"] != "ok") & (tab["qc"] != "")]
    qc_summary = qc_rows.groupby("qc").size().to_dict() if not qc_rows.empty else {}
    warn_list = [str(w) for w in warnings]
    warn_items = "".join(f"<li>{esc(w)}</li>" for w in warn_list)
    qc_items = "".join(f"<li>{esc(k)}: {v} value(s)</li>" for k, v in qc_summary.items())
    n_nan = int(tab["value"].isna().sum())
    qc_html = (
        (f"<ul class=\"warnings\">{warn_items}</ul>" if warn_items else
         "<p class=\"ok\">No warning from segmentation or level labelling.</p>")
        + (f"<p>Values flagged by quality control (marked † in the tables):</p><ul>{qc_items}</ul>"
           if qc_items else "")
        + (f"<p>{n_nan} value(s) could not be measured (shown as —).</p>" if n_nan else "")
    )

    title = f"Lumbar spine MRI report — {subject}"
    scan_txt = f" · scan {esc(', '.join(scans))}" if scans else ""
    created = provenance.get("created_utc", "")
    n_levels = len(split_levels(tab["level"].unique().tolist())["disc"])
    body = f"""
<header><h1>Lumbar spine MRI morphometry</h1>
<p class="sub">Subject <b id="subject-id">{esc(subject)}</b>{scan_txt}
{' · report of ' + esc(created) if created else ''}</p>
<p class="disclaimer">Automated measurements for research. Check the pictures: a measurement is
only as good as the segmentation it comes from. Not a diagnosis.</p></header>
<nav><a href="#findings">Findings</a><a href="#images-section">Images</a>
<a href="#disc-levels">Disc levels</a><a href="#measures">Measurements</a>
{'<a href="#norms">Normative</a>' if zscores is not None else ''}
<a href="#qc">Quality control</a><a href="#provenance">Provenance</a></nav>
<section id="findings"><h2>Key findings</h2>
<div class="cols"><div class="col-main">{_findings_summary(findings)}
<p class="hint">Thresholds and their sources are listed under <a href="#rules">Definitions</a>.
{len(warn_list)} quality-control warning(s){' — see <a href="#qc">Quality control</a>'
 if warn_list else ''}.</p>
{_glance_html(tab, flags)}{_spine_summary(tab)}</div>
<div class="col-side"><h3>Spine diagram</h3>
{figure_div('spine-diagram', spine_fig) if spine_fig["layout"]["shapes"] else
 '<p class="hint">No vertebral or disc level in the measurement table.</p>'}</div></div>
</section>
<section id="images-section"><h2>Images with segmentation</h2>
<p class="hint">Use the check boxes to show or hide structures in all pictures; scroll to zoom,
drag to pan, double-click to reset.</p>
{_toggle_panel(present)}
<div class="imgrow"><div class="imgcol-sag"><h3>Mid-sagittal</h3>
<p class="hint">Anterior on the left. Dotted lines: planes of the disc views.</p>
{figure_div('sagittal', sag_fig, cls='fig imgfig')}</div>
<div class="imgcol-ax" id="disc-levels"><h3>Disc levels (axial, perpendicular to each disc)</h3>
<p class="hint">Radiological convention: the patient's right is on the left, anterior is up.
{n_levels} disc level(s) measured.</p>
{figure_div('axial', ax_fig, cls='fig imgfig') if ax_fig is not None else
 '<p>No disc found in the segmentation: no axial view.</p>'}</div></div></section>
<section id="measures"><h2>Measurements</h2>
<p class="hint">Coloured cells meet a finding threshold (orange moderate, red severe). † = value
flagged by quality control (hover for the reason). — = not measurable.</p>
{wide_tables_html(tab, flags) or '<p>The measurement table is empty.</p>'}</section>
{'<section id="norms"><h2>Comparison with normative data</h2>' + zscore_table_html(zscores)
 + '</section>' if zscores is not None else ''}
<section id="qc"><h2>Quality control</h2>{qc_html}</section>
<section id="rules"><h2>Definitions</h2>{_rules_html()}
<p class="hint">Units: mm, mm², mm³, degrees (°), percent. Measures are taken along the local
spine axis, not the image axes (see the spinemetrics documentation).</p></section>
<section id="provenance"><h2>Provenance</h2>{_provenance_html(provenance)}</section>
"""
    scripts = (f"<script>var SM_STRUCTURES={script_json([s.name for s in present])};</script>"
               f"<script>{asset_text('subject.js')}</script>")
    html_text = page(title, body, scripts=scripts,
                     plotly_tag=plotly_script_tag(plotly_js, out_path))
    out = Path(out_path)
    atomic_write_text(out, html_text)
    log.info("subject report written to %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
