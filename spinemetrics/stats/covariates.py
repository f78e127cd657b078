"""Covariates file (one row per subject, contract §6): reading and checking.

Covariates are small (one row per subject, ≤ 10⁵ rows), so they live in pandas. Sex is
normalised to ``"F"``/``"M"`` so that model terms are named the same for every cohort.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from spinemetrics.errors import StatsError

__all__ = ["read_covariates", "check_covariates", "SEX_CODES"]

#: Accepted spellings of sex (case-insensitive) → canonical code.
SEX_CODES = {
    "f": "F",
    "female": "F",
    "w": "F",
    "woman": "F",
    "2": "F",
    "m": "M",
    "male": "M",
    "man": "M",
    "1": "M",
}


def read_covariates(source: str | os.PathLike[str] | pd.DataFrame | None) -> pd.DataFrame | None:
    """Read a covariates CSV/Parquet file (or pass a DataFrame through) and check it.

    Parameters
    ----------
    source : path, DataFrame or None
        ``.csv``/``.tsv``/``.parquet`` file with a ``subject`` column.

    Returns
    -------
    pandas.DataFrame or None
        Checked covariates (see :func:`check_covariates`), ``None`` when ``source`` is None.
    """
    if source is None:
        return None
    if isinstance(source, pd.DataFrame):
        return check_covariates(source)
    path = Path(source)
    if not path.exists():
        raise StatsError(f"covariates file not found: {path}; check the --covariates path")
    suffix = "".join(path.suffixes).lower()
    if suffix.endswith(".parquet"):
        df = pd.read_parquet(path)
    elif suffix.endswith((".csv", ".tsv", ".txt")):
        df = pd.read_csv(path, sep=None, engine="python", dtype={"subject": str})
    else:
        raise StatsError(f"covariates file {path.name} is not .csv or .parquet; convert it")
    return check_covariates(df)


def check_covariates(df: pd.DataFrame) -> pd.DataFrame:
    """Validate covariates and normalise types.

    ``subject`` must exist and be unique; ``age`` (if present) must be numeric; ``sex`` (if
    present) is mapped to ``"F"``/``"M"`` (unknown spellings become missing).

    Returns
    -------
    pandas.DataFrame
        A copy with ``subject`` as str, ``age`` as float and ``sex`` as ``"F"``/``"M"``/NaN.
    """
    if "subject" not in df.columns:
        raise StatsError(
            f"covariates have no 'subject' column (columns: {', '.join(map(str, df.columns))});"
            " add one with the subject ids of the measurement table"
        )
    out = df.copy()
    out["subject"] = out["subject"].astype(str)
    dup = out["subject"].duplicated()
    if dup.any():
        first = out.loc[dup, "subject"].iloc[0]
        raise StatsError(
            f"covariates have {int(dup.sum())} repeated subject id(s) (e.g. {first!r});"
            " keep one row per subject"
        )
    if "age" in out.columns:
        age = pd.to_numeric(out["age"], errors="coerce")
        bad = age.isna() & out["age"].notna()
        if bad.any():
            raise StatsError(
                f"covariate 'age' has {int(bad.sum())} non-numeric value(s)"
                f" (e.g. {out.loc[bad, 'age'].iloc[0]!r}); give age in years as numbers"
            )
        out["age"] = age.astype(float)
    if "sex" in out.columns:
        raw = out["sex"].astype(str).str.strip().str.lower()
        out["sex"] = raw.map(SEX_CODES).astype(object)
        out.loc[out["sex"].isna(), "sex"] = np.nan
    return out.reset_index(drop=True)
