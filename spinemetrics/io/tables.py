"""Measurement tables: CSV or Parquet by extension, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from spinemetrics.atomic import atomic_path
from spinemetrics.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["write_table", "read_table"]

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".tsv": "tsv"}


def _fmt(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path.name}: unknown table type; use .csv, .tsv or .parquet"
        )
    return fmt


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` as CSV/TSV/Parquet (by extension) without the index, atomically.

    Parameters
    ----------
    df : pandas.DataFrame
        Table to write.
    path : str or Path
        Output file (``.csv``, ``.tsv``, ``.parquet``).

    Returns
    -------
    Path
        The written path.
    """
    out = Path(path)
    fmt = _fmt(out)
    if not hasattr(df, "to_parquet"):
        raise InputError("write_table needs a pandas DataFrame")
    with atomic_path(out) as tmp:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, sep="\t" if fmt == "tsv" else ",")
    return out


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet table written by :func:`write_table` (or any tool).

    String columns ``level``, ``side``, ``qc``, ``subject``, ``scan`` keep empty strings
    (not NaN) so that ``side == ""`` round-trips through CSV.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"file not found: {p}; check the path")
    fmt = _fmt(p)
    try:
        if fmt == "parquet":
            return pd.read_parquet(p)
        str_cols = {c: str for c in ("subject", "scan", "level", "side", "measure", "unit", "qc")}
        return pd.read_csv(
            p, sep="\t" if fmt == "tsv" else ",", dtype=str_cols, keep_default_na=False,
            na_values={"value": ["", "NaN", "nan", "NA"]},
        )
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(
            f"cannot read table {p.name} ({' '.join(str(exc).split())[:100]}); check the file"
        ) from None
