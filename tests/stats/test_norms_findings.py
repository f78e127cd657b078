"""Normative model recovery and round trips; findings thresholds, Wilson CIs, odds ratios."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats.contingency import odds_ratio
from statsmodels.stats.proportion import proportion_confint

from spinemetrics.stats import NormModel, fit_norms, load_default_norms, simulate_cohort, zscores
from spinemetrics.stats.findings import binary_findings, neighbour_odds, prevalence, wilson_ci
from spinemetrics.stats.simulate import AGE_MEAN, AGE_SD


@pytest.fixture(scope="module")
def reference():
    table, cov, truth = simulate_cohort(4000, seed=31, measures=["dural_sac_area_mm2"])
    return table, cov, truth, fit_norms(table, cov)


def test_norms_recover_simulated_mean_and_sd(reference):
    _, _, truth, norms = reference
    spec = truth.specs["dural_sac_area_mm2"]
    for k, level in enumerate(["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]):
        for sex, male in (("F", 0), ("M", 1)):
            c = norms.cell("dural_sac_area_mm2", level, "", sex)
            # μ(age_ref = 55) and the age slope per decade; SD at 55 (age is in the mean).
            mu = spec["mean"][k] + spec["sex_effect"] * male
            assert c.mu_b0 == pytest.approx(mu, abs=4 * 40 / math.sqrt(c.n))
            # SE of the slope per decade ≈ σ / (SD(age)/10 · √n), inflated 20 % for t².
            se_b1 = 1.2 * spec["sd"][k] / (AGE_SD / 10 * math.sqrt(c.n))
            assert c.mu_b1 == pytest.approx(10 * spec["age_slope"][k], abs=4 * se_b1)
            assert math.exp(c.logsd_c0) == pytest.approx(spec["sd"][k], rel=0.08)


def test_zscores_of_a_new_cohort_are_standard_normal(reference):
    *_, norms = reference
    table, cov, _ = simulate_cohort(1500, seed=32, measures=["dural_sac_area_mm2"])
    z = zscores(table, cov, norms)
    ok = z.norm_flag.isin(["low", "high", "normal"])
    assert ok.mean() > 0.95
    assert z.z[ok].mean() == pytest.approx(0.0, abs=0.05)
    assert z.z[ok].std() == pytest.approx(1.0, abs=0.05)
    assert (z.norm_flag == "low").mean() == pytest.approx(0.025, abs=0.01)
    assert np.allclose(z.centile[ok], 100 * pd.Series(z.z[ok]).map(_phi))
    # Without covariates nothing is invented.
    assert (zscores(table, None, norms).norm_flag == "no_covariates").all()


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_norm_model_round_trips(reference, tmp_path):
    *_, norms = reference
    for path, reader in (
        (tmp_path / "n.json", NormModel.from_json),
        (tmp_path / "n.parquet", NormModel.from_parquet),
    ):
        (norms.to_json if path.suffix == ".json" else norms.to_parquet)(path)
        back = reader(path)
        pd.testing.assert_frame_equal(back.table, norms.table, check_dtype=False)
        assert back.meta == norms.meta


def test_shipped_norms_are_simulated_and_usable():
    norms = load_default_norms()
    assert norms.meta["simulated"] is True and "NOT clinical" in norms.meta["population"]
    table, cov, _ = simulate_cohort(300, seed=33, measures=["canal_ap_mm"])
    z = zscores(table, cov, norms)
    assert (z.norm_flag != "no_norm").all()
    assert abs(z.z.mean()) < 0.15


def test_extrapolated_age_is_flagged(reference):
    *_, norms = reference
    t = pd.DataFrame(
        {
            "subject": ["a"],
            "level": ["L4-L5"],
            "side": [""],
            "measure": ["dural_sac_area_mm2"],
            "value": [120.0],
        }
    )
    cov = pd.DataFrame({"subject": ["a"], "age": [AGE_MEAN + 200], "sex": ["F"]})
    assert zscores(t, cov, norms).norm_flag.iloc[0] == "extrapolated"


def test_binary_findings_thresholds_at_the_boundary():
    frame = pd.DataFrame(
        {
            "subject": list("abcdef"),
            "level": ["L4-L5"] * 6,
            "side": [""] * 6,
            "value": [100.0, 99.9, 75.0, 74.9, np.nan, 130.0],
        }
    )
    f = binary_findings(frame, "dural_sac_area_mm2")
    rel = f[f.finding == "central_stenosis"].positive.to_numpy()
    sev = f[f.finding == "central_stenosis_severe"].positive.to_numpy()
    # < 100 mm² relative (Bolender 1985), < 75 mm² absolute (Schönström & Hansson 1988).
    np.testing.assert_array_equal(rel, [0, 1, 1, 1, np.nan, 0])
    np.testing.assert_array_equal(sev, [0, 0, 0, 1, np.nan, 0])
    fh = binary_findings(frame.assign(value=[15.0, 15.1, 10, 20, 30, 14]), "foraminal_height_mm")
    np.testing.assert_array_equal(fh.positive, [1, 0, 1, 0, 0, 1])  # ≤ 15 mm (Hasegawa 1995)


def test_wilson_interval_equals_statsmodels():
    for k, n in ((0, 10), (3, 10), (50, 100), (999, 1000)):
        lo, hi = wilson_ci(k, n)
        ref = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert (float(lo), float(hi)) == pytest.approx(ref, abs=1e-12)


def _findings_from_table(a, b, c, d):
    """Two adjacent levels with a 2×2 table [[a, b], [c, d]] over subjects."""
    rows = []
    cells = [(1, 1, a), (1, 0, b), (0, 1, c), (0, 0, d)]
    i = 0
    for x, y, count in cells:
        for _ in range(count):
            rows += [(i, "L3-L4", x), (i, "L4-L5", y)]
            i += 1
    df = pd.DataFrame(rows, columns=["subject", "level", "positive"])
    return df.assign(side="", finding="f", measure="m", positive=df.positive.astype(float))


def test_neighbour_odds_ratio_exact_and_woolf():
    f = _findings_from_table(12, 5, 7, 30)
    row = neighbour_odds(f).iloc[0]
    ref = odds_ratio([[12, 5], [7, 30]], kind="conditional")
    ci = ref.confidence_interval()
    assert row.odds_ratio == pytest.approx(ref.statistic)
    assert (row.ci_low, row.ci_high) == pytest.approx((ci.low, ci.high))
    assert row.or_method == "conditional_exact" and row.n == 54
    big = _findings_from_table(1200, 500, 700, 3000)
    row = neighbour_odds(big).iloc[0]
    lor = math.log(1200 * 3000 / (500 * 700))
    se = math.sqrt(1 / 1200 + 1 / 500 + 1 / 700 + 1 / 3000)
    assert row.odds_ratio == pytest.approx(math.exp(lor))
    assert row.ci_low == pytest.approx(math.exp(lor - 1.959963984540054 * se))
    assert row.or_method == "sample_woolf"


def test_prevalence_counts_and_any_side():
    f = pd.DataFrame(
        {
            "subject": [1, 1, 2, 2, 3, 3],
            "level": ["L4-L5"] * 6,
            "side": ["L", "R"] * 3,
            "finding": "x",
            "measure": "m",
            "positive": [1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        }
    )
    p = prevalence(f).set_index("side")
    assert p.loc["L", "n_positive"] == 1 and p.loc["R", "n_positive"] == 1
    assert p.loc["any", "n_positive"] == 2 and p.loc["any", "n"] == 3
    assert p.loc["any", "prevalence"] == pytest.approx(2 / 3)
