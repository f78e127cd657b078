"""One scan end to end: read → check → segment → levels → measure → report → write.

:func:`analyze` composes the public stages of the library (it holds no image logic of its
own beyond the input checks below) and writes, next to each other in ``out_dir``::

    <stem>_seg.nii.gz            11-structure label map, on the input's own grid
    <stem>_levels.nii.gz         vertebra/disc instance map (contract §3), on the input grid
    <stem>_measurements.parquet  long table (contract §5); ``table_format="csv"`` for CSV
    <stem>_report.html           self-contained subject report (``report=True``)
    <stem>_provenance.json       version, model, input hash, per-stage timings, warnings

Every file is written atomically, the provenance file last, so a reader that sees the
provenance file sees a complete set. Any failure is raised as :class:`AnalysisError`, which
names the stage that failed (``read``, ``check``, ``segment``, ``measure``, ``report``,
``write``) so that batch runs can tabulate errors by stage.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spinemetrics.atomic import atomic_path, atomic_write_text
from spinemetrics.errors import InputError, SpinemetricsError
from spinemetrics.image import Image
from spinemetrics.provenance import file_sha256, provenance

__all__ = [
    "AnalysisError",
    "AnalysisResult",
    "STAGES",
    "TABLE_COLUMNS",
    "analyze",
    "check_input",
    "load_segmenter",
    "scan_stem",
    "sidecar_segmenter",
    "standardize_table",
]

log = logging.getLogger(__name__)

#: Stage names, in order; ``AnalysisError.stage`` is one of them.
STAGES = ("read", "check", "segment", "levels", "measure", "norms", "report", "write")

#: Contract §5 columns, in order, with the dtype every writer uses (so that per-scan Parquet
#: files of a batch share one schema).
TABLE_COLUMNS: dict[str, str] = {
    "subject": "string",
    "scan": "string",
    "level": "string",
    "side": "string",
    "measure": "string",
    "value": "float64",
    "unit": "string",
    "qc": "string",
}

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")

# Input checks (see check_input). Sagittal lumbar series have ≤ ~1.2 mm in-plane spacing;
# 3 mm leaves room for low-resolution phantoms while rejecting axial stacks (4–6 mm along S).
MAX_SI_SPACING_MM = 3.0
MIN_SI_EXTENT_MM = 60.0  # must hold at least one vertebra, one disc and a neighbour
MIN_SLICES = 5
CT_AIR_HU = -500.0
CT_AIR_FRACTION = 0.05


class AnalysisError(SpinemetricsError):
    """A scan could not be analysed; ``.stage`` names the stage, ``.reason`` the cause."""

    def __init__(self, stage: str, reason: str) -> None:
        self.stage = stage
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{stage} failed: {self.reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across dask workers
        return (AnalysisError, (self.stage, self.reason))


@dataclass
class AnalysisResult:
    """What :func:`analyze` produced for one scan.

    Attributes
    ----------
    subject, scan : str
        Identifiers written in every table row.
    input_path : pathlib.Path
        The image file or DICOM folder analysed.
    table : pandas.DataFrame
        Long measurement table (contract §5 columns).
    outputs : dict[str, pathlib.Path]
        ``seg``, ``levels``, ``measurements``, ``report`` (if made), ``provenance``.
    warnings : list[str]
        Warnings from every stage (odd inputs, partial field of view, missing pieces).
    timings_s : dict[str, float]
        Wall time per stage, in seconds.
    cpu_s : dict[str, float]
        Process CPU time per stage, in seconds (unaffected by other jobs on the machine).
    provenance : dict
        The content of the provenance file.
    """

    subject: str
    scan: str
    input_path: Path
    table: pd.DataFrame
    outputs: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)


@dataclass
class _Segmentation:
    """Normalised output of any segmenter: ``seg`` (+ optional ``levels``) on the image grid."""

    seg: Image
    levels: Image | None
    warnings: list[str]
    model: dict[str, Any]


# ---------------------------------------------------------------------------- helpers
def scan_stem(path: str | Path) -> str:
    """File name without image suffixes: ``sub-01_T2w.nii.gz`` → ``sub-01_T2w``.

    A DICOM folder's stem is the folder name.
    """
    p = Path(path)
    name = p.name
    if p.is_dir():
        return name
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES + (".dcm", ".csv", ".parquet"):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return p.stem


@contextmanager
def _stage(
    name: str, timings: dict[str, float], on_stage: Callable[[str], None] | None = None,
    cpu: dict[str, float] | None = None,
) -> Iterator[None]:
    """Time a stage (wall, and process CPU into ``cpu``) and turn any failure into an
    :class:`AnalysisError` naming it."""
    if on_stage is not None:
        on_stage(name)
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        yield
    except AnalysisError:
        raise
    except SpinemetricsError as exc:
        raise AnalysisError(name, str(exc)) from exc
    except (OSError, EOFError, MemoryError) as exc:
        raise AnalysisError(name, f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # a bug or an unreadable file deep inside a dependency
        log.debug("unexpected error in stage %s", name, exc_info=True)
        raise AnalysisError(
            name, f"{type(exc).__name__}: {exc} (unexpected; rerun with -v and report it)"
        ) from exc
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 4)
        if cpu is not None:
            cpu[name] = round(cpu.get(name, 0.0) + time.process_time() - c0, 4)


def check_input(image: Image) -> list[str]:
    """Reject images the sagittal-MRI pipeline cannot analyse; return soft warnings.

    Raises :class:`~spinemetrics.errors.InputError` for: an essentially 2D image (fewer than
    5 voxels along an axis), a field of view shorter than 60 mm cranio-caudally, slices too
    thick along the spine's long axis (an axial-only stack: > 3 mm between voxels along S),
    and CT (DICOM modality ``CT``, or ≥ 5 % of voxels below −500, i.e. air in Hounsfield
    units). The image must be in the canonical RAS+ frame (as :func:`spinemetrics.io.read_image`
    returns it).

    Parameters
    ----------
    image : Image
        Canonical RAS+ image.

    Returns
    -------
    list of str
        Non-fatal warnings (e.g. unusual intensity range).
    """
    warnings: list[str] = []
    shape = image.shape
    if min(shape) < MIN_SLICES:
        raise InputError(
            f"image is essentially 2D (shape {shape}); pass a 3D sagittal series with at "
            f"least {MIN_SLICES} slices"
        )
    canon = image if image.orientation == ("R", "A", "S") else image.to_canonical()
    si_spacing = canon.spacing[2]
    si_extent = si_spacing * canon.shape[2]
    if si_spacing > MAX_SI_SPACING_MM:
        raise InputError(
            f"voxels are {si_spacing:.1f} mm apart cranio-caudally (an axial or coronal stack "
            "of thick slices); pass the sagittal T2 series (use --series to choose it)"
        )
    if si_extent < MIN_SI_EXTENT_MM:
        raise InputError(
            f"field of view covers only {si_extent:.0f} mm cranio-caudally; pass a sagittal "
            f"lumbar series covering at least {MIN_SI_EXTENT_MM:.0f} mm"
        )
    modality = str(image.meta.get("modality", "")).upper()
    arr = np.asarray(image.array)
    if modality == "CT":
        raise InputError("image is CT (DICOM Modality CT); spinemetrics segments MRI: pass a "
                         "T2-weighted MR series")
    if not np.issubdtype(arr.dtype, np.number) or arr.size == 0:
        raise InputError(f"image has no numeric voxels (dtype {arr.dtype}); check the file")
    sample = arr.flat[:: max(1, arr.size // 200_000)].astype(np.float64)
    if not np.isfinite(sample).any():
        raise InputError("image holds no finite values; check the file")
    air = float(np.mean(sample < CT_AIR_HU))
    if air >= CT_AIR_FRACTION:
        raise InputError(
            f"image looks like CT ({air:.0%} of voxels below {CT_AIR_HU:.0f}, i.e. air in "
            "Hounsfield units); spinemetrics segments MRI: pass a T2-weighted MR series"
        )
    if float(np.nanmax(sample)) <= float(np.nanmin(sample)):
        raise InputError("image is constant (all voxels equal); check the file")
    return warnings


def standardize_table(table: pd.DataFrame, subject: str, scan: str) -> pd.DataFrame:
    """Contract §5 columns in order, fixed dtypes, ``subject``/``scan`` filled in.

    Extra columns produced by the geometry module are kept after the contract columns.
    """
    out = table.copy()
    out["subject"] = subject
    out["scan"] = scan
    for col, dtype in TABLE_COLUMNS.items():
        if col not in out.columns:
            out[col] = np.nan if dtype == "float64" else ("ok" if col == "qc" else "")
        if dtype == "float64":
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
        else:
            out[col] = out[col].fillna("").astype(str).astype(object)
    extras = [c for c in out.columns if c not in TABLE_COLUMNS]
    return out[list(TABLE_COLUMNS) + extras].reset_index(drop=True)


# ---------------------------------------------------------------------------- segmenters
def _normalise_segmentation(result: Any, image: Image) -> _Segmentation:
    """Accept a SegmentationResult-like object, a ``(seg, levels)`` tuple or a bare Image."""
    if isinstance(result, Image):
        seg, levels, warns, model = result, None, [], {}
    elif isinstance(result, tuple):
        seg, levels = result[0], (result[1] if len(result) > 1 else None)
        warns, model = [], {}
    else:
        seg = result.seg
        levels = getattr(result, "levels", None)
        warns = list(getattr(result, "warnings", []) or [])
        model = dict(getattr(result, "model", None) or getattr(result, "model_info", None) or {})
    for name, img in (("segmentation", seg), ("level map", levels)):
        if img is not None and tuple(img.shape) != tuple(image.shape):
            raise InputError(
                f"{name} shape {img.shape} does not match the image {image.shape}; the "
                "segmenter must return label maps on the image grid"
            )
    return _Segmentation(seg=seg, levels=levels, warnings=[str(w) for w in warns], model=model)


def sidecar_segmenter(folder: str | Path | None = None) -> Callable[..., Any]:
    """A segmenter that reads existing label maps instead of running the CNN.

    For an image ``X/<stem>.nii.gz`` it reads ``<folder or X>/<stem>_seg.nii.gz`` (contract §2
    labels) and, when present, ``<stem>_levels.nii.gz`` (contract §3). Use it to measure
    cohorts segmented elsewhere (after ``spinemetrics convert``) at batch scale.

    Parameters
    ----------
    folder : path, optional
        Where the label maps are; default: next to each image.
    """
    base = None if folder is None else Path(folder)

    def _segment(image: Image, **_: Any) -> tuple[Image, Image | None]:
        from spinemetrics.io import read_labels

        src = image.meta.get("source_path") or image.meta.get("path")
        if not src:
            raise InputError("sidecar segmenter needs image.meta['source_path']; read the image "
                             "with spinemetrics.io.read_image")
        src = Path(src)
        where = base or src.parent
        stem = scan_stem(src)
        seg_path = where / f"{stem}_seg.nii.gz"
        if not seg_path.exists():
            raise InputError(f"no label map {seg_path}; segment the scan first or drop "
                             "--segmenter sidecar")
        seg = read_labels(seg_path)
        lev_path = where / f"{stem}_levels.nii.gz"
        levels = read_labels(lev_path) if lev_path.exists() else None
        return seg, levels

    _segment.model_info = {"model": "sidecar", "folder": str(base or "next to image")}  # type: ignore[attr-defined]
    return _segment


def load_segmenter(spec: str | Callable[..., Any] | None) -> Callable[..., Any]:
    """Resolve a segmenter: ``None``/``"cnn"`` (the shipped model), ``"sidecar"``,
    ``"sidecar:FOLDER"``, ``"module:function"`` or a callable ``f(image, device=...)``.

    Parameters
    ----------
    spec : str or callable or None
        See above.

    Returns
    -------
    callable
        ``f(image, device="auto")`` returning a SegmentationResult-like object, a
        ``(seg, levels)`` tuple or a seg :class:`~spinemetrics.image.Image`.
    """
    if callable(spec):
        return spec
    if spec is None or spec in ("cnn", "default", "auto"):
        try:
            from spinemetrics.segment import segment
        except ImportError as exc:
            raise InputError(
                f"the CNN segmenter is not available ({exc}); reinstall spinemetrics or pass "
                "--segmenter sidecar with existing label maps"
            ) from exc
        return segment
    if spec == "sidecar" or spec.startswith("sidecar:"):
        return sidecar_segmenter(spec.partition(":")[2] or None)
    module_name, _, func_name = spec.partition(":")
    if not func_name:
        raise InputError(f"unknown segmenter {spec!r}; use 'cnn', 'sidecar[:DIR]' or "
                         "'package.module:function'")
    try:
        return getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"cannot import segmenter {spec!r} ({exc}); check the module path "
                         "and PYTHONPATH") from exc


def _cnn_model_info(device: str) -> dict[str, Any]:
    """Name/version/hash of the shipped network (already loaded and cached by segment())."""
    try:
        from spinemetrics.segment import load_model

        meta = load_model(device)[2]
    except Exception:  # provenance must never fail a scan
        return {"model": "spinemetrics CNN"}
    keep = {k: v for k, v in dict(meta).items() if isinstance(v, (str, int, float, bool))}
    return {"model": "spinemetrics CNN", **keep, "weights_sha256": _weights_sha256()}


@functools.lru_cache(maxsize=1)
def _weights_sha256() -> str:
    """Hash of the shipped weight file: names the exact network behind every output."""
    from spinemetrics.segment.inference import DEFAULT_WEIGHTS

    return file_sha256(DEFAULT_WEIGHTS)


def _call_segmenter(fn: Callable[..., Any], image: Image, device: str) -> Any:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "device" in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return fn(image, device=device)
    return fn(image)


def _derive_levels(seg: Image) -> tuple[Image | None, list[str]]:
    try:
        from spinemetrics.levels import derive_levels
    except ImportError:
        return None, ["level labelling unavailable (spinemetrics.levels missing); "
                      "levels derived by the measure stage"]
    res = derive_levels(seg)
    levels = getattr(res, "levels", res)
    return levels, [str(w) for w in getattr(res, "warnings", []) or []]


# ---------------------------------------------------------------------------- reporting
def _normative_scores(
    table: pd.DataFrame, subject: str, covariates: dict[str, Any] | None
) -> pd.DataFrame | None:
    """z-scores against the shipped norms; ``None`` without age and sex (norms need both)."""
    if not covariates or not {"age", "sex"} <= set(covariates):
        return None
    from spinemetrics.stats.norms import load_default_norms, zscores

    cov = pd.DataFrame([{**covariates, "subject": subject}])
    return zscores(table, cov, load_default_norms())


def _write_report(
    path: Path,
    image: Image,
    seg: Image,
    levels: Image | None,
    table: pd.DataFrame,
    zscores: pd.DataFrame | None,
    prov: dict[str, Any],
    warnings: list[str],
    plotly_js: str = "inline",
) -> bool:
    """Write the subject report; ``False`` (and a warning) when the report module is absent."""
    try:
        from spinemetrics.report import subject_report
    except ImportError:
        warnings.append("subject report skipped: spinemetrics.report is not available")
        return False
    subject_report(image, seg, levels, table, path, provenance=prov, zscores=zscores,
                   warnings=list(warnings), subject=str(prov.get("subject") or "") or None,
                   plotly_js=plotly_js)
    return True


def _write_table(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        if path.name.endswith(".csv"):
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)


def _write_label_image(img: Image, path: Path, reference: Image) -> None:
    from spinemetrics.io import write_image

    arr = np.asarray(img.array)
    # Label ids go up to 128 (T13 disc); uint8 keeps files small and viewers happy.
    if arr.dtype != np.uint8 and arr.size and arr.min() >= 0 and arr.max() <= 255:
        img = img.with_array(arr.astype(np.uint8))
    with atomic_path(path) as tmp:
        write_image(img, tmp, reference=reference)


# ---------------------------------------------------------------------------- analyze
def analyze(
    path: str | Path,
    out_dir: str | Path,
    *,
    subject: str | None = None,
    scan: str | None = None,
    device: str = "auto",
    report: bool = True,
    series: str | None = None,
    segmenter: str | Callable[..., Any] | None = None,
    covariates: dict[str, Any] | None = None,
    table_format: str = "parquet",
    stem: str | None = None,
    on_stage: Callable[[str], None] | None = None,
    plotly_js: str = "inline",
) -> AnalysisResult:
    """Analyse one scan end to end and write its outputs to ``out_dir``.

    Parameters
    ----------
    path : path
        Image file (NIfTI, MHA/MHD, NRRD) or DICOM series folder.
    out_dir : path
        Output folder (created).
    subject, scan : str, optional
        Identifiers for the table; default: the file's stem for both.
    device : str
        ``"auto"`` (GPU when present), ``"cpu"`` or a torch device string.
    report : bool
        Write the HTML subject report.
    series : str, optional
        DICOM SeriesInstanceUID or description, when the folder holds several series.
    segmenter : str or callable, optional
        ``None`` (the CNN), ``"sidecar[:DIR]"`` or ``"module:function"`` or a callable; see
        :func:`load_segmenter`.
    covariates : dict, optional
        Per-subject covariates (age, sex…) for normative z-scores in the report.
    table_format : {"parquet", "csv"}
        Format of ``<stem>_measurements``.
    stem : str, optional
        Output file prefix; default: the input's stem.
    on_stage : callable, optional
        Called with each stage name as it starts (progress display).
    plotly_js : str
        ``"inline"`` (default): the report embeds plotly.js (one self-contained ~5 MB file).
        A folder path: one shared plotly.js there, loaded by relative path (see
        :func:`spinemetrics.report.subject_report`).

    Returns
    -------
    AnalysisResult

    Raises
    ------
    AnalysisError
        With ``.stage`` naming the stage that failed and a one-line ``.reason``.
    """
    from spinemetrics.io import read_image

    path = Path(path)
    out_dir = Path(out_dir)
    stem = stem or scan_stem(path)
    subject = str(subject) if subject is not None else stem
    scan = str(scan) if scan is not None else stem
    timings: dict[str, float] = {}
    cpu_s: dict[str, float] = {}  # process CPU per stage: comparable on a loaded machine
    warnings: list[str] = []
    if table_format not in ("parquet", "csv"):
        raise AnalysisError("check", f"unknown table format {table_format!r}; use parquet or csv")

    with _stage("read", timings, on_stage, cpu_s):
        if not path.exists():
            raise InputError(f"input not found: {path}; check the path")
        if path.is_file() and path.stat().st_size == 0:
            raise InputError(f"input file is empty: {path}; re-export or re-copy it")
        image = read_image(path, series=series) if series else read_image(path)
        image.meta.setdefault("source_path", str(path))
        warnings.extend(str(w) for w in image.meta.get("warnings", []) or [])

    with _stage("check", timings, on_stage, cpu_s):
        warnings.extend(check_input(image))

    with _stage("segment", timings, on_stage, cpu_s):
        fn = load_segmenter(segmenter)
        segres = _normalise_segmentation(_call_segmenter(fn, image, device), image)
        warnings.extend(segres.warnings)
        model_info = segres.model or dict(getattr(fn, "model_info", {}) or {})
        if not model_info and (segmenter is None or segmenter in ("cnn", "default", "auto")):
            model_info = _cnn_model_info(device)

    levels = segres.levels
    if levels is None:
        with _stage("levels", timings, on_stage, cpu_s):
            levels, lw = _derive_levels(segres.seg)
            warnings.extend(lw)

    with _stage("measure", timings, on_stage, cpu_s):
        from spinemetrics.geometry import measure

        table = measure(segres.seg, levels, subject=subject, scan=scan)
        table = standardize_table(table, subject, scan)
        mwarn = table.attrs.get("warnings") if hasattr(table, "attrs") else None
        warnings.extend(str(w) for w in mwarn or [])

    prov = provenance(
        path,
        subject=subject,
        scan=scan,
        model=model_info,
        device=device,
        image_shape=list(image.shape),
        image_spacing_mm=[round(s, 4) for s in image.spacing],
    )

    outputs: dict[str, Path] = {}
    with _stage("write", timings, on_stage, cpu_s):
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs["seg"] = out_dir / f"{stem}_seg.nii.gz"
        _write_label_image(segres.seg, outputs["seg"], image)
        if levels is not None:
            outputs["levels"] = out_dir / f"{stem}_levels.nii.gz"
            _write_label_image(levels, outputs["levels"], image)
        ext = "csv" if table_format == "csv" else "parquet"
        outputs["measurements"] = out_dir / f"{stem}_measurements.{ext}"
        _write_table(table, outputs["measurements"])

    if report:
        zscores = None
        with _stage("norms", timings, on_stage, cpu_s):
            try:
                zscores = _normative_scores(table, subject, covariates)
            except (SpinemetricsError, ImportError) as exc:
                warnings.append(f"normative z-scores skipped: {exc}")
        with _stage("report", timings, on_stage, cpu_s):
            rpath = out_dir / f"{stem}_report.html"
            if _write_report(rpath, image, segres.seg, levels, table, zscores,
                             {**prov, "timings_s": dict(timings)}, warnings, plotly_js):
                outputs["report"] = rpath

    prov["timings_s"] = dict(timings)
    prov["cpu_s"] = dict(cpu_s)
    prov["warnings"] = list(dict.fromkeys(warnings))
    prov["outputs"] = {k: v.name for k, v in outputs.items()}
    outputs["provenance"] = out_dir / f"{stem}_provenance.json"
    atomic_write_text(outputs["provenance"], json.dumps(prov, indent=2, default=str))
    for w in prov["warnings"]:
        log.info("%s/%s: %s", subject, scan, w)
    return AnalysisResult(
        subject=subject,
        scan=scan,
        input_path=path,
        table=table,
        outputs=outputs,
        warnings=prov["warnings"],
        timings_s=dict(timings),
        provenance=prov,
        cpu_s=dict(cpu_s),
    )
