"""Same anatomy, different grids → same measures.

* flipped / transposed arrays (same voxels, same world placement): identical numbers;
* rotated and resampled renders of the same phantom: equal within the validation tolerances
  (lengths 0.8 mm, angles 1.5°, areas 6 %, slip 2 pp), sacral slope excepted (it is defined
  against the scanner axis, so it changes with the rotation by design).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analytic import flip_image, transpose_image

from spinemetrics.geometry import measure
from spinemetrics.phantom import make_phantom, random_params

KEY = ["level", "side", "measure"]


@pytest.fixture(scope="module")
def phantom_pair():
    params = random_params(7)
    a = make_phantom(params, spacing=(1.2, 1.2, 1.2), rotation_deg=(4.0, -6.0, 3.0),
                     with_image=False)
    b = make_phantom(params, spacing=(4.0, 0.6, 0.6), rotation_deg=(-12.0, 9.0, -15.0),
                     with_image=False)
    c = make_phantom(params, spacing=(1.0, 1.0, 1.0), rotation_deg=(-15.0, 12.0, 8.0),
                     with_image=False)
    return a, b, c


@pytest.fixture(scope="module")
def table_a(phantom_pair):
    return measure(phantom_pair[0].seg, phantom_pair[0].levels)


def _joined(t1: pd.DataFrame, t2: pd.DataFrame) -> pd.DataFrame:
    m = t1.merge(t2, on=KEY, suffixes=("_1", "_2"))
    assert len(m) == len(t1) == len(t2)
    return m


@pytest.mark.parametrize("transform", ["flip0", "flip1", "flip2", "transpose"])
def test_flip_and_transpose_give_identical_numbers(phantom_pair, table_a, transform):
    a = phantom_pair[0]
    if transform == "transpose":
        seg, lev = transpose_image(a.seg), transpose_image(a.levels)
    else:
        ax = int(transform[-1])
        seg, lev = flip_image(a.seg, ax), flip_image(a.levels, ax)
    t = measure(seg, lev)
    m = _joined(table_a, t)
    both = m.value_1.notna() & m.value_2.notna()
    assert (m.value_1.isna() == m.value_2.isna()).all()
    assert np.allclose(m.value_1[both], m.value_2[both], rtol=1e-5, atol=1e-4)
    assert (m.qc_1 == m.qc_2).all()


@pytest.mark.parametrize("other, tol", [
    # (render, (length mm, angle deg, area/volume %, slip pp)): each render is within the
    # validation tolerance of the truth, so two renders differ by at most the sum.
    (2, (1.0, 2.0, 6.0, 3.0)),  # 1.0 mm iso, another oblique rotation
    (1, (1.3, 3.0, 10.0, 4.0)),  # 0.6 × 0.6 × 4 mm sagittal, strongly oblique
])
def test_rotated_resampled_render_gives_same_numbers(phantom_pair, table_a, other, tol):
    b = phantom_pair[other]
    m = _joined(table_a, measure(b.seg, b.levels))
    m = m[m.measure != "sacral_slope_deg"]
    if other == 1:
        # Thin structures and foramina on 4-mm slices are flagged low_confidence (MEASURES
        # §0b); their accuracy is reported by benchmarks/validate_geometry.py, not asserted here.
        thin = ["foraminal_height_mm", "foraminal_width_mm", "foraminal_area_mm2",
                "epidural_fat_area_mm2", "ligamentum_flavum_thickness_mm"]
        flagged = m[m.measure.isin(thin) & m.value_2.notna()].qc_2
        assert flagged.str.contains("low_confidence").all()
        m = m[~m.qc_2.str.contains("low_confidence")]
    m = m[m.value_1.notna() & m.value_2.notna()]
    assert len(m) > 120
    unit = m.unit_1
    diff = (m.value_2 - m.value_1).abs()
    rel = 100 * diff / m.value_1.abs()
    lengths = (unit == "mm") & (m.measure != "slip_mm")
    areas = unit.isin(["mm2", "mm3"])
    # 95 % of values within the tolerance, none beyond twice of it (single values carry the
    # voxel noise of both renders; the mean errors are in docs/validation.md).
    for sel, d, t in ((lengths, diff, tol[0]), (unit == "deg", diff, tol[1]),
                      (areas, rel, tol[2]), (m.measure == "slip_percent", diff, tol[3])):
        assert np.percentile(d[sel], 95) <= t, m[sel][d[sel] > t].T
        assert d[sel].max() <= 2 * t, m[sel][d[sel] > 2 * t].T
