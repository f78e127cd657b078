"""Converters on the real label maps in /work/shared/data.

Expected voxel counts are the SOURCE.md tables of each data set (sums of the source ids that
map to one contract structure / level), or counts taken from the raw file with nibabel.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from spinemetrics.convert import convert_labels
from spinemetrics.labels import Structure as S


def counts(img):
    u, c = np.unique(img.array, return_counts=True)
    return dict(zip(u.tolist(), c.tolist(), strict=True))


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def panoptica_pred(shared_data):
    base = shared_data / "panoptica_lumbar_labels"
    return convert_labels(base / "semantic" / "pred.nii.gz", "spineps",
                          instance=base / "matched_instance" / "pred.nii.gz")


def test_spineps_semantic_counts(panoptica_pred):
    c = counts(panoptica_pred.seg)
    # SOURCE.md, semantic/pred.nii.gz
    assert c[S.vertebral_body] == 194278 + 15653  # 49 corpus + 62 endplate
    assert c[S.posterior_elements] == 12924 + 9953 + 1200 + 2420 + 4347 + 3550 + 4934 + 4008
    assert c[S.sacrum] == 45329
    assert c[S.intervertebral_disc] == 78770
    assert c[S.thecal_sac] == 39763  # 61 Spinal_Canal
    assert c[S.spinal_cord] == 8006  # 60 Spinal_Cord
    assert set(c) == {0, 1, 2, 3, 4, 5, 6}


def test_spineps_levels_renumbered_from_sacrum(panoptica_pred):
    c = counts(panoptica_pred.levels)
    # SOURCE.md, matched_instance/pred.nii.gz: instance 8 sits on the sacrum, so 8 → L5 (24),
    # 4 → L1 (20), 2 → T11 (18); discs follow. Bodies get their endplates (any 20X), so each
    # level holds at least its own instance's voxels plus part of the endplate voxels.
    assert 44606 < c[24] < 44606 + 1419 + 2895
    assert 33239 < c[20] < 33239 + 2389 + 2010
    assert 12040 < c[18] <= 12040 + 1652
    assert c[26] == 45329
    assert c[124] == 11615  # disc 108: L5-S1
    assert c[119] == 8493  # disc 103: T12-L1
    assert not any(2 <= k <= 8 for k in c)  # no renumbered-away ids remain
    assert any("renumbered from the sacrum" in w for w in panoptica_pred.warnings)
    # written on the input grid
    assert panoptica_pred.levels.source_shape == (512, 512, 17)


def test_spineps_endplates_go_to_the_body_they_touch(shared_data, panoptica_pred):
    """SPINEPS 200 + X holds both endplates of disc 100 + X (spineps ``add_ivd_ep_vert_label``
    gives endplate components the id of the vertebra above, like discs); each must join the
    body it lies on. Checked independently: every endplate voxel gets the level of the nearest
    vertebral-corpus voxel (semantic 49) of the raw maps."""
    from scipy import ndimage

    base = shared_data / "panoptica_lumbar_labels"
    inst = np.asarray(nib.load(base / "matched_instance" / "pred.nii.gz").dataobj)
    sem = np.asarray(nib.load(base / "semantic" / "pred.nii.gz").dataobj)
    lev = np.asarray(panoptica_pred.levels.to_source().array)  # back on the file's grid
    assert lev.shape == inst.shape
    corpus = (sem == 49) & (inst >= 1) & (inst <= 26)
    spacing = nib.load(base / "semantic" / "pred.nii.gz").header.get_zooms()[:3]
    _, nearest = ndimage.distance_transform_edt(~corpus, sampling=spacing, return_indices=True)
    ep = (inst >= 201) & (inst <= 226)
    want = lev[tuple(ix[ep] for ix in nearest)]
    assert (lev[ep] == want).mean() > 0.98
    # disc 104 (L1-L2 after renumbering): its two endplates belong to L1 (20) and L2 (21)
    assert set(np.unique(lev[inst == 204]).tolist()) == {20, 21}


def test_spineps_ref_cord_canal_swap_is_fixed(shared_data):
    res = convert_labels(shared_data / "panoptica_lumbar_labels" / "semantic" / "ref.nii.gz",
                         "spineps")
    c = counts(res.seg)
    # SOURCE.md note 2: in ref, 60 (38431 voxels) is spatially the canal, 61 (8190) the cord.
    assert c[S.thecal_sac] == 38431
    assert c[S.spinal_cord] == 8190
    assert any("swapped" in w for w in res.warnings)
    assert res.levels is None and any("no instance map" in w for w in res.warnings)


def test_pred_map_is_not_swapped(panoptica_pred):
    assert not any("swapped" in w for w in panoptica_pred.warnings)


def test_tptbox_lumbar_ct(shared_data):
    base = shared_data / "tptbox_lumbar_ct"
    res = convert_labels(base / "sub-ct_seg-subreg_label-22_msk.nii.gz", "tptbox",
                         instance=base / "sub-ct_seg-vert_label-22_msk.nii.gz")
    c = counts(res.seg)
    assert c[S.vertebral_body] == 9714 + 12635  # 49 shell + 50 interior (CT)
    assert c[S.posterior_elements] == 5034 + 2087 + 987 + 835 + 1393 + 1209 + 1255 + 1199
    assert set(c) == {0, 1, 2}
    assert counts(res.levels) == {0: 214115, 21: 6567, 22: 17698, 23: 12083}  # L2, L3, L4
    assert not any("renumbered" in w for w in res.warnings)


def test_tptbox_cervical_mri(shared_data):
    base = shared_data / "tptbox_cervical_mri"
    res = convert_labels(base / "sub-mri_seg-subreg_label-6_msk.nii.gz", "tptbox",
                         instance=base / "sub-mri_seg-vert_label-6_msk.nii.gz")
    c = counts(res.seg)
    assert c[S.vertebral_body] == 22772 + 1891
    assert c[S.intervertebral_disc] == 8597
    assert c[S.spinal_cord] == 345 and c[S.thecal_sac] == 4137
    lv = counts(res.levels)
    # C5–C7 with all their endplates (SOURCE.md: 205 = 892, 206 = 971, 207 = 28 voxels);
    # 205/206 each hold the two endplates of a disc and are shared by the bodies they touch.
    assert lv[5] + lv[6] + lv[7] == 4449 + 15754 + 12443 + 892 + 971 + 28
    assert lv[5] > 4449 and lv[6] > 15754 and lv[7] > 12443
    inst = np.asarray(nib.load(base / "sub-mri_seg-vert_label-6_msk.nii.gz").dataobj)
    lev = np.asarray(res.levels.to_source().array)
    assert set(np.unique(lev[inst == 205]).tolist()) == {5, 6}
    assert set(np.unique(lev[inst == 206]).tolist()) == {6, 7}
    assert lv[105] == 3829 and lv[106] == 4768  # C5-C6, C6-C7


@pytest.mark.parametrize(
    "semantic, instance, source, min_body, min_post",
    [
        ("panoptica_lumbar_labels/semantic/pred.nii.gz",
         "panoptica_lumbar_labels/matched_instance/pred.nii.gz", "spineps", 0.95, 0.85),
        ("tptbox_lumbar_ct/sub-ct_seg-subreg_label-22_msk.nii.gz",
         "tptbox_lumbar_ct/sub-ct_seg-vert_label-22_msk.nii.gz", "tptbox", 0.90, 0.85),
        ("tptbox_cervical_mri/sub-mri_seg-subreg_label-6_msk.nii.gz",
         "tptbox_cervical_mri/sub-mri_seg-vert_label-6_msk.nii.gz", "tptbox", 0.92, 0.83),
    ],
)
def test_instance_only_split_against_subregion_truth(shared_data, semantic, instance, source,
                                                     min_body, min_post):
    """Whole-vertebra split (used for SPIDER/VerSe/TotalSegmentator) vs real subregions."""
    truth = convert_labels(shared_data / semantic, source).seg.array
    res = convert_labels(shared_data / instance, source)
    seg = res.seg.array
    bone = np.isin(truth, [S.vertebral_body, S.posterior_elements])
    # the split only moves voxels between body and posterior elements
    np.testing.assert_array_equal(np.isin(seg, [S.vertebral_body, S.posterior_elements]), bone)
    assert dice(seg == S.vertebral_body, truth == S.vertebral_body) >= min_body
    assert dice(seg == S.posterior_elements, truth == S.posterior_elements) >= min_post


def test_totalsegmentator_mr(shared_data):
    res = convert_labels(shared_data / "totalseg_mr_abdomen" / "example_seg_mr.nii.gz",
                         "totalsegmentator_mr")
    c = counts(res.seg)
    # SOURCE.md: vertebrae 19 = 2006, discs 20 = 652, cord 21 = 544, aorta 672 + IVC 444,
    # autochthon 3272 + 2869, iliopsoas 97 + 135; portal vein and organs left out.
    assert c.get(S.vertebral_body, 0) + c.get(S.posterior_elements, 0) == 2006
    assert c[S.intervertebral_disc] == 652
    assert c[S.spinal_cord] == 544
    assert c[S.vessel] == 672 + 444
    assert c[S.paraspinal_muscle] == 3272 + 2869 + 97 + 135
    assert res.levels is None
    assert any("spleen" in w for w in res.warnings)
    # LPS file: the result goes back on the file grid (117 × 91 × 20)
    assert res.seg.source_shape == (117, 91, 20)


def test_totalsegmentator_ct(shared_data):
    path = shared_data / "totalseg_ct_abdomen" / "example_seg.nii.gz"
    raw = np.asanyarray(nib.load(str(path)).dataobj)
    n = {i: int((raw == i).sum()) for i in (30, 31, 32, 33, 52, 63, 79, 86, 87, 88, 89)}
    res = convert_labels(path, "totalsegmentator_ct")
    lv = counts(res.levels)
    # class_map["total"]: 30 vertebrae_L2, 31 L1, 32 T12, 33 T11 → contract 21, 20, 19, 18
    assert lv[21] == n[30] and lv[20] == n[31] and lv[19] == n[32] and lv[18] == n[33]
    c = counts(res.seg)
    assert c[S.vessel] == n[52] + n[63]  # aorta + inferior_vena_cava
    assert c[S.paraspinal_muscle] == n[86] + n[87] + n[88] + n[89]
    assert c[S.spinal_cord] == n[79]
    assert c[S.vertebral_body] + c[S.posterior_elements] == n[30] + n[31] + n[32] + n[33]
    assert S.intervertebral_disc not in c  # the CT task has no discs


def test_wrong_convention_names_the_fitting_one(shared_data):
    from spinemetrics.errors import LabelError
    from spinemetrics.io import read_labels

    path = shared_data / "totalseg_ct_abdomen" / "example_seg.nii.gz"
    with pytest.raises(LabelError, match="fit --from totalsegmentator_ct"):
        convert_labels(path, "spider")
    with pytest.raises(LabelError, match=r"TOOL: spineps or tptbox"):
        read_labels(shared_data / "panoptica_lumbar_labels" / "semantic" / "pred.nii.gz",
                    allowed=range(12))
