"""Fixtures for report tests: a small block-model lumbar spine with exactly known labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spinemetrics.image import Image
from spinemetrics.labels import Structure

CHROMIUM = Path("/usr/bin/chromium")
XSS = "<script>alert(1)</script>"

#: (name, vertebra id) cranial → caudal, and disc ids between them.
VERTEBRAE = [("L1", 20), ("L2", 21), ("L3", 22), ("L4", 23), ("L5", 24)]


def block_spine(spacing=(2.0, 1.0, 1.0), seed: int = 0):
    """Image, seg and level map of a block spine on a RAS grid (bodies 24 mm, discs 8 mm).

    Returns (image, seg, levels, z_centres) where z_centres maps level names to the world z
    of their mid-planes.
    """
    rng = np.random.default_rng(seed)
    sx, sy, sz = spacing
    shape = (int(100 / sx), int(130 / sy), int(200 / sz))
    affine = np.diag([sx, sy, sz, 1.0])
    affine[:3, 3] = (-50.0, -65.0, -100.0)
    img = Image(np.zeros(shape, np.float32), affine)
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1).T
    xyz = img.index_to_world(ijk).reshape(shape + (3,))
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    seg = np.zeros(shape, np.uint8)
    lev = np.zeros(shape, np.uint16)
    z_top = 85.0
    centres = {}
    for k, (name, vid) in enumerate(VERTEBRAE + [("S1", 26)]):
        h = 24.0 if name != "S1" else 40.0
        body = (abs(x) <= 20) & (y >= 10) & (y <= 45) & (z <= z_top) & (z > z_top - h)
        post = (abs(x) <= 14) & (y >= -40) & (y <= -22) & (z <= z_top - 4) & (z > z_top - h + 4)
        seg[body] = Structure.sacrum if name == "S1" else Structure.vertebral_body
        seg[post & (seg == 0)] = Structure.posterior_elements if name != "S1" else Structure.sacrum
        lev[body | post] = vid
        centres[name] = z_top - h / 2
        z_top -= h
        if name != "S1":
            disc = (abs(x) <= 19) & (y >= 11) & (y <= 44) & (z <= z_top) & (z > z_top - 8)
            seg[disc] = Structure.intervertebral_disc
            lev[disc] = 100 + vid
            nxt = VERTEBRAE[k + 1][0] if k + 1 < len(VERTEBRAE) else "S1"
            centres[f"{name}-{nxt}"] = z_top - 4
            z_top -= 8
    sac = ((x / 9.0) ** 2 + ((y + 6) / 8.0) ** 2 <= 1) & (z > -95)
    seg[sac & (seg == 0)] = Structure.thecal_sac
    fat = ((x / 11.0) ** 2 + ((y + 6) / 11.0) ** 2 <= 1) & (seg == 0) & (z > -95)
    seg[fat] = Structure.epidural_fat
    for side in (-1, 1):
        musc = (((x - side * 25) / 14.0) ** 2 + ((y + 40) / 14.0) ** 2 <= 1) & (seg == 0)
        seg[musc] = Structure.paraspinal_muscle
    intensity = {0: 60, 1: 300, 2: 280, 3: 290, 4: 700, 5: 1000, 8: 900, 10: 200}
    arr = np.zeros(shape, np.float32)
    for lab, val in intensity.items():
        arr[seg == lab] = val
    arr += rng.normal(0, 25, shape).astype(np.float32)
    image = Image(arr, affine)
    return image, image.with_array(seg), image.with_array(lev), centres


def subject_table(subject: str = "sub-01") -> pd.DataFrame:
    """Long table with known values: L4-L5 severe stenosis (68 mm²), L3-L4 relative (90)."""
    rows = []
    discs = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    dsa = {"L1-L2": 160.0, "L2-L3": 150.0, "L3-L4": 90.0, "L4-L5": 68.0, "L5-S1": 140.0}
    for d in discs:
        rows += [
            (d, "", "dural_sac_area_mm2", dsa[d], "mm2", "ok"),
            (d, "", "disc_height_middle_mm", 8.0, "mm", "ok"),
            (d, "", "disc_height_anterior_mm", 9.0, "mm", "ok"),
            (d, "", "disc_height_posterior_mm", 6.0, "mm", "ok"),
            (d, "", "slip_percent", 2.0, "%", "ok"),
            (d, "L", "foraminal_height_mm", 18.0, "mm", "ok"),
            (d, "R", "foraminal_height_mm", 18.5, "mm", "ok"),
        ]
    for v in ["L1", "L2", "L3", "L4", "L5"]:
        rows += [
            (v, "", "vertebral_height_anterior_mm", 24.0, "mm", "ok"),
            (v, "", "vertebral_height_posterior_mm", 24.0, "mm", "ok"),
            (v, "", "canal_ap_mm", 16.0, "mm", "ok"),
        ]
    rows += [("L1-S1", "", "lumbar_lordosis_deg", 38.0, "deg", "ok"),
             ("S1", "", "sacral_slope_deg", float("nan"), "deg", "partial_fov")]
    df = pd.DataFrame(rows, columns=["level", "side", "measure", "value", "unit", "qc"])
    df.insert(0, "scan", "scan-1")
    df.insert(0, "subject", subject)
    return df


@pytest.fixture(scope="session")
def phantom():
    return block_spine()


@pytest.fixture()
def table():
    return subject_table()


def fake_stats(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Contract §6 correlations (real Spearman on ``table``) and models (fixed known rows)."""
    rows = []
    for measure, grp in table[table["side"].isin(["", "L"])].groupby("measure"):
        wide = grp.pivot_table(index="subject", columns="level", values="value")
        if wide.shape[1] < 2:
            continue
        rho = wide.corr(method="spearman")
        cols = list(wide.columns)
        for i, a in enumerate(cols):
            for b in cols[i + 1:]:
                rows.append({"measure": measure, "level_a": a, "level_b": b,
                             "n": int(wide[[a, b]].dropna().shape[0]), "rho": rho.loc[a, b],
                             "ci_low": np.nan, "ci_high": np.nan, "p_value": 1e-3,
                             "q_value": 2e-3, "side": grp["side"].iloc[0]})
    corr = pd.DataFrame(rows)
    models = pd.DataFrame([
        {"measure": "dural_sac_area_mm2", "term": t, "estimate": e, "std_error": 1.0,
         "ci_low": e - 2, "ci_high": e + 2, "p_value": 0.01, "q_value": 0.02,
         "method": "gee_exchangeable", "n_subjects": 100, "n_obs": 500}
        for t, e in (("Intercept", 150.0), ("age", -0.6), ("sex[M]", 3.0), ("level[L4-L5]", -12.0))
    ])
    return corr, models
