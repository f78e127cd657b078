"""Phantom API: determinism, orientations, image synthesis, CLI, speed, realism vs real maps."""

from __future__ import annotations

import time

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from spinemetrics.cli import main
from spinemetrics.errors import InputError
from spinemetrics.image import Image
from spinemetrics.phantom import make_phantom, random_params, synthesize_mr
from spinemetrics.phantom import tissues as T


@pytest.fixture(scope="module")
def small():
    """One 2 mm phantom with image, shared by the cheap tests."""
    return make_phantom(random_params(seed=1), spacing=(2.0, 2.0, 2.0), seed=1)


def test_same_seed_same_phantom_and_other_seed_differs(small):
    again = make_phantom(random_params(seed=1), spacing=(2.0, 2.0, 2.0), seed=1)
    np.testing.assert_array_equal(small.seg.array, again.seg.array)
    np.testing.assert_array_equal(small.levels.array, again.levels.array)
    np.testing.assert_array_equal(small.image.array, again.image.array)
    pd.testing.assert_frame_equal(small.analytic_truth, again.analytic_truth)
    other = random_params(seed=2)
    assert other.body_depth_mm != small.params.body_depth_mm


def test_random_params_stay_in_physiological_ranges():
    for seed in range(40):
        p = random_params(seed=seed)
        for v in p.vertebrae:
            hm = 0.5 * (p.body_height_anterior_mm[v] + p.body_height_posterior_mm[v])
            assert 21.0 <= hm <= 30.5
            assert 27.0 <= p.body_depth_mm[v] <= 39.0
            assert 37.0 <= p.body_width_mm[v] <= 52.0
        for d in p.discs:
            hm = 0.5 * (p.disc_height_anterior_mm[d] + p.disc_height_posterior_mm[d])
            assert (3.5 <= hm <= 7.0) if p.disc_degenerated[d] else (6.0 <= hm <= 14.0)
            assert p.disc_height_posterior_mm[d] >= 2.5 - 1e-9
            assert 0.0 <= abs(p.slip_percent[d]) <= 15.0
            for side in "LR":
                assert 2.0 <= p.lf_thickness_mm[f"{d}:{side}"] <= 6.0
        assert 18.0 <= p.sacral_slope_deg <= 50.0
        ph = make_phantom(p, with_image=False, spacing=(8.0, 8.0, 8.0)) if seed < 8 else None
        if ph is not None:
            ll = ph.truth_value("L1-S1", "lumbar_lordosis_deg")
            assert 20.0 <= ll <= 75.0
            areas = ph.analytic_truth.query("measure == 'dural_sac_area_mm2'").value
            assert areas.between(45.0, 230.0).all()


def test_orientation_is_a_pure_reindexing():
    p = random_params(seed=7)
    ras = make_phantom(p, spacing=(3.0, 2.0, 2.5), with_image=False)
    pir = make_phantom(p, spacing=(3.0, 2.0, 2.5), with_image=False, orientation="PIR")
    assert pir.seg.orientation == ("P", "I", "R")
    assert pir.seg.spacing == pytest.approx((2.0, 2.5, 3.0))  # spacing follows the axes
    back = pir.seg.to_canonical()
    np.testing.assert_array_equal(back.array, ras.seg.array)
    np.testing.assert_allclose(back.affine, ras.seg.affine, atol=1e-9)
    with pytest.raises(InputError):
        make_phantom(p, spacing=(3.0, 3.0, 3.0), with_image=False, orientation="XYZ")


def test_synthesized_contrasts_follow_the_intensity_table(small):
    seg = small.seg
    t2 = small.image.array
    assert t2.dtype == np.float32 and t2.shape == seg.shape
    assert 0.0 <= t2.min() and t2.max() <= 1.0
    csf = np.median(t2[small.tissue.array == T.CSF])
    muscle = np.median(t2[small.tissue.array == T.MUSCLE])
    assert csf > 2.0 * muscle  # T2: CSF bright, muscle dark
    stir = synthesize_mr(seg, "STIR", 3, tissue=small.tissue).array
    t1 = synthesize_mr(seg, "T1", 3, tissue=small.tissue).array
    fat = small.tissue.array == T.SUBCUT_FAT
    assert np.median(stir[fat]) < 0.5 * np.median(t1[fat])  # fat suppressed on STIR only
    # without a tissue map the sub-labels are guessed from the contract labels
    guessed = synthesize_mr(seg, "T2", 3).array
    assert np.median(guessed[seg.array == 5]) > 2.0 * np.median(guessed[seg.array == 10])
    with pytest.raises(InputError):
        synthesize_mr(seg, "FLAIR", 0)


