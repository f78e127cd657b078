"""Many scans on dask.distributed: discovery, resumable execution, cohort tables.

Layout of a batch output folder ``DIR``::

    DIR/scans/<subject>/<scan>/            per-scan outputs of pipeline.analyze
    DIR/scans/<subject>/<scan>/done.json   completion marker, written LAST (atomically)
    DIR/scans/<subject>/<scan>/error.json  why the scan failed (stage, reason)
    DIR/assets/plotly-<version>.min.js      shared by the reports (``report_plotly="shared"``)
    DIR/measurements.parquet/<subject>/<scan>.parquet   one file per scan (contract §5)
    DIR/errors.csv                          subject, scan, path, stage, reason
    DIR/scans.csv                           one row per input: status, seconds, hash
    DIR/covariates.csv                      from a manifest / BIDS participants.tsv

Why not hive ``subject=…`` folders: readers infer the partition type from the folder name, so
subject ``001`` would come back as the integer 1 and clash with the in-file string column.
Plain folders keep ``subject`` a string in pandas, pyarrow and DuckDB
(``read_parquet('DIR/measurements.parquet/**/*.parquet')``).

Resumability: a scan is skipped when its ``done.json`` records the same input SHA-256, package
version and options. A scan that is (re)started first removes its marker and its part file, and
every file is renamed into place only when complete (Parquet parts via a staging folder outside
the dataset, so no glob ever sees a temporary file). An interrupted run therefore never leaves a
duplicate row or a half-written file; rerunning the same command finishes the work.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from distributed.diagnostics.plugin import WorkerPlugin

from spinemetrics._version import __version__
from spinemetrics.atomic import atomic_path, atomic_write_text
from spinemetrics.errors import InputError
from spinemetrics.pipeline import (
    IMAGE_SUFFIXES,
    TABLE_COLUMNS,
    AnalysisError,
    analyze,
    scan_stem,
)
from spinemetrics.provenance import file_sha256

__all__ = [
    "BatchEvent",
    "BatchSummary",
    "ScanInput",
    "ERROR_COLUMNS",
    "collect_errors",
    "discover_inputs",
    "part_path",
    "read_measurements",
    "run_batch",
    "run_scan",
    "scan_dir",
]

log = logging.getLogger(__name__)

ERROR_COLUMNS = ["subject", "scan", "path", "stage", "reason"]
MEASUREMENTS_DIR = "measurements.parquet"
DONE_MARKER = "done.json"
ERROR_MARKER = "error.json"
#: Files whose stem ends like this are label maps, not images: never analysed as scans.
LABEL_SUFFIXES = ("_seg", "_levels", "_dseg", "_labels", "_label", "_mask")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ScanInput:
    """One scan to analyse: identifiers, the file (or DICOM folder) and covariates."""

    subject: str
    scan: str
    path: Path
    covariates: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class BatchEvent:
    """Progress report for one finished scan (``status``: done, skipped or failed)."""

    subject: str
    scan: str
    status: str
    seconds: float
    completed: int
    total: int
    stage: str = ""
    reason: str = ""


@dataclass
class BatchSummary:
    """Counts and output paths of a :func:`run_batch` call."""

    out_dir: Path
    total: int
    done: int
    skipped: int
    failed: int
    elapsed_s: float
    measurements: Path
    errors: Path
    scans: Path
    timings: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def succeeded(self) -> int:
        return self.done + self.skipped


# ---------------------------------------------------------------------------- paths
def _safe(name: str) -> str:
    """A path component from an id: keep ``[A-Za-z0-9._-]``, percent-encode the rest."""
    text = _SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), str(name))
    if not text or text.startswith("."):
        text = "%2E" + text[1:] if text else "_"
    return text


def scan_dir(out_dir: str | Path, subject: str, scan: str) -> Path:
    """``DIR/scans/<subject>/<scan>``: per-scan outputs and markers."""
    return Path(out_dir) / "scans" / _safe(subject) / _safe(scan)


def part_path(out_dir: str | Path, subject: str, scan: str) -> Path:
    """``DIR/measurements.parquet/<subject>/<scan>.parquet``: the scan's rows in the dataset."""
    return Path(out_dir) / MEASUREMENTS_DIR / _safe(subject) / f"{_safe(scan)}.parquet"


