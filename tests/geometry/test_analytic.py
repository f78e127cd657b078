"""Known answers on the analytic spine of ``analytic.py`` (closed-form truth)."""

from __future__ import annotations

import numpy as np
import pytest
from analytic import analytic_spine

from spinemetrics.geometry import COLUMNS, MEASURE_UNITS, measure

LENGTH = {
    "vertebral_height_anterior_mm", "vertebral_height_middle_mm",
    "vertebral_height_posterior_mm", "vertebral_depth_mm", "disc_height_anterior_mm",
    "disc_height_middle_mm", "disc_height_posterior_mm", "disc_depth_mm", "dural_sac_ap_mm",
    "canal_ap_mm",
}
ANGLE = {"disc_wedge_angle_deg", "segmental_angle_deg", "lumbar_lordosis_deg"}


def _check(table, truth, len_tol, area_pct, angle_tol):
    for name, expected in truth.items():
        rows = table[table.measure == name]
        # disc-level canal AP needs a ligamentum flavum, which this spine does not have
        vals = rows.value.to_numpy()
        if name == "canal_ap_mm":
            vals = rows[~rows.level.str.contains("-")].value.to_numpy()
        assert len(vals) and np.isfinite(vals).all(), name
        err = np.abs(vals - expected)
        if name in LENGTH:
            assert err.max() <= len_tol, (name, vals)
        elif name in ANGLE:
            assert err.max() <= angle_tol, (name, vals)
        elif name.endswith(("_mm2", "_mm3")):
            assert (100 * err / expected).max() <= area_pct, (name, vals)
        elif name == "slip_percent":
            assert err.max() <= 2.0, (name, vals)
        else:  # ratios
            assert err.max() <= 0.03, (name, vals)


def test_straight_iso_known_answers(straight_iso):
    seg, lev, truth = straight_iso
    table = measure(seg, lev, subject="a", scan="b")
    assert list(table.columns) == COLUMNS
    assert set(table.measure) <= set(MEASURE_UNITS)
    assert (table.unit == table.measure.map(MEASURE_UNITS)).all()
    _check(table, truth, len_tol=0.3, area_pct=2.5, angle_tol=0.3)
    # five bodies, five discs (L1..L5, L1-L2 … L5-S1)
    assert set(table[table.measure == "vertebral_depth_mm"].level) == {"L1", "L2", "L3", "L4", "L5"}
    assert set(table[table.measure == "disc_depth_mm"].level) == {
        "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"}


def test_oblique_sagittal_known_answers(oblique_sagittal):
    """0.5 × 0.5 × 4 mm stack, tilted in three axes: still the straight spine's numbers."""
    seg, lev, truth = oblique_sagittal
    table = measure(seg, lev)
    _check(table, truth, len_tol=0.8, area_pct=5.0, angle_tol=1.0)


def test_missing_structures_give_nan_with_reason(straight_iso):
    seg, lev, _ = straight_iso
    table = measure(seg, lev)
    lf = table[table.measure == "ligamentum_flavum_thickness_mm"]
    assert lf.value.isna().all() and (lf.qc == "not_segmented").all()
    mus = table[table.measure == "paraspinal_muscle_area_mm2"]
    assert set(mus.side) == {"L", "R"} and mus.value.isna().all()


def test_without_sacrum_every_row_is_level_uncertain():
    seg, lev, _ = analytic_spine((1.5, 1.5, 1.5), sacrum=False)
    table = measure(seg, None)
    assert table.qc.str.contains("level_uncertain").all()
    # lowest body still assumed L5
    assert "L5" in set(table.level)


@pytest.mark.parametrize("mode", ["linear", "sdf"])
def test_interpolants_agree_on_heights(straight_iso, mode):
    seg, lev, truth = straight_iso
    table = measure(seg, lev, mode=mode, families=("vertebra",))
    h = table[table.measure == "vertebral_height_middle_mm"].value
    assert np.allclose(h, truth["vertebral_height_middle_mm"], atol=0.3)


def test_sac_missing_at_one_level_is_nan_not_zero(straight_iso):
    """A gap in the segmented sac must not read as a 0-mm² (absolute) stenosis."""
    seg, lev, _ = straight_iso
    arr = np.asarray(seg.array).copy()
    k_disc = int(round(np.nonzero(np.asarray(lev.array) == 123)[2].mean()))
    slab = np.zeros(arr.shape, bool)
    slab[:, :, k_disc - 6:k_disc + 7] = True
    arr[slab & np.isin(arr, (5, 6))] = 0
    table = measure(seg.with_array(arr), lev)
    sac = table[table.measure == "dural_sac_area_mm2"].set_index("level")
    assert np.isnan(sac.loc["L4-L5", "value"]) and sac.loc["L4-L5", "qc"] != "ok"
    assert (sac.value.dropna() > 50).all()
    assert sac.loc["L2-L3", "qc"] == "ok"
