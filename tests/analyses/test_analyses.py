"""Each worked analysis runs end to end with --smoke and reaches the known answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ANALYSES = Path(__file__).resolve().parents[2] / "analyses"


def _run(script: str, out: Path, shared_data: Path | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if shared_data is not None:
        env["SPINEMETRICS_SHARED_DATA"] = str(shared_data)
    proc = subprocess.run([sys.executable, str(ANALYSES / script), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "summary.md").read_text(encoding="utf-8").startswith("# ")
    for html in out.glob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert "plotly.min.js" in text and "cdn.plot.ly" not in text  # offline figures
    if list(out.glob("*.html")):
        assert (out / "plotly.min.js").exists()


def test_adjacent_level_clustering(tmp_path):
    _run("adjacent_levels.py", tmp_path)
    tests = pd.read_csv(tmp_path / "adjacency_tests.csv")
    # the simulated latent degeneration is AR(1) with phi = 0.6: adjacent > distant
    assert (tests.difference > 0).all() and (tests.p_value < 0.05).all()
    assert (tests.difference_true > 0).all()
    corr = pd.read_csv(tmp_path / "correlations.csv")
    assert set(corr.measure) == {"disc_height_index", "dural_sac_area_mm2"}
    assert len(corr) == 2 * 10  # 5 discs → 10 pairs per measure
    assert corr.covered.mean() >= 0.7  # 95 % CIs cover the closed-form truth
    odds = pd.read_csv(tmp_path / "neighbour_odds.csv")
    assert set(odds.finding) == {"disc_narrowing", "central_stenosis"}
    assert (odds.groupby("finding").odds_ratio.median() > 1.0).all()


def test_normative_disc_height(tmp_path):
    _run("normative_disc_height.py", tmp_path)
    fit = pd.read_csv(tmp_path / "fit_vs_truth.csv")
    assert fit.error_mm.abs().max() < 0.6  # fitted medians near the generating means
    cal = pd.read_csv(tmp_path / "calibration.csv")
    assert len(cal) == 5
    assert cal.mean_z.abs().max() < 0.35 and cal.sd_z.between(0.8, 1.25).all()
    assert cal.outside_95.between(0.0, 0.15).all()
    cent = pd.read_csv(tmp_path / "centiles.csv")
    assert (cent.p2_5 < cent.p50).all() and (cent.p50 < cent.p97_5).all()


def test_segmentation_agreement(tmp_path, shared_data):
    _run("segmentation_agreement.py", tmp_path, shared_data)
    dice = pd.read_csv(tmp_path / "dice.csv")
    body = dice[(dice.kind == "structure") & (dice.name == "vertebral_body")].dice.iloc[0]
    assert body > 0.9  # the two maps are near-identical SPINEPS outputs (SOURCE.md)
    ba = pd.read_csv(tmp_path / "bland_altman.csv").set_index("measure")
    # 7 discs (T11-T12 … L5-S1) are labelled in both maps (SOURCE.md: ids 102–108)
    assert ba.loc["disc_height_middle_mm", "n"] == 7
    assert abs(ba.loc["disc_height_middle_mm", "bias"]) < 1.0
    assert ba.loc["vertebral_volume_mm3", "mean_abs_pct_diff"] < 10.0


@pytest.mark.parametrize("script", ["adjacent_levels.py", "normative_disc_height.py",
                                    "segmentation_agreement.py"])
def test_analysis_scripts_document_themselves(script):
    text = (ANALYSES / script).read_text(encoding="utf-8")
    assert "--smoke" in (ANALYSES / "_common.py").read_text() and '"""Worked example' in text