# ---------------------------------------------------------------------------- discovery
def _is_dicom_file(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _is_image_file(path: Path) -> bool:
    lower = path.name.lower()
    return lower.endswith(IMAGE_SUFFIXES) and not scan_stem(path).lower().endswith(LABEL_SUFFIXES)


def _discover_folder(root: Path) -> list[ScanInput]:
    items: list[ScanInput] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files = sorted(f for f in filenames if not f.startswith("."))
        rel_dir = here.relative_to(root).parts
        if any(_is_dicom_file(here / f) for f in files[:20]):
            # A DICOM series folder is one scan; do not descend further.
            dirnames[:] = []
            name = here.name
            subject = rel_dir[0] if rel_dir else name
            scan = "_".join(rel_dir[1:]) if len(rel_dir) > 1 else name
            items.append(ScanInput(subject=subject, scan=scan, path=here))
            continue
        for f in files:
            p = here / f
            if not _is_image_file(p):
                continue
            stem = scan_stem(p)
            if rel_dir:
                subject, scan = rel_dir[0], "_".join([*rel_dir[1:], stem])
            else:
                subject, scan = stem, stem
            items.append(ScanInput(subject=subject, scan=scan, path=p))
    return items


def _is_bids(root: Path) -> bool:
    return (root / "dataset_description.json").exists() or any(root.glob("sub-*/"))


def _read_participants(root: Path) -> dict[str, dict[str, Any]]:
    tsv = root / "participants.tsv"
    if not tsv.exists():
        return {}
    df = pd.read_csv(tsv, sep="\t", dtype={"participant_id": str}, na_values=["n/a"])
    if "participant_id" not in df.columns:
        return {}
    return {
        str(row.pop("participant_id")): {k: v for k, v in row.items() if pd.notna(v)}
        for row in df.to_dict("records")
    }


def _discover_bids(root: Path, suffix: str = "T2w") -> list[ScanInput]:
    covs = _read_participants(root)
    items = []
    pattern = re.compile(rf"_{re.escape(suffix)}\.(nii|nii\.gz|mha|nrrd)$")
    for p in sorted(root.glob("sub-*/**/anat/*")):
        if not pattern.search(p.name) or p.name.startswith("."):
            continue
        subject = p.relative_to(root).parts[0]
        entities = scan_stem(p).split("_")
        scan = "_".join(e for e in entities if not e.startswith("sub-")) or suffix
        items.append(ScanInput(subject, scan, p, dict(covs.get(subject, {}))))
    return items


def _read_manifest(path: Path) -> tuple[list[ScanInput], list[dict[str, str]]]:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]
    if "path" not in df.columns:
        raise InputError(f"manifest {path} has no 'path' column; add columns subject, scan, path")
    items, errors = [], []
    cov_cols = [c for c in df.columns if c not in ("subject", "scan", "path")]
    for row in df.to_dict("records"):
        p = Path(row["path"]).expanduser()
        if not p.is_absolute():
            p = (path.parent / p).resolve()
        stem = scan_stem(p)
        subject = row.get("subject") or stem
        scan = row.get("scan") or stem
        covs = {c: _maybe_number(row[c]) for c in cov_cols if row[c] != ""}
        if not p.exists():
            errors.append(_error_row(subject, scan, p, "discover",
                                     "file not found; fix the path in the manifest"))
            continue
        items.append(ScanInput(subject, scan, p, covs))
    return items, errors


def _maybe_number(text: str) -> Any:
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def _error_row(
    subject: str, scan: str, path: Path | str, stage: str, reason: str
) -> dict[str, str]:
    return {"subject": str(subject), "scan": str(scan), "path": str(path), "stage": stage,
            "reason": " ".join(str(reason).split())}


