"""Cohort store: many scans' measurement tables as a Parquet dataset queried with DuckDB.

A 100 000-subject cohort is ~10⁷ rows of the contract §5 long table — too large to pivot in
pandas at once. The store keeps the rows on disk as a hive-partitioned Parquet dataset
(``measure=<name>/*.parquet``) and hands out one measure at a time, already cleaned and
joined with the covariates, so memory is bounded by the largest single measure
(subjects × levels × sides rows).

Cleaning rules (applied in SQL, each recorded as a warning when it changes something):

* exact duplicate rows are dropped;
* rows that repeat a key (subject, scan, level, side, measure) with *different* values
  are an error (the table was assembled twice from different runs);
* a subject with several scans keeps its first scan id in sort order (analyses are
  cross-sectional; one scan per subject);
* rows with ``qc != "ok"`` and NaN values are left out of the analyses.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from spinemetrics.errors import StatsError

__all__ = ["REQUIRED_COLUMNS", "CohortStore", "open_store"]

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("subject", "scan", "level", "side", "measure", "value", "unit", "qc")


def _sql_str(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _source_sql(source: str | os.PathLike[str]) -> str:
    """DuckDB table function reading a CSV/Parquet file or a Parquet folder."""
    path = Path(source)
    if not path.exists():
        raise StatsError(f"measurement table not found: {path}; check the TABLE path")
    if path.is_dir():
        files = list(path.rglob("*.parquet"))
        if not files:
            raise StatsError(f"folder {path} holds no .parquet files; give a table file")
        glob = _sql_str(str(path / "**" / "*.parquet"))
        return f"read_parquet({glob}, hive_partitioning = true, union_by_name = true)"
    suffix = "".join(path.suffixes).lower()
    if suffix.endswith(".parquet"):
        return f"read_parquet({_sql_str(str(path))})"
    if suffix.endswith((".csv", ".tsv", ".csv.gz", ".txt")):
        return (
            f"read_csv({_sql_str(str(path))}, header = true, "
            "types = {'subject': 'VARCHAR', 'scan': 'VARCHAR', 'level': 'VARCHAR', "
            "'side': 'VARCHAR', 'measure': 'VARCHAR', 'unit': 'VARCHAR', 'qc': 'VARCHAR'})"
        )
    raise StatsError(f"table {path.name} is not .csv or .parquet; write it as one of those")


@dataclass
class CohortStore:
    """A cleaned cohort on disk (hive-partitioned Parquet by measure) plus covariates.

    Use :func:`open_store` to build one. ``measures`` lists the measures with their unit;
    :meth:`measure_frame` returns the long rows of one measure joined with covariates.

    Attributes
    ----------
    path : Path
        Folder of the Parquet dataset (``measure=<name>/…``).
    units : dict
        Measure → unit.
    covariates : pandas.DataFrame or None
        Checked covariates (one row per subject).
    warnings : list of str
        What cleaning changed (duplicates dropped, extra scans, non-ok qc rows …).
    subject_index : pandas.DataFrame
        subject (str) → sid (int), the integer id used by :meth:`measure_frame`.
    covariates_sid : pandas.DataFrame or None
        Covariates with ``subject`` replaced by the integer sid.
    n_rows, n_subjects : int
        Rows and subjects kept for analysis.
    """

    path: Path
    units: dict[str, str]
    covariates: pd.DataFrame | None
    warnings: list[str] = field(default_factory=list)
    n_rows: int = 0
    n_subjects: int = 0
    subject_index: pd.DataFrame | None = None
    covariates_sid: pd.DataFrame | None = None
    _tmp: tempfile.TemporaryDirectory | None = None
    threads: int = 2
    memory_limit: str = "4GB"

    @property
    def measures(self) -> list[str]:
        """Measure names present, sorted."""
        return sorted(self.units)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection with the store's thread and memory limits."""
        con = duckdb.connect()
        con.execute(f"SET threads = {int(self.threads)}")
        con.execute(f"SET memory_limit = {_sql_str(self.memory_limit)}")
        con.execute("SET preserve_insertion_order = false")
        return con

    def _glob(self, measure: str) -> str:
        folder = self.path / f"measure={measure}"
        return _sql_str(str(folder / "*.parquet"))

    def measure_frame(self, measure: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
        """Long rows of one measure: subject (integer sid), level, side, value (+ covariates).

        ``subject`` is the store's dense integer id (see ``subject_index``) so that the
        per-measure pandas work never touches string ids; covariates come from
        ``covariates_sid``.

        Parameters
        ----------
        measure : str
            Measure name.
        columns : tuple of str
            Covariate columns to join (subjects without covariates get NaN).
        """
        if measure not in self.units:
            raise StatsError(
                f"measure {measure!r} is not in the table; pick one of {self.measures}"
            )
        con = self.connect()
        try:
            cov_cols = []
            if columns and self.covariates_sid is not None:
                cov_cols = [c for c in columns if c in self.covariates_sid.columns]
            src = f"read_parquet({self._glob(measure)})"
            if cov_cols:
                # Join in DuckDB (hash join) instead of a pandas merge of 10⁵–10⁶ rows.
                con.register("cov_df", self.covariates_sid[["subject", *cov_cols]])
                sel = ", ".join(f'c."{c}"' for c in cov_cols)
                sql = (
                    f"SELECT m.sid AS subject, m.level, m.side, m.value, {sel} "
                    f"FROM {src} m LEFT JOIN cov_df c ON m.sid = c.subject"
                )
            else:
                sql = f"SELECT sid AS subject, level, side, value FROM {src}"
            df = con.sql(sql).df()
        finally:
            con.close()
        # Plain object arrays: comparisons and to_numpy() on them cost nothing, unlike Arrow
        # strings, and these columns are compared many times per measure.
        for col in ("level", "side"):
            df[col] = df[col].astype(object)
        return df

    def wide(self, measure: str, side: str = "") -> pd.DataFrame:
        """Subjects × levels matrix of one measure and side, pivoted inside DuckDB.

        Returns
        -------
        pandas.DataFrame
            Index: subject id (str, as in the table); columns: level names (cranial →
            caudal); NaN where a subject lacks a level.
        """
        if measure not in self.units:
            raise StatsError(
                f"measure {measure!r} is not in the table; pick one of {self.measures}"
            )
        con = self.connect()
        try:
            con.register("subject_index", self.subject_index)
            df = con.sql(
                "PIVOT (SELECT s.subject, m.level, m.value FROM "
                f"read_parquet({self._glob(measure)}) m JOIN subject_index s ON m.sid = s.sid "
                f"WHERE m.side = {_sql_str(side)})"
                " ON level USING first(value) GROUP BY subject ORDER BY subject"
            ).df()
        finally:
            con.close()
        from spinemetrics.stats.correlation import order_levels

        df = df.set_index("subject")
        return df[order_levels(df.columns)]

    def close(self) -> None:
        """Delete the store when it lives in a temporary folder."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> CohortStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(
    table: pd.DataFrame | str | os.PathLike[str],
    covariates: pd.DataFrame | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    qc_ok_only: bool = True,
    threads: int = 2,
    memory_limit: str = "4GB",
) -> CohortStore:
    """Check a measurement table, clean it and write it as a partitioned Parquet store.

    Parameters
    ----------
    table : DataFrame or path
        Contract §5 long table: a DataFrame, a ``.csv``/``.parquet`` file or a folder of
        Parquet files (e.g. a ``batch`` output).
    covariates : DataFrame, optional
        Checked covariates (:func:`spinemetrics.stats.covariates.read_covariates`).
    path : path, optional
        Folder for the store; a temporary folder (deleted by :meth:`CohortStore.close`)
        when not given. An existing store folder is replaced.
    qc_ok_only : bool
        Leave out rows whose ``qc`` is not ``"ok"`` (default).
    threads, memory_limit
        DuckDB limits (the machine is shared; defaults 2 threads, 4 GB).

    Returns
    -------
    CohortStore
    """
    tmp = None
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix="spinemetrics_store_")
        store_path = Path(tmp.name) / "store"
    else:
        store_path = Path(path)
    store = CohortStore(
        path=store_path,
        units={},
        covariates=covariates,
        _tmp=tmp,
        threads=threads,
        memory_limit=memory_limit,
    )
    con = store.connect()
    try:
        if isinstance(table, pd.DataFrame):
            con.register("raw_df", table)
            con.execute("CREATE VIEW raw AS SELECT * FROM raw_df")
        else:
            con.execute(f"CREATE VIEW raw AS SELECT * FROM {_source_sql(table)}")
        _check_columns(con)
        _clean(con, store, qc_ok_only)
        if store_path.exists():
            shutil.rmtree(store_path)
        store_path.parent.mkdir(parents=True, exist_ok=True)
        con.execute(
            "COPY (SELECT sid, level, side, measure, value FROM clean_sid) TO "
            f"{_sql_str(str(store_path))} (FORMAT PARQUET, PARTITION_BY (measure), "
            "COMPRESSION zstd)"
        )
        store.subject_index = con.execute("SELECT subject, sid FROM subject_index").df()
        store.subject_index["subject"] = store.subject_index["subject"].astype(str)
        if covariates is not None:
            # Covariates keyed by the integer sid (subjects of the store only).
            store.covariates_sid = (
                store.subject_index.merge(covariates, on="subject")
                .drop(columns="subject")
                .rename(columns={"sid": "subject"})
            )
    except BaseException:
        store.close()
        raise
    finally:
        con.close()
    return store


def _check_columns(con: duckdb.DuckDBPyConnection) -> None:
    cols = [r[0] for r in con.execute("DESCRIBE raw").fetchall()]
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise StatsError(
            f"measurement table lacks column(s) {', '.join(missing)}; contract §5 needs "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    n = con.execute("SELECT count(*) FROM raw").fetchall()[0][0]
    if n == 0:
        raise StatsError("measurement table has no rows; check that the input is the right file")
    try:
        con.execute("SELECT TRY_CAST(value AS DOUBLE) FROM raw LIMIT 1").fetchall()
    except duckdb.Error as exc:  # pragma: no cover - defensive
        raise StatsError(f"column 'value' is not numeric ({exc}); write numbers") from exc


def _clean(con: duckdb.DuckDBPyConnection, store: CohortStore, qc_ok_only: bool) -> None:
    warn = store.warnings
    con.execute(
        """
        CREATE TEMP VIEW typed AS
        SELECT CAST(subject AS VARCHAR) AS subject, CAST(scan AS VARCHAR) AS scan,
               CAST(level AS VARCHAR) AS level, coalesce(CAST(side AS VARCHAR), '') AS side,
               CAST(measure AS VARCHAR) AS measure, TRY_CAST(value AS DOUBLE) AS value,
               coalesce(CAST(unit AS VARCHAR), '') AS unit,
               coalesce(CAST(qc AS VARCHAR), 'ok') AS qc
        FROM raw
        """
    )
    # Mixed units for one measure cannot be analysed together: refuse with the first case.
    mixed = con.execute(
        "SELECT measure, string_agg(DISTINCT unit, ', ') FROM typed GROUP BY measure "
        "HAVING count(DISTINCT unit) > 1 ORDER BY measure LIMIT 1"
    ).fetchall()
    mixed = mixed[0] if mixed else None
    if mixed:
        raise StatsError(
            f"measure {mixed[0]!r} comes in mixed units ({mixed[1]}); convert it to one unit"
            " before running stats"
        )
    # Duplicates: exact repeats are dropped, conflicting repeats are an error. A distinct
    # count of 64-bit key hashes is a cheap screen (a collision among 10⁷ keys has
    # probability ~3·10⁻⁶ and would only trigger the exact check below).
    n_total, n_keys = con.execute(
        "SELECT count(*), count(DISTINCT hash(subject, scan, level, side, measure)) FROM typed"
    ).fetchall()[0]
    dup = (0, 0, 0)
    if n_keys < n_total:
        dup = con.execute(
            """
            SELECT count(*) FILTER (WHERE n > 1), count(*) FILTER (WHERE nv > 1),
                   coalesce(sum(n - 1), 0)
            FROM (SELECT count(*) AS n, count(DISTINCT coalesce(value, 'NaN'::DOUBLE)) AS nv
                  FROM typed GROUP BY subject, scan, level, side, measure)
            """
        ).fetchall()[0]
    n_dup_keys, n_conflict, n_extra = dup
    if n_conflict:
        ex = con.execute(
            "SELECT subject, level, side, measure FROM typed "
            "GROUP BY subject, scan, level, side, measure "
            "HAVING count(DISTINCT coalesce(value, 'NaN'::DOUBLE)) > 1 LIMIT 1"
        ).fetchall()[0]
        raise StatsError(
            f"{n_conflict} (subject, scan, level, side, measure) key(s) have different values"
            f" (e.g. {ex[0]} {ex[1]} {ex[2] or '-'} {ex[3]}); remove the repeated rows or give"
            " each repeat its own scan id"
        )
    source = "typed"
    if n_dup_keys:
        warn.append(f"dropped {int(n_extra)} exact duplicate row(s)")
        con.execute(
            "CREATE TEMP TABLE dedup AS SELECT subject, scan, level, side, measure, "
            "any_value(value) AS value, any_value(unit) AS unit, any_value(qc) AS qc "
            "FROM typed GROUP BY subject, scan, level, side, measure"
        )
        source = "dedup"
    multi = con.execute(
        f"SELECT count(*) FROM (SELECT subject FROM {source} GROUP BY subject "
        "HAVING count(DISTINCT scan) > 1)"
    ).fetchall()[0][0]
    scan_filter = ""
    if multi:
        warn.append(
            f"{multi} subject(s) have several scans; the first scan id (sorted) of each is"
            " analysed (cross-sectional statistics)"
        )
        scan_filter = (
            f"AND (subject, scan) IN (SELECT subject, min(scan) FROM {source} GROUP BY subject)"
        )
    bad_qc = con.execute(f"SELECT count(*) FROM {source} WHERE qc <> 'ok'").fetchall()[0][0]
    qc_filter = ""
    if bad_qc and qc_ok_only:
        warn.append(f"left out {bad_qc} row(s) whose qc is not 'ok'")
        qc_filter = "AND qc = 'ok'"
    con.execute(
        f"""
        CREATE TEMP VIEW clean AS
        SELECT subject, scan, level, side, measure, value, unit, qc FROM {source}
        WHERE value IS NOT NULL AND isfinite(value) {qc_filter} {scan_filter}
        """
    )
    # Dense integer subject ids (sid): all later pandas work (pivots, merges, cluster ids)
    # runs on integers instead of 10⁵–10⁶ Python strings.
    con.execute(
        "CREATE TEMP TABLE subject_index AS SELECT subject, "
        "CAST(row_number() OVER (ORDER BY subject) - 1 AS BIGINT) AS sid "
        "FROM (SELECT DISTINCT subject FROM clean)"
    )
    con.execute(
        "CREATE TEMP VIEW clean_sid AS SELECT c.*, s.sid FROM clean c "
        "JOIN subject_index s ON c.subject = s.subject"
    )
    store.units = dict(
        con.execute("SELECT measure, any_value(unit) FROM clean GROUP BY measure").fetchall()
    )
    store.n_rows, store.n_subjects = con.execute(
        "SELECT count(*), count(DISTINCT subject) FROM clean"
    ).fetchall()[0]
    if store.n_rows == 0:
        raise StatsError(
            "no analysable rows left (all values NaN or qc not 'ok'); check the table or"
            " pass qc_ok_only=False"
        )
    if store.covariates is not None:
        con.register("cov_df", store.covariates[["subject"]])
        missing = con.execute(
            "SELECT count(DISTINCT subject) FROM clean WHERE subject NOT IN "
            "(SELECT subject FROM cov_df)"
        ).fetchall()[0][0]
        if missing == store.n_subjects:
            raise StatsError(
                "no subject of the table appears in the covariates file; check that both use"
                " the same subject ids"
            )
        if missing:
            warn.append(
                f"{missing} subject(s) have no covariates; they are left out of models with"
                " covariate terms and of the norms"
            )
    for w in warn:
        log.info(w)
