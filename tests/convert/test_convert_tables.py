"""Mapping tables on small synthetic maps with known answers; the whole-vertebra split."""

from __future__ import annotations

import numpy as np
import pytest

from spinemetrics.convert import SOURCES, convert_labels
from spinemetrics.convert._split import split_vertebrae
from spinemetrics.errors import InputError, LabelError
from spinemetrics.image import Image
from spinemetrics.labels import Structure as S


def _stack(ids: list[int], thickness: int = 3) -> Image:
    """Slabs along z (superior = higher index), first id at the top; RAS 1 mm grid."""
    arr = np.zeros((6, 6, thickness * len(ids) + 2), np.uint16)
    for n, i in enumerate(ids):
        z0 = arr.shape[2] - 1 - thickness * (n + 1)
        arr[1:5, 1:5, z0 : z0 + thickness] = i
    return Image(arr, np.eye(4), meta={"source_path": "synthetic.nii.gz"})


def _values(result, which="levels"):
    img = getattr(result, which)
    return sorted(int(v) for v in np.unique(img.array) if v)


def test_spider_counts_from_l5_up():
    # SPIDER: 1 = L5, 2 = L4, 201 = L5/S1 disc, 202 = L4/L5, 100 = canal
    res = convert_labels(_stack([2, 202, 1, 201]), "spider")
    assert _values(res) == [23, 24, 123, 124]
    assert _values(res, "seg") == [S.vertebral_body, S.intervertebral_disc]
    canal = _stack([100])
    assert _values(convert_labels(canal, "spider"), "seg") == [S.thecal_sac]


def test_spider_partial_vertebra_flagged():
    res = convert_labels(_stack([105, 205, 4]), "spider")  # partially visible L1
    assert _values(res) == [20, 21, 120]  # 205 = disc below SPIDER vertebra 5 (L1-L2)
    assert any("partly in the field of view" in w for w in res.warnings)


def test_totalspineseg_ids():
    res = convert_labels(_stack([41, 92, 45, 100, 50]), "totalspineseg")
    # L1, disc L1-L2, L5, disc L5-S, sacrum
    assert _values(res) == [20, 24, 26, 120, 124]
    seg = convert_labels(_stack([1, 2, 32, 91]), "totalspineseg")
    assert _values(seg, "seg") == [S.vertebral_body, S.intervertebral_disc, S.thecal_sac,
                                   S.spinal_cord]
    assert _values(seg) == [19, 119]  # T12, T12-L1


def test_verse_ids_are_contract_ids():
    res = convert_labels(_stack([19, 28, 20, 24, 25]), "verse")
    assert _values(res) == [19, 20, 24, 25, 28]
    sac = convert_labels(_stack([24, 26, 27]), "verse")
    assert _values(sac) == [24, 26]  # coccyx has no level
    assert S.sacrum in _values(sac, "seg")


def test_totalsegmentator_ct_vertebra_names():
    # class_map["total"]: 27 vertebrae_L5, 31 vertebrae_L1, 25 sacrum, 26 vertebrae_S1
    res = convert_labels(_stack([31, 27, 26, 25]), "totalsegmentator_ct")
    assert _values(res) == [20, 24, 26]
    assert S.sacrum in _values(res, "seg")


def test_unknown_ids_are_refused_with_the_ids():
    with pytest.raises(LabelError) as e:
        convert_labels(_stack([1, 300, 301]), "spider")
    msg = str(e.value)
    assert "300, 301" in msg and "--from" in msg and "\n" not in msg
    with pytest.raises(LabelError, match="150"):
        convert_labels(_stack([49, 150]), "spineps")  # 150: neither subregion nor instance


def test_unknown_source():
    with pytest.raises(InputError, match="unknown label convention"):
        convert_labels(_stack([1]), "freesurfer")
    assert set(SOURCES) == {"spineps", "tptbox", "spider", "totalspineseg",
                            "totalsegmentator_ct", "totalsegmentator_mr", "verse"}


