"""Subject-clustered regression models per measure (contract §6 ``models.csv``).

For every measure (and side) three fits on the long rows, clustered by subject:

* ``gee_exchangeable``: GEE, Gaussian, exchangeable working correlation, robust SEs;
* ``mixedlm``: linear mixed model with a random subject intercept (REML);

with ``value ~ C(level) + age + sex + neighbour finding`` (terms present only when the data
allow: covariates given, more than one level, non-constant columns), and for every binary
finding

* ``gee_logit``: logistic GEE (exchangeable) of ``finding ~ C(level) + age + sex +
  neighbour finding``; estimates are log-odds, with odds ratios in extra columns.

Term names: ``Intercept``, ``level[L2-L3]`` (treatment coding, reference = most cranial
level), ``age`` (per year), ``sex[M]`` (men vs women), ``neighbour_<finding>`` (the same
finding present at an adjacent level of the same subject). Wald z tests and 95 % CIs;
q-values are Benjamini–Hochberg within each method over all non-intercept terms (done by
:func:`spinemetrics.stats.run.run_stats`). Non-converged fits are reported with NaN numbers,
``converged=False`` and the reason in ``warning``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st

from spinemetrics.stats.correlation import level_position, order_levels
from spinemetrics.stats.estimators import Fit, gee_exchangeable, mixedlm_random_intercept

__all__ = [
    "MODEL_COLUMNS",
    "design_matrix",
    "fit_measure_models",
    "fit_finding_models",
    "neighbour_indicator",
]

#: Fixed leading columns of models.csv (contract §6); extra columns follow.
MODEL_COLUMNS = [
    "measure",
    "term",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "method",
    "n_subjects",
    "n_obs",
]
EXTRA_COLUMNS = ["side", "outcome", "converged", "warning", "odds_ratio", "or_ci_low", "or_ci_high"]


def neighbour_indicator(findings: pd.DataFrame, finding: str, side: str) -> pd.DataFrame:
    """Per (subject, level): 1 if ``finding`` is present at an adjacent level, else 0.

    Adjacent = same level kind, positions one apart (L3-L4 ↔ L2-L3, L4-L5). NaN when no
    adjacent level was assessed.
    """
    f = findings[(findings["finding"] == finding) & (findings["side"] == side)]
    f = f.dropna(subset=["positive"])
    if f.empty:
        return pd.DataFrame(columns=["subject", "level", "neighbour"])
    wide = f.pivot(index="subject", columns="level", values="positive")
    levels = order_levels(wide.columns)
    pos = {lv: level_position(lv) for lv in levels}
    out = {}
    for lv in levels:
        nbrs = [o for o in levels if abs(pos[o] - pos[lv]) == 1.0]
        out[lv] = wide[nbrs].max(axis=1, skipna=True) if nbrs else np.nan
    nb = pd.DataFrame(out, index=wide.index)
    nb = nb.reset_index().melt(id_vars="subject", var_name="level", value_name="neighbour")
    return nb


def design_matrix(
    frame: pd.DataFrame, outcome: str, terms: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """Complete-case design matrix for ``outcome ~ terms`` (clustered by subject).

    ``"level"`` expands to treatment dummies, ``"sex"`` to ``sex[M]``, numeric columns
    enter as they are. Constant columns are dropped (with a note).

    Returns
    -------
    y, x, groups : numpy.ndarray
    names : list of str
        Column names of ``x``.
    notes : list of str
        Dropped terms and why.
    """
    notes: list[str] = []
    empty = [t for t in terms if t in frame.columns and t != "level" and frame[t].isna().all()]
    for t in empty:
        notes.append(f"{t} dropped (no values)")
    terms = [t for t in terms if t not in empty]
    cols = [outcome, "subject", *terms]
    df = frame[[c for c in cols if c in frame.columns]].dropna()
    names = ["Intercept"]
    blocks = [np.ones((len(df), 1))]
    for term in terms:
        if term not in df.columns:
            continue
        if term == "level":
            levels = order_levels(df["level"].unique())
            if len(levels) < 2:
                continue
            for lv in levels[1:]:
                names.append(f"level[{lv}]")
                blocks.append((df["level"].to_numpy() == lv).astype(float)[:, None])
            continue
        if term == "sex":
            col = (df["sex"].to_numpy() == "M").astype(float)
            name = "sex[M]"
        else:
            col = pd.to_numeric(df[term], errors="coerce").to_numpy(dtype=float)
            name = term
        if col.size == 0 or np.nanstd(col) == 0.0:
            notes.append(f"{name} dropped (constant)")
            continue
        names.append(name)
        blocks.append(col[:, None])
    x = np.hstack(blocks)
    return (
        df[outcome].to_numpy(dtype=float),
        x,
        df["subject"].to_numpy(),
        names,
        notes,
    )


def _rows(fit: Fit, names, *, measure, method, side, outcome, notes, logit=False) -> list[dict]:
    z = st.norm.ppf(0.975)
    rows = []
    warning = "; ".join([*notes, fit.warning] if fit.warning else notes)
    for k, name in enumerate(names):
        est, se = float(fit.params[k]), float(fit.bse[k])
        lo, hi = est - z * se, est + z * se
        p = float(2 * st.norm.sf(abs(est / se))) if se > 0 and fit.converged else math.nan
        row = {
            "measure": measure,
            "term": name,
            "estimate": est,
            "std_error": se,
            "ci_low": lo,
            "ci_high": hi,
            "p_value": p,
            "q_value": math.nan,
            "method": method,
            "n_subjects": fit.n_groups,
            "n_obs": fit.n_obs,
            "side": side,
            "outcome": outcome,
            "converged": bool(fit.converged),
            "warning": warning,
            "odds_ratio": math.exp(est) if logit and math.isfinite(est) else math.nan,
            "or_ci_low": math.exp(lo) if logit and math.isfinite(lo) else math.nan,
            "or_ci_high": math.exp(hi) if logit and math.isfinite(hi) else math.nan,
        }
        rows.append(row)
    return rows


def _fit_or_fail(fn, y, x, groups, names, *args) -> Fit:
    if len(y) <= x.shape[1] or len(np.unique(groups)) < 2:
        return Fit.failed(len(names), len(y), len(np.unique(groups)), "too few observations")
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return Fit.failed(
            len(names),
            len(y),
            len(np.unique(groups)),
            "design matrix is rank deficient (collinear terms)",
        )
    try:
        return fn(y, x, groups, *args)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
        return Fit.failed(len(names), len(y), len(np.unique(groups)), f"fit failed: {exc}")


def fit_measure_models(
    frame: pd.DataFrame,
    measure: str,
    side: str = "",
    *,
    covariate_terms: tuple[str, ...] = ("age", "sex"),
    neighbour: pd.DataFrame | None = None,
    neighbour_name: str = "",
    methods: tuple[str, ...] = ("gee_exchangeable", "mixedlm"),
) -> list[dict]:
    """GEE and mixed-model rows (models.csv) for one measure and side.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long rows: subject, level, value and the covariate columns.
    measure, side : str
        Names copied into the rows.
    covariate_terms : tuple of str
        Subject covariates to adjust for (those present in ``frame``).
    neighbour : pandas.DataFrame, optional
        :func:`neighbour_indicator` output to add as term ``neighbour_<name>``.
    neighbour_name : str
        Finding name of the neighbour term.
    methods : tuple of str
        Subset of ``("gee_exchangeable", "mixedlm")``.
    """
    df = frame
    terms = ["level", *[c for c in covariate_terms if c in frame.columns]]
    if neighbour is not None and not neighbour.empty:
        term = f"neighbour_{neighbour_name}"
        df = df.merge(
            neighbour.rename(columns={"neighbour": term}), on=["subject", "level"], how="left"
        )
        terms.append(term)
    y, x, groups, names, notes = design_matrix(df, "value", terms)
    rows = []
    for method in methods:
        if method == "gee_exchangeable":
            fit = _fit_or_fail(gee_exchangeable, y, x, groups, names, "gaussian")
        elif method == "mixedlm":
            fit = _fit_or_fail(mixedlm_random_intercept, y, x, groups, names)
        else:
            raise ValueError(f"unknown method {method!r}")
        rows += _rows(
            fit, names, measure=measure, method=method, side=side, outcome="value", notes=notes
        )
    return rows


def fit_finding_models(
    findings: pd.DataFrame,
    finding: str,
    side: str,
    covariates: pd.DataFrame | None,
    *,
    covariate_terms: tuple[str, ...] = ("age", "sex"),
    with_neighbour: bool = True,
) -> list[dict]:
    """Logistic GEE rows (method ``gee_logit``) for one binary finding and side."""
    f = findings[(findings["finding"] == finding) & (findings["side"] == side)]
    f = f.dropna(subset=["positive"])[["subject", "level", "positive"]]
    terms = ["level"]
    if covariates is not None:
        present = [c for c in covariate_terms if c in covariates.columns]
        f = f.merge(covariates[["subject", *present]], on="subject", how="left")
        terms += present
    if with_neighbour:
        nb = neighbour_indicator(findings, finding, side)
        if not nb.empty:
            term = f"neighbour_{finding}"
            f = f.merge(nb.rename(columns={"neighbour": term}), on=["subject", "level"], how="left")
            terms.append(term)
    # A level where the finding is never (or always) present has an infinite log-odds
    # contrast (separation); such levels are left out of the logistic model, with a note.
    by_level = f.groupby("level")["positive"].agg(["min", "max"])
    flat = sorted(by_level.index[by_level["min"] == by_level["max"]])
    pre_notes = []
    if flat and len(flat) < len(by_level):
        f = f[~f["level"].isin(flat)]
        pre_notes.append(f"level(s) {', '.join(flat)} left out (finding constant there)")
    y, x, groups, names, notes = design_matrix(f, "positive", terms)
    notes = pre_notes + notes
    measure = str(findings.loc[findings["finding"] == finding, "measure"].iloc[0])
    if y.size and (y.min() == y.max()):
        fit = Fit.failed(
            len(names),
            len(y),
            len(np.unique(groups)),
            "finding is constant (never or always present)",
        )
    else:
        fit = _fit_or_fail(gee_exchangeable, y, x, groups, names, "binomial")
    rows = _rows(
        fit,
        names,
        measure=finding,
        method="gee_logit",
        side=side,
        outcome=f"{finding} ({measure})",
        notes=notes,
        logit=True,
    )
    return rows
