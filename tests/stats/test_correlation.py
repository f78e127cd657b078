"""Level correlations: Spearman against scipy, Fisher/Bonett–Wright CI, permutation test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from spinemetrics.stats.correlation import (
    _permuted_stats,
    adjacency_test,
    level_correlations,
    level_position,
    order_levels,
)

LEVELS = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]


def _ar1_wide(n: int, phi: float, seed: int, missing: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cov = phi ** np.abs(np.subtract.outer(np.arange(5), np.arange(5)))
    x = rng.multivariate_normal(np.zeros(5), cov, size=n)
    x = np.exp(x)  # monotone transform: Spearman unchanged, Pearson not
    x[rng.random(x.shape) < missing] = np.nan
    return pd.DataFrame(x, columns=LEVELS)


def test_level_order_and_positions():
    assert order_levels(["L5-S1", "L1", "L1-L2", "S1", "L2", "weird"]) == [
        "L1",
        "L1-L2",
        "L2",
        "L5-S1",
        "S1",
        "weird",
    ]
    assert level_position("L4-L5") - level_position("L3-L4") == 1.0
    assert math.isnan(level_position("L1-S1"))


def test_spearman_equals_scipy_with_missing_values():
    wide = _ar1_wide(200, 0.6, seed=1, missing=0.1)
    out = level_correlations(wide, measure="m")
    assert len(out) == 10
    for row in out.itertuples():
        both = wide[[row.level_a, row.level_b]].dropna()
        ref = st.spearmanr(both[row.level_a], both[row.level_b])
        assert row.n == len(both)
        assert row.rho == pytest.approx(ref.statistic, abs=1e-12)
        assert row.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_fisher_bonett_wright_interval_by_hand():
    wide = _ar1_wide(150, 0.5, seed=2)
    row = level_correlations(wide).iloc[0]
    z, se = math.atanh(row.rho), math.sqrt((1 + row.rho**2 / 2) / (row.n - 3))
    assert row.ci_low == pytest.approx(math.tanh(z - 1.959963984540054 * se), abs=1e-12)
    assert row.ci_high == pytest.approx(math.tanh(z + 1.959963984540054 * se), abs=1e-12)
    assert row.adjacent and row.distance == 1.0


def test_bootstrap_interval_is_seeded_and_brackets_rho():
    wide = _ar1_wide(120, 0.7, seed=3)
    a = level_correlations(wide, ci="bootstrap", n_boot=200, seed=9)
    b = level_correlations(wide, ci="bootstrap", n_boot=200, seed=9)
    pd.testing.assert_frame_equal(a, b)
    assert (a.ci_low < a.rho).all() and (a.rho < a.ci_high).all()
    # Fisher and bootstrap agree roughly on the width (same data).
    f = level_correlations(wide)
    ratio = (a.ci_high - a.ci_low) / (f.ci_high - f.ci_low)
    assert ratio.between(0.6, 1.6).all()


def test_permutation_shortcut_equals_explicit_permutations():
    rng = np.random.default_rng(4)
    r = rng.standard_normal((300, 5))
    perms = np.array(list(itertools.permutations(range(5))))
    d = np.abs(np.subtract.outer(np.arange(5), np.arange(5)))
    up = np.triu(np.ones((5, 5), bool), 1)
    adj, far = up & (d == 1), up & (d >= 2)
    got = _permuted_stats(r, perms, np.random.default_rng(7), 70, adj, far)
    draws = np.random.default_rng(7).integers(0, len(perms), (64, 300))
    for b in range(64):  # the first chunk of 64 draws
        xp = np.take_along_axis(r, perms[draws[b]], axis=1)
        c = np.corrcoef(xp, rowvar=False)
        assert got[b] == pytest.approx(c[adj].mean() - c[far].mean(), abs=1e-12)


def test_adjacency_test_detects_ar1_and_not_exchangeable():
    ar1 = adjacency_test(_ar1_wide(400, 0.7, seed=5), n_permutations=199, seed=1)
    assert ar1["difference"] > 0.1
    assert ar1["p_value"] == pytest.approx(1 / 200)
    # Compound symmetry (exchangeable): the null holds; p-values roughly uniform.
    pvals = []
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        x = rng.standard_normal((300, 1)) + rng.standard_normal((300, 5))
        pvals.append(
            adjacency_test(pd.DataFrame(x, columns=LEVELS), n_permutations=99, seed=seed)["p_value"]
        )
    assert np.mean(np.array(pvals) < 0.05) <= 0.25
    assert 0.25 < np.mean(pvals) < 0.75


def test_adjacency_test_needs_three_levels():
    res = adjacency_test(_ar1_wide(100, 0.5, seed=6)[LEVELS[:2]])
    assert math.isnan(res["p_value"])
