"""Binary findings per level, their prevalence and neighbour odds ratios.

Thresholds come from :data:`spinemetrics.findings.FINDING_RULES` (one place for thresholds
and their MEASURES.md sources, shared with the subject report), so a level flagged in a
report is the level counted here. Each rule gives a binary finding ``<rule>`` (severity ≥ 1:
relative/moderate, e.g. dural-sac area < 100 mm², Bolender 1985 [S]) and, when the rule has a
second threshold, ``<rule>_severe`` (severity 2: absolute, e.g. < 75 mm², Schönström &
Hansson 1988 [V]).

* Prevalence by level (and side; ``side="any"`` = either side) with Wilson score intervals
  (Wilson EB. J Am Stat Assoc 1927;22:209–212).
* Odds ratio of a finding at a level given the same finding at the adjacent level, from the
  2×2 table over subjects assessed at both (one pair per subject, so subjects are
  independent): conditional maximum-likelihood OR with exact CI (Cornfield) and Fisher's
  exact p for up to 5 000 subjects, otherwise the sample OR with the Woolf logit CI
  (0.5 added to every cell when one is empty).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st
from scipy.stats.contingency import odds_ratio as _odds_ratio

from spinemetrics.findings import FINDING_RULES, FindingRule, severity
from spinemetrics.stats.correlation import level_position, order_levels

__all__ = [
    "binary_findings",
    "finding_definitions",
    "prevalence",
    "neighbour_odds",
    "wilson_ci",
]

EXACT_OR_MAX_N = 5_000


def finding_definitions(rules: tuple[FindingRule, ...] = FINDING_RULES) -> pd.DataFrame:
    """One row per binary finding: finding, rule, measure, severity, definition, source."""
    rows = []
    for rule in rules:
        rows.append(_def_row(rule, 1))
        if np.isfinite(rule.severe):
            rows.append(_def_row(rule, 2))
    return pd.DataFrame(rows)


def _def_row(rule: FindingRule, level: int) -> dict:
    op = {"below": "<", "above": ">"}[rule.direction] + ("=" if rule.inclusive else "")
    thr = rule.moderate if level == 1 else rule.severe
    what = (
        f"{rule.measure} / median of the subject's other levels" if rule.relative else rule.measure
    )
    return {
        "finding": rule.name if level == 1 else f"{rule.name}_severe",
        "rule": rule.name,
        "measure": rule.measure,
        "min_severity": level,
        "definition": f"{what} {op} {thr:g}",
        "source": rule.source,
    }


def _relative(frame: pd.DataFrame) -> np.ndarray:
    # Same reference as spinemetrics.findings: median over the subject's levels (same side),
    # only when at least 3 levels are measured.
    grp = frame.groupby(["subject", "side"], sort=False)["value"]
    med = grp.transform("median").where(grp.transform("count") >= 3)
    return (frame["value"] / med).to_numpy(dtype=float)


def binary_findings(
    frame: pd.DataFrame, measure: str, rules: tuple[FindingRule, ...] = FINDING_RULES
) -> pd.DataFrame:
    """Binary findings derived from one measure's long rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows of ``measure`` with subject, level, side, value.
    measure : str
        The measure the rows belong to.
    rules : tuple of FindingRule
        Threshold rules (default: the shared :data:`~spinemetrics.findings.FINDING_RULES`).

    Returns
    -------
    pandas.DataFrame
        subject, level, side, finding, measure, positive (1.0/0.0; NaN when not assessable).
    """
    frames = []
    for rule in rules:
        if rule.measure != measure or frame.empty:
            continue
        score = _relative(frame) if rule.relative else frame["value"].to_numpy(dtype=float)
        sev = severity(score, rule)
        for lvl, name in ((1, rule.name), (2, f"{rule.name}_severe")):
            if lvl == 2 and not np.isfinite(rule.severe):
                continue
            pos = np.where(sev < 0, np.nan, (sev >= lvl).astype(float))
            frames.append(
                frame[["subject", "level", "side"]].assign(
                    finding=_const(name, len(pos)),
                    measure=_const(measure, len(pos)),
                    positive=pos,
                )
            )
    cols = ["subject", "level", "side", "finding", "measure", "positive"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def _const(text: str, n: int) -> pd.Categorical:
    # A one-category Categorical: no per-row string conversion (pandas would otherwise turn a
    # constant column of 10⁵–10⁶ Python strings into Arrow strings).
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[text])


def wilson_ci(k: np.ndarray, n: np.ndarray, conf: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions ``k / n`` (vectorised)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = st.norm.ppf(0.5 + conf / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1.0 + z**2 / n
        centre = (p + z**2 / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def _with_any_side(findings: pd.DataFrame) -> pd.DataFrame:
    sided = findings[findings["side"] != ""]
    if sided.empty:
        return findings
    anyside = (
        sided.groupby(["subject", "level", "finding", "measure"], sort=False)["positive"]
        .max()
        .reset_index()
    )
    anyside["side"] = "any"
    return pd.concat([findings, anyside[findings.columns]], ignore_index=True)


def prevalence(findings: pd.DataFrame, conf: float = 0.95) -> pd.DataFrame:
    """Prevalence of each finding by level and side with Wilson CIs.

    Returns
    -------
    pandas.DataFrame
        finding, measure, level, side, n, n_positive, prevalence, ci_low, ci_high.
    """
    cols = [
        "finding",
        "measure",
        "level",
        "side",
        "n",
        "n_positive",
        "prevalence",
        "ci_low",
        "ci_high",
    ]
    f = _with_any_side(findings.dropna(subset=["positive"]))
    if f.empty:
        return pd.DataFrame(columns=cols)
    g = f.groupby(["finding", "measure", "level", "side"], sort=False)["positive"]
    out = g.agg(n="count", n_positive="sum").reset_index()
    out["prevalence"] = out["n_positive"] / out["n"]
    out["ci_low"], out["ci_high"] = wilson_ci(out["n_positive"], out["n"], conf)
    out["n_positive"] = out["n_positive"].astype(int)
    out["_pos"] = out["level"].map(level_position)
    out = out.sort_values(["finding", "side", "_pos", "level"], kind="mergesort")
    return out[cols].reset_index(drop=True)


def _or_row(a: int, b: int, c: int, d: int, conf: float) -> dict:
    """OR of the 2×2 table [[a, b], [c, d]] (rows: finding at level yes/no; cols: neighbour)."""
    n = a + b + c + d
    table = np.array([[a, b], [c, d]])
    if n == 0 or (a + b) == 0 or (c + d) == 0 or (a + c) == 0 or (b + d) == 0:
        return {
            "odds_ratio": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "p_value": math.nan,
            "or_method": "undefined (a margin is zero)",
        }
    p = float(st.fisher_exact(table).pvalue)
    if n <= EXACT_OR_MAX_N:
        res = _odds_ratio(table, kind="conditional")
        ci = res.confidence_interval(confidence_level=conf)
        return {
            "odds_ratio": float(res.statistic),
            "ci_low": float(ci.low),
            "ci_high": float(ci.high),
            "p_value": p,
            "or_method": "conditional_exact",
        }
    aa, bb, cc, dd = (float(x) for x in (a, b, c, d))
    if min(aa, bb, cc, dd) == 0:
        aa, bb, cc, dd = aa + 0.5, bb + 0.5, cc + 0.5, dd + 0.5
    lor = math.log(aa * dd / (bb * cc))
    se = math.sqrt(1 / aa + 1 / bb + 1 / cc + 1 / dd)
    z = st.norm.ppf(0.5 + conf / 2.0)
    return {
        "odds_ratio": math.exp(lor),
        "ci_low": math.exp(lor - z * se),
        "ci_high": math.exp(lor + z * se),
        "p_value": p,
        "or_method": "sample_woolf",
    }


def neighbour_odds(findings: pd.DataFrame, conf: float = 0.95) -> pd.DataFrame:
    """Odds ratio of each finding at a level given the finding at the next caudal level.

    Returns
    -------
    pandas.DataFrame
        finding, measure, level, neighbour_level, side, n, n_both, n_level_only,
        n_neighbour_only, n_neither, odds_ratio, ci_low, ci_high, p_value, q_value (NaN,
        filled per family by the caller), or_method.
    """
    cols = [
        "finding",
        "measure",
        "level",
        "neighbour_level",
        "side",
        "n",
        "n_both",
        "n_level_only",
        "n_neighbour_only",
        "n_neither",
        "odds_ratio",
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",
        "or_method",
    ]
    f = findings.dropna(subset=["positive"])
    rows = []
    for (finding, measure, side), grp in f.groupby(["finding", "measure", "side"], sort=False):
        wide = grp.pivot(index="subject", columns="level", values="positive")
        levels = order_levels(wide.columns)
        for a, b in zip(levels[:-1], levels[1:], strict=False):
            pa, pb = level_position(a), level_position(b)
            if not (pb - pa == 1.0):
                continue
            both = wide[[a, b]].dropna()
            x, y = both[a].to_numpy() > 0, both[b].to_numpy() > 0
            n11, n10 = int((x & y).sum()), int((x & ~y).sum())
            n01, n00 = int((~x & y).sum()), int((~x & ~y).sum())
            rows.append(
                {
                    "finding": finding,
                    "measure": measure,
                    "level": a,
                    "neighbour_level": b,
                    "side": side,
                    "n": len(both),
                    "n_both": n11,
                    "n_level_only": n10,
                    "n_neighbour_only": n01,
                    "n_neither": n00,
                    "q_value": math.nan,
                    **_or_row(n11, n10, n01, n00, conf),
                }
            )
    return pd.DataFrame(rows, columns=cols)
