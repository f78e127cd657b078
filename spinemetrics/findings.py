"""Per-level findings from the measurement table: one place for thresholds and their sources.

A *finding* turns a measure into a clinical flag with a severity: ``0`` normal, ``1``
moderate/relative, ``2`` severe/absolute, ``-1`` not assessable (value missing). Both the
subject report and cohort summaries use these rules, so a level shown red in a report is the
same level counted in a prevalence table. Sources follow the tags of
``shared/spec/MEASURES.md`` ([V] verified, [S] secondary, [U] unverified, [D] design).

This module depends on pandas only (no report/stats imports), so every package may use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FindingRule", "FINDING_RULES", "classify_findings", "worst_by_level", "SEVERITY_NAMES"]

SEVERITY_NAMES = {-1: "not assessed", 0: "normal", 1: "moderate", 2: "severe"}


@dataclass(frozen=True)
class FindingRule:
    """Threshold rule on one measure.

    Parameters
    ----------
    name : str
        Finding id (snake_case), e.g. ``"central_stenosis"``.
    label : str
        Short clinical wording shown in reports.
    measure : str
        Measure name from the contract table (section 5).
    direction : {"below", "above"}
        ``"below"``: small values are abnormal (``value < threshold``); ``"above"``: large.
    moderate, severe : float
        Thresholds for severity 1 and 2 (``severe`` may be ``nan`` for one-level rules).
    inclusive : bool
        Use ``<=``/``>=`` instead of strict comparison (the source says "≤").
    source : str
        Citation with its MEASURES.md verification tag.
    relative : bool
        Value is first divided by the median of the same measure over the subject's other
        levels (a within-subject reference), then compared with the thresholds.
    """

    name: str
    label: str
    measure: str
    direction: str
    moderate: float
    severe: float = float("nan")
    inclusive: bool = False
    source: str = ""
    relative: bool = False

    def describe(self, unit: str = "") -> str:
        """``"dural_sac_area_mm2 < 100 (moderate), < 75 (severe)"``-style text."""
        op = {"below": "<", "above": ">"}[self.direction] + ("=" if self.inclusive else "")
        what = f"{self.measure} / median of other levels" if self.relative else self.measure
        text = f"{what} {op} {_fmt(self.moderate)}{unit}"
        if np.isfinite(self.severe):
            text += f" (moderate); {op} {_fmt(self.severe)}{unit} (severe)"
        return text


def _fmt(v: float) -> str:
    return f"{v:g}"


#: Rules in display order. Retrolisthesis uses the negative side of ``slip_percent``.
FINDING_RULES: tuple[FindingRule, ...] = (
    FindingRule(
        "central_stenosis",
        "Central canal stenosis (dural sac area)",
        "dural_sac_area_mm2",
        "below",
        100.0,
        75.0,
        source="relative < 100 mm²: Bolender 1985 [S], Hamanishi 1994 [V]; "
        "absolute < 75 mm²: Schönström & Hansson 1988 [V]",
    ),
    FindingRule(
        "bony_canal_narrowing",
        "Narrow bony canal (AP diameter)",
        "canal_ap_mm",
        "below",
        12.0,
        10.0,
        source="Verbiest 1977 [S]; Kalichman 2009 (Framingham CT) [V]",
    ),
    FindingRule(
        "foraminal_narrowing",
        "Foraminal narrowing (height)",
        "foraminal_height_mm",
        "below",
        15.0,
        inclusive=True,
        source="critical foraminal height ≤ 15 mm: Hasegawa 1995 [V]",
    ),
    FindingRule(
        "anterolisthesis",
        "Anterolisthesis (slip)",
        "slip_percent",
        "above",
        5.0,
        25.0,
        inclusive=True,
        source="slip ≥ 5 % [D]; > 25 % = Meyerding grade II or more [S]",
    ),
    FindingRule(
        "retrolisthesis",
        "Retrolisthesis (slip)",
        "slip_percent",
        "below",
        -8.0,
        inclusive=True,
        source="≥ 8 % posterior translation [S] (definitions vary; Jeon & Kim 2015 [V])",
    ),
    FindingRule(
        "posterior_disc_height_loss",
        "Low posterior disc height",
        "disc_height_posterior_mm",
        "below",
        4.0,
        inclusive=True,
        source="critical posterior disc height ≤ 4 mm: Hasegawa 1995 [V]",
    ),
    FindingRule(
        "disc_height_loss",
        "Disc height loss vs other levels",
        "disc_height_middle_mm",
        "below",
        0.70,
        0.50,
        relative=True,
        source="< 70 % moderate, < 50 % severe of reference: lstv-detector bands [C]/[U]; "
        "reference = median of the subject's other discs [D]",
    ),
    FindingRule(
        "vertebral_deformity",
        "Vertebral deformity (Genant surrogate)",
        "genant_sq_grade",
        "above",
        1.0,
        3.0,
        inclusive=True,
        source="Genant SQ surrogate (MEASURES.md §2.2): grade ≥ 1 (height reduction ≥ 20 %) "
        "deformity, grade 3 (> 40 %) severe; Genant 1993 via Wáng 2019 [S]. Morphometric, not "
        "a visual reading: over- and under-calls fractures (Wáng 2019 [S])",
    ),
)


def _relative_values(table: pd.DataFrame, measure: str) -> pd.Series:
    """Value ÷ median of the same measure at the subject's *other* levels (same scan, side)."""
    sub = table[table["measure"] == measure]
    keys = [c for c in ("subject", "scan", "side") if c in sub.columns]
    vals = sub["value"].astype(float)
    grp = vals.groupby([sub[k] for k in keys], observed=True, sort=False) if keys else None
    if grp is None:
        total = vals.sum()
        count = vals.notna().sum()
        med = pd.Series((total - vals) / (count - 1), index=vals.index)
    else:
        # Median of the others: exact leave-one-out is costly on 10^7 rows; the group median
        # differs from it by at most one order statistic, which is immaterial for 5-6 discs.
        med = grp.transform("median")
        count = grp.transform("count")
        med = med.where(count >= 3)
    return vals / med


