"""Age- and sex-adjusted normative values: centiles and z-scores per level and measure.

Model (an LMS-type model with L = 1, i.e. no skewness term; Cole & Green 1992, R55): within
each cell (measure, level, side, sex) the value at age *a* is normal with

    mean  μ(a) = b0 + b1·t + b2·t²            t = (a − age_ref) / 10
    SD    σ(a) = exp(c0 + c1·t)

fitted by (1) ordinary least squares for μ, (2) least squares of ``log|residual|`` on t,
which estimates ``log σ + E log|Z|`` with ``E log|Z| = −(γ_Euler + ln 2)/2 ≈ −0.6352``,
(3) one weighted least-squares refit of μ with weights ``1/σ(a)²``. Then
``z = (value − μ(age)) / σ(age)`` and centile ``= 100·Φ(z)``. Cells need ≥ ``min_n`` subjects
(default 30); ages outside the fitted range are flagged ``extrapolated``.

The package ships ``spinemetrics/data/norms_simulated.json``, fitted to a **simulated**
reference cohort (:func:`spinemetrics.stats.simulate.simulate_cohort`, 20 000 subjects) so
reports can show z-scores offline. It is NOT a clinical reference: MEASURES.md lists
per-level healthy norms as open gaps. Use :func:`fit_norms` on a real reference cohort.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as st

from spinemetrics.atomic import atomic_path, atomic_write_text
from spinemetrics.errors import StatsError

__all__ = [
    "NormModel",
    "fit_norms",
    "zscores",
    "load_default_norms",
    "NORM_COLUMNS",
    "DEFAULT_NORMS_FILE",
]

E_LOG_ABS_Z = -(np.euler_gamma + math.log(2.0)) / 2.0
DEFAULT_NORMS_FILE = "norms_simulated.json"
NORM_COLUMNS = [
    "measure",
    "level",
    "side",
    "sex",
    "n",
    "age_min",
    "age_max",
    "age_ref",
    "mu_b0",
    "mu_b1",
    "mu_b2",
    "logsd_c0",
    "logsd_c1",
    "unit",
]


@dataclass
class NormModel:
    """Fitted normative model: one row per (measure, level, side, sex) cell.

    Attributes
    ----------
    table : pandas.DataFrame
        :data:`NORM_COLUMNS`.
    meta : dict
        Description, population, whether simulated, spinemetrics version.
    """

    table: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as JSON (atomic)."""
        payload = {"meta": self.meta, "cells": self.table[NORM_COLUMNS].to_dict(orient="records")}
        return atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=True))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> NormModel:
        """Read a model written by :meth:`to_json`."""
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(pd.DataFrame(payload["cells"], columns=NORM_COLUMNS), payload.get("meta", {}))

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the cell table as Parquet (meta stored as JSON in the file metadata)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tab = pa.Table.from_pandas(self.table[NORM_COLUMNS], preserve_index=False)
        tab = tab.replace_schema_metadata(
            {**(tab.schema.metadata or {}), b"spinemetrics_norms": json.dumps(self.meta).encode()}
        )
        with atomic_path(path) as tmp:
            pq.write_table(tab, tmp)
        return Path(path)

    @classmethod
    def from_parquet(cls, path: str | os.PathLike[str]) -> NormModel:
        """Read a model written by :meth:`to_parquet`."""
        import pyarrow.parquet as pq

        tab = pq.read_table(path)
        meta = json.loads((tab.schema.metadata or {}).get(b"spinemetrics_norms", b"{}"))
        return cls(tab.to_pandas(), meta)

    def cell(self, measure: str, level: str, side: str, sex: str) -> pd.Series | None:
        """The fitted cell, or None."""
        t = self.table
        hit = t[(t.measure == measure) & (t.level == level) & (t.side == side) & (t.sex == sex)]
        return None if hit.empty else hit.iloc[0]


