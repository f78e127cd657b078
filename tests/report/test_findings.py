"""Finding rules: thresholds from MEASURES.md applied exactly (boundaries included)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spinemetrics.findings import FINDING_RULES, classify_findings, severity, worst_by_level

RULES = {r.name: r for r in FINDING_RULES}


def test_central_stenosis_thresholds_are_strict():
    # < 100 relative, < 75 absolute (Bolender / Schönström): 100 and 75 themselves are not.
    v = np.array([150.0, 100.0, 99.9, 75.0, 74.9, np.nan])
    assert severity(v, RULES["central_stenosis"]).tolist() == [0, 0, 1, 1, 2, -1]


def test_inclusive_rules_include_the_boundary():
    # Hasegawa: foraminal height <= 15 mm, posterior disc height <= 4 mm.
    assert severity(np.array([15.0, 15.01]), RULES["foraminal_narrowing"]).tolist() == [1, 0]
    assert severity(np.array([4.0, 4.1]), RULES["posterior_disc_height_loss"]).tolist() == [1, 0]
    # Slip >= 5 % anterolisthesis, >= 25 % severe; <= -8 % retrolisthesis.
    slips = np.array([4.9, 5.0, 24.9, 25.0, -7.9, -8.0])
    assert severity(slips, RULES["anterolisthesis"]).tolist() == [0, 1, 1, 2, 0, 0]
    assert severity(slips, RULES["retrolisthesis"]).tolist() == [0, 0, 0, 0, 0, 1]


def test_relative_disc_height_uses_the_subjects_own_median():
    heights = {"L1-L2": 8.0, "L2-L3": 8.0, "L3-L4": 8.0, "L4-L5": 5.0, "L5-S1": 3.0}
    tab = pd.DataFrame({"subject": "s", "scan": "s", "side": "", "level": list(heights),
                        "measure": "disc_height_middle_mm", "value": list(heights.values())})
    f = classify_findings(tab)
    rel = f[f["finding"] == "disc_height_loss"].set_index("level")
    # median of the five discs = 8 mm: 5/8 = 0.625 (< 0.70 moderate), 3/8 = 0.375 (< 0.5 severe)
    assert rel.loc["L4-L5", "score"] == 5.0 / 8.0
    assert rel["severity"].to_dict() == {"L1-L2": 0, "L2-L3": 0, "L3-L4": 0, "L4-L5": 1,
                                         "L5-S1": 2}


def test_worst_by_level_merges_sides_and_findings(table):
    table.loc[(table["level"] == "L5-S1") & (table["measure"] == "foraminal_height_mm")
              & (table["side"] == "R"), "value"] = 12.0
    worst = worst_by_level(classify_findings(table))
    assert worst.loc["L4-L5", "severity"] == 2
    assert worst.loc["L3-L4", "severity"] == 1
    assert worst.loc["L5-S1", "severity"] == 1
    assert "Foraminal narrowing" in worst.loc["L5-S1", "labels"]
    assert worst.loc["L1-L2", "severity"] == 0