def discover_inputs(
    source: str | Path | Sequence[str | Path], *, bids_suffix: str = "T2w"
) -> tuple[list[ScanInput], list[dict[str, str]]]:
    """Find the scans of a batch.

    Parameters
    ----------
    source : path or list of paths
        A folder tree (NIfTI/MHA/NRRD files and DICOM series folders), a BIDS dataset
        (``sub-*/[ses-*/]anat/*_T2w.nii.gz``; subject = ``sub-…``, covariates from
        ``participants.tsv``), a CSV manifest (columns ``subject, scan, path`` + covariates;
        relative paths are relative to the CSV), or a list of image paths.
    bids_suffix : str
        BIDS suffix of the images to analyse.

    Returns
    -------
    items : list of ScanInput
        Unique ``(subject, scan)`` pairs, in a deterministic order.
    errors : list of dict
        Error rows (``ERROR_COLUMNS``) for inputs that cannot even be scheduled.
    """
    errors: list[dict[str, str]] = []
    if isinstance(source, (list, tuple)):
        items = []
        for s in source:
            sub_items, sub_errors = discover_inputs(s, bids_suffix=bids_suffix)
            items.extend(sub_items)
            errors.extend(sub_errors)
    else:
        root = Path(source).expanduser()
        if not root.exists():
            raise InputError(f"batch input not found: {root}; pass a folder, BIDS dataset or CSV")
        if root.is_file() and root.suffix.lower() in (".csv", ".tsv"):
            items, errors = _read_manifest(root)
        elif root.is_file():
            stem = scan_stem(root)
            items = [ScanInput(stem, stem, root)]
        elif _is_bids(root):
            items = _discover_bids(root, bids_suffix)
        else:
            items = _discover_folder(root)
    unique: dict[tuple[str, str], ScanInput] = {}
    for it in items:
        key = (it.subject, it.scan)
        if key in unique:
            errors.append(_error_row(it.subject, it.scan, it.path, "discover",
                                     f"duplicate subject/scan (also {unique[key].path}); give "
                                     "each scan a unique id in a manifest"))
            continue
        unique[key] = it
    return list(unique.values()), errors


# ---------------------------------------------------------------------------- one scan
def _input_stat(path: Path) -> dict[str, int]:
    """Size and newest mtime (a DICOM folder: over its files) — the cheap change check."""
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
    stats = [f.stat() for f in files]
    return {"size": sum(s.st_size for s in stats),
            "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
            "n_files": len(stats)}


def _options_key(report: bool, segmenter: Any, table_format: str,
                 report_plotly: str = "shared") -> dict[str, Any]:
    seg = segmenter if isinstance(segmenter, str) or segmenter is None else getattr(
        segmenter, "__qualname__", repr(segmenter))
    return {"report": bool(report), "segmenter": seg or "cnn", "table_format": table_format,
            "report_plotly": report_plotly}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _marker_valid(marker: dict[str, Any] | None, options: dict[str, Any], part: Path) -> bool:
    if not marker or marker.get("spinemetrics_version") != __version__:
        return False
    old = marker.get("options", {})
    if old.get("segmenter") != options["segmenter"] or old.get("table_format") != options[
            "table_format"]:
        return False
    if options["report"] and (not old.get("report") or old.get(
            "report_plotly", "inline") != options["report_plotly"]):
        return False
    return part.exists()


def _clean_stale(folder: Path) -> None:
    """Remove temporary files left by a killed writer (atomic_path names start with '.')."""
    if folder.is_dir():
        for f in folder.glob(".*.tmp*"):
            with contextlib.suppress(OSError):
                f.unlink()