def _fit_cell(age: np.ndarray, y: np.ndarray, age_ref: float) -> dict | None:
    t = (age - age_ref) / 10.0
    xm = np.column_stack([np.ones_like(t), t, t**2])
    b, *_ = np.linalg.lstsq(xm, y, rcond=None)
    r = y - xm @ b
    xs = np.column_stack([np.ones_like(t), t])
    la = np.log(np.abs(r).clip(min=1e-12 * (np.abs(y).max() + 1.0)))
    c, *_ = np.linalg.lstsq(xs, la, rcond=None)
    c[0] -= E_LOG_ABS_Z
    w = np.exp(-2.0 * (xs @ c))
    sw = np.sqrt(w)
    b, *_ = np.linalg.lstsq(xm * sw[:, None], y * sw, rcond=None)
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(c))):
        return None
    return {"mu_b0": b[0], "mu_b1": b[1], "mu_b2": b[2], "logsd_c0": c[0], "logsd_c1": c[1]}


def fit_norms(
    table: pd.DataFrame,
    covariates: pd.DataFrame,
    *,
    min_n: int = 30,
    age_ref: float = 55.0,
    meta: dict | None = None,
) -> NormModel:
    """Fit age- and sex-specific normative curves per measure, level and side.

    Parameters
    ----------
    table : pandas.DataFrame
        Long measurement table (contract §5) of a reference cohort.
    covariates : pandas.DataFrame
        subject, age (years), sex (``"F"``/``"M"``).
    min_n : int
        Minimum subjects per cell.
    age_ref : float
        Centre of the age polynomial (years).
    meta : dict, optional
        Description stored with the model (population, acquisition, measurement version).

    Returns
    -------
    NormModel
    """
    missing = [c for c in ("subject", "age", "sex") if c not in covariates.columns]
    if missing:
        raise StatsError(
            f"norms need covariates {', '.join(missing)}; add them to the covariates file"
        )
    base = ["subject", "level", "side", "measure", "value", "unit"]
    if {"age", "sex"} <= set(table.columns):
        df = table[[*base, "age", "sex"]]
    else:
        df = table[base].merge(covariates[["subject", "age", "sex"]], on="subject", how="inner")
    df = df[np.isfinite(df["value"].to_numpy(dtype=float)) & df["age"].notna() & df["sex"].notna()]
    rows = []
    for key, g in df.groupby(["measure", "level", "side", "sex"], sort=True):
        if g["subject"].nunique() < min_n:
            continue
        age = g["age"].to_numpy(dtype=float)
        cell = _fit_cell(age, g["value"].to_numpy(dtype=float), age_ref)
        if cell is None:
            continue
        rows.append(
            dict(zip(("measure", "level", "side", "sex"), key, strict=True))
            | {
                "n": len(g),
                "age_min": float(age.min()),
                "age_max": float(age.max()),
                "age_ref": age_ref,
                "unit": str(g["unit"].iloc[0]),
            }
            | cell
        )
    from spinemetrics import __version__

    info = {
        "model": "normal, mean quadratic and log-SD linear in age, by sex (LMS with L=1)",
        "spinemetrics_version": __version__,
        "min_n": min_n,
    } | (meta or {})
    return NormModel(pd.DataFrame(rows, columns=NORM_COLUMNS), info)


