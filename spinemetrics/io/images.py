"""Image files in and out: the public ``read_image`` / ``read_labels`` / ``write_image``.

Readers return canonical RAS+ :class:`~spinemetrics.image.Image` objects that remember the
file's own grid (``source_affine``/``source_shape``); :func:`write_image` puts results back on
that grid so they overlay the input in ITK-SNAP, 3D Slicer or FSLeyes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from spinemetrics.atomic import atomic_path
from spinemetrics.errors import ImageGeometryError, InputError, LabelError
from spinemetrics.image import Image
from spinemetrics.io import dicom as _dicom
from spinemetrics.io._shape import as_volume, check_affine, label_ids
from spinemetrics.io.itk import read_itk, write_itk
from spinemetrics.io.nifti import read_nifti, write_nifti
from spinemetrics.provenance import file_sha256

__all__ = [
    "read_image",
    "read_labels",
    "write_image",
    "check_mr_sagittal",
    "image_format",
    "WRITE_FORMATS",
]

log = logging.getLogger(__name__)

_READ_SUFFIXES = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".mha": "metaimage",
    ".mhd": "metaimage",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".dcm": "dicom",
    ".ima": "dicom",
}
#: Extensions :func:`write_image` accepts (``.mhd`` needs a second data file: not atomic).
WRITE_FORMATS = (".nii.gz", ".nii", ".mha", ".nrrd")


def image_format(path: str | os.PathLike[str]) -> str:
    """File format from the name: ``nifti``, ``metaimage``, ``nrrd`` or ``dicom`` (folder)."""
    p = Path(path)
    if p.is_dir():
        return "dicom"
    name = p.name.lower()
    for suffix, fmt in _READ_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    if p.is_file():
        with open(p, "rb") as fh:
            if fh.read(132)[128:] == b"DICM":  # DICOM part 10 files often have no extension
                return "dicom"
    raise InputError(
        f"{p.name}: unknown image type; use .nii/.nii.gz, .mha/.mhd, .nrrd or a DICOM folder"
    )


def _missing(path: Path) -> InputError:
    return InputError(f"file not found: {path}; check the path (and the current folder)")


def read_image(
    path: str | os.PathLike[str], *, series: str | None = None, check: bool = True
) -> Image:
    """Read a 3D image as canonical RAS+.

    Parameters
    ----------
    path : str or Path
        NIfTI (``.nii``, ``.nii.gz``), MetaImage (``.mha``, ``.mhd``), NRRD (``.nrrd``), a
        DICOM folder, or one DICOM file (its series is read from the same folder).
    series : str, optional
        DICOM only: SeriesInstanceUID or part of the SeriesDescription. Default: the sagittal
        T2 series (see :func:`spinemetrics.io.list_dicom_series`).
    check : bool
        Add MR-sagittal plausibility warnings (:func:`check_mr_sagittal`) to
        ``meta["warnings"]``.

    Returns
    -------
    Image
        Array reoriented (no resampling) to RAS+, with ``source_affine``/``source_shape`` of
        the file and ``meta`` keys ``source_path``, ``format``, ``modality``,
        ``input_sha256``, ``warnings`` (plus ``series_uid``/``series_description`` for DICOM).
        Never any patient identifier.

    Raises
    ------
    InputError, ImageGeometryError
        Missing, corrupt or non-image file; 2D or 4D data; missing spacing; empty DICOM folder.
    """
    p = Path(path)
    if not p.exists():
        raise _missing(p)
    fmt = image_format(p)
    meta: dict = {"source_path": str(p), "format": fmt, "modality": None}
    warnings: list[str] = []
    if fmt == "dicom":
        folder = p if p.is_dir() else p.parent
        found = _dicom.find_dicom_series(folder)
        if p.is_file() and series is None:
            found = [s for s in found if p.resolve() in {f.resolve() for f in s.files}] or found
        chosen, pick_warnings = _dicom.select_series(found, folder, series)
        array, affine, dmeta = _dicom.read_series(chosen)
        warnings += pick_warnings + dmeta.pop("warnings")
        meta.update(dmeta)
    else:
        if p.is_dir():
            raise InputError(f"{p} is a folder but holds no DICOM series")
        if fmt == "nifti":
            array, affine, nwarn = read_nifti(p)
            warnings += nwarn
        else:
            array, affine = read_itk(p)
        meta["input_sha256"] = file_sha256(p)
    array = as_volume(array, p.name)
    affine = check_affine(affine, p.name)
    img = Image(array=array, affine=affine, meta=meta).to_canonical()
    if check:
        warnings += check_mr_sagittal(img)
    for w in warnings:
        log.warning(w)
    img.meta["warnings"] = warnings
    return img


def read_labels(
    path: str | os.PathLike[str] | Image, *, allowed: set[int] | list[int] | None = None,
    convention: str | None = None,
) -> Image:
    """Read a label map (integer ids) as canonical RAS+.

    Parameters
    ----------
    path : str, Path or Image
        Label file (any format :func:`read_image` reads) or an already loaded image.
    allowed : iterable of int, optional
        Ids that may appear (0 is always allowed). Others raise :class:`LabelError`.
    convention : str, optional
        Name of the expected convention, only used to word the error message.

    Returns
    -------
    Image
        Integer array (smallest fitting unsigned type when possible).

    Raises
    ------
    LabelError
        Non-integer values, an empty map, or ids outside ``allowed``.
    """
    img = path if isinstance(path, Image) else read_image(path, check=False)
    name = Path(str(img.meta.get("source_path", "label map"))).name
    arr = np.asarray(img.array)
    if not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        elif not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise LabelError(
                f"{name} is not a label map (non-integer voxel values); give an integer "
                "segmentation, not an intensity image"
            )
    ids = label_ids(arr)
    if ids.size == 0 or (ids.size == 1 and ids[0] == 0):
        raise LabelError(f"{name} is empty (all voxels are 0); check that the right file was given")
    if ids.min() < 0:
        raise LabelError(f"{name} has negative label values; label ids must be >= 0")
    arr = arr.astype(_label_dtype(int(ids.max())), copy=False)
    if allowed is not None:
        unknown = sorted(set(int(i) for i in ids) - set(int(a) for a in allowed) - {0})
        if unknown:
            shown = ", ".join(str(u) for u in unknown[:12]) + (" …" if len(unknown) > 12 else "")
            hint = f"it does not look like {convention} output; " if convention else ""
            from spinemetrics.convert import candidate_sources  # lazy: convert imports io

            fits = candidate_sources(ids)
            tools = (
                " or ".join(fits) if fits else "spineps, tptbox, spider, totalspineseg, "
                "totalsegmentator_ct, totalsegmentator_mr, verse"
            )
            raise LabelError(
                f"{name} has unexpected label ids {shown}; {hint}convert it first with "
                f"`spinemetrics convert LABELS --from TOOL` (TOOL: {tools})"
            )
    return replace(img, array=arr, meta={**img.meta, "kind": "labels"})


def _label_dtype(max_id: int) -> type:
    if max_id <= np.iinfo(np.uint8).max:
        return np.uint8
    if max_id <= np.iinfo(np.uint16).max:
        return np.uint16
    return np.int32


def _output_suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in WRITE_FORMATS:
        if name.endswith(suffix):
            return suffix
    raise InputError(
        f"cannot write {path.name}: use one of {', '.join(WRITE_FORMATS)} "
        "(.mhd is read-only here; write .mha instead)"
    )


def write_image(
    img: Image,
    path: str | os.PathLike[str],
    *,
    reference: Image | None = None,
    labels: bool | None = None,
) -> Path:
    """Write ``img`` on the grid and in the orientation of its input file, atomically.

    Parameters
    ----------
    img : Image
        Canonical image (e.g. a segmentation of an image returned by :func:`read_image`).
    path : str or Path
        Output file; the format comes from the extension (``.nii.gz``, ``.nii``, ``.mha``,
        ``.nrrd``).
    reference : Image, optional
        Image whose file grid to write on (when ``img`` was built without provenance, e.g. a
        label map made with ``numpy``). Must share ``img``'s canonical grid.
    labels : bool, optional
        Write as an integer label map (uint8/uint16). Default: when the array is integer.

    Returns
    -------
    Path
        The written path.
    """
    out = Path(path)
    suffix = _output_suffix(out)
    if reference is not None:
        if reference.shape != img.shape or not np.allclose(
            reference.affine, img.affine, atol=1e-3
        ):
            raise ImageGeometryError(
                f"cannot write {out.name} on the reference grid: shape/affine differ "
                f"({img.shape} vs {reference.shape}); resample onto the reference first"
            )
        img = replace(
            img, source_affine=reference.source_affine, source_shape=reference.source_shape
        )
    src = img.to_source()
    array = np.asarray(src.array)
    if labels is None:
        labels = np.issubdtype(array.dtype, np.integer) or array.dtype == bool
    if labels:
        if array.size and (array.min() < 0 or not np.array_equal(array, np.round(array))):
            raise LabelError(
                f"cannot write {out.name} as a label map: values are negative or not integers"
            )
        array = array.astype(_label_dtype(int(array.max()) if array.size else 0))
    elif array.dtype == np.float64:
        array = array.astype(np.float32)  # halves the file; MR/CT need no double precision
    elif array.dtype == bool:
        array = array.astype(np.uint8)
    with atomic_path(out) as tmp:
        if suffix in (".nii.gz", ".nii"):
            write_nifti(array, src.affine, tmp)
        else:
            write_itk(array, src.affine, tmp)
    return out


# ---------------------------------------------------------------------------- plausibility
_AXIAL_COS = np.cos(np.radians(30.0))


def _slice_normal(img: Image) -> np.ndarray | None:
    """World direction of the acquisition's slice axis, or None when it cannot be told."""
    normal = img.meta.get("slice_normal_ras")
    if normal is not None:
        return np.asarray(normal, dtype=float)
    spacing = np.asarray(img.spacing)
    order = np.argsort(spacing)
    if spacing[order[-1]] < 1.2 * spacing[order[-2]]:
        return None  # (near-)isotropic 3D acquisition: no slice direction to judge
    return img.direction[:, order[-1]]


