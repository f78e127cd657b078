"""The vectorised GEE / MixedLM estimators equal statsmodels fits on the same data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm

from spinemetrics.stats.estimators import gee_exchangeable, mixedlm_random_intercept


def _clustered(seed: int, n_groups: int = 250, m: int = 5, drop: float = 0.15):
    """Unbalanced clusters (random drop-outs), rows shuffled, string subject ids."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), m)
    lev = np.tile(np.arange(m), n_groups)
    age = np.repeat(rng.normal(55, 12, n_groups), m)
    male = np.repeat(rng.integers(0, 2, n_groups), m)
    x = np.column_stack(
        [np.ones(g.size)] + [(lev == k).astype(float) for k in range(1, m)] + [age, male]
    )
    u = np.repeat(rng.normal(0, 1.2, n_groups), m)
    y = x @ np.r_[10, 1, 2, 3, 4, -0.03, 0.5] + u + rng.normal(0, 1, g.size)
    keep = rng.random(g.size) > drop
    order = rng.permutation(int(keep.sum()))
    ids = np.array([f"sub-{i:04d}" for i in g], dtype=object)
    return y[keep][order], x[keep][order], ids[keep][order]


@pytest.mark.parametrize("seed", [0, 1])
def test_gee_gaussian_equals_statsmodels(seed):
    y, x, g = _clustered(seed)
    ours = gee_exchangeable(y, x, g)
    ref = sm.GEE(y, x, groups=g, cov_struct=sm.cov_struct.Exchangeable()).fit()
    assert ours.converged
    np.testing.assert_allclose(ours.params, ref.params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.bse, ref.bse, rtol=1e-7)
    assert ours.extra["alpha"] == pytest.approx(ref.cov_struct.dep_params, rel=1e-7)
    assert ours.n_groups == len(np.unique(g)) and ours.n_obs == len(y)


def test_gee_logit_equals_statsmodels():
    y, x, g = _clustered(2)
    yb = (y > np.median(y)).astype(float)
    ours = gee_exchangeable(yb, x, g, family="binomial")
    ref = sm.GEE(
        yb, x, groups=g, cov_struct=sm.cov_struct.Exchangeable(), family=sm.families.Binomial()
    ).fit()
    assert ours.converged
    np.testing.assert_allclose(ours.params, ref.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.bse, ref.bse, rtol=1e-6)
    assert ours.extra["alpha"] == pytest.approx(ref.cov_struct.dep_params, rel=1e-6)


def test_mixedlm_equals_statsmodels_reml():
    y, x, g = _clustered(3)
    ours = mixedlm_random_intercept(y, x, g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.MixedLM(y, x, groups=g).fit(reml=True)
    assert ours.converged
    np.testing.assert_allclose(ours.params, ref.fe_params, rtol=1e-6, atol=1e-8)
    # statsmodels inverts the observed information, we report the expected information
    # (lme4/nlme): equal up to O(1/n).
    np.testing.assert_allclose(ours.bse, ref.bse_fe, rtol=2e-3)
    assert ours.extra["sigma2"] == pytest.approx(ref.scale, rel=1e-4)
    # statsmodels' cov_re is the random-intercept variance on the data scale.
    assert ours.extra["tau2"] == pytest.approx(float(np.ravel(ref.cov_re)[0]), rel=1e-3)


def test_mixedlm_zero_random_effect_reports_boundary():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(200), 4)
    x = np.column_stack([np.ones(g.size), rng.normal(size=g.size)])
    y = x @ np.r_[1.0, 2.0] + rng.normal(size=g.size)  # no subject effect at all
    fit = mixedlm_random_intercept(y, x, g)
    assert fit.converged
    assert fit.extra["tau2"] < 0.05
    # With τ² ≈ 0 the estimates are the OLS ones.
    ols = np.linalg.lstsq(x, y, rcond=None)[0]
    np.testing.assert_allclose(fit.params, ols, atol=2e-3)


def test_separation_is_reported_not_estimated():
    g = np.repeat(np.arange(100), 3)
    xcol = np.tile([0.0, 1.0, 0.0], 100)
    x = np.column_stack([np.ones(g.size), xcol])
    y = xcol.copy()  # x predicts y perfectly
    fit = gee_exchangeable(y, x, g, family="binomial")
    assert not fit.converged
    assert np.isnan(fit.params).all() and np.isnan(fit.bse).all()
    assert "separation" in fit.warning


def test_too_few_observations_fail_cleanly():
    fit = gee_exchangeable(np.ones(2), np.ones((2, 3)), np.array([1, 2]))
    assert not fit.converged and "fewer observations" in fit.warning
