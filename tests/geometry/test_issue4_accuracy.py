"""Issue 4 faults on phantoms with exact truth: 4-mm foramina and epidural fat, the foraminal
width where the articular process tip rises above the disc mid-row, grazed pedicles, float
noise at a cropped field of view, and a grid-flat endplate.

Truth comes from :mod:`spinemetrics.phantom.truth` (dense sampling of the analytic shapes,
never of the voxels); the full 50-phantom figures are in docs/validation.md.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from spinemetrics.geometry import measure
from spinemetrics.image import Image
from spinemetrics.phantom import make_phantom, random_params
from spinemetrics.phantom import truth as T
from spinemetrics.phantom.model import build_anatomy
from spinemetrics.phantom.truth import truth_table

SAG = (4.0, 0.5, 0.5)


def _rot(seed: int, draw: int = 0) -> tuple[float, float, float]:
    """The rotation ``benchmarks/validate_geometry.py`` gives seed ``seed`` (draw 0: 1 mm iso,
    draw 1: 4-mm sagittal)."""
    rng = np.random.default_rng([12345, seed])
    rots = [tuple(float(v) for v in rng.uniform(-20, 20, 3)) for _ in range(2)]
    return rots[draw]


def _foramen_fat_truth(ph) -> pd.DataFrame:
    an = ph.anatomy
    rows = []
    for d in an.params.discs:
        for side in ("L", "R"):
            f = T.foramen(an, d, side)
            rows += [(d, side, f"foraminal_{k}_mm" if k != "area" else "foraminal_area_mm2",
                      f[k]) for k in ("height", "width", "area")]
        rows.append((d, "", "epidural_fat_area_mm2", T.epidural_fat_area(an, d)))
    return pd.DataFrame(rows, columns=["level", "side", "measure", "value"])


@pytest.fixture(scope="module")
def sagittal_joined() -> pd.DataFrame:
    """Two random phantoms, 0.5 × 0.5 × 4 mm, random oblique rotations (≤ 20°)."""
    out = []
    rng = np.random.default_rng(77)
    for seed in (31, 32):
        rot = tuple(float(v) for v in rng.uniform(-20, 20, 3))
        ph = make_phantom(random_params(seed), spacing=SAG, rotation_deg=rot, with_image=False)
        table = measure(ph.seg, ph.levels, families=("foramen", "soft_tissue"))
        out.append(_foramen_fat_truth(ph).merge(table, on=["level", "side", "measure"],
                                                suffixes=("_t", "_m")))
    return pd.concat(out, ignore_index=True)


def test_sagittal_4mm_foramina_meet_issue4_targets(sagittal_joined):
    """Width MAE ≤ 0.8 mm, area MAE ≤ 5 %, ≥ 90 % of foramina measured (were 1.19 mm,
    8.6 %, 88 % over 50 phantoms before the shape-based field and the pedicle-centroid
    plane)."""
    df = sagittal_joined
    fw = df[df.measure == "foraminal_width_mm"]
    fa = df[df.measure == "foraminal_area_mm2"]
    assert np.isfinite(fw.value_m).mean() >= 0.9
    assert np.nanmean(np.abs(fw.value_m - fw.value_t)) <= 0.8
    assert np.nanmean(np.abs(fa.value_m - fa.value_t) / fa.value_t) * 100 <= 5.0


def test_sagittal_4mm_epidural_fat_within_5_percent(sagittal_joined):
    ef = sagittal_joined[sagittal_joined.measure == "epidural_fat_area_mm2"]
    assert np.isfinite(ef.value_m).all()
    assert np.mean(np.abs(ef.value_m - ef.value_t) / ef.value_t) * 100 <= 5.0


def test_width_where_the_articular_process_tip_rises_above_the_mid_row():
    """Seed 1004, L1-L2 right (1 mm, its validation rotation): the foramen wraps round the
    tip of the superior articular process, so on the disc mid-row the region spans the
    process (AP extent > 20 mm). The width is the free run from the disc wall to the
    process (MEASURES §4.1), in the truth and in the measure; the old measure reported the
    15-mm-wider extent with qc ok."""
    ph = make_phantom(random_params(1004), spacing=(1.0, 1.0, 1.0), rotation_deg=_rot(1004),
                      with_image=False)
    truth = T.foramen(ph.anatomy, "L1-L2", "R")["width"]
    table = measure(ph.seg, ph.levels, families=("foramen",))
    row = table[(table.level == "L1-L2") & (table.side == "R")
                & (table.measure == "foraminal_width_mm")].iloc[0]
    assert 5.0 < truth < 12.0
    assert row.value == pytest.approx(truth, abs=0.8)
    assert row.qc == "ok"


def test_grazed_pedicle_is_nan_with_qc():
    """L3 pedicles 16 mm further apart than L2's (interpedicular distance): the L2-L3
    foraminal plane, half-way between, grazes both — NaN with qc ``pedicle_grazed``; the
    other levels are measured as usual."""
    p = random_params(7)
    ipd = dict(p.interpedicular_mm)
    ipd["L3"] = ipd["L2"] + 16.0
    p = dataclasses.replace(p, interpedicular_mm=ipd)
    ph = make_phantom(p, spacing=(1.0, 1.0, 1.0), with_image=False)
    table = measure(ph.seg, ph.levels, families=("foramen",))
    graze = table[table.level == "L2-L3"]
    assert graze.value.isna().all()
    assert graze.qc.str.contains("pedicle_grazed").all()
    other = table[table.level.isin(["L1-L2", "L4-L5"])]
    assert not other.qc.str.contains("pedicle_grazed").any()
    assert other.value.notna().mean() >= 0.8


def test_cropped_fov_results_do_not_move_with_affine_float_noise():
    """A phantom cropped through L2 (as in the batch tests) measured with its affine, the
    float32-rounded affine (a NIfTI header) and 1e-7-mm perturbations: every value and qc
    the same (the epidural fat moved by up to 7 % before: samples exactly half-way between
    two slices, and points exactly on the image edge, were decided by the noise)."""
    ph = make_phantom(random_params(seed=0), spacing=(4.0, 2.0, 2.0),
                      fov_mm=(48.0, 100.0, 130.0), with_image=False)
    ref = measure(ph.seg, ph.levels)
    rng = np.random.default_rng(3)
    affines = [ph.seg.affine.astype(np.float32).astype(np.float64)]
    for _ in range(2):
        a = ph.seg.affine.copy()
        a[:3] += rng.uniform(-1e-7, 1e-7, (3, 4))
        affines.append(a)
    for a in affines:
        t = measure(Image(ph.seg.array, a), Image(ph.levels.array, a))
        m = ref.merge(t, on=["level", "side", "measure"], suffixes=("", "_n"))
        assert len(m) == len(ref)
        same = np.isclose(m.value, m.value_n, rtol=1e-5, atol=1e-4) | (
            m.value.isna() & m.value_n.isna())
        assert same.all(), m[~same][["level", "side", "measure", "value", "value_n"]]
        assert (m.qc == m.qc_n).all()


def test_grid_flat_endplate_angles():
    """L3's superior endplate exactly grid-flat at 1 mm (seed 1000 rotated by its tilt): the
    staircase of that endplate has no step; every angle stays within 1.5° of the truth (the
    least-squares fit on the central 60 % gave 3.1° for the L3-L4 disc wedge)."""
    p = random_params(1000)
    n = build_anatomy(p).bodies["L3"].superior.normal
    tilt = float(np.degrees(np.arctan2(n[1], n[2])))
    ph = make_phantom(p, spacing=(1.0, 1.0, 1.0), rotation_deg=(tilt, 0.0, 0.0),
                      with_image=False)
    nw = ph.anat_to_world[:3, :3] @ n
    assert abs(np.degrees(np.arctan2(nw[1], nw[2]))) < 1e-6  # grid-flat indeed
    truth = truth_table(ph.anatomy, ph.anat_to_world[:3, :3], sampled=False)
    table = measure(ph.seg, ph.levels, families=("disc", "alignment"))
    j = truth.merge(table, on=["level", "side", "measure"], suffixes=("_t", "_m"))
    ang = j[j.measure.isin(["disc_wedge_angle_deg", "segmental_angle_deg"])]
    err = (ang.value_m - ang.value_t).abs()
    assert err.max() <= 1.5, ang.assign(err=err)[["level", "measure", "err"]]
