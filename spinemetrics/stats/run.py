"""``run_stats``: the whole cohort analysis, one measure at a time, written to a folder.

Outputs (all written atomically; column lists in docs/statistics.md):

``correlations.csv``    between-level Spearman ρ with CIs, p and BH q (contract §6)
``models.csv``          GEE / mixed-model / logistic-GEE coefficients (contract §6)
``adjacency.csv``       adjacent-vs-distant correlation permutation test per measure/side
``prevalence.csv``      prevalence of each binary finding by level with Wilson CIs
``neighbour_odds.csv``  odds ratio of a finding given the finding at the adjacent level
``findings.csv``        definitions of the binary findings (threshold + source)
``norms.csv``           age/sex normative model fitted to this cohort (needs age and sex)
``zscores_summary.csv`` share of low/high values vs. the reference norms, by measure/level
``warnings.csv``        what was dropped, skipped or did not converge, and why
``summary.json``        counts, settings, file list and provenance (no patient identifiers)
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from spinemetrics.atomic import atomic_path, atomic_write_text
from spinemetrics.errors import StatsError
from spinemetrics.provenance import provenance
from spinemetrics.stats.correlation import (
    CORRELATION_COLUMNS,
    adjacency_test,
    level_correlations,
    level_position,
)
from spinemetrics.stats.covariates import read_covariates
from spinemetrics.stats.findings import (
    binary_findings,
    finding_definitions,
    neighbour_odds,
    prevalence,
)
from spinemetrics.stats.models import (
    EXTRA_COLUMNS,
    MODEL_COLUMNS,
    fit_finding_models,
    fit_measure_models,
    neighbour_indicator,
)
from spinemetrics.stats.multitest import fdr_bh
from spinemetrics.stats.norms import NormModel, fit_norms, load_default_norms, zscores
from spinemetrics.stats.store import open_store

__all__ = ["StatsResult", "run_stats", "OUTPUT_FILES"]

log = logging.getLogger(__name__)

OUTPUT_FILES = {
    "correlations": "correlations.csv",
    "models": "models.csv",
    "adjacency": "adjacency.csv",
    "prevalence": "prevalence.csv",
    "neighbour_odds": "neighbour_odds.csv",
    "findings": "findings.csv",
    "norms": "norms.csv",
    "zscores_summary": "zscores_summary.csv",
    "warnings": "warnings.csv",
    "summary": "summary.json",
}

ADJACENCY_COLUMNS = [
    "measure",
    "side",
    "level_kind",
    "n_subjects",
    "n_levels",
    "mean_rho_adjacent",
    "mean_rho_distant",
    "difference",
    "p_value",
    "q_value",
    "n_permutations",
]
WARNING_COLUMNS = ["stage", "measure", "side", "message"]


@dataclass
class StatsResult:
    """Everything :func:`run_stats` computed, as DataFrames, plus where it was written.

    Attributes
    ----------
    out_dir : Path
        Output folder.
    files : dict
        Output name → path (see :data:`OUTPUT_FILES`).
    correlations, models, adjacency, prevalence, neighbour_odds, findings, norms,
    zscores_summary, warnings : pandas.DataFrame
        The tables written to the CSV files of the same names.
    summary : dict
        n_subjects, n_rows, measures (with units), settings, provenance.
    """

    out_dir: Path
    files: dict[str, Path]
    correlations: pd.DataFrame
    models: pd.DataFrame
    adjacency: pd.DataFrame
    prevalence: pd.DataFrame
    neighbour_odds: pd.DataFrame
    findings: pd.DataFrame
    norms: pd.DataFrame
    zscores_summary: pd.DataFrame
    warnings: pd.DataFrame
    summary: dict = field(default_factory=dict)

    @classmethod
    def from_dir(cls, out_dir: str | os.PathLike[str]) -> StatsResult:
        """Reload a result from the files written by :func:`run_stats`."""
        out = Path(out_dir)
        summary_path = out / OUTPUT_FILES["summary"]
        if not summary_path.exists():
            raise StatsError(f"{out} holds no summary.json; run `spinemetrics stats` into it first")
        frames = {}
        files = {}
        for key, name in OUTPUT_FILES.items():
            if key == "summary":
                continue
            path = out / name
            files[key] = path
            try:
                df = pd.read_csv(path, keep_default_na=False, na_values=["", "NaN", "nan"])
            except (FileNotFoundError, pd.errors.EmptyDataError):
                df = pd.DataFrame()
            # Unsided rows have side "" (contract §5), which CSV readers turn into NaN.
            for col in ("side", "warning"):
                if col in df.columns:
                    df[col] = df[col].fillna("").astype(str)
            frames[key] = df
        files["summary"] = summary_path
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        return cls(out_dir=out, files=files, summary=summary, **frames)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")
    return path


def _kind(level: str) -> str:
    pos = level_position(level)
    if math.isnan(pos):
        return "other"
    return "disc" if pos % 1.0 else "vertebra"


def run_stats(
    table: pd.DataFrame | str | os.PathLike[str],
    covariates: pd.DataFrame | str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = "stats_out",
    *,
    ci: str = "fisher",
    n_boot: int = 1000,
    n_permutations: int = 999,
    methods: tuple[str, ...] = ("gee_exchangeable", "mixedlm"),
    neighbour_terms: bool = True,
    adjust: tuple[str, ...] = ("age", "sex"),
    reference_norms: NormModel | str | None = "default",
    qc_ok_only: bool = True,
    seed: int = 0,
    store_dir: str | os.PathLike[str] | None = None,
    threads: int = 2,
    memory_limit: str = "4GB",
    progress: Callable[[str, int, int], None] | None = None,
) -> StatsResult:
    """Cohort statistics of a long measurement table; writes the CSVs of contract §6.

    Parameters
    ----------
    table : DataFrame or path
        Contract §5 table (DataFrame, ``.csv``/``.parquet`` file, or folder of Parquet files).
    covariates : DataFrame or path, optional
        One row per subject with ``subject`` and e.g. ``age``, ``sex``. Without it models
        adjust for level only and no norms are fitted.
    out_dir : path
        Output folder (created).
    ci : {"fisher", "bootstrap"}
        CI method for correlations; ``n_boot`` resamples for the bootstrap.
    n_permutations : int
        Permutations of the adjacent-vs-distant test (0 skips the test).
    methods : tuple of str
        Continuous-measure models: ``"gee_exchangeable"`` and/or ``"mixedlm"``.
    neighbour_terms : bool
        Add ``neighbour_<finding>`` (same finding at an adjacent level) to the models.
    adjust : tuple of str
        Covariate columns the models adjust for (``sex`` as men vs women, the others
        numeric, e.g. ``("age", "sex", "bmi")``).
    reference_norms : NormModel, "default" or None
        Norms for ``zscores_summary.csv``; ``"default"`` = the shipped simulated norms.
    qc_ok_only : bool
        Analyse only rows with ``qc == "ok"``.
    seed : int
        Seed for bootstrap and permutations (results are reproducible).
    store_dir : path, optional
        Keep the cleaned Parquet cohort store there (default: temporary, deleted).
    threads, memory_limit
        DuckDB limits.
    progress : callable, optional
        ``progress(measure, i, n)`` called before each measure (for progress bars).

    Returns
    -------
    StatsResult
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cov = read_covariates(covariates)
    warn_rows: list[dict] = []

    def warn(stage: str, message: str, measure: str = "", side: str = "") -> None:
        warn_rows.append({"stage": stage, "measure": measure, "side": side, "message": message})
        log.info("%s %s %s: %s", stage, measure, side, message)

    cov_terms: tuple[str, ...] = ()
    if cov is None:
        warn("input", "no covariates given: models adjust for level only; no norms fitted")
    else:
        cov_terms = tuple(c for c in adjust if c in cov.columns)
        for c in adjust:
            if c not in cov.columns:
                warn("input", f"covariates have no '{c}' column: models do not adjust for {c}")
            elif c != "sex" and not pd.api.types.is_numeric_dtype(cov[c]):
                raise StatsError(
                    f"covariate {c!r} is not numeric; give numbers or leave it out of adjust"
                )
        for c in cov_terms:
            if cov[c].nunique(dropna=True) < 2:
                warn("input", f"covariate '{c}' is constant: left out of the models")
        cov_terms = tuple(c for c in cov_terms if cov[c].nunique(dropna=True) >= 2)
    if isinstance(reference_norms, str):
        if reference_norms != "default":
            raise StatsError(
                f"reference_norms={reference_norms!r}; use 'default', a NormModel or None"
            )
        reference_norms = load_default_norms()

    store = open_store(
        table, cov, store_dir, qc_ok_only=qc_ok_only, threads=threads, memory_limit=memory_limit
    )
    try:
        for w in store.warnings:
            warn("input", w)
        corr_rows, adj_rows, model_rows = [], [], []
        prev_frames, odds_frames, norm_frames, zsum_frames = [], [], [], []
        measures = store.measures
        for i, measure in enumerate(measures):
            if progress is not None:
                progress(measure, i, len(measures))
            frame = store.measure_frame(measure, cov_terms)
            cov_sid = store.covariates_sid
            frame["measure"] = measure
            frame["unit"] = store.units[measure]
            for side in sorted(frame["side"].unique()):
                sub = frame[frame["side"] == side]
                _analyse_series(
                    sub,
                    measure,
                    side,
                    cov_sid,
                    cov_terms,
                    warn,
                    corr_rows,
                    adj_rows,
                    model_rows,
                    prev_frames,
                    odds_frames,
                    ci=ci,
                    n_boot=n_boot,
                    seed=seed,
                    n_permutations=n_permutations,
                    methods=methods,
                    neighbour_terms=neighbour_terms,
                )
            if cov is not None and {"age", "sex"} <= set(cov.columns):
                nm = fit_norms(frame, cov_sid)
                norm_frames.append(nm.table)
                if reference_norms is not None:
                    zsum_frames.append(_zscore_summary(frame, cov_sid, reference_norms))
        if progress is not None:
            progress("writing outputs", len(measures), len(measures))
        summary = {
            "n_subjects": int(store.n_subjects),
            "n_rows": int(store.n_rows),
            "measures": {m: store.units[m] for m in measures},
            "covariates": [] if cov is None else [c for c in cov.columns if c != "subject"],
            "settings": {
                "adjust": list(cov_terms),
                "ci": ci,
                "n_boot": n_boot,
                "n_permutations": n_permutations,
                "methods": list(methods),
                "neighbour_terms": neighbour_terms,
                "qc_ok_only": qc_ok_only,
                "seed": seed,
                "reference_norms": (
                    reference_norms.meta.get("population", "custom")
                    if reference_norms is not None
                    else None
                ),
            },
            "provenance": provenance(table if isinstance(table, (str, os.PathLike)) else None),
        }
    finally:
        store.close()

    corr = pd.DataFrame(
        corr_rows, columns=CORRELATION_COLUMNS + ["side", "distance", "adjacent", "ci_method"]
    )
    corr["q_value"] = fdr_bh(corr["p_value"].to_numpy(dtype=float))
    adj = pd.DataFrame(adj_rows, columns=ADJACENCY_COLUMNS)
    adj["q_value"] = fdr_bh(adj["p_value"].to_numpy(dtype=float))
    models = pd.DataFrame(model_rows, columns=MODEL_COLUMNS + EXTRA_COLUMNS)
    for _method, idx in models.groupby("method").groups.items():
        fam = models.loc[idx]
        fam = fam[fam["term"] != "Intercept"]
        models.loc[fam.index, "q_value"] = fdr_bh(fam["p_value"].to_numpy(dtype=float))
    prev = _concat(prev_frames)
    odds = _concat(odds_frames)
    if not odds.empty:
        odds["q_value"] = fdr_bh(odds["p_value"].to_numpy(dtype=float))
    norms_df = _concat(norm_frames)
    zsum = _concat(zsum_frames)
    warnings_df = pd.DataFrame(warn_rows, columns=WARNING_COLUMNS)
    defs = finding_definitions()

    tables = {
        "correlations": corr,
        "models": models,
        "adjacency": adj,
        "prevalence": prev,
        "neighbour_odds": odds,
        "findings": defs,
        "norms": norms_df,
        "zscores_summary": zsum,
        "warnings": warnings_df,
    }
    files = {}
    for key, df in tables.items():
        files[key] = _write_csv(df, out / OUTPUT_FILES[key])
    summary["files"] = {k: p.name for k, p in files.items()}
    files["summary"] = atomic_write_text(
        out / OUTPUT_FILES["summary"], json.dumps(summary, indent=2, default=str)
    )
    return StatsResult(out_dir=out, files=files, summary=summary, **tables)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _analyse_series(
    sub,
    measure,
    side,
    cov,
    cov_terms,
    warn,
    corr_rows,
    adj_rows,
    model_rows,
    prev_frames,
    odds_frames,
    *,
    ci,
    n_boot,
    seed,
    n_permutations,
    methods,
    neighbour_terms,
) -> None:
    """Correlations, adjacency test, findings and models of one measure on one side."""
    levels = sorted(sub["level"].unique())
    wide = sub.pivot(index="subject", columns="level", values="value")
    n_levels_per_subject = wide.notna().sum(axis=1)
    single = int((n_levels_per_subject == 1).sum())
    if len(levels) < 2:
        warn(
            "correlations",
            "measured at one level only: no between-level correlations",
            measure,
            side,
        )
    else:
        if single:
            warn(
                "correlations",
                f"{single} subject(s) have this measure at one level only; they"
                " add nothing to between-level correlations",
                measure,
                side,
            )
        const = [lv for lv in wide.columns if wide[lv].nunique() < 2]
        if const:
            warn(
                "correlations",
                f"constant at level(s) {', '.join(const)}: rho undefined (NaN)",
                measure,
                side,
            )
        corr_rows += level_correlations(
            wide, measure=measure, side=side, ci=ci, n_boot=n_boot, seed=seed
        ).to_dict(orient="records")
        if n_permutations > 0:
            for kind in ("disc", "vertebra"):
                cols = [lv for lv in wide.columns if _kind(lv) == kind]
                if len(cols) >= 3:
                    res = adjacency_test(wide[cols], n_permutations=n_permutations, seed=seed)
                    adj_rows.append(
                        {
                            "measure": measure,
                            "side": side,
                            "level_kind": kind,
                            "q_value": math.nan,
                            **res,
                        }
                    )
    # Binary findings derived from this measure.
    found = binary_findings(sub, measure)
    primary = None
    if not found.empty:
        prev_frames.append(prevalence(found))
        odds_frames.append(neighbour_odds(found))
        names = list(pd.unique(found["finding"]))
        primary = names[0]
        for name in names:
            rows = fit_finding_models(
                found, name, side, cov, covariate_terms=cov_terms, with_neighbour=neighbour_terms
            )
            if rows and not rows[0]["converged"]:
                warn(
                    "models",
                    f"gee_logit for {name} not estimated: {rows[0]['warning']}",
                    measure,
                    side,
                )
            model_rows += rows
    nb = None
    if neighbour_terms and primary is not None:
        nb = neighbour_indicator(found, primary, side)
    rows = fit_measure_models(
        sub,
        measure,
        side,
        covariate_terms=cov_terms,
        neighbour=nb,
        neighbour_name=primary or "",
        methods=methods,
    )
    for r in rows:
        if not r["converged"] and r["term"] == "Intercept":
            warn("models", f"{r['method']} did not converge: {r['warning']}", measure, side)
    model_rows += rows
    if cov is not None:
        missing_cov = [c for c in cov_terms if c in sub.columns and sub[c].isna().any()]
        if missing_cov:
            n_sub = sub.loc[sub[missing_cov].isna().any(axis=1), "subject"].nunique()
            warn(
                "models",
                f"{n_sub} subject(s) lack {', '.join(missing_cov)}: left out of the models",
                measure,
                side,
            )


def _zscore_summary(frame: pd.DataFrame, cov: pd.DataFrame, norms: NormModel) -> pd.DataFrame:
    cols = [c for c in ("subject", "level", "side", "measure", "value", "age", "sex") if c in frame]
    z = zscores(frame[cols], cov, norms)
    z = z[z["norm_flag"].isin(["low", "high", "normal", "extrapolated"])]
    if z.empty:
        return pd.DataFrame()
    z = z.assign(
        low=(z["norm_flag"] == "low").astype(float), high=(z["norm_flag"] == "high").astype(float)
    )
    g = z.groupby(["measure", "level", "side"], sort=False)
    out = g.agg(
        n=("z", "count"),
        mean_z=("z", "mean"),
        sd_z=("z", "std"),
        share_low=("low", "mean"),
        share_high=("high", "mean"),
    ).reset_index()
    out["reference"] = str(norms.meta.get("population", "custom"))
    return out
