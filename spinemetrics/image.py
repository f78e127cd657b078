"""The one image type: a voxel array and its affine, canonical RAS+ inside the library.

``Image`` follows nibabel's conventions: ``affine`` maps voxel indices ``(i, j, k, 1)`` to
world millimetres in RAS+ (x → Right, y → Anterior, z → Superior). Spacing and direction
always come from the affine; nothing is guessed from array shape.

Readers (:mod:`spinemetrics.io`) return images already reoriented to the closest canonical
RAS+ axis order (``as_closest_canonical``); the original orientation is kept in
``Image.source_affine``/``source_shape`` so writers can put results back on the input grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import nibabel as nib
import numpy as np

from spinemetrics.errors import ImageGeometryError

__all__ = ["Image", "canonical_transform"]


@dataclass
class Image:
    """A 3D voxel array with its 4×4 voxel→world (RAS+, mm) affine.

    Parameters
    ----------
    array : numpy.ndarray
        3D array indexed ``[i, j, k]``.
    affine : numpy.ndarray
        4×4 matrix mapping ``(i, j, k, 1)`` to RAS+ world coordinates in mm.
    meta : dict, optional
        Free-form metadata (source path, modality, series description, …). Never holds
        patient identifiers unless the user asked for them.
    source_affine, source_shape : optional
        Affine and shape of the file as read, before reorientation, so that outputs can be
        written back on the input's own grid (see :meth:`to_source`).
    """

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    source_affine: np.ndarray | None = None
    source_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise ImageGeometryError(
                f"expected a 3D image, got {self.array.ndim}D with shape {self.array.shape}; "
                "pass a single 3D volume (split 4D series, stack 2D slices into a volume first)"
            )
        if self.affine.shape != (4, 4):
            raise ImageGeometryError(
                f"affine must be 4x4, got {self.affine.shape}; build it with nibabel or read "
                "the file with spinemetrics.io.read_image"
            )
        if not np.all(np.isfinite(self.affine)) or abs(np.linalg.det(self.affine[:3, :3])) < 1e-9:
            raise ImageGeometryError(
                "image affine is degenerate (zero or missing spacing/direction); fix the "
                "header (pixdim/sform) or set spacing explicitly"
            )

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along the array axes, in mm (column norms of the affine)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def voxel_volume_mm3(self) -> float:
        """``|det(A[:3,:3])|``: correct also for sheared affines."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def orientation(self) -> tuple[str, str, str]:
        """Axis codes as nibabel gives them, e.g. ``('R', 'A', 'S')``."""
        return tuple(nib.aff2axcodes(self.affine))  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """3×3 matrix of unit column vectors: world direction of each array axis."""
        return self.affine[:3, :3] / np.asarray(self.spacing)[None, :]

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """Voxel indices ``(..., 3)`` → world RAS mm ``(..., 3)``."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """World RAS mm ``(..., 3)`` → continuous voxel indices ``(..., 3)``."""
        xyz = np.asarray(xyz, dtype=np.float64)
        inv = np.linalg.inv(self.affine)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    # ------------------------------------------------------------------ helpers
    def with_array(self, array: np.ndarray, **meta: Any) -> Image:
        """Same grid and provenance, new voxel array (e.g. a label map for this image)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise ImageGeometryError(
                f"array shape {array.shape} does not match image shape {self.array.shape}; "
                "resample it onto the image grid first"
            )
        return replace(self, array=array, meta={**self.meta, **meta})

    def to_canonical(self) -> Image:
        """Reorient (axis permutation/flip only, no resampling) to closest RAS+."""
        ornt_src = nib.orientations.io_orientation(self.affine)
        ornt_ras = nib.orientations.axcodes2ornt(("R", "A", "S"))
        if np.array_equal(ornt_src, ornt_ras):
            out = replace(self)
        else:
            transform = nib.orientations.ornt_transform(ornt_src, ornt_ras)
            array = nib.orientations.apply_orientation(self.array, transform)
            affine = self.affine @ nib.orientations.inv_ornt_aff(transform, self.array.shape)
            out = replace(self, array=np.ascontiguousarray(array), affine=affine)
        if out.source_affine is None:
            out.source_affine = self.affine.copy()
            out.source_shape = self.shape
        return out

    def to_source(self) -> Image:
        """Undo :meth:`to_canonical`: back to the axis order of the file as read."""
        if self.source_affine is None:
            return replace(self)
        ornt_cur = nib.orientations.io_orientation(self.affine)
        ornt_src = nib.orientations.io_orientation(self.source_affine)
        transform = nib.orientations.ornt_transform(ornt_cur, ornt_src)
        array = nib.orientations.apply_orientation(self.array, transform)
        affine = self.affine @ nib.orientations.inv_ornt_aff(transform, self.array.shape)
        return replace(self, array=np.ascontiguousarray(array), affine=affine)

    def to_nifti(self) -> nib.Nifti1Image:
        """A nibabel image (sform and qform set) with this array and affine."""
        img = nib.Nifti1Image(self.array, self.affine)
        img.set_qform(self.affine, code=1)
        img.set_sform(self.affine, code=1)
        return img

    @classmethod
    def from_nifti(cls, img: nib.spatialimages.SpatialImage, **meta: Any) -> Image:
        data = np.asanyarray(img.dataobj)
        return cls(array=data, affine=img.affine, meta=dict(meta))


def canonical_transform(
    affine: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Orientation transform (nibabel ``ornt``) and new affine that bring ``affine`` to RAS+."""
    ornt_src = nib.orientations.io_orientation(affine)
    transform = nib.orientations.ornt_transform(ornt_src, nib.orientations.axcodes2ornt("RAS"))
    return transform, affine @ nib.orientations.inv_ornt_aff(transform, shape)