def classify_findings(
    table: pd.DataFrame, rules: tuple[FindingRule, ...] = FINDING_RULES
) -> pd.DataFrame:
    """Apply finding rules to a long measurement table (contract section 5).

    Parameters
    ----------
    table : pandas.DataFrame
        Long table with at least ``level``, ``measure``, ``value``; ``subject``, ``scan``,
        ``side`` and ``qc`` are carried through when present.
    rules : tuple of FindingRule
        Rules to apply (default :data:`FINDING_RULES`).

    Returns
    -------
    pandas.DataFrame
        One row per (input row, matching rule): the carried columns plus ``finding``,
        ``label``, ``value`` (the raw measure value), ``score`` (value compared with the
        thresholds; the ratio for relative rules) and ``severity`` (-1, 0, 1, 2).
    """
    carry = [c for c in ("subject", "scan", "level", "side", "qc") if c in table.columns]
    frames = []
    for rule in rules:
        mask = table["measure"] == rule.measure
        if not mask.any():
            continue
        sub = table.loc[mask, carry + ["value"]]
        score = (
            _relative_values(table, rule.measure).loc[sub.index]
            if rule.relative
            else sub["value"].astype(float)
        )
        sev = severity(score.to_numpy(dtype=float), rule)
        frames.append(
            pd.DataFrame(
                {
                    **{c: sub[c].to_numpy() for c in carry},
                    "finding": rule.name,
                    "label": rule.label,
                    "measure": rule.measure,
                    "value": sub["value"].to_numpy(dtype=float),
                    "score": score.to_numpy(dtype=float),
                    "severity": sev,
                }
            )
        )
    cols = carry + ["finding", "label", "measure", "value", "score", "severity"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def severity(values: np.ndarray, rule: FindingRule) -> np.ndarray:
    """Severity codes (int8) for raw or relative values under ``rule``; NaN → -1."""
    v = np.asarray(values, dtype=float)
    if rule.direction == "below":
        hit = (lambda t: v <= t) if rule.inclusive else (lambda t: v < t)
    else:
        hit = (lambda t: v >= t) if rule.inclusive else (lambda t: v > t)
    with np.errstate(invalid="ignore"):
        out = np.where(hit(rule.moderate), 1, 0).astype(np.int8)
        if np.isfinite(rule.severe):
            out[hit(rule.severe)] = 2
    out[~np.isfinite(v)] = -1
    return out


def worst_by_level(findings: pd.DataFrame) -> pd.DataFrame:
    """Worst severity per level (sides merged) with the findings that reached it.

    Returns a frame indexed by level with ``severity`` and ``labels`` (``"; "``-joined labels
    of the findings with severity ≥ 1, worst first).
    """
    if findings.empty:
        return pd.DataFrame(columns=["severity", "labels"])
    rows = {}
    for level, grp in findings.groupby("level", sort=False):
        worst = int(grp["severity"].max())
        pos = grp[grp["severity"] >= 1].sort_values("severity", ascending=False)
        rows[level] = {"severity": worst, "labels": "; ".join(dict.fromkeys(pos["label"]))}
    return pd.DataFrame.from_dict(rows, orient="index")