def _write_part(table: pd.DataFrame, out_dir: Path, subject: str, scan: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    final = part_path(out_dir, subject, scan)
    staging = out_dir / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{uuid.uuid4().hex}.parquet"
    cols = table[list(TABLE_COLUMNS)]
    schema = pa.schema([(c, pa.float64() if t == "float64" else pa.string())
                        for c, t in TABLE_COLUMNS.items()])
    try:
        pq.write_table(pa.Table.from_pandas(cols, schema=schema, preserve_index=False), tmp)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return final


def run_scan(
    item: ScanInput,
    out_dir: str | Path,
    *,
    report: bool = True,
    device: str = "cpu",
    segmenter: str | Callable[..., Any] | None = None,
    table_format: str = "parquet",
    force: bool = False,
    report_plotly: str = "shared",
) -> dict[str, Any]:
    """Analyse one scan of a batch, resumably (this is what each Dask task runs).

    Returns a status dict: ``status`` (``done``/``skipped``/``failed``), ``seconds``,
    ``timings_s`` and, on failure, ``stage`` and ``reason``. Never raises for a bad scan.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    sdir = scan_dir(out_dir, item.subject, item.scan)
    marker_path, error_path = sdir / DONE_MARKER, sdir / ERROR_MARKER
    part = part_path(out_dir, item.subject, item.scan)
    options = _options_key(report, segmenter, table_format, report_plotly)
    base = {"subject": item.subject, "scan": item.scan, "path": str(item.path)}
    try:
        sha = file_sha256(item.path)
    except OSError as exc:
        sha = ""
        hash_error = f"{type(exc).__name__}: {exc}"
    else:
        hash_error = ""
    marker = _read_json(marker_path)
    if not force and sha and marker and marker.get("input_sha256") == sha and _marker_valid(
            marker, options, part):
        return {**base, "status": "skipped", "seconds": time.perf_counter() - t0,
                "timings_s": marker.get("timings_s", {}), "input_sha256": sha}

    # (Re)start cleanly: the marker goes first so that nothing stale looks complete.
    for stale in (marker_path, part, error_path):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    _clean_stale(sdir)
    try:
        if hash_error:
            raise AnalysisError("read", hash_error)
        from spinemetrics.report._html import plotly_js_for

        result = analyze(item.path, sdir, subject=item.subject, scan=item.scan, device=device,
                         report=report, segmenter=segmenter, covariates=item.covariates or None,
                         table_format=table_format,
                         plotly_js=plotly_js_for(report_plotly, out_dir))
        t_part = time.perf_counter()
        _write_part(result.table, out_dir, item.subject, item.scan)
        timings = {**result.timings_s, "dataset": round(time.perf_counter() - t_part, 4),
                   **{f"cpu_{k}": v for k, v in result.cpu_s.items()}}
    except AnalysisError as exc:
        return _record_failure(base, sdir, error_path, exc.stage, exc.reason, sha, t0,
                               traceback.format_exc())
    except Exception as exc:  # never let one scan kill the batch
        return _record_failure(base, sdir, error_path, "internal", f"{type(exc).__name__}: {exc}",
                               sha, t0, traceback.format_exc())
    info = {
        **base,
        "input_sha256": sha,
        "input_stat": _input_stat(item.path),
        "spinemetrics_version": __version__,
        "options": options,
        "rows": len(result.table),
        "outputs": {k: v.name for k, v in result.outputs.items()},
        "warnings": result.warnings,
        "timings_s": timings,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_text(marker_path, json.dumps(info, indent=2, default=str))  # LAST
    return {**base, "status": "done", "seconds": time.perf_counter() - t0, "timings_s": timings,
            "input_sha256": sha}


def _record_failure(base: dict[str, Any], sdir: Path, error_path: Path, stage: str, reason: str,
                    sha: str, t0: float, tb: str) -> dict[str, Any]:
    info = {**base, "stage": stage, "reason": " ".join(reason.split()), "input_sha256": sha,
            "spinemetrics_version": __version__, "traceback": tb}
    with contextlib.suppress(OSError):
        atomic_write_text(error_path, json.dumps(info, indent=2, default=str))
    return {**base, "status": "failed", "stage": stage, "reason": info["reason"],
            "seconds": time.perf_counter() - t0, "timings_s": {}, "input_sha256": sha}


# ---------------------------------------------------------------------------- dask plumbing
_SEGMENTER_CACHE: dict[str, Any] = {}


def _limit_threads() -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


def _warm_segmenter(segmenter: Any, device: str) -> None:
    """Load the CNN once per worker process; later scans reuse the cached model."""
    if segmenter not in (None, "cnn", "default", "auto"):
        return
    key = f"cnn:{device}"
    if key in _SEGMENTER_CACHE:
        return
    try:
        from spinemetrics import segment as seg_mod
    except ImportError:
        return
    for name in ("load_model", "get_model", "load_default_model"):
        loader = getattr(seg_mod, name, None)
        if callable(loader):
            try:
                _SEGMENTER_CACHE[key] = loader(device=device)
            except TypeError:
                _SEGMENTER_CACHE[key] = loader()
            return


class _WorkerSetup(WorkerPlugin):
    """dask WorkerPlugin: one thread per library, model loaded once when the worker starts."""

    name = "spinemetrics-setup"

    def __init__(self, device: str, segmenter: Any) -> None:
        self.device = device
        self.segmenter = segmenter if isinstance(segmenter, str) or segmenter is None else None

    def setup(self, worker: Any = None) -> None:
        _limit_threads()
        try:
            _warm_segmenter(self.segmenter, self.device)
        except Exception:  # a broken model shows up as per-scan 'segment' errors instead
            log.warning("could not preload the segmentation model", exc_info=True)

    def teardown(self, worker: Any = None) -> None:
        _SEGMENTER_CACHE.clear()


def _dask_run_scan(item: ScanInput, out_dir: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    return run_scan(item, out_dir, **kwargs)


def _make_client(workers: int, scheduler: str | None) -> tuple[Any, Any]:
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    # worker-saturation 1.0: a worker holds only the scans it is running, so a crash (out of
    # memory) does not take queued scans down with it.
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {
            "OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1},
            "distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    return Client(cluster), cluster


# ---------------------------------------------------------------------------- batch
LOCK_NAME = ".batch.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _output_lock(out_dir: Path):
    """One batch at a time per output folder; a lock left by a killed run is taken over."""
    import socket

    lock = out_dir / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _read_json(lock) or {}
            same_host = other.get("host") == me["host"]
            if same_host and isinstance(other.get("pid"), int) and not _pid_alive(other["pid"]):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise InputError(
                f"another batch (pid {other.get('pid')} on {other.get('host')}) is writing to "
                f"{out_dir}; wait for it or delete {lock} if it is no longer running"
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def run_batch(
    inputs: str | Path | Sequence[str | Path] | Sequence[ScanInput],
    out_dir: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    report: bool = True,
    device: str = "cpu",
    segmenter: str | Callable[..., Any] | None = None,
    table_format: str = "parquet",
    force: bool = False,
    progress: Callable[[BatchEvent], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    max_in_flight: int | None = None,
    report_plotly: str = "shared",
) -> BatchSummary:
    """Analyse many scans in parallel, resumably, and assemble the cohort tables.

    Parameters
    ----------
    inputs : path, list of paths or list of ScanInput
        What :func:`discover_inputs` accepts, or already-discovered scans.
    out_dir : path
        Batch output folder (see the module docstring for its layout).
    workers : int, optional
        Local worker processes (one thread each). Default: ``os.cpu_count()``. ``0`` runs
        in this process without Dask (debugging; accepts any callable segmenter).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); ``workers`` is ignored.
        Inputs and ``out_dir`` must be on a file system that the workers see at the same paths.
    report : bool
        Write an HTML report per scan.
    device : str
        Torch device for the CNN on the workers.
    segmenter : str or callable, optional
        See :func:`spinemetrics.pipeline.load_segmenter`. With Dask, use a string
        (``"sidecar:DIR"``, ``"module:function"``) so that workers can import it.
    table_format : {"parquet", "csv"}
        Format of the per-scan tables (the cohort dataset is always Parquet).
    force : bool
        Redo scans even if their outputs are complete.
    progress : callable, optional
        Called with a :class:`BatchEvent` after each scan (the CLI draws a progress bar).
    on_start : callable, optional
        Called once with the number of scans, before the first one starts.
    max_in_flight : int, optional
        Scans submitted to the scheduler at once (default 4 × workers, ≥ 16); bounds
        scheduler memory for 100k-scan cohorts.
    report_plotly : {"shared", "inline"}
        ``"shared"`` (default): one plotly.js in ``OUT/assets/`` that every report loads by
        relative path (reports ~0.3 MB instead of ~5 MB; keep the folder together when
        moving it). ``"inline"``: every report is a self-contained file.

    Returns
    -------
    BatchSummary
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _output_lock(out_dir):
        return _run_batch_locked(inputs, out_dir, workers=workers, scheduler=scheduler,
                                 report=report, device=device, segmenter=segmenter,
                                 table_format=table_format, force=force, progress=progress,
                                 on_start=on_start, max_in_flight=max_in_flight,
                                 report_plotly=report_plotly)


