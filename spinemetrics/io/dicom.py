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
import SimpleITK as sitk

from spinemetrics.errors import InputError
from spinemetrics.io._shape import LPS_TO_RAS
from spinemetrics.io.itk import sitk_to_array_affine
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
    rows: int = 0
    columns: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def n_slices(self) -> int:
        return len(self.files)

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


def find_dicom_series(folder: str | Path) -> list[DicomSeries]:
    """Scan ``folder`` (recursively) and group image files into series.

    Files are grouped by SeriesInstanceUID and image orientation (a localizer stored as one
    series with three planes becomes three stacks). Non-DICOM files are ignored.

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
    groups: dict[tuple, list[tuple[Path, pydicom.Dataset]]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception:  # not DICOM (or unreadable): skip, like a viewer would
            continue
        iop = ds.get("ImageOrientationPatient")
        ipp = ds.get("ImagePositionPatient")
        if iop is None or ipp is None or "Rows" not in ds:
            continue  # DICOMDIR, structured reports, presentation states …
        try:
            iop_f = tuple(round(float(v), 3) for v in iop)  # grouping key only
            ipp_f = tuple(float(v) for v in ipp)
        except (TypeError, ValueError):
            continue
        if len(iop_f) != 6 or len(ipp_f) != 3:
            continue
        key = (_text(ds, "SeriesInstanceUID"), iop_f)
        groups.setdefault(key, []).append((path, ds))

    series: list[DicomSeries] = []
    for (uid, _), items in groups.items():
        iop_f = [float(v) for v in items[0][1].ImageOrientationPatient]
        # Direction cosines are stored rounded: renormalise so spacing stays exact.
        row = np.asarray(iop_f[:3]) / (np.linalg.norm(iop_f[:3]) or 1.0)
        col = np.asarray(iop_f[3:]) / (np.linalg.norm(iop_f[3:]) or 1.0)
        normal = np.cross(row, col)
        normal /= np.linalg.norm(normal) or 1.0
        first = items[0][1]
        try:
            ps = tuple(float(v) for v in first.get("PixelSpacing", [0.0, 0.0]))[:2]
        except (TypeError, ValueError):
            ps = (0.0, 0.0)
        try:
            thick = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 0)
        except (TypeError, ValueError):
            thick = 0.0
        s = DicomSeries(
            uid=uid,
            description=_text(first, "SeriesDescription"),
            protocol=_text(first, "ProtocolName"),
            modality=_text(first, "Modality") or None,
            normal_lps=normal,
            row_dir_lps=row,
            col_dir_lps=col,
            pixel_spacing_rc=ps if len(ps) == 2 else (0.0, 0.0),
            slice_thickness=thick or None,
            rows=int(first.get("Rows", 0) or 0),
            columns=int(first.get("Columns", 0) or 0),
        )
        by_pos: dict[float, tuple[int, Path, np.ndarray]] = {}
        n_dupes = 0
        for path, ds in items:
            ipp = np.array([float(v) for v in ds.ImagePositionPatient])
            pos = round(float(np.dot(ipp, normal)), 3)
            inst = int(ds.get("InstanceNumber", 0) or 0)
            if pos in by_pos:
                n_dupes += 1
                if inst >= by_pos[pos][0]:
                    continue
            by_pos[pos] = (inst, path, ipp)
        if n_dupes:
            s.warnings.append(
                f"series {uid or s.description!r}: {n_dupes} files share a slice position "
                "(several echoes or time points); the first instance at each position was used"
            )
        for pos in sorted(by_pos):
            s.positions_mm.append(pos)
            s.files.append(by_pos[pos][1])
            s.ipp_lps.append(by_pos[pos][2])
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
            f"no sagittal series in {folder.name}; using the {best.orientation} series "
            f"{best.description!r} ({best.n_slices} slices)"
        )
    elif not best.is_t2 and len(usable) > 1:
        warnings.append(
            f"no series named T2 in {folder.name}; using sagittal series {best.description!r}"
        )
    return best, warnings


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
    for f in files:
        digest.update(file_sha256(f).encode())
    return digest.hexdigest()


def read_series(s: DicomSeries) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read one series: (array ``[i, j, k]``, RAS+ affine, technical metadata)."""
    warnings = list(s.warnings)
    names = [str(f) for f in s.files]
    try:
        if len(names) == 1:
            img = sitk.ReadImage(names[0])  # single file: multi-frame or a lone slice
        else:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(names)
            img = reader.Execute()
    except RuntimeError:
        raise InputError(
            f"cannot read the pixel data of DICOM series {s.description or s.uid!r}; a file "
            "is corrupt or compressed with an unsupported transfer syntax"
        ) from None
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
    meta = {
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
    return array, affine, meta
