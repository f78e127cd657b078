"""run_stats end to end: output files and columns, models equal statsmodels, q-values, CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from spinemetrics.cli import main
from spinemetrics.stats import OUTPUT_FILES, StatsResult, run_stats, simulate_cohort
from spinemetrics.stats.multitest import fdr_bh

MEASURES = [
    "dural_sac_area_mm2",
    "foraminal_height_mm",
    "disc_height_middle_mm",
    "lumbar_lordosis_deg",
]


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(250, seed=21, measures=MEASURES, missing_rate=0.03)


@pytest.fixture(scope="module")
def result(cohort, tmp_path_factory):
    table, cov, _ = cohort
    out = tmp_path_factory.mktemp("run")
    return run_stats(table, cov, out, n_permutations=99, seed=3)


def test_contract_columns_and_files(result):
    for name in OUTPUT_FILES.values():
        assert (result.out_dir / name).exists(), name
    corr = pd.read_csv(result.files["correlations"])
    assert list(corr.columns[:9]) == [
        "measure",
        "level_a",
        "level_b",
        "n",
        "rho",
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",
    ]
    models = pd.read_csv(result.files["models"])
    assert list(models.columns[:11]) == [
        "measure",
        "term",
        "estimate",
        "std_error",
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",
        "method",
        "n_subjects",
        "n_obs",
    ]
    assert set(models.method) == {"gee_exchangeable", "mixedlm", "gee_logit"}
    # No temporary files left behind by the atomic writes.
    assert not [p for p in result.out_dir.iterdir() if p.name.startswith(".")]
    summary = json.loads(result.files["summary"].read_text())
    assert summary["n_subjects"] == 250 and "sub-000001" not in json.dumps(summary)
    # Sided measures are analysed per side.
    assert set(corr.loc[corr.measure == "foraminal_height_mm", "side"]) == {"L", "R"}


def test_q_values_are_bh_within_each_family(result):
    corr = result.correlations
    assert np.allclose(corr.q_value, fdr_bh(corr.p_value), equal_nan=True)
    m = result.models
    for method, fam in m.groupby("method"):
        fam = fam[fam.term != "Intercept"]
        assert np.allclose(fam.q_value, fdr_bh(fam.p_value), equal_nan=True), method
    assert m.loc[m.term == "Intercept", "q_value"].isna().all()


def _direct_frame(cohort, measure, side=""):
    table, cov, _ = cohort
    t = table[(table.measure == measure) & (table.side == side)].dropna(subset=["value"])
    return t.merge(cov, on="subject").sort_values(["subject", "level"])


def test_models_equal_direct_statsmodels_formula_fits(cohort, tmp_path):
    table, cov, _ = cohort
    res = run_stats(
        table, cov, tmp_path, n_permutations=0, neighbour_terms=False, reference_norms=None
    )
    d = _direct_frame(cohort, "dural_sac_area_mm2")
    formula = "value ~ C(level) + age + C(sex)"
    gee = smf.gee(formula, groups="subject", data=d, cov_struct=sm.cov_struct.Exchangeable()).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mix = smf.mixedlm(formula, d, groups="subject").fit(reml=True)
    rename = {
        "C(level)[T.L2-L3]": "level[L2-L3]",
        "C(level)[T.L5-S1]": "level[L5-S1]",
        "C(sex)[T.M]": "sex[M]",
        "age": "age",
        "Intercept": "Intercept",
    }
    m = res.models[res.models.measure == "dural_sac_area_mm2"]
    for method, ref, bse, rtol_se in (
        ("gee_exchangeable", gee.params, gee.bse, 1e-6),
        ("mixedlm", mix.fe_params, mix.bse_fe, 5e-3),
    ):
        ours = m[m.method == method].set_index("term")
        assert (ours.n_obs == len(d)).all() and (ours.n_subjects == d.subject.nunique()).all()
        for sm_name, term in rename.items():
            assert ours.loc[term, "estimate"] == pytest.approx(ref[sm_name], rel=1e-6, abs=1e-8)
            assert ours.loc[term, "std_error"] == pytest.approx(bse[sm_name], rel=rtol_se)


def test_logistic_gee_equals_statsmodels(cohort, tmp_path):
    table, cov, _ = cohort
    res = run_stats(
        table,
        cov,
        tmp_path,
        n_permutations=0,
        neighbour_terms=False,
        reference_norms=None,
        methods=("gee_exchangeable",),
    )
    d = _direct_frame(cohort, "foraminal_height_mm", side="L")
    d = d.assign(pos=(d.value <= 15.0).astype(float))  # Hasegawa 1995: FH ≤ 15 mm
    # Levels where the finding never occurs are left out (separation), as run_stats does.
    varies = d.groupby("level")["pos"].transform(lambda s: s.nunique() > 1)
    left_out = sorted(set(d.level[~varies]))
    assert left_out  # FH ≤ 15 mm is rare at L2-L4 in this cohort
    d = d[varies]
    ref = smf.gee(
        "pos ~ C(level) + age + C(sex)",
        groups="subject",
        data=d,
        cov_struct=sm.cov_struct.Exchangeable(),
        family=sm.families.Binomial(),
    ).fit()
    ours = res.models[(res.models.measure == "foraminal_narrowing") & (res.models.side == "L")]
    ours = ours.set_index("term")
    assert ours.converged.all() and "left out" in ours.warning.iloc[0]
    assert ours.loc["age", "estimate"] == pytest.approx(ref.params["age"], rel=1e-6)
    assert ours.loc["age", "std_error"] == pytest.approx(ref.bse["age"], rel=1e-5)
    assert ours.loc["sex[M]", "odds_ratio"] == pytest.approx(
        np.exp(ref.params["C(sex)[T.M]"]), rel=1e-6
    )


def test_neighbour_term_present_and_signed(result):
    m = result.models
    nb = m[(m.measure == "dural_sac_area_mm2") & (m.term == "neighbour_central_stenosis")]
    assert len(nb) == 2  # GEE and mixed model
    # AR(1) degeneration: stenosis next door goes with a smaller sac here.
    assert (nb.estimate < 0).all()


def test_deterministic_and_reloadable(cohort, result, tmp_path):
    table, cov, _ = cohort
    run_stats(table, cov, tmp_path, n_permutations=99, seed=3)
    for name in ("correlations", "adjacency", "prevalence", "neighbour_odds"):
        a = (result.out_dir / OUTPUT_FILES[name]).read_text()
        b = (tmp_path / OUTPUT_FILES[name]).read_text()
        assert a == b, name
    back = StatsResult.from_dir(result.out_dir)
    assert list(back.correlations.side) == list(result.correlations.side)  # "" kept
    np.testing.assert_allclose(back.correlations.rho, result.correlations.rho, rtol=1e-9)
    np.testing.assert_allclose(back.models.estimate, result.models.estimate, rtol=1e-9)
    assert back.summary["n_subjects"] == 250


def test_table_from_parquet_and_csv_give_the_same_answer(cohort, result, tmp_path):
    table, cov, _ = cohort
    table.to_parquet(tmp_path / "t.parquet")
    cov.to_csv(tmp_path / "c.csv", index=False)
    res = run_stats(
        tmp_path / "t.parquet", tmp_path / "c.csv", tmp_path / "o", n_permutations=99, seed=3
    )
    pd.testing.assert_frame_equal(res.correlations, result.correlations)


def test_cli_stats(cohort, tmp_path, capsys):
    table, cov, _ = cohort
    table.to_csv(tmp_path / "t.csv", index=False)
    cov.to_csv(tmp_path / "c.csv", index=False)
    code = main(
        [
            "stats",
            str(tmp_path / "t.csv"),
            "--covariates",
            str(tmp_path / "c.csv"),
            "-o",
            str(tmp_path / "out"),
            "--permutations",
            "19",
            "--no-dashboard",
        ]
    )
    assert code == 0
    assert (tmp_path / "out" / "correlations.csv").exists()
    assert (tmp_path / "out" / "models.csv").exists()
    code = main(["stats", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "o2")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error:") and "not found" in err[-1]
    bad = tmp_path / "bad.csv"
    cov.rename(columns={"subject": "id"}).to_csv(bad, index=False)
    code = main(
        [
            "stats",
            str(tmp_path / "t.csv"),
            "--covariates",
            str(bad),
            "-o",
            str(tmp_path / "o3"),
            "--no-dashboard",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "'subject' column" in err[-1]


def test_adjust_for_extra_covariate(cohort, tmp_path):
    table, cov, _ = cohort
    res = run_stats(
        table,
        cov,
        tmp_path,
        n_permutations=0,
        reference_norms=None,
        adjust=("age", "sex", "bmi"),
        methods=("gee_exchangeable",),
    )
    assert "bmi" in set(res.models.term)
    assert res.summary["settings"]["adjust"] == ["age", "sex", "bmi"]
    from spinemetrics.errors import StatsError

    with pytest.raises(StatsError, match="not numeric"):
        run_stats(table, cov.assign(bmi="high"), tmp_path / "x", adjust=("age", "bmi"))


def test_cli_writes_an_offline_dashboard(tmp_path):
    pytest.importorskip("spinemetrics.report")
    table, cov, _ = simulate_cohort(60, seed=4, measures=["dural_sac_area_mm2"])
    table.to_csv(tmp_path / "t.csv", index=False)
    cov.to_csv(tmp_path / "c.csv", index=False)
    code = main(
        [
            "stats",
            str(tmp_path / "t.csv"),
            "-c",
            str(tmp_path / "c.csv"),
            "-o",
            str(tmp_path / "out"),
            "--permutations",
            "0",
            "--no-mixedlm",
        ]
    )
    assert code == 0
    html = (tmp_path / "out" / "dashboard.html").read_text(encoding="utf-8")
    assert len(html) > 10_000 and '<script src="http' not in html