def _run_batch_locked(
    inputs: Any, out_dir: Path, *, workers: int | None, scheduler: str | None, report: bool,
    device: str, segmenter: Any, table_format: str, force: bool,
    progress: Callable[[BatchEvent], None] | None, on_start: Callable[[int], None] | None,
    max_in_flight: int | None, report_plotly: str = "shared",
) -> BatchSummary:
    t0 = time.perf_counter()
    if inputs and isinstance(inputs, (list, tuple)) and all(isinstance(i, ScanInput)
                                                              for i in inputs):
        items, disc_errors = list(inputs), []
    else:
        items, disc_errors = discover_inputs(inputs)  # type: ignore[arg-type]
    _write_covariates(items, out_dir)
    if on_start:
        on_start(len(items))
    kwargs = {"report": report, "device": device, "segmenter": segmenter,
              "table_format": table_format, "force": force, "report_plotly": report_plotly}
    if report:
        from spinemetrics.report._html import plotly_js_for

        plotly_js_for(report_plotly, out_dir)  # fail fast on a bad value
    results: list[dict[str, Any]] = []
    counts = {"done": 0, "skipped": 0, "failed": 0}

    def _emit(res: dict[str, Any]) -> None:
        results.append(res)
        counts[res["status"]] += 1
        if progress:
            progress(BatchEvent(res["subject"], res["scan"], res["status"], res["seconds"],
                                len(results), len(items), res.get("stage", ""),
                                res.get("reason", "")))

    # Fast path: complete scans whose file is unchanged (size + mtime) need no task at all.
    pending = []
    options = _options_key(report, segmenter, table_format, report_plotly)
    for it in items:
        marker = None if force else _read_json(scan_dir(out_dir, it.subject, it.scan) / DONE_MARKER)
        if marker and marker.get("input_stat") == _input_stat(it.path) and _marker_valid(
                marker, options, part_path(out_dir, it.subject, it.scan)):
            _emit({"subject": it.subject, "scan": it.scan, "path": str(it.path),
                   "status": "skipped", "seconds": 0.0, "timings_s": marker.get("timings_s", {}),
                   "input_sha256": marker.get("input_sha256", "")})
        else:
            pending.append(it)

    if workers == 0 and not scheduler:
        _limit_threads()
        for it in pending:
            _emit(run_scan(it, out_dir, **kwargs))
    elif pending:
        _run_on_dask(pending, out_dir, kwargs, workers or os.cpu_count() or 1, scheduler,
                     max_in_flight, _emit)

    shutil.rmtree(out_dir / ".staging", ignore_errors=True)
    summary = _finalise(out_dir, items, disc_errors, results, counts, time.perf_counter() - t0)
    return summary


