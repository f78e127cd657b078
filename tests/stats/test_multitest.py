"""Benjamini–Hochberg q-values against statsmodels and the 1995 paper's worked example."""

from __future__ import annotations

import numpy as np
from statsmodels.stats.multitest import multipletests

from spinemetrics.stats.multitest import fdr_bh

# Benjamini & Hochberg (1995), section 4: 15 p-values; at FDR 0.05 the first 4 are rejected.
BH_1995 = [
    0.0001,
    0.0004,
    0.0019,
    0.0095,
    0.0201,
    0.0278,
    0.0298,
    0.0344,
    0.0459,
    0.3240,
    0.4262,
    0.5719,
    0.6528,
    0.7590,
    1.0000,
]


def test_textbook_example_rejects_four_at_005():
    q = fdr_bh(BH_1995)
    assert np.sum(q <= 0.05) == 4
    # Hand-computed: q_(4) = min_j>=4 (15 p_(j)/j) = 15*0.0095/4 = 0.035625
    assert np.isclose(q[3], 15 * 0.0095 / 4)
    # Step-up: q_(i) = min over j ≥ i of 15 p_(j)/j, e.g. q_(6) takes j = 7 (0.0298·15/7).
    expected = [15 * 0.0201 / 5, 15 * 0.0298 / 7, 15 * 0.0298 / 7, 15 * 0.0344 / 8, 15 * 0.0459 / 9]
    assert np.allclose(q[4:9], expected)


def test_equals_statsmodels_on_random_families():
    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 50, 333):
        p = np.concatenate([rng.uniform(0, 1, size), rng.uniform(0, 1e-3, size // 3)])
        rng.shuffle(p)
        ref = multipletests(p, method="fdr_bh")[1]
        assert np.allclose(fdr_bh(p), ref, rtol=1e-12, atol=0)


def test_nan_is_skipped_not_counted():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    q = fdr_bh(p)
    assert np.isnan(q[1])
    ref = multipletests(p[[0, 2, 3]], method="fdr_bh")[1]
    assert np.allclose(q[[0, 2, 3]], ref)
    assert np.all(np.isnan(fdr_bh([np.nan, np.nan])))