def test_synthesize_works_on_foreign_grids(shared_data):
    # a real label map on a real sagittal grid (SPINEPS ids → only the geometry matters here)
    img = nib.load(shared_data / "panoptica_lumbar_labels" / "semantic" / "ref.nii.gz")
    arr = np.asarray(img.dataobj)[150:400, 150:450, :]
    seg = np.zeros(arr.shape, np.uint8)
    seg[arr == 49] = 1
    seg[arr == 100] = 4
    seg[(arr == 60) | (arr == 61)] = 5
    out = synthesize_mr(Image(seg, img.affine), "T2", 0)
    assert out.shape == seg.shape and np.isfinite(out.array).all()
    assert np.median(out.array[seg == 5]) > np.median(out.array[seg == 1])


def test_render_speed_1mm_with_image():
    p = random_params(seed=0)
    t0 = time.process_time()
    ph = make_phantom(p, spacing=(1.0, 1.0, 1.0), contrast="T2", seed=0)
    cpu = time.process_time() - t0
    assert ph.seg.shape[2] > 250  # T12 to coccyx at 1 mm
    # ≈ 1.8 s of CPU on the reference 2-core machine; generous bound for loaded CI runners
    assert cpu < 8.0


def test_volume_proportions_match_real_label_maps(shared_data):
    """Disc/body and dural-sac/body volume ratios within ±35 % of a real SPINEPS map.

    Compared on the same geometry as the real map (0.586 mm in-plane, 3.3 mm slices, a 56 mm
    left-right slab). Posterior elements are *not* compared: the phantom's are ≈ 2.8× the
    reference's relative to the bodies (see docs/phantom.md, limitations).
    """
    img = nib.load(shared_data / "panoptica_lumbar_labels" / "semantic" / "ref.nii.gz")
    arr = np.asarray(img.dataobj)
    body = np.isin(arr, (49, 62)).sum()
    real_disc = (arr == 100).sum() / body
    real_sac = np.isin(arr, (60, 61)).sum() / body  # cord and canal (ids swapped in ref)
    ph = make_phantom(
        random_params(seed=1),
        spacing=(3.3, 0.586, 0.586),
        with_image=False,
        fov_mm=(56.0, 300.0, 300.0),
    )
    seg = ph.seg.array
    pbody = (seg == 1).sum()
    assert (seg == 4).sum() / pbody == pytest.approx(real_disc, rel=0.35)
    assert np.isin(seg, (5, 6)).sum() / pbody == pytest.approx(real_sac, rel=0.35)


def test_cli_writes_contract_files(tmp_path):
    rc = main(
        [
            "phantom",
            "-o",
            str(tmp_path),
            "--seed",
            "5",
            "--spacing",
            "4,2,2",
            "--rotation",
            "0,8,0",
            "--orientation",
            "PIR",
            "--no-image",
        ]
    )
    assert rc == 0
    seg = nib.load(tmp_path / "phantom0005_seg.nii.gz")
    lev = nib.load(tmp_path / "phantom0005_levels.nii.gz")
    assert nib.aff2axcodes(seg.affine) == ("P", "I", "R")
    assert seg.header.get_zooms() == pytest.approx((2.0, 2.0, 4.0))
    assert np.array_equal(seg.affine, lev.affine)
    assert set(np.unique(np.asarray(lev.dataobj))) >= {19, 24, 26, 124}
    truth = pd.read_csv(tmp_path / "phantom0005_truth.csv")
    assert list(truth.columns) == [
        "subject",
        "scan",
        "level",
        "side",
        "measure",
        "value",
        "unit",
        "qc",
    ]
    assert not (tmp_path / "phantom0005_image.nii.gz").exists()
    assert main(["phantom", "-o", str(tmp_path), "--rotation", "0,45,0"]) == 2


def test_thick_slices_average_the_signal_across_the_slice():
    """With the slice profile, a 4 mm slice through a boundary mixes both tissues."""
    p = random_params(seed=4)
    kw = dict(spacing=(4.0, 2.0, 2.0), seed=3, fov_mm=(60.0, 160.0, 160.0))
    pv = make_phantom(p, slice_profile=True, **kw)
    sharp = make_phantom(p, **kw)  # default: labels and signal at voxel centres
    np.testing.assert_array_equal(pv.seg.array, sharp.seg.array)  # labels: voxel centres
    # identical noise/bias draws; after removing the global scale the images differ mostly
    # where the sub-slices see other tissue, i.e. next to a boundary across the slice
    a = pv.image.array / np.median(pv.image.array)
    b = sharp.image.array / np.median(sharp.image.array)
    diff = np.abs(a - b)
    seg = pv.seg.array
    edge = np.zeros(seg.shape, bool)
    edge[1:-1] = (seg[1:-1] != seg[:-2]) | (seg[1:-1] != seg[2:])  # axis 0 = LR = slice axis
    assert diff[edge].mean() > 3.0 * diff[~edge].mean()