def _run_on_dask(pending: list[ScanInput], out_dir: Path, kwargs: dict[str, Any], workers: int,
                 scheduler: str | None, max_in_flight: int | None,
                 emit: Callable[[dict[str, Any]], None]) -> None:
    from distributed import as_completed

    client, cluster = _make_client(workers, scheduler)
    futures: list[Any] = []
    try:
        client.register_plugin(_WorkerSetup(kwargs["device"], kwargs["segmenter"]))
        nthreads = sum(client.nthreads().values()) or workers
        window = max_in_flight or max(16, 4 * nthreads)
        queue = list(reversed(pending))
        by_key: dict[str, ScanInput] = {}

        def submit() -> Any:
            it = queue.pop()
            fut = client.submit(_dask_run_scan, it, str(out_dir), kwargs,
                                key=f"scan-{uuid.uuid4().hex}", pure=False)
            by_key[fut.key] = it
            return fut

        futures = [submit() for _ in range(min(window, len(queue)))]
        ac = as_completed(futures)
        retried: set[str] = set()
        for fut in ac:
            it = by_key.pop(fut.key)
            try:
                res = fut.result()
            except Exception as exc:  # KilledWorker: the worker died while holding this scan
                ident = f"{it.subject}\0{it.scan}"
                if type(exc).__name__ == "KilledWorker" and ident not in retried:
                    # A dying worker takes every scan it held with it; give each one a second
                    # chance so that only the scan that really kills workers is reported.
                    retried.add(ident)
                    queue.append(it)
                    ac.add(submit())
                    fut.release()
                    continue
                res = _record_failure(
                    {"subject": it.subject, "scan": it.scan, "path": str(it.path)},
                    scan_dir(out_dir, it.subject, it.scan),
                    scan_dir(out_dir, it.subject, it.scan) / ERROR_MARKER, "worker",
                    f"{type(exc).__name__}: {exc} (the worker died; out of memory?)", "",
                    time.perf_counter(), "")
            emit(res)
            fut.release()
            if queue:
                ac.add(submit())
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _write_covariates(items: Iterable[ScanInput], out_dir: Path) -> None:
    rows: dict[str, dict[str, Any]] = {}
    for it in items:
        if it.covariates and it.subject not in rows:
            rows[it.subject] = {"subject": it.subject, **it.covariates}
    if rows:
        with atomic_path(out_dir / "covariates.csv") as tmp:
            pd.DataFrame(list(rows.values())).to_csv(tmp, index=False)


