"""Genant grade only from a section the neighbouring parasagittal planes confirm."""

from __future__ import annotations

import numpy as np
import pytest

from spinemetrics.geometry import measure
from spinemetrics.labels import Structure
from spinemetrics.phantom import make_phantom, random_params


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(random_params(1000), spacing=(1.0, 1.0, 1.0), with_image=False)


def _grades(table):
    g = table[table.measure == "genant_sq_grade"].set_index("level")
    return g.value, g.qc


def test_intact_phantom_is_stable_and_graded(phantom):
    values, qc = _grades(measure(phantom.seg, phantom.levels))
    assert not qc.str.contains("unstable_section").any()
    assert (values.dropna() == 0).all() and values.notna().sum() >= 4


def test_notch_on_the_midline_slices_gives_no_grade(phantom):
    """A 'disc' notch in L3's anterior-superior corner on the 5 mid-sagittal slices (what a
    CNN does when the disc label bites into a body) would read as a severe wedge there."""
    seg = np.asarray(phantom.seg.array).copy()
    body = (np.asarray(phantom.levels.array) == 22) & (seg == Structure.vertebral_body)
    idx = np.argwhere(body)
    x_mid = int(round(idx[:, 0].mean()))  # RAS phantom, no rotation: axis 0 is left-right
    y_lo, y_hi = np.percentile(idx[:, 1], [0, 100])
    z_lo, z_hi = np.percentile(idx[:, 2], [0, 100])
    grid = np.indices(seg.shape)
    notch = (body & (np.abs(grid[0] - x_mid) <= 2)
             & (grid[1] > y_lo + 0.6 * (y_hi - y_lo)) & (grid[2] > z_lo + 0.55 * (z_hi - z_lo)))
    assert notch.sum() > 300
    seg[notch] = Structure.intervertebral_disc
    table = measure(phantom.seg.with_array(seg), phantom.levels)
    values, qc = _grades(table)
    ha = table[(table.level == "L3") & (table.measure == "vertebral_height_anterior_mm")]
    hp = table[(table.level == "L3") & (table.measure == "vertebral_height_posterior_mm")]
    # Without the check this section would be graded: the notch halves the anterior height.
    assert float(ha.value.iloc[0]) < 0.75 * float(hp.value.iloc[0])
    assert np.isnan(values["L3"]) and "unstable_section" in qc["L3"]
    others = values.drop("L3").dropna()
    assert len(others) >= 3 and (others == 0).all()