def zscores(table: pd.DataFrame, covariates: pd.DataFrame | None, norms: NormModel) -> pd.DataFrame:
    """Add z-score, centile and flag columns to a measurement table.

    Parameters
    ----------
    table : pandas.DataFrame
        Long measurement table (contract §5).
    covariates : pandas.DataFrame or None
        subject, age, sex.
    norms : NormModel
        Reference (e.g. :func:`load_default_norms` — simulated, not clinical).

    Returns
    -------
    pandas.DataFrame
        The input rows plus ``z``, ``centile`` (0–100) and ``norm_flag``: ``"low"`` (centile
        < 2.5), ``"high"`` (> 97.5), ``"normal"``, ``"extrapolated"`` (age outside the
        reference range; z still given), ``"no_norm"`` (no cell), ``"no_covariates"``.
    """
    out = table.copy()
    n = len(out)
    z = np.full(n, np.nan)
    cent = np.full(n, np.nan)
    flag = np.full(n, "no_covariates", dtype=object)
    age, sex = _subject_age_sex(out, covariates)
    if age is None:
        out["z"], out["centile"], out["norm_flag"] = z, cent, flag
        return out
    has_cov = np.isfinite(age) & pd.notna(sex)
    flag[has_cov] = "no_norm"
    cells = {(r.measure, r.level, r.side, r.sex): r for r in norms.table.itertuples(index=False)}
    values = out["value"].to_numpy(dtype=float)
    keys = pd.DataFrame(
        {
            "measure": out["measure"].to_numpy(),
            "level": out["level"].to_numpy(),
            "side": out["side"].to_numpy(),
            "sex": sex,
        }
    )
    # One vectorised evaluation per (measure, level, side, sex) group.
    for key, idx in keys.groupby(["measure", "level", "side", "sex"], sort=False).indices.items():
        c = cells.get(tuple(str(k) for k in key))
        idx = idx[has_cov[idx]]
        if c is None or idx.size == 0:
            continue
        a = age[idx]
        t = (a - c.age_ref) / 10.0
        mu = c.mu_b0 + c.mu_b1 * t + c.mu_b2 * t**2
        sd = np.exp(c.logsd_c0 + c.logsd_c1 * t)
        zf = (values[idx] - mu) / sd
        cf = 100.0 * st.norm.cdf(zf)
        fl = np.where(cf < 2.5, "low", np.where(cf > 97.5, "high", "normal")).astype(object)
        fl[(a < c.age_min) | (a > c.age_max)] = "extrapolated"
        fl[~np.isfinite(zf)] = "no_value"
        z[idx], cent[idx], flag[idx] = zf, cf, fl
    out["z"], out["centile"], out["norm_flag"] = z, cent, flag
    return out


def _subject_age_sex(
    table: pd.DataFrame, covariates: pd.DataFrame | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Age and sex per row: from the table's own columns, else looked up by subject."""
    if {"age", "sex"} <= set(table.columns):
        return table["age"].to_numpy(dtype=float), table["sex"].to_numpy(dtype=object)
    if covariates is None or not {"age", "sex"} <= set(covariates.columns):
        return None, None
    subj = table["subject"]
    cov = covariates
    if subj.dtype != cov["subject"].dtype:
        subj, cov = subj.astype(str), cov.assign(subject=cov["subject"].astype(str))
    cov = cov.set_index("subject")
    age = subj.map(cov["age"]).to_numpy(dtype=float)
    sex = subj.map(cov["sex"]).to_numpy(dtype=object)
    return age, sex


def load_default_norms() -> NormModel:
    """The shipped norms fitted to a simulated cohort (NOT clinical reference values)."""
    ref = resources.files("spinemetrics") / "data" / DEFAULT_NORMS_FILE
    with resources.as_file(ref) as path:
        if not Path(path).exists():
            raise StatsError(
                f"default norms file {DEFAULT_NORMS_FILE} is missing from the package;"
                " reinstall spinemetrics or run python -m spinemetrics.stats.norms"
            )
        return NormModel.from_json(path)


def build_default_norms(path: str | os.PathLike[str] | None = None, seed: int = 2024) -> Path:
    """Re-create the shipped simulated norms file (20 000 simulated subjects)."""
    from spinemetrics.stats.simulate import simulate_cohort

    table, cov, _ = simulate_cohort(20_000, seed=seed)
    model = fit_norms(
        table,
        cov,
        meta={
            "population": "SIMULATED cohort (spinemetrics.stats.simulate_cohort, 20000 "
            f"subjects, seed {seed}); NOT clinical norms",
            "simulated": True,
        },
    )
    target = path or Path(__file__).resolve().parents[1] / "data" / DEFAULT_NORMS_FILE
    return model.to_json(target)


if __name__ == "__main__":  # pragma: no cover
    print(build_default_norms())