def check_mr_sagittal(img: Image) -> list[str]:
    """Warnings when an image does not look like the sagittal MR the model expects.

    Parameters
    ----------
    img : Image
        Image as returned by :func:`read_image`.

    Returns
    -------
    list of str
        Possibly empty: CT modality / Hounsfield-like intensities, axial-only acquisition.
    """
    warnings: list[str] = []
    name = Path(str(img.meta.get("source_path", "image"))).name
    if img.meta.get("series_description"):
        name = f"DICOM series {img.meta['series_description']!r}"
    modality = img.meta.get("modality")
    arr = np.asarray(img.array)
    if modality == "CT":
        warnings.append(
            f"{name} is CT (DICOM Modality CT, Hounsfield units); the segmentation model is "
            "trained for MR, expect poor results"
        )
    elif modality is None and arr.size and np.issubdtype(arr.dtype, np.number):
        sample = arr.flat[:: max(1, arr.size // 200_000)].astype(np.float32)
        lo, hi = np.percentile(sample, [1, 99.5])
        if lo <= -900 and hi >= 200:
            warnings.append(
                f"{name} has Hounsfield-like intensities (air near -1000): it looks like CT; "
                "the segmentation model is trained for MR, expect poor results"
            )
    normal = _slice_normal(img)
    if normal is not None:
        normal = normal / (np.linalg.norm(normal) or 1.0)
        if abs(normal[2]) >= _AXIAL_COS:
            warnings.append(
                f"{name} is an axial acquisition (slices perpendicular to the body axis); "
                "sagittal measurements from thick axial slices are unreliable, use the sagittal "
                "series"
            )
    return warnings
