"""Image type: geometry from the affine, canonical reorientation and its inverse."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest

from spinemetrics.errors import ImageGeometryError
from spinemetrics.image import Image


def _all_orientations():
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product([1, -1], repeat=3):
            yield perm, flips


def _reoriented(array: np.ndarray, spacing, perm, flips):
    """The same physical volume stored with axes permuted/flipped (affine adjusted)."""
    ras_affine = np.diag([*spacing, 1.0])
    ras_affine[:3, 3] = [-10.0, 20.0, 5.0]
    data = np.transpose(array, perm)
    affine = ras_affine.copy()
    affine[:3, :3] = ras_affine[:3, :3][:, perm]
    shape = data.shape
    for axis, flip in enumerate(flips):
        if flip < 0:
            data = np.flip(data, axis)
            # voxel i now holds old index (n-1-i): origin moves to the old last voxel
            affine[:3, 3] = affine[:3, 3] + affine[:3, axis] * (shape[axis] - 1)
            affine[:3, axis] = -affine[:3, axis]
    return np.ascontiguousarray(data), affine, ras_affine


def test_spacing_and_voxel_volume_follow_affine_with_shear():
    affine = np.array([[0.5, 0.1, 0, 0], [0, 0.6, 0, 0], [0, 0, 4.0, 0], [0, 0, 0, 1]], float)
    img = Image(np.zeros((3, 4, 5)), affine)
    assert img.spacing == pytest.approx((0.5, np.hypot(0.1, 0.6), 4.0))
    # |det| (not the product of column norms) is the voxel volume of a sheared grid
    assert img.voxel_volume_mm3 == pytest.approx(0.5 * 0.6 * 4.0)


@pytest.mark.parametrize("perm,flips", list(_all_orientations()))
def test_all_48_orientations_canonicalise_to_the_same_array(perm, flips):
    rng = np.random.default_rng(0)
    ras = rng.integers(0, 100, size=(4, 5, 6)).astype(np.int16)
    spacing = (0.7, 1.1, 3.0)
    data, affine, ras_affine = _reoriented(ras, spacing, perm, flips)
    img = Image(data, affine).to_canonical()
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    np.testing.assert_array_equal(img.array, ras)
    np.testing.assert_allclose(img.affine, ras_affine, atol=1e-9)
    back = img.to_source()
    np.testing.assert_array_equal(back.array, data)
    np.testing.assert_allclose(back.affine, affine, atol=1e-9)


def test_world_index_round_trip():
    affine = np.array([[0, 0, -3.3, 10], [0.6, 0, 0, -50], [0, -0.6, 0, 80], [0, 0, 0, 1]], float)
    img = Image(np.zeros((10, 12, 7)), affine)
    ijk = np.array([[0, 0, 0], [9.5, 3.25, 6.0]])
    np.testing.assert_allclose(img.world_to_index(img.index_to_world(ijk)), ijk, atol=1e-9)
    # voxel (1,0,0) is one step along the first array axis = +0.6 mm anterior
    np.testing.assert_allclose(img.index_to_world([1, 0, 0]) - img.index_to_world([0, 0, 0]),
                               [0, 0.6, 0])


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 4, 5)])
def test_non_3d_arrays_are_rejected_with_a_fix(shape):
    with pytest.raises(ImageGeometryError, match="3D"):
        Image(np.zeros(shape), np.eye(4))


def test_degenerate_affine_is_rejected():
    affine = np.eye(4)
    affine[2, 2] = 0.0
    with pytest.raises(ImageGeometryError, match="spacing"):
        Image(np.zeros((2, 2, 2)), affine)


def test_with_array_requires_same_grid():
    img = Image(np.zeros((2, 3, 4)), np.eye(4))
    assert img.with_array(np.ones((2, 3, 4), np.uint8)).array.dtype == np.uint8
    with pytest.raises(ImageGeometryError, match="resample"):
        img.with_array(np.ones((3, 3, 4)))