def _finalise(out_dir: Path, items: list[ScanInput], disc_errors: list[dict[str, str]],
              results: list[dict[str, Any]], counts: dict[str, int],
              elapsed: float) -> BatchSummary:
    by_id = {(r["subject"], r["scan"]): r for r in results}
    errors = list(disc_errors)
    rows, timing_rows = [], []
    for it in items:
        r = by_id.get((it.subject, it.scan))
        if r is None:
            continue
        rows.append({"subject": it.subject, "scan": it.scan, "path": str(it.path),
                     "status": r["status"], "seconds": round(r["seconds"], 3),
                     "input_sha256": r.get("input_sha256", ""),
                     "stage": r.get("stage", ""), "reason": r.get("reason", "")})
        if r["status"] == "failed":
            errors.append(_error_row(it.subject, it.scan, it.path, r["stage"], r["reason"]))
        elif r.get("timings_s"):
            timing_rows.append({"subject": it.subject, "scan": it.scan, **r["timings_s"]})
    errors_path = out_dir / "errors.csv"
    with atomic_path(errors_path) as tmp:
        pd.DataFrame(errors, columns=ERROR_COLUMNS).to_csv(tmp, index=False)
    scans_path = out_dir / "scans.csv"
    with atomic_path(scans_path) as tmp:
        pd.DataFrame(rows, columns=["subject", "scan", "path", "status", "seconds",
                                    "input_sha256", "stage", "reason"]).to_csv(tmp, index=False)
    summary = BatchSummary(out_dir=out_dir, total=len(items), done=counts["done"],
                           skipped=counts["skipped"], failed=counts["failed"],
                           elapsed_s=round(elapsed, 3),
                           measurements=out_dir / MEASUREMENTS_DIR, errors=errors_path,
                           scans=scans_path, timings=pd.DataFrame(timing_rows))
    meta = {k: v for k, v in asdict(summary).items() if k != "timings"}
    meta.update(discover_errors=len(disc_errors), spinemetrics_version=__version__)
    atomic_write_text(out_dir / "batch_summary.json", json.dumps(meta, indent=2, default=str))
    return summary


# ---------------------------------------------------------------------------- readers
def read_measurements(out_dir: str | Path) -> pd.DataFrame:
    """The batch's long table (all per-scan parts), sorted by subject, scan, level, measure."""
    root = Path(out_dir)
    if root.name != MEASUREMENTS_DIR and (root / MEASUREMENTS_DIR).is_dir():
        root = root / MEASUREMENTS_DIR
    files = sorted(p for p in root.rglob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        return pd.DataFrame({c: pd.Series(dtype="float64" if t == "float64" else object)
                             for c, t in TABLE_COLUMNS.items()})
    import pyarrow.dataset as ds

    # One dataset over explicit files: fast for 100k parts, and no partition inference.
    table = ds.dataset([str(f) for f in files], format="parquet").to_table().to_pandas()
    return table.sort_values(["subject", "scan", "level", "side", "measure"],
                             kind="stable").reset_index(drop=True)


def collect_errors(out_dir: str | Path) -> pd.DataFrame:
    """The batch's error table (``ERROR_COLUMNS``)."""
    path = Path(out_dir) / "errors.csv"
    if not path.exists():
        return pd.DataFrame(columns=ERROR_COLUMNS)
    return pd.read_csv(path, dtype=str, keep_default_na=False)

