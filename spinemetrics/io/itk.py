"""SimpleITK boundary: MetaImage (``.mha``/``.mhd``), NRRD and DICOM pixel data ⇄ RAS+ arrays.

This is the only place where ITK's LPS world frame appears. An ITK image maps index
``(i, j, k)`` to LPS as ``origin + D @ diag(spacing) @ ijk``; flipping the first two rows
of that 4×4 matrix gives the RAS+ affine nibabel uses. ITK arrays come out as ``[k, j, i]``
and are transposed to ``[i, j, k]``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from spinemetrics.errors import ImageGeometryError, InputError
from spinemetrics.io._shape import LPS_TO_RAS


def _lazy_module(name: str) -> ModuleType:
    """``name`` imported on first attribute use (the ``importlib.util.LazyLoader`` recipe).

    Importing SimpleITK took 0.1–0.6 s here (warm / cold file cache), up to a third of
    ``import spinemetrics.io``, yet NIfTI (the common case) never needs it: only MetaImage,
    NRRD and DICOM pixel data do.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"{name} is not installed; reinstall spinemetrics (it requires {name})")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import SimpleITK as sitk
else:
    sitk = _lazy_module("SimpleITK")

__all__ = ["sitk_to_array_affine", "array_affine_to_sitk", "read_itk", "write_itk", "quiet_itk"]


@contextlib.contextmanager
def quiet_itk() -> Iterator[None]:
    """Silence ITK's own warnings (printed straight to stderr); ours go through logging."""
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def sitk_to_array_affine(img: sitk.Image, name: str) -> tuple[np.ndarray, np.ndarray]:
    """SimpleITK image → (array ``[i, j, k, ...]``, 4×4 RAS+ affine of the first 3 axes)."""
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ImageGeometryError(
            f"{name} has {img.GetNumberOfComponentsPerPixel()} components per voxel (colour or "
            "vector image); give a single-channel grey-level or label image"
        )
    dim = img.GetDimension()
    array = sitk.GetArrayFromImage(img)
    array = np.transpose(array, tuple(range(array.ndim))[::-1])
    if dim < 3:
        return array, np.eye(4)  # caller refuses 2D with the common message
    spacing = np.asarray(img.GetSpacing(), dtype=np.float64)[:3]
    origin = np.asarray(img.GetOrigin(), dtype=np.float64)[:3]
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing[None, :]
    lps[:3, 3] = origin
    return array, LPS_TO_RAS @ lps


def array_affine_to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """``[i, j, k]`` array + RAS+ affine → SimpleITK image in LPS (no resampling)."""
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    lin = lps[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    direction = lin / spacing[None, :]
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise ImageGeometryError(
            "the image affine is sheared, which MetaImage/NRRD cannot store; write it as "
            ".nii.gz instead"
        )
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in lps[:3, 3]])
    img.SetDirection([float(d) for d in direction.ravel()])
    return img


def read_itk(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a MetaImage or NRRD file; returns (array ``[i, j, k, ...]``, RAS+ affine)."""
    path = Path(path)
    try:
        with quiet_itk():
            img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = " ".join(str(exc).split())
        reason = "truncated or corrupt data" if "data" in first.lower() else "unreadable header"
        raise InputError(
            f"cannot read {path.name}: {reason}; check that it is a complete MetaImage/NRRD "
            "file (and that a .mhd's .raw/.zraw file sits next to it)"
        ) from None
    return sitk_to_array_affine(img, path.name)


def write_itk(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write ``.mha``/``.nrrd`` (compressed) from an ``[i, j, k]`` array and RAS+ affine."""
    sitk.WriteImage(array_affine_to_sitk(array, affine), str(path), True)
