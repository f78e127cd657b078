"""Fine-tuning pairs: files in any orientation, image and labels aligned on the 1 mm grid,
foreign conventions converted, unlabelled tissue near the spine ignored."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from spinemetrics.errors import InputError
from spinemetrics.segment.sources import IGNORE, PARTIAL_PAIR_IGNORE_MM, pair_sources

SPACING = (4.0, 0.8, 0.8)


def _blocks(all_classes: bool = False) -> np.ndarray:
    """RAS label array: 3-slice (12 mm) slabs of classes 1–5 along x in a central AP band."""
    lab = np.zeros((15, 200, 60), np.uint8)
    for i in range(15):
        lab[i, 80:120, 10:50] = 1 + (i // 3) % 5
    if all_classes:
        for c in range(6, 12):
            lab[:, 120 + 2 * (c - 6) : 122 + 2 * (c - 6), 10:50] = c
    return lab


def _save_lps(arr: np.ndarray, path) -> None:
    """Write a RAS array as an LPS-ordered NIfTI (same world positions)."""
    nx, ny, _ = arr.shape
    a_ras = np.diag([*SPACING, 1.0])
    a_ras[:3, 3] = (-30.0, -80.0, -20.0)
    flip = np.array([[-1, 0, 0, nx - 1], [0, -1, 0, ny - 1], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(arr[::-1, ::-1]), a_ras @ flip), str(path))


def _pair(tmp_path, lab: np.ndarray, name: str = "case1") -> None:
    _save_lps((10.0 * lab).astype(np.float32), tmp_path / f"{name}.nii.gz")
    _save_lps(lab, tmp_path / f"{name}_seg.nii.gz")


def test_pair_image_and_labels_align_on_the_training_grid(tmp_path):
    _pair(tmp_path, _blocks())
    (src,) = pair_sources(tmp_path, np.random.default_rng(0))
    classes = src.lut[src.sub]
    assert src.image.shape == classes.shape == (60, 160, 48)  # 1 mm RAS
    # Linear interpolation blends 4 mm slices within half a slice (2 mm) of a slab face, so
    # 2 mm inside every slab the image must be exactly 10 × class; a corner-aligned zoom
    # (up to 0.4 slice off at the far end) fails this.
    for c in range(1, 6):
        inner = ndi.binary_erosion(classes == c, iterations=2)
        assert inner.sum() > 1000
        np.testing.assert_allclose(src.image[inner], 10.0 * c, atol=1e-3)


def test_partial_pairs_ignore_background_near_the_spine(tmp_path):
    _pair(tmp_path, _blocks())
    (src,) = pair_sources(tmp_path, np.random.default_rng(0))
    classes = src.lut[src.sub]
    labelled = np.isin(classes, range(1, 12))
    dist = ndi.distance_transform_edt(~labelled)  # 1 mm grid
    bg = ~labelled
    assert np.all(classes[bg & (dist <= PARTIAL_PAIR_IGNORE_MM - 1)] == IGNORE)
    assert np.all(classes[bg & (dist > PARTIAL_PAIR_IGNORE_MM + 1)] == 0)


def test_complete_pairs_keep_their_background(tmp_path):
    _pair(tmp_path, _blocks(all_classes=True))
    (src,) = pair_sources(tmp_path, np.random.default_rng(0))
    classes = src.lut[src.sub]
    assert not np.any(classes == IGNORE)
    assert set(np.unique(classes)) == set(range(12))


def test_foreign_convention_pairs_are_converted(tmp_path):
    lab = np.zeros((15, 200, 60), np.uint8)
    lab[:, 80:120, 10:28] = 49  # SPINEPS vertebra corpus
    lab[:, 80:120, 28:34] = 100  # SPINEPS disc
    lab[:, 80:120, 34:50] = 49
    _save_lps((10.0 * (lab > 0)).astype(np.float32), tmp_path / "sp.nii.gz")
    _save_lps(lab, tmp_path / "sp_msk.nii.gz")
    (src,) = pair_sources(tmp_path, np.random.default_rng(0), "spineps")
    present = set(np.unique(src.lut[src.sub]).tolist())
    assert {1, 4} <= present and not present & {49, 100}


def test_mismatched_or_missing_pairs_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="no image/label pairs"):
        pair_sources(tmp_path, np.random.default_rng(0))
    _save_lps(np.zeros((15, 200, 60), np.float32), tmp_path / "a.nii.gz")
    _save_lps(_blocks()[:, :100], tmp_path / "a_seg.nii.gz")
    with pytest.raises(InputError, match="not on the grid"):
        pair_sources(tmp_path, np.random.default_rng(0))
