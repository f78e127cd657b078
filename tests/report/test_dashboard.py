"""Dashboard aggregation: counts equal direct computations; files load; size stays bounded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from spinemetrics.report import cohort_dashboard
from spinemetrics.report.aggregate import AGE_LABELS, aggregate_cohort, normalise_sex
from spinemetrics.report.dashboard import load_stats

from .conftest import XSS, fake_stats


def make_cohort(n: int = 600, seed: int = 5):
    """Small cohort with known structure: dural sac area ~ N(140 - 0.8*(age-55), 25²)."""
    rng = np.random.default_rng(seed)
    subjects = np.array([f"s{i:04d}" for i in range(n)], dtype=object)
    age = rng.uniform(30, 85, n)
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    levels = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    rows = []
    for j, lv in enumerate(levels):
        dsa = 140 - 0.8 * (age - 55) - 5 * j + rng.normal(0, 25, n)
        rows.append(pd.DataFrame({"subject": subjects, "level": lv, "side": "",
                                  "measure": "dural_sac_area_mm2", "value": dsa, "unit": "mm2"}))
        for side in ("L", "R"):
            fh = rng.normal(18, 2.5, n)
            rows.append(pd.DataFrame({"subject": subjects, "level": lv, "side": side,
                                      "measure": "foraminal_height_mm", "value": fh,
                                      "unit": "mm"}))
    tab = pd.concat(rows, ignore_index=True)
    tab.loc[rng.random(len(tab)) < 0.03, "value"] = np.nan
    tab["scan"] = tab["subject"]
    tab["qc"] = "ok"
    cov = pd.DataFrame({"subject": subjects, "age": age, "sex": sex})
    return tab, cov


@pytest.fixture(scope="module")
def cohort():
    tab, cov = make_cohort()
    return tab, cov, aggregate_cohort(tab, cov, sample_cap=100, seed=1)


def _age_group(age):
    return np.searchsorted([40, 50, 60, 70, 80], age, side="right")


def test_histograms_count_every_measured_value(cohort):
    tab, cov, agg = cohort
    h = agg["hist"]["dural_sac_area_mm2"]
    assert h["levels"] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    counts = np.array(h["counts"])  # level, sex, age, bin
    measured = tab[(tab["measure"] == "dural_sac_area_mm2")].groupby("level")["value"].count()
    assert counts.sum(axis=(1, 2, 3)).tolist() == measured.loc[h["levels"]].tolist()
    # Women 60-69 at L4-L5, counted directly.
    m = tab[(tab["measure"] == "dural_sac_area_mm2") & (tab["level"] == "L4-L5")]
    m = m.merge(cov, on="subject").dropna(subset=["value"])
    direct = ((m["sex"] == "F") & (_age_group(m["age"]) == 3)).sum()
    assert counts[3, 0, 3].sum() == direct
    # Sums give exact means.
    sums = np.array(h["sum"])
    assert sums[3].sum() / counts[3].sum() == pytest.approx(m["value"].mean(), rel=1e-6)


def test_prevalence_and_neighbour_tables_match_direct_counts(cohort):
    tab, cov, agg = cohort
    f = agg["findings"]["central_stenosis"]
    dsa = tab[tab["measure"] == "dural_sac_area_mm2"].pivot(index="subject", columns="level",
                                                             values="value")
    i = f["levels"].index("L4-L5")
    pos, tot = np.array(f["pos"][i]), np.array(f["tot"][i])
    assert pos.sum() == (dsa["L4-L5"] < 100).sum()
    assert tot.sum() == dsa["L4-L5"].notna().sum()
    pair = next(p for p in f["pairs"] if p["a"] == "L3-L4" and p["b"] == "L4-L5")
    both = dsa[["L3-L4", "L4-L5"]].dropna()
    x, y = both["L3-L4"] < 100, both["L4-L5"] < 100
    assert np.sum(pair["n11"]) == (x & y).sum()
    assert np.sum(pair["n10"]) == (x & ~y).sum()
    assert np.sum(pair["n01"]) == (~x & y).sum()
    assert np.sum(pair["n00"]) == (~x & ~y).sum()


def test_sided_findings_count_either_side(cohort):
    tab, cov, agg = cohort
    f = agg["findings"]["foraminal_narrowing"]
    fh = tab[(tab["measure"] == "foraminal_height_mm") & (tab["level"] == "L1-L2")]
    by_subj = fh.assign(pos=fh["value"] <= 15).dropna(subset=["value"]).groupby("subject")["pos"]
    i = f["levels"].index("L1-L2")
    assert np.sum(f["pos"][i]) == by_subj.any().sum()
    assert np.sum(f["tot"][i]) == by_subj.size().shape[0]


def test_centiles_match_numpy_quantiles(cohort):
    tab, cov, agg = cohort
    c = agg["centiles"]["dural_sac_area_mm2"]
    m = tab[(tab["measure"] == "dural_sac_area_mm2") & (tab["level"] == "L4-L5")]
    m = m.merge(cov, on="subject").dropna(subset=["value"])
    a0 = np.floor(m["age"].min() / 5) * 5
    k = 4  # 5-year bin index
    sel = m[(m["age"] >= a0 + 5 * k) & (m["age"] < a0 + 5 * (k + 1))]["value"]
    assert len(sel) >= 20
    p50 = c["all"]["L4-L5"][c["centiles"].index(50)][k]
    assert p50 == pytest.approx(np.quantile(sel, 0.5), rel=1e-3)
    assert c["age_mid"][k] == pytest.approx(a0 + 5 * k + 2.5)


def test_sample_is_capped_and_seeded(cohort):
    tab, cov, agg = cohort
    s = agg["sample"]
    assert len(s["subject"]) == 100
    again = aggregate_cohort(tab, cov, sample_cap=100, seed=1)["sample"]
    assert again["subject"] == s["subject"]
    k = 7
    subj = s["subject"][k]
    want = tab[(tab["subject"] == subj) & (tab["measure"] == "dural_sac_area_mm2")
               & (tab["level"] == "L2-L3")]["value"].iloc[0]
    got = s["values"]["dural_sac_area_mm2"]["L2-L3"][k]
    assert (got is None and np.isnan(want)) or got == pytest.approx(want, rel=1e-3)


def test_group_sizes_and_sex_codes(cohort):
    tab, cov, agg = cohort
    g = np.array(agg["meta"]["group_n"])
    assert g.sum() == len(cov)
    assert g[0].sum() == (cov["sex"] == "F").sum()
    assert g[:, len(AGE_LABELS) - 1].sum() == 0  # every age known
    assert normalise_sex(pd.Series(["F", "female", "M", "Male", "x", None])).tolist() == \
        [0, 0, 1, 1, 2, 2]


def test_dashboard_from_stats_folder_and_xss(tmp_path):
    tab, cov = make_cohort(300)
    tab.loc[tab["subject"] == "s0001", "subject"] = XSS
    cov.loc[cov["subject"] == "s0001", "subject"] = XSS
    corr, models = fake_stats(tab)
    d = tmp_path / "stats"
    d.mkdir()
    corr.to_csv(d / "correlations.csv", index=False)
    models.to_csv(d / "models.csv", index=False)
    tab.to_parquet(d / "measurements.parquet")
    cov.to_csv(d / "covariates.csv", index=False)
    loaded = load_stats(d)
    assert len(loaded["correlations"]) == len(corr) and loaded["table"] is not None
    out = cohort_dashboard(d, tmp_path / "dash.html", sample_cap=300)
    text = out.read_text("utf-8")
    assert XSS not in text
    data = text[text.index("var SM_DATA=") + len("var SM_DATA="):]
    data = json.loads(data[:data.index(";</script>")].replace("<\\/", "</"))
    assert XSS in data["sample"]["subject"]  # kept as data, shown escaped by the page
    rho = data["corr"]["dural_sac_area_mm2"][""]
    assert rho["levels"] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert rho["rho"][0][0] == 1.0
    assert [r["term"] for r in data["models"]][0] == "Intercept"


def test_dashboard_needs_some_input(tmp_path):
    from spinemetrics.errors import InputError

    with pytest.raises(InputError, match="nothing to show"):
        cohort_dashboard({}, tmp_path / "d.html")


def test_dashboard_reads_the_stats_engine_outputs(tmp_path):
    """Contract §6 files written by `run_stats` feed the dashboard unchanged."""
    from spinemetrics.stats.run import run_stats
    from spinemetrics.stats.simulate import simulate_cohort

    tab, cov, _ = simulate_cohort(300, seed=3, measures=["dural_sac_area_mm2"])
    run_stats(tab, cov, tmp_path / "st", n_permutations=0, methods=("gee_exchangeable",),
              reference_norms=None)
    out = cohort_dashboard(tmp_path / "st", tmp_path / "d.html", table=tab, covariates=cov)
    text = out.read_text("utf-8")
    data = text[text.index("var SM_DATA=") + len("var SM_DATA="):]
    data = json.loads(data[:data.index(";</script>")].replace("<\\/", "</"))
    corr = pd.read_csv(tmp_path / "st" / "correlations.csv")
    row = corr[(corr["measure"] == "dural_sac_area_mm2") & (corr["level_a"] == "L3-L4")
               & (corr["level_b"] == "L4-L5")].iloc[0]
    m = next(iter(data["corr"]["dural_sac_area_mm2"].values()))
    i, j = m["levels"].index("L3-L4"), m["levels"].index("L4-L5")
    assert m["rho"][i][j] == pytest.approx(row["rho"]) and m["rho"][j][i] == m["rho"][i][j]
    terms = {r["term"] for r in data["models"] if r["measure"] == "dural_sac_area_mm2"}
    assert "age" in terms
    odds = pd.read_csv(tmp_path / "st" / "neighbour_odds.csv")
    assert len(odds) > 0
    assert f"exact CI) ({len(odds)} rows)" in text


def test_sample_cap_zero_embeds_no_subject(tmp_path):
    tab, cov = make_cohort(150)
    out = cohort_dashboard({}, tmp_path / "d.html", table=tab, covariates=cov, sample_cap=0)
    text = out.read_text("utf-8")
    assert "s0001" not in text and "s0149" not in text


def test_without_covariates_filters_are_disabled(tmp_path):
    tab, _ = make_cohort(120)
    text = cohort_dashboard({}, tmp_path / "d.html", table=tab).read_text("utf-8")
    assert '<select id="f-sex" disabled>' in text and '<select id="f-age" disabled>' in text
    assert "no covariates given" in text