def test_renumbering_is_not_applied_to_anatomical_ids():
    # L4, L5 above the sacrum: already anatomical, no warning, ids kept
    res = convert_labels(_stack([23, 123, 24, 124, 26]), "tptbox")
    assert _values(res) == [23, 24, 26, 123, 124]
    assert not any("renumbered" in w for w in res.warnings)


def _ring_vertebra():
    """Analytic vertebra: body box anterior, closed ring around a canal behind it (RAS)."""
    arr = np.zeros((30, 40, 12), np.int32)
    arr[5:25, 22:38, 2:10] = 1  # body: y 22–37 (anterior)
    arr[8:22, 8:22, 4:8] = 1  # arch block …
    arr[11:19, 12:22, 4:8] = 0  # … with the canal hole: y 12–21, so its front wall is y = 21
    arr[13:17, 0:8, 4:8] = 1  # spinous process, posterior
    return arr


def test_split_of_an_analytic_ring():
    arr = _ring_vertebra()
    body, post, unsplit = split_vertebrae(arr)
    assert unsplit == []
    expected_body = arr.astype(bool).copy()
    expected_body[:, :22, :] = False  # everything behind the canal's front wall (y ≤ 21)
    np.testing.assert_array_equal(body, expected_body)
    np.testing.assert_array_equal(post, arr.astype(bool) & ~expected_body)


def test_split_uses_canal_label_when_ring_is_open():
    arr = _ring_vertebra()
    arr[11:19, 8:12, 4:8] = 0  # open the ring posteriorly: no enclosed foramen
    canal = np.zeros(arr.shape, bool)
    canal[11:19, 12:22, :] = True
    body, post, unsplit = split_vertebrae(arr, canal)
    assert unsplit == [] and not body[:, :22, :].any() and body[:, 22:, :].any()
    assert post.sum() == arr.sum() - body.sum()


def test_split_is_invariant_to_a_translation():
    arr = _ring_vertebra()
    shifted = np.zeros((40, 50, 20), np.int32)
    shifted[7:37, 3:43, 5:17] = arr
    b1, _, _ = split_vertebrae(arr)
    b2, _, _ = split_vertebrae(shifted)
    assert b1.sum() == b2.sum()


def test_instance_argument_misuse():
    inst = _stack([23, 123, 24])
    with pytest.raises(LabelError, match="instance map"):
        convert_labels(inst, "tptbox", instance=inst)
    with pytest.raises(InputError, match="only used with spineps"):
        convert_labels(_stack([1]), "spider", instance=inst)


def test_body_only_vertebra_with_cord_behind_stays_body():
    """total_mr often labels only bodies: a cord behind them must not cut them."""
    arr = np.zeros((20, 30, 10), np.uint8)
    arr[4:16, 12:26, 2:8] = 19  # 'vertebrae' (body only), total_mr id
    arr[8:12, 8:13, :] = 21  # spinal_cord right behind, touching the body
    res = convert_labels(Image(arr, np.eye(4)), "totalsegmentator_mr")
    seg = res.seg.array
    assert (seg == S.vertebral_body).sum() == (arr == 19).sum()
    assert (seg == S.posterior_elements).sum() == 0
    assert (seg == S.spinal_cord).sum() == (arr == 21).sum()


def test_totalspineseg_swapped_cord_canal_is_fixed():
    arr = np.zeros((20, 20, 12), np.uint8)
    arr[5:15, 5:15, :] = 1  # labelled "cord" but it is the big outer tube …
    arr[8:12, 8:12, :] = 2  # … around the "canal": swapped
    res = convert_labels(Image(arr, np.eye(4)), "totalspineseg")
    seg = res.seg.array
    assert (seg == S.spinal_cord).sum() == 16 * 12 and (seg == S.thecal_sac).sum() == 84 * 12
    assert any("swapped" in w for w in res.warnings)
