"""NIfTI-1/2 reading and writing through nibabel (one job: ``.nii``/``.nii.gz`` ⇄ array + affine).

The affine follows nibabel's rule: the sform when ``sform_code > 0``, else the qform when
``qform_code > 0``, else a pixdim-only fallback (flagged with a warning, because the
orientation is then a guess).
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from spinemetrics.errors import ImageGeometryError, InputError

__all__ = ["read_nifti", "write_nifti"]

log = logging.getLogger(__name__)

def _sniff(path: Path) -> None:
    """Reject files whose first bytes cannot be a (gzipped) NIfTI: clearer than nibabel's error."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if path.name.lower().endswith(".gz"):
        if head[:2] != b"\x1f\x8b":
            raise InputError(
                f"{path.name} is not a gzipped NIfTI file (it does not start with the gzip "
                "signature); check that the file is really an image and re-export it"
            )
        return
    if len(head) < 4:
        raise InputError(f"{path.name} is empty or truncated; re-export the image")
    size_le = int.from_bytes(head, "little")
    size_be = int.from_bytes(head, "big")
    if not ({size_le, size_be} & {348, 540}):
        raise InputError(
            f"{path.name} is not a NIfTI file (bad header size); check that the file is really "
            "an image and re-export it"
        )


def _check_raw_pixdim(path: Path) -> None:
    """Refuse zero/negative/NaN voxel sizes *before* nibabel silently turns them into 1 mm."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        block = fh.read(540)
    try:
        hdr = nib.Nifti1Header(binaryblock=block[:348], check=False)
        if int(hdr["sizeof_hdr"]) not in (348,):
            hdr = nib.Nifti2Header(binaryblock=block, check=False)
    except Exception:  # header unreadable: let nibabel's own error stand
        return
    ndim = max(1, min(3, int(hdr["dim"][0])))
    pixdim = np.asarray(hdr["pixdim"][1 : ndim + 1], dtype=float)
    if np.any(~np.isfinite(pixdim)) or np.any(pixdim <= 0):
        raise ImageGeometryError(
            f"{path.name} has missing or zero voxel spacing in its header (pixdim "
            f"{pixdim.tolist()}) and no sform; fix the header before using it"
        )


def read_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a NIfTI file fully into memory.

    Parameters
    ----------
    path : str or Path
        ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    array : numpy.ndarray
        Voxel data with scaling (``scl_slope``/``scl_inter``) applied; integer files without
        scaling keep their integer dtype.
    affine : numpy.ndarray
        4×4 voxel → RAS+ mm affine.
    warnings : list of str
        Header problems worth telling the user about.
    """
    path = Path(path)
    _sniff(path)
    warnings: list[str] = []
    try:
        img = nib.load(str(path))
        header = img.header
        array = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel, gzip, zlib and numpy raise unrelated types here
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise InputError(
            f"cannot read {path.name}: the file is corrupt or truncated ({reason}); "
            "re-export or re-download it"
        ) from None
    sform_code = int(header["sform_code"]) if "sform_code" in header else 0
    qform_code = int(header["qform_code"]) if "qform_code" in header else 0
    affine = np.asarray(img.affine, dtype=np.float64)
    if sform_code == 0:
        _check_raw_pixdim(path)
    if sform_code == 0 and qform_code == 0:
        warnings.append(
            f"{path.name} has neither sform nor qform; orientation guessed from pixdim only "
            "(left-right may be wrong)"
        )
    elif sform_code > 0 and qform_code > 0:
        qform = header.get_qform()
        if not np.allclose(qform, header.get_sform(), atol=1e-3):
            # nibabel (and FSL) use the sform, ITK/SimpleITK may use the qform: say so.
            warnings.append(
                f"{path.name}: sform and qform disagree; the sform was used (as nibabel and "
                "FSL do), ITK-based viewers may show it differently"
            )
    return array, affine, warnings


def write_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write ``array`` with ``affine`` as sform and qform (code 1, scanner anatomical)."""
    img = nib.Nifti1Image(array, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if np.issubdtype(array.dtype, np.integer):
        # Label maps: no intensity scaling, so ids round-trip bit-exactly.
        img.header.set_slope_inter(1.0, 0.0)
    nib.save(img, str(path))
