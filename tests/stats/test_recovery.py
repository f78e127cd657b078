"""Known-truth recovery on simulated cohorts, and 95 % CI coverage over repetitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinemetrics.stats import run_stats, simulate_cohort
from spinemetrics.stats.correlation import level_correlations
from spinemetrics.stats.estimators import gee_exchangeable, mixedlm_random_intercept
from spinemetrics.stats.findings import wilson_ci
from spinemetrics.stats.models import design_matrix
from spinemetrics.stats.simulate import DISC_LEVELS

MEASURES = ["disc_height_middle_mm", "canal_ap_mm", "dural_sac_area_mm2"]


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    table, cov, truth = simulate_cohort(3000, seed=11, measures=MEASURES, phi=0.7)
    out = tmp_path_factory.mktemp("recovery")
    res = run_stats(table, cov, out, n_permutations=99, neighbour_terms=False, reference_norms=None)
    return res, truth


def test_correlations_recover_truth(big_run):
    res, truth = big_run
    for measure in MEASURES:
        true = truth.spearman(measure)
        rows = res.correlations[res.correlations.measure == measure]
        assert len(rows) == 10
        for r in rows.itertuples():
            i, j = DISC_LEVELS.index(r.level_a), DISC_LEVELS.index(r.level_b)
            se = (r.ci_high - r.ci_low) / (2 * 1.96)
            assert abs(r.rho - true[i, j]) < 4 * se, (measure, r.level_a, r.level_b)
    # The AR(1) latent makes adjacent pairs correlate more than distant ones.
    adj = res.adjacency.set_index("measure")
    assert (adj.loc[MEASURES, "difference"] > 0).all()
    assert (adj.loc["disc_height_middle_mm", "p_value"]) <= 0.01


def test_coefficients_recover_truth(big_run):
    res, truth = big_run
    m = res.models
    for measure in ["disc_height_middle_mm", "canal_ap_mm"]:  # common age slope: exact truth
        true = truth.coefficients(measure)
        for method in ("gee_exchangeable", "mixedlm"):
            rows = m[(m.measure == measure) & (m.method == method)].set_index("term")
            assert rows["converged"].all()
            for term, value in true.items():
                est, se = rows.loc[term, "estimate"], rows.loc[term, "std_error"]
                assert abs(est - value) < 4 * se, (measure, method, term, est, value)


def test_prevalences_recover_truth(big_run):
    res, truth = big_run
    p = res.prevalence
    for finding, threshold in (
        ("bony_canal_narrowing", 12.0),
        ("bony_canal_narrowing_severe", 10.0),
    ):
        true = truth.prevalence("canal_ap_mm", threshold)
        rows = p[(p.finding == finding)].set_index("level").loc[list(DISC_LEVELS)]
        se = np.sqrt(true * (1 - true) / rows["n"])
        assert (np.abs(rows["prevalence"] - true) < 4 * se).all(), finding
    # Framingham calibration (Kalichman 2009 via MEASURES.md E5): L4-L5 ≈ 22.5 % / 7.3 %.
    assert truth.prevalence("canal_ap_mm", 12.0)[3] == pytest.approx(0.225, abs=0.005)
    assert truth.prevalence("canal_ap_mm", 10.0)[3] == pytest.approx(0.073, abs=0.005)


def test_ci_coverage_over_repeated_simulations():
    """200 cohorts: the 95 % CIs of ρ, the GEE/MixedLM age slope and a prevalence cover the
    truth in 95 % ± binomial tolerance (3 SE of a proportion over 200 reps: ±4.6 %)."""
    # 300 subjects: the robust (sandwich) SE is anti-conservative with few clusters (measured
    # GEE coverage 0.915 at 150 subjects, 0.965 at 300).
    reps, n = 200, 300
    hits = {"rho": 0, "age_gee": 0, "age_mixedlm": 0, "prevalence": 0}
    measure = "disc_height_middle_mm"
    truth_rho = truth_age = truth_prev = None
    for rep in range(reps):
        table, cov, truth = simulate_cohort(n, seed=1000 + rep, measures=[measure, "canal_ap_mm"])
        if truth_rho is None:
            truth_rho = truth.spearman(measure)[2, 3]
            truth_age = truth.coefficients(measure)["age"]
            truth_prev = truth.prevalence("canal_ap_mm", 12.0)[3]
        t = table[table.measure == measure].merge(cov, on="subject")
        wide = t.pivot(index="subject", columns="level", values="value")
        row = level_correlations(wide[["L3-L4", "L4-L5"]]).iloc[0]
        hits["rho"] += row.ci_low <= truth_rho <= row.ci_high
        y, x, g, names, _ = design_matrix(t, "value", ["level", "age", "sex"])
        k = names.index("age")
        for key, fit in (
            ("age_gee", gee_exchangeable(y, x, g)),
            ("age_mixedlm", mixedlm_random_intercept(y, x, g)),
        ):
            hits[key] += abs(fit.params[k] - truth_age) <= 1.959964 * fit.bse[k]
        c = table[(table.measure == "canal_ap_mm") & (table.level == "L4-L5")]
        lo, hi = wilson_ci(int((c.value < 12).sum()), len(c))
        hits["prevalence"] += lo <= truth_prev <= hi
    tol = 3 * np.sqrt(0.95 * 0.05 / reps)
    for key, h in hits.items():
        assert 0.95 - tol <= h / reps <= 0.95 + tol, (key, h / reps)


def test_simulation_is_deterministic_and_follows_the_contract():
    a, ca, _ = simulate_cohort(20, seed=5)
    b, cb, _ = simulate_cohort(20, seed=5)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(ca, cb)
    assert list(a.columns) == ["subject", "scan", "level", "side", "measure", "value", "unit", "qc"]
    units = a.groupby("measure")["unit"].unique()
    assert (units.map(len) == 1).all()
    for name, unit in units.map(lambda u: u[0]).items():
        suffix = {"_mm": "mm", "_mm2": "mm2", "_mm3": "mm3", "_deg": "deg", "_percent": "%"}
        for s, u in suffix.items():
            if name.endswith(s):
                assert unit == u, name
    assert set(a.loc[a.measure == "foraminal_height_mm", "side"]) == {"L", "R"}
    assert set(a.loc[a.measure == "lumbar_lordosis_deg", "level"]) == {"L1-S1"}
    assert (a.qc == "ok").all()


def test_truth_spearman_closed_form_matches_monte_carlo():
    # Without a sex effect the closed form 6/π·asin(r/2) holds; with one, the Monte Carlo.
    _, _, truth = simulate_cohort(5, seed=0, overrides={"canal_ap_mm": {"sex_effect": 0.0}})
    closed = truth.spearman("canal_ap_mm")
    table, _, _ = simulate_cohort(
        40_000, seed=1, measures=["canal_ap_mm"], overrides={"canal_ap_mm": {"sex_effect": 0.0}}
    )
    wide = table.pivot(index="subject", columns="level", values="value")[list(DISC_LEVELS)]
    emp = wide.corr(method="spearman").to_numpy()
    assert np.abs(emp - closed).max() < 0.02
