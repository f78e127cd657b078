"""Cohort dashboard: one offline HTML file from saved statistics and the cohort table.

Inputs are the files of ``spinemetrics stats`` (contract §6: ``correlations.csv``,
``models.csv``) — or the same tables as DataFrames — plus, optionally, the long measurement
table and a covariates table (subject, age, sex). The table is reduced by
:func:`spinemetrics.report.aggregate.aggregate_cohort` to counts per sex × age group, which the
page sums in the browser when filters change. This package never imports
:mod:`spinemetrics.stats`; the CLI composes the two.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spinemetrics.atomic import atomic_write_text
from spinemetrics.errors import InputError
from spinemetrics.labels import lumbar_order
from spinemetrics.report._html import INLINE, asset_text, esc, page, plotly_script_tag, script_json
from spinemetrics.report.aggregate import AGE_LABELS, aggregate_cohort
from spinemetrics.report.tables import measure_title, split_levels

__all__ = ["cohort_dashboard", "load_stats"]

log = logging.getLogger(__name__)

_TABLE_NAMES = ("measurements.parquet", "measurements.csv", "table.parquet", "table.csv")
_COVARIATE_NAMES = ("covariates.parquet", "covariates.csv")


def _read(path: Path) -> pd.DataFrame:
    """Read a measurement/covariates/statistics table (empty strings stay empty, not NaN)."""
    from spinemetrics.io import read_table

    if Path(path).is_dir():  # a cohort store: folder of Parquet files (as `stats` accepts)
        return pd.read_parquet(path)
    return read_table(path)


def load_stats(source: Any) -> dict[str, pd.DataFrame | None]:
    """Collect the statistics tables from a folder, a dict or a result object.

    Parameters
    ----------
    source : path-like, dict or object
        A ``spinemetrics stats`` output folder; a dict with keys ``correlations``,
        ``models`` (and optionally ``table``, ``covariates``); or an object with those
        attributes (e.g. the result of ``run_stats``).

    Returns
    -------
    dict
        ``correlations``, ``models``, ``table``, ``covariates`` (each a DataFrame or None).
    """
    keys = ("correlations", "models", "table", "covariates", "neighbour_odds", "adjacency")
    out: dict[str, pd.DataFrame | None] = dict.fromkeys(keys)
    if source is None:
        return out
    if isinstance(source, (str, os.PathLike)):
        d = Path(source)
        if not d.is_dir():
            raise InputError(f"statistics folder {d} not found; run 'spinemetrics stats TABLE "
                             "-o DIR' first or pass the folder it wrote")
        for key in ("correlations", "models", "neighbour_odds", "adjacency"):
            p = d / f"{key}.csv"
            out[key] = _read(p) if p.exists() else None
        for name in _TABLE_NAMES:
            if (d / name).exists():
                out["table"] = _read(d / name)
                break
        for name in _COVARIATE_NAMES:
            if (d / name).exists():
                out["covariates"] = _read(d / name)
                break
        return out
    for key in keys:
        val = source.get(key) if isinstance(source, dict) else getattr(source, key, None)
        if val is not None and not isinstance(val, pd.DataFrame):
            val = _read(Path(val))
        out[key] = val
    return out


def _nan_to_none(v: Any) -> Any:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return f if math.isfinite(f) else None


def _corr_payload(corr: pd.DataFrame | None) -> dict:
    """{measure: {side: {levels, rho, q, n}}} level × level matrices (symmetric)."""
    if corr is None or corr.empty:
        return {}
    need = {"measure", "level_a", "level_b", "rho"}
    if not need <= set(corr.columns):
        raise InputError("correlations table lacks columns "
                         f"{sorted(need - set(corr.columns))}; expected contract §6 columns")
    c = corr.copy()
    for col in ("rho", "q_value", "n"):
        if col in c.columns:
            c[col] = pd.to_numeric(c[col], errors="coerce")
    c["side"] = c["side"].fillna("").astype(str) if "side" in c.columns else ""
    out: dict = {}
    for (measure, side), grp in c.groupby(["measure", "side"], sort=False):
        levels = split_levels(
            list(set(grp["level_a"].astype(str)) | set(grp["level_b"].astype(str))))
        order = lumbar_order(levels["vertebra"] + levels["disc"]) + levels["spine"]
        idx = {lv: i for i, lv in enumerate(order)}
        n = len(order)
        rho = np.full((n, n), np.nan)
        q = np.full((n, n), np.nan)
        cnt = np.zeros((n, n))
        np.fill_diagonal(rho, 1.0)
        for r in grp.itertuples(index=False):
            i, j = idx[str(r.level_a)], idx[str(r.level_b)]
            for a, b in ((i, j), (j, i)):
                rho[a, b] = r.rho
                q[a, b] = getattr(r, "q_value", np.nan)
                cnt[a, b] = getattr(r, "n", 0) if np.isfinite(getattr(r, "n", 0)) else 0
        out.setdefault(str(measure), {})[side] = {
            "levels": order,
            "rho": [[_nan_to_none(v) for v in row] for row in rho],
            "q": [[_nan_to_none(v) for v in row] for row in q],
            "n": cnt.astype(int).tolist(),
        }
    # Prefer the unsided matrix, else "any", else the first side.
    for measure, sides in out.items():
        pref = next((s for s in ("", "any", "L") if s in sides), next(iter(sides)))
        out[measure] = {pref: sides[pref]}
    return out


def _models_payload(models: pd.DataFrame | None) -> list[dict]:
    if models is None or models.empty:
        return []
    need = {"measure", "term", "estimate", "ci_low", "ci_high"}
    if not need <= set(models.columns):
        raise InputError("models table lacks columns "
                         f"{sorted(need - set(models.columns))}; expected contract §6 columns")
    keep = [c for c in ("measure", "term", "estimate", "std_error", "ci_low", "ci_high",
                        "p_value", "q_value", "method", "n_subjects", "n_obs", "side")
            if c in models.columns]
    m = models[keep].copy()
    for col in keep:
        if col not in ("measure", "term", "method", "side"):
            m[col] = pd.to_numeric(m[col], errors="coerce")
    m = m[np.isfinite(pd.to_numeric(m["estimate"], errors="coerce"))]
    if "side" in m.columns:
        m["side"] = m["side"].fillna("").astype(str)
    rows = []
    for r in m.to_dict(orient="records"):
        rows.append({k: _nan_to_none(v) if k not in ("measure", "term", "method", "side")
                     else ("" if v is None else str(v)) for k, v in r.items()})
    return rows


_ODDS_COLUMNS = ("finding", "level", "neighbour_level", "side", "n", "n_both", "odds_ratio",
                 "ci_low", "ci_high", "p_value", "q_value", "or_method")
_ADJ_COLUMNS = ("measure", "side", "level_kind", "n_subjects", "mean_rho_adjacent",
                "mean_rho_distant", "difference", "p_value", "q_value", "n_permutations")


def _frame_html(df: pd.DataFrame | None, columns: tuple[str, ...], summary: str,
                max_rows: int = 500) -> str:
    """A collapsible, escaped HTML table of selected columns (numbers to 3 significant digits)."""
    if df is None or df.empty:
        return ""
    cols = [c for c in columns if c in df.columns]
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = []
    for row in df[cols].head(max_rows).itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)):
                text = "—" if not np.isfinite(v) else (f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}")
            else:
                text = "" if v is None else str(v)
            cells.append(f"<td>{esc(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = (f"<p class=\"note\">First {max_rows} of {len(df)} rows; the full table is in the "
            "stats folder.</p>" if len(df) > max_rows else "")
    return (f"<details><summary>{esc(summary)} ({len(df)} rows)</summary><div class=\"tablewrap\">"
            f"<table class=\"stats\"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
            f"</tbody></table></div>{more}</details>")


def _select(id_: str, label: str, options: list[tuple[str, str]], value: str = "",
            disabled: bool = False) -> str:
    opts = "".join(
        f"<option value=\"{esc(v)}\"{' selected' if v == value else ''}>{esc(t)}</option>"
        for v, t in options
    )
    dis = " disabled" if disabled else ""
    return f"<label>{esc(label)} <select id=\"{id_}\"{dis}>{opts}</select></label>"


def cohort_dashboard(
    stats_dir_or_result: Any,
    out_path: str | os.PathLike[str],
    *,
    table: pd.DataFrame | str | os.PathLike[str] | None = None,
    covariates: pd.DataFrame | str | os.PathLike[str] | None = None,
    sample_cap: int = 400,
    title: str = "Cohort dashboard",
    plotly_js: str | os.PathLike[str] = INLINE,
) -> Path:
    """Write the cohort dashboard as one self-contained HTML file.

    Parameters
    ----------
    stats_dir_or_result : path-like, dict, object or None
        Output folder of ``spinemetrics stats`` (``correlations.csv``, ``models.csv``,
        optionally ``measurements.parquet`` and ``covariates.csv``), or the same tables in a
        dict / result object (see :func:`load_stats`).
    out_path : path-like
        Output ``.html`` file (written atomically).
    table : DataFrame or path, optional
        Long measurement table (contract §5); overrides one found in the stats folder.
        Needed for distributions, centiles, prevalence and neighbouring-level odds.
    covariates : DataFrame or path, optional
        One row per subject: ``subject``, ``age`` (years), ``sex`` — enables the filters.
    sample_cap : int
        At most this many random subjects are embedded as points (privacy and size).
    title : str
        Page title (escaped).
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
    stats = load_stats(stats_dir_or_result)
    if table is not None:
        stats["table"] = table if isinstance(table, pd.DataFrame) else _read(Path(table))
    if covariates is not None:
        stats["covariates"] = (covariates if isinstance(covariates, pd.DataFrame)
                               else _read(Path(covariates)))
    tab = stats["table"]
    if tab is None and stats["correlations"] is None and stats["models"] is None:
        raise InputError("nothing to show: give a stats folder with correlations.csv/models.csv "
                         "or a measurement table (--table)")
    if tab is not None:
        data = aggregate_cohort(tab, stats["covariates"], sample_cap=sample_cap)
    else:
        data = {"meta": {"n_subjects": None, "n_rows": 0, "has_covariates": False,
                         "group_n": [[0] * len(AGE_LABELS)] * 3, "sample_cap": 0},
                "levels": [], "sexes": ["F", "M", "unknown"], "age_groups": list(AGE_LABELS),
                "measures": [], "hist": {}, "centiles": {}, "findings": {},
                "sample": {"subject": [], "age": [], "sex": [], "values": {}}}
    data["corr"] = _corr_payload(stats["correlations"])
    data["models"] = _models_payload(stats["models"])
    measures = [m["name"] for m in data["measures"]]
    for extra in list(data["corr"]) + [r["measure"] for r in data["models"]]:
        if extra not in measures:
            measures.append(extra)
            data["measures"].append({"name": extra, "title": measure_title(extra), "unit": ""})
    default_measure = "dural_sac_area_mm2" if "dural_sac_area_mm2" in measures else (
        measures[0] if measures else "")
    findings = list(data["findings"])
    meta = data["meta"]
    has_cov = bool(meta.get("has_covariates"))

    m_opts = [(m["name"], m["title"]) for m in data["measures"]]
    sex_opts = [("all", "all"), ("F", "women"), ("M", "men")]
    age_opts = [("all", "all ages")] + [(a, a) for a in AGE_LABELS[:-1]]
    f_opts = [(f, data["findings"][f]["label"]) for f in findings]
    disabled = "" if has_cov else " (no covariates given: filters inactive)"
    filters = (
        "<div class=\"filters\" id=\"filters\">"
        + _select("f-measure", "Measure", m_opts, default_measure)
        + _select("f-sex", "Sex", sex_opts, "all", disabled=not has_cov)
        + _select("f-age", "Age group", age_opts, "all", disabled=not has_cov)
        + (_select("f-finding", "Finding", f_opts, findings[0]) if findings else "")
        + f"<span class=\"note\">Selected: <b id=\"kpi-selected\">–</b> subjects{esc(disabled)}"
        "</span></div>"
    )
    n_subj = meta.get("n_subjects")
    n_rows = int(meta.get("n_rows") or 0)
    age_med = meta.get("age_median")
    n_discs = len(split_levels(data["levels"])["disc"])
    kpis = [
        ("subjects", f"{n_subj:,}" if n_subj else "—"),
        ("values", f"{n_rows:,}"),
        ("women / men", f"{meta.get('n_female', '—')} / {meta.get('n_male', '—')}"),
        ("median age", f"{age_med:.0f}" if age_med else "—"),
        ("disc levels", str(n_discs)),
    ]
    kpi = "<div class=\"kpi\">" + "".join(
        f"<div>{esc(k)}<b>{esc(v)}</b></div>" for k, v in kpis) + "</div>"
    body = f"""
<header><h1>{esc(title)}</h1>
<p class="sub">spinemetrics cohort summary · all figures are aggregated (counts per sex × age
group); at most {esc(meta.get('sample_cap', 0))} randomly sampled subjects are shown as points.</p>
</header>
<nav><a href="#overview">Overview</a><a href="#distributions">Distributions</a>
<a href="#correlations">Correlations</a><a href="#findings">Findings</a>
<a href="#models">Models</a><a href="#centiles">Centiles</a></nav>
{filters}
<section id="overview"><h2>Overview</h2>{kpi}
<p class="hint">Filters (sex, age group) apply to distributions, prevalence, neighbouring-level
odds and centile points. Correlations and model coefficients are whole-cohort results from
<code>spinemetrics stats</code>.</p></section>
<section id="distributions"><h2>Distributions by level</h2><div class="grid2">
<div id="dist" class="fig"></div><div id="dist-hist" class="fig"></div></div></section>
<section id="correlations"><h2>Level × level correlation</h2>
<div id="corr" class="fig"></div>
{_frame_html(stats.get("adjacency"), _ADJ_COLUMNS,
             "Do adjacent levels correlate more than distant ones? (permutation test)")}
</section>
<section id="findings"><h2>Findings</h2>
<p class="hint" id="finding-def"></p><div class="grid2">
<div id="prev" class="fig"></div><div id="odds" class="fig"></div></div>
{_frame_html(stats.get("neighbour_odds"), _ODDS_COLUMNS,
             "Whole-cohort neighbouring-level odds ratios from spinemetrics stats (exact CI)")}
</section>
<section id="models"><h2>Regression models</h2><div id="forest" class="fig"></div></section>
<section id="centiles"><h2>Centile curves</h2>
<div class="filters" style="position:static">
<label>Level <select id="f-level"></select></label>
<label>Highlight subject <input id="f-highlight" type="search" placeholder="subject id"
 autocomplete="off"></label><span class="note" id="highlight-status"></span></div>
<p class="hint">Empirical centiles (P3, P10, P25, P50, P75, P90, P97) per 5-year age bin with at
least 20 subjects. Points: the random sample; red diamonds lie outside P3–P97.</p>
<div id="centile" class="fig"></div></section>
"""
    scripts = (f"<script>var SM_DATA={script_json(data)};</script>"
               f"<script>{asset_text('dashboard.js')}</script>")
    html_text = page(title, body, scripts=scripts,
                     plotly_tag=plotly_script_tag(plotly_js, out_path))
    out = Path(out_path)
    atomic_write_text(out, html_text)
    log.info("dashboard written to %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
