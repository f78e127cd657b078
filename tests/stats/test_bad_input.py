"""Bad input gives one-line StatsError messages, or warnings recorded in the outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinemetrics.errors import StatsError
from spinemetrics.stats import open_store, read_covariates, run_stats, simulate_cohort

FAST = {"n_permutations": 0, "reference_norms": None, "methods": ("gee_exchangeable",)}


@pytest.fixture(scope="module")
def cohort():
    table, cov, _ = simulate_cohort(60, seed=2, measures=["dural_sac_area_mm2", "canal_ap_mm"])
    return table, cov


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and ";" in msg  # problem; fix
    return msg


def test_missing_columns(cohort):
    table, _ = cohort
    with pytest.raises(StatsError) as exc:
        open_store(table.drop(columns=["unit", "qc"]))
    assert "unit, qc" in _one_line(exc)


def test_empty_table(cohort):
    with pytest.raises(StatsError) as exc:
        open_store(cohort[0].iloc[:0])
    assert "no rows" in _one_line(exc)


def test_mixed_units_for_one_measure(cohort):
    table = cohort[0].copy()
    table.loc[table.index[:3], "unit"] = "cm2"
    with pytest.raises(StatsError) as exc:
        open_store(table)
    msg = _one_line(exc)
    assert "mixed units" in msg and "canal_ap_mm" in msg or "dural_sac_area_mm2" in msg


def test_exact_duplicates_dropped_with_warning(cohort):
    table = pd.concat([cohort[0], cohort[0].iloc[:7]], ignore_index=True)
    with open_store(table) as store:
        assert store.n_rows == len(cohort[0])
        assert any("7 exact duplicate" in w for w in store.warnings)


def test_conflicting_duplicates_are_an_error(cohort):
    dup = cohort[0].iloc[:2].copy()
    dup["value"] += 1.0
    with pytest.raises(StatsError) as exc:
        open_store(pd.concat([cohort[0], dup], ignore_index=True))
    assert "different values" in _one_line(exc)


def test_several_scans_keep_first_and_warn(cohort):
    extra = cohort[0][cohort[0].subject == "sub-000001"].copy()
    extra["scan"] = "zz_rescan"
    extra["value"] += 50
    with open_store(pd.concat([cohort[0], extra], ignore_index=True)) as store:
        assert store.n_rows == len(cohort[0])
        assert any("several scans" in w for w in store.warnings)


def test_flagged_rows_and_nan_values_left_out(cohort):
    table = cohort[0].copy()
    table.loc[table.index[:10], "qc"] = "partial_fov"
    table.loc[table.index[10:15], "value"] = np.nan
    with open_store(table) as store:
        assert store.n_rows == len(table) - 15
        assert any("qc is not 'ok'" in w for w in store.warnings)
    with open_store(table, qc_ok_only=False) as store:
        assert store.n_rows == len(table) - 5


def test_all_rows_unusable(cohort):
    table = cohort[0].assign(value=np.nan)
    with pytest.raises(StatsError) as exc:
        open_store(table)
    assert "no analysable rows" in _one_line(exc)


def test_table_file_errors(tmp_path):
    with pytest.raises(StatsError) as exc:
        open_store(tmp_path / "nope.parquet")
    assert "not found" in _one_line(exc)
    bad = tmp_path / "table.xlsx"
    bad.write_text("x")
    with pytest.raises(StatsError) as exc:
        open_store(bad)
    assert ".csv or .parquet" in _one_line(exc)


def test_covariate_errors(cohort):
    _, cov = cohort
    with pytest.raises(StatsError) as exc:
        read_covariates(cov.rename(columns={"subject": "id"}))
    assert "'subject' column" in _one_line(exc)
    with pytest.raises(StatsError) as exc:
        read_covariates(pd.concat([cov, cov.iloc[:1]]))
    assert "repeated subject" in _one_line(exc)
    with pytest.raises(StatsError) as exc:
        read_covariates(cov.assign(age=["old"] + list(cov.age.iloc[1:])))
    assert "non-numeric" in _one_line(exc)
    norm = read_covariates(cov.assign(sex=cov.sex.map({"F": "female", "M": "Male"})))
    assert set(norm.sex) == {"F", "M"}


def test_no_subject_overlap_is_an_error(cohort, tmp_path):
    table, cov = cohort
    with pytest.raises(StatsError) as exc:
        run_stats(table, cov.assign(subject="x" + cov.subject), tmp_path, **FAST)
    assert "same subject ids" in _one_line(exc)


def test_missing_covariates_still_runs_and_warns(cohort, tmp_path):
    res = run_stats(cohort[0], None, tmp_path, **FAST)
    assert "no covariates" in " ".join(res.warnings.message)
    terms = set(res.models.term)
    assert "age" not in terms and "sex[M]" not in terms and "level[L4-L5]" in terms
    assert res.norms.empty


def test_partial_and_constant_covariates(cohort, tmp_path):
    table, cov = cohort
    cov = cov.iloc[5:].assign(sex="F")  # 5 subjects lack covariates; sex is constant
    res = run_stats(table, cov, tmp_path, **FAST)
    text = " ".join(res.warnings.message)
    assert "5 subject(s) have no covariates" in text
    assert "'sex' is constant" in text
    gee = res.models[(res.models.method == "gee_exchangeable") & res.models.converged]
    assert "sex[M]" not in set(gee.term) and "age" in set(gee.term)
    assert (gee.n_subjects == 55).all()


def test_subjects_with_one_level_and_single_level_measures(cohort, tmp_path):
    table, cov = cohort
    keep = ~((table.subject.isin(["sub-000000", "sub-000001"])) & (table.level != "L4-L5"))
    res = run_stats(table[keep], cov, tmp_path, **FAST)
    text = " ".join(res.warnings.message)
    assert "2 subject(s) have this measure at one level only" in text
    one = table[table.level == "L4-L5"]
    res = run_stats(one, cov, tmp_path / "one", **FAST)
    assert res.correlations.empty
    assert "measured at one level only" in " ".join(res.warnings.message)
    gee = res.models[res.models.method == "gee_exchangeable"]
    assert not any(t.startswith("level[") for t in gee.term)


def test_constant_measure_gives_nan_not_numbers(cohort, tmp_path):
    table, cov = cohort
    table = table.copy()
    table.loc[table.measure == "canal_ap_mm", "value"] = 14.0
    res = run_stats(table, cov, tmp_path, **FAST)
    corr = res.correlations[res.correlations.measure == "canal_ap_mm"]
    assert corr.rho.isna().all() and corr.p_value.isna().all()
    assert "constant at level(s)" in " ".join(res.warnings.message)


def test_store_wide_pivot_equals_pandas(cohort, tmp_path):
    table, cov = cohort
    with open_store(table, cov, tmp_path / "store") as store:
        assert (tmp_path / "store" / "measure=canal_ap_mm").is_dir()  # hive partitions
        wide = store.wide("canal_ap_mm")
        frame = store.measure_frame("canal_ap_mm", ("age", "sex"))
        assert {"age", "sex"} <= set(frame.columns) and frame.age.notna().all()
    ref = table[table.measure == "canal_ap_mm"].pivot(
        index="subject", columns="level", values="value"
    )
    ref.index.name = "subject"
    pd.testing.assert_frame_equal(wide, ref[wide.columns], check_names=False)
