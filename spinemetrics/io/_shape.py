"""Shape and geometry checks shared by every reader (one job: refuse unusable arrays).

A spinemetrics image is a true 3D volume. Readers pass the raw array here before building an
:class:`~spinemetrics.image.Image`, so that every format gives the same one-line errors.
"""

from __future__ import annotations

import numpy as np

from spinemetrics.errors import ImageGeometryError

__all__ = ["as_volume", "check_affine", "label_ids", "LPS_TO_RAS"]

#: ITK/DICOM world (LPS) → nibabel world (RAS): negate x and y.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def as_volume(array: np.ndarray, name: str) -> np.ndarray:
    """Return ``array`` as a 3D volume or raise :class:`ImageGeometryError`.

    Trailing singleton dimensions beyond the third (a 4D file with one volume, NIfTI's
    5th "vector" dimension of length 1) are squeezed. A 2D array, or a 3D array with a
    singleton spatial dimension (one slice), is refused: morphometry needs a volume.

    Parameters
    ----------
    array : numpy.ndarray
        Voxel array indexed ``[i, j, k, ...]``.
    name : str
        File name used in the error message.
    """
    if array.dtype.names is not None or np.iscomplexobj(array):
        raise ImageGeometryError(
            f"{name} holds colour (RGB) or complex voxels; give a single-channel grey-level or "
            "label image (e.g. the magnitude image)"
        )
    shape = tuple(int(s) for s in array.shape)
    while len(shape) > 3 and shape[-1] == 1:
        array = array.reshape(shape[:-1])
        shape = shape[:-1]
    if len(shape) > 3:
        raise ImageGeometryError(
            f"{name} is {len(shape)}D with shape {shape}; spinemetrics needs one 3D volume: "
            "extract a single volume first (e.g. fslroi or nibabel slicing)"
        )
    if len(shape) < 3 or min(shape) <= 1:
        raise ImageGeometryError(
            f"{name} is a 2D image (shape {shape}); spinemetrics needs a 3D volume of "
            "several slices: give the whole series or a 3D file"
        )
    return array


def check_affine(affine: np.ndarray, name: str) -> np.ndarray:
    """Refuse affines with missing, zero or non-finite spacing/direction."""
    affine = np.asarray(affine, dtype=np.float64)
    lin = affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    if (
        not np.all(np.isfinite(affine))
        or np.any(spacing < 1e-6)
        or abs(np.linalg.det(lin)) < 1e-9
    ):
        raise ImageGeometryError(
            f"{name} has missing or zero voxel spacing / direction in its header "
            f"(spacing {np.round(spacing, 6).tolist()}); fix the header (pixdim, sform or "
            "DICOM PixelSpacing/ImagePositionPatient) before using it"
        )
    return affine


def label_ids(array: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array (bincount: ~10x faster than np.unique)."""
    arr = np.asarray(array)
    if arr.size and arr.dtype.kind in "ui" and arr.min() >= 0 and arr.max() < 1 << 20:
        return np.flatnonzero(np.bincount(arr.ravel())).astype(arr.dtype)
    return np.unique(arr)
