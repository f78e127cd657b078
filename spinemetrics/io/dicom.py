"""DICOM series: find the series in a folder, pick one, read it with correct geometry.

Headers are scanned with pydicom (``stop_before_pixels``); pixel data and rescaling go through
SimpleITK's ``ImageSeriesReader`` on files we have sorted ourselves along the slice normal
(GDCM's own series grouping fails on files with an empty SeriesInstanceUID).

Privacy: only technical tags are copied out (series UID, description, protocol, modality,
orientation, sizes). Patient name, ID, birth date and all other identifiers are never read
into metadata.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydicom
import pydicom.errors

from spinemetrics.errors import InputError
from spinemetrics.io._shape import LPS_TO_RAS
from spinemetrics.io.itk import quiet_itk, sitk, sitk_to_array_affine
from spinemetrics.provenance import file_sha256

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DicomSeries", "find_dicom_series", "list_dicom_series", "select_series", "read_series"]

log = logging.getLogger(__name__)

_PLANES = ("sagittal", "coronal", "axial")  # slice normal mostly along x (LR), y (AP), z (SI)


@dataclass
class DicomSeries:
    """One image stack: files sorted along the slice normal plus technical tags only."""

    uid: str
    description: str
    protocol: str
    modality: str | None
    normal_lps: np.ndarray
    row_dir_lps: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    col_dir_lps: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))
    pixel_spacing_rc: tuple[float, float] = (1.0, 1.0)
    slice_thickness: float | None = None
    files: list[Path] = field(default_factory=list)
    positions_mm: list[float] = field(default_factory=list)
    ipp_lps: list[np.ndarray] = field(default_factory=list)
    frames: list[int | None] = field(default_factory=list)
    rows: int = 0
    columns: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def n_slices(self) -> int:
        return len(self.positions_mm)

    @property
    def orientation(self) -> str:
        """``sagittal`` / ``coronal`` / ``axial``: plane whose normal is closest."""
        return _PLANES[int(np.argmax(np.abs(self.normal_lps)))]

    @property
    def obliquity_deg(self) -> float:
        """Angle between the slice normal and the nearest patient axis."""
        return float(np.degrees(np.arccos(min(1.0, float(np.max(np.abs(self.normal_lps)))))))

    @property
    def is_t2(self) -> bool:
        text = f"{self.description} {self.protocol}".lower()
        return "t2" in text

    def summary(self) -> dict:
        return {
            "uid": self.uid,
            "description": self.description,
            "protocol": self.protocol,
            "modality": self.modality,
            "n_slices": self.n_slices,
            "orientation": self.orientation,
            "obliquity_deg": round(self.obliquity_deg, 2),
            "rows": self.rows,
            "columns": self.columns,
        }


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


@dataclass
class _Slice:
    """One 2D image: a classic DICOM file or one frame of an enhanced multi-frame file."""

    path: Path
    frame: int | None
    ds: pydicom.Dataset
    iop: tuple[float, ...]
    ipp: tuple[float, ...]
    pixel_spacing: tuple[float, ...]
    thickness: float
    instance: int


def _first_item(ds: pydicom.Dataset, seq: str) -> pydicom.Dataset | None:
    value = ds.get(seq)
    return value[0] if value else None


def _floats(value, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _slices_of(path: Path, ds: pydicom.Dataset) -> list[_Slice]:
    """Classic file → one slice; enhanced multi-frame file → one slice per frame."""
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if n_frames > 1 and per_frame:
        shared = _first_item(ds, "SharedFunctionalGroupsSequence") or pydicom.Dataset()
        out = []
        for f, item in enumerate(per_frame):
            def grp(name: str, item=item) -> pydicom.Dataset | None:
                return _first_item(item, name) or _first_item(shared, name)

            orient, pos, meas = (grp("PlaneOrientationSequence"), grp("PlanePositionSequence"),
                                 grp("PixelMeasuresSequence"))
            if orient is None or pos is None or meas is None:
                return []
            iop = _floats(orient.get("ImageOrientationPatient"), 6)
            ipp = _floats(pos.get("ImagePositionPatient"), 3)
            ps = _floats(meas.get("PixelSpacing"), 2)
            if iop is None or ipp is None or ps is None:
                return []
            thick = meas.get("SpacingBetweenSlices") or meas.get("SliceThickness") or 0
            out.append(_Slice(path, f, ds, iop, ipp, ps, float(thick), f + 1))
        return out
    iop = _floats(ds.get("ImageOrientationPatient"), 6)
    ipp = _floats(ds.get("ImagePositionPatient"), 3)
    if iop is None or ipp is None or "Rows" not in ds:
        return []  # DICOMDIR, structured reports, presentation states …
    ps = _floats(ds.get("PixelSpacing", [0.0, 0.0]), 2) or (0.0, 0.0)
    try:
        thick = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 0)
    except (TypeError, ValueError):
        thick = 0.0
    return [_Slice(path, None, ds, iop, ipp, ps, thick, int(ds.get("InstanceNumber", 0) or 0))]


def _read_header(path: Path) -> pydicom.Dataset | None:
    """Header of a DICOM file, or None for anything else (skipped, like a viewer would)."""
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError:
        # Files without the 128-byte preamble (old exports): try once more by force, but
        # only where the name suggests DICOM, so random binaries are not parsed.
        if path.suffix.lower() not in ("", ".dcm", ".ima", ".dicom"):
            return None
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
        except Exception:
            return None
        return ds if "Rows" in ds and "SOPClassUID" in ds else None
    except Exception:
        return None


def find_dicom_series(folder: str | Path) -> list[DicomSeries]:
    """Scan ``folder`` (recursively) and group image files into series.

    Files are grouped by SeriesInstanceUID and image orientation (a localizer stored as one
    series with three planes becomes three stacks). Enhanced multi-frame files contribute one
    slice per frame (geometry from the per-frame functional groups). Non-DICOM files are
    ignored.

    Parameters
    ----------
    folder : str or Path
        Folder holding the DICOM files.

    Returns
    -------
    list of DicomSeries
        Possibly empty.
    """
    folder = Path(folder)
    groups: dict[tuple, list[_Slice]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        ds = _read_header(path)
        if ds is None:
            continue
        for sl in _slices_of(path, ds):
            key = (_text(ds, "SeriesInstanceUID"), tuple(round(v, 3) for v in sl.iop))
            groups.setdefault(key, []).append(sl)

    series: list[DicomSeries] = []
    for (uid, _), items in groups.items():
        first = items[0]
        # Direction cosines are stored rounded: renormalise so spacing stays exact.
        row = np.asarray(first.iop[:3]) / (np.linalg.norm(first.iop[:3]) or 1.0)
        col = np.asarray(first.iop[3:]) / (np.linalg.norm(first.iop[3:]) or 1.0)
        normal = np.cross(row, col)
        normal /= np.linalg.norm(normal) or 1.0
        s = DicomSeries(
            uid=uid,
            description=_text(first.ds, "SeriesDescription"),
            protocol=_text(first.ds, "ProtocolName"),
            modality=_text(first.ds, "Modality") or None,
            normal_lps=normal,
            row_dir_lps=row,
            col_dir_lps=col,
            pixel_spacing_rc=first.pixel_spacing,  # type: ignore[arg-type]
            slice_thickness=first.thickness or None,
            rows=int(first.ds.get("Rows", 0) or 0),
            columns=int(first.ds.get("Columns", 0) or 0),
        )
        by_pos: dict[float, _Slice] = {}
        n_dupes = 0
        for sl in items:
            pos = round(float(np.dot(sl.ipp, normal)), 3)
            if pos in by_pos:
                n_dupes += 1
                if sl.instance >= by_pos[pos].instance:
                    continue
            by_pos[pos] = sl
        if n_dupes:
            s.warnings.append(
                f"series {uid or s.description!r}: {n_dupes} images share a slice position "
                "(several echoes or time points); the first instance at each position was used"
            )
        for pos in sorted(by_pos):
            s.positions_mm.append(pos)
            s.files.append(by_pos[pos].path)
            s.frames.append(by_pos[pos].frame)
            s.ipp_lps.append(np.asarray(by_pos[pos].ipp))
        series.append(s)
    return series


def list_dicom_series(folder: str | Path) -> pd.DataFrame:
    """Table of the image series in a DICOM folder, without any patient identifier.

    Parameters
    ----------
    folder : str or Path
        DICOM folder (searched recursively).

    Returns
    -------
    pandas.DataFrame
        Columns ``uid, description, protocol, modality, n_slices, orientation,
        obliquity_deg, rows, columns``; one row per series, the default choice first.
    """
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; give the folder that holds the DICOM files")
    series = sorted(find_dicom_series(folder), key=_preference, reverse=True)
    cols = [
        "uid", "description", "protocol", "modality", "n_slices", "orientation",
        "obliquity_deg", "rows", "columns",
    ]
    return pd.DataFrame([s.summary() for s in series], columns=cols)


_LOCALIZER_WORDS = ("localizer", "localiser", "scout", "survey", "3-plane", "3plane", "loc ")


def _preference(s: DicomSeries) -> tuple:
    # A real volume (≥ 3 slices, not a localizer) first, then sagittal, then T2 by name,
    # then most slices, then least oblique.
    text = f"{s.description} {s.protocol} ".lower()
    volume = s.n_slices >= 3 and not any(w in text for w in _LOCALIZER_WORDS)
    return (volume, s.orientation == "sagittal", s.is_t2, s.n_slices, -s.obliquity_deg)


def select_series(
    series: list[DicomSeries], folder: Path, choice: str | None = None
) -> tuple[DicomSeries, list[str]]:
    """Pick one series: by UID / description substring when ``choice`` is given, else the
    sagittal T2 (or, failing that, the sagittal with most slices)."""
    usable = [s for s in series if s.n_slices >= 1]
    if not usable:
        raise InputError(
            f"no DICOM image series found in {folder}; point to the folder that holds the "
            "series' .dcm files"
        )
    warnings: list[str] = []
    if choice:
        exact = [s for s in usable if s.uid and s.uid == choice]
        hits = exact or [s for s in usable if choice.lower() in s.description.lower()]
        if not hits:
            names = ", ".join(sorted({repr(s.description or s.uid) for s in usable}))
            raise InputError(
                f"no series matches {choice!r} in {folder}; available: {names} "
                "(choose by SeriesInstanceUID or part of the SeriesDescription)"
            )
        if len(hits) > 1 and len({s.uid for s in hits}) > 1:
            uids = ", ".join(s.uid for s in hits)
            raise InputError(
                f"{choice!r} matches {len(hits)} series ({uids}); choose one by its "
                "SeriesInstanceUID"
            )
        return max(hits, key=_preference), warnings
    best = max(usable, key=_preference)
    if best.orientation != "sagittal":
        warnings.append(
            f"no sagittal series in {folder}; using the {best.orientation} series "
            f"{best.description!r} ({best.n_slices} slices)"
        )
    elif not best.is_t2 and len(usable) > 1:
        warnings.append(
            f"no series named T2 in {folder}; using sagittal series {best.description!r}"
        )
    return best, warnings


def _series_meta(s: DicomSeries, warnings: list[str]) -> dict:
    return {
        "format": "dicom",
        "modality": s.modality,
        "series_uid": s.uid,
        "series_description": s.description,
        "protocol_name": s.protocol,
        "n_slices": s.n_slices,
        "slice_normal_ras": [float(v) for v in s.normal_lps * np.array([-1.0, -1.0, 1.0])],
        "input_sha256": _series_sha256(s.files),
        "warnings": warnings,
    }


def _read_frames(s: DicomSeries) -> np.ndarray:
    """Pixel data decoded by pydicom → ``[i=column, j=row, k=slice]`` (enhanced multi-frame
    files, and classic files GDCM refuses)."""
    cache: dict[Path, tuple[np.ndarray, pydicom.Dataset]] = {}
    planes = []
    for path, frame in zip(s.files, s.frames, strict=True):
        if path not in cache:
            try:
                ds = pydicom.dcmread(str(path), force=True)
                pix = ds.pixel_array
            except Exception:
                raise InputError(
                    f"cannot decode the pixel data of {path.name} (DICOM series "
                    f"{s.description or s.uid!r}); the file is corrupt or uses an unsupported "
                    "compression"
                ) from None
            cache[path] = (pix.reshape((-1, *pix.shape[-2:])), ds)
        pix, ds = cache[path]
        slope, intercept = _rescale(ds, frame or 0)
        plane = pix[frame or 0]
        if (slope, intercept) != (1.0, 0.0):
            plane = plane.astype(np.float32) * slope + intercept
        planes.append(plane)
    return np.ascontiguousarray(np.stack(planes, axis=-1).transpose(1, 0, 2))


def _rescale(ds: pydicom.Dataset, frame: int) -> tuple[float, float]:
    item = None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame:
        item = _first_item(per_frame[frame], "PixelValueTransformationSequence")
    if item is None:
        shared = _first_item(ds, "SharedFunctionalGroupsSequence")
        item = _first_item(shared, "PixelValueTransformationSequence") if shared else None
    src = item if item is not None else ds
    try:
        return float(src.get("RescaleSlope", 1) or 1), float(src.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        return 1.0, 0.0


def _affine_from_tags(s: DicomSeries, warnings: list[str]) -> np.ndarray:
    """RAS+ affine from ImageOrientation/Position and PixelSpacing of the sorted slices.

    Computed here rather than taken from ITK so that the slice axis is the true step between
    slice positions (correct for gantry tilt) and non-orthogonal rounding in the headers
    cannot make ITK fall back to an identity direction.
    """
    dr, dc = s.pixel_spacing_rc
    lps = np.eye(4)
    lps[:3, 0] = s.row_dir_lps * dc  # index i runs along a row: column spacing
    lps[:3, 1] = s.col_dir_lps * dr  # index j runs down the rows: row spacing
    if len(s.ipp_lps) > 1:
        lps[:3, 2] = (s.ipp_lps[-1] - s.ipp_lps[0]) / (len(s.ipp_lps) - 1)
    else:
        lps[:3, 2] = s.normal_lps * (s.slice_thickness or 0.0)
    lps[:3, 3] = s.ipp_lps[0]
    if abs(float(np.dot(s.row_dir_lps, s.col_dir_lps))) > 1e-3:
        warnings.append(
            f"DICOM series {s.description!r}: ImageOrientationPatient row and column "
            "directions are not perpendicular; the geometry may be distorted"
        )
    return LPS_TO_RAS @ lps


def _series_sha256(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in dict.fromkeys(files):  # a multi-frame file counts once
        digest.update(file_sha256(f).encode())
    return digest.hexdigest()


def read_series(s: DicomSeries) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read one series: (array ``[i, j, k]``, RAS+ affine, technical metadata)."""
    warnings = list(s.warnings)
    names = [str(f) for f in s.files]
    if any(f is not None for f in s.frames):
        array = _read_frames(s)
        affine = _affine_from_tags(s, warnings)
        return array, affine, _series_meta(s, warnings)
    try:
        with quiet_itk():  # e.g. "non uniform sampling": reported by us as a warning instead
            if len(names) == 1:
                img = sitk.ReadImage(names[0])  # single file: a lone multi-slice object
            else:
                reader = sitk.ImageSeriesReader()
                reader.SetFileNames(names)
                img = reader.Execute()
    except RuntimeError:
        # GDCM refuses some files pydicom can decode (no preamble, odd meta): decode slice by
        # slice with pydicom; its errors are turned into one line there.
        return _read_frames(s), _affine_from_tags(s, warnings), _series_meta(s, warnings)
    array, _ = sitk_to_array_affine(img, s.description or "DICOM series")
    if len(names) > 1 or array.ndim == 2:
        affine = _affine_from_tags(s, warnings)
    else:
        _, affine = sitk_to_array_affine(img, s.description or "DICOM series")  # multi-frame
    if len(s.positions_mm) > 2:
        gaps = np.diff(s.positions_mm)
        if np.ptp(gaps) > 0.01 * max(abs(float(np.median(gaps))), 1e-6):
            warnings.append(
                f"DICOM series {s.description!r} has uneven slice spacing "
                f"({gaps.min():.3f}–{gaps.max():.3f} mm); geometry uses the mean spacing"
            )
    return array, affine, _series_meta(s, warnings)
