"""Contract §2/§3 label scheme."""

from __future__ import annotations

import pytest

from spinemetrics import labels
from spinemetrics.errors import LevelError
from spinemetrics.labels import Structure


def test_structure_ids_match_contract():
    expected = {
        "background": 0, "vertebral_body": 1, "posterior_elements": 2, "sacrum": 3,
        "intervertebral_disc": 4, "thecal_sac": 5, "spinal_cord": 6, "nerve_root": 7,
        "epidural_fat": 8, "ligamentum_flavum": 9, "paraspinal_muscle": 10, "vessel": 11,
    }
    assert {s.name: int(s) for s in Structure} == expected
    assert set(labels.STRUCTURE_COLORS) == set(Structure)


@pytest.mark.parametrize(
    "vid,name", [(19, "T12"), (20, "L1"), (22, "L3"), (24, "L5"), (25, "L6"), (26, "S1"),
                 (28, "T13"), (8, "T1")],
)
def test_vertebra_names(vid, name):
    assert labels.vertebra_name(vid) == name
    assert labels.vertebra_id(name) == vid


@pytest.mark.parametrize(
    "did,name", [(119, "T12-L1"), (120, "L1-L2"), (123, "L4-L5"), (124, "L5-S1")],
)
def test_disc_names_round_trip(did, name):
    assert labels.disc_name(did) == name
    assert labels.level_id(name) == did
    assert labels.level_name(did) == name


def test_l6_disc_uses_explicit_lower_neighbour():
    assert labels.disc_name(125, lower=26) == "L6-S1"
    assert labels.disc_name(124, lower=25) == "L5-L6"


def test_unknown_levels_raise_one_line_errors():
    for bad in ["L9", "X1", ""]:
        with pytest.raises(LevelError) as err:
            labels.level_id(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(LevelError):
        labels.disc_id("S1")


def test_lumbar_order_interleaves_discs():
    shuffled = ["S1", "L4-L5", "L1", "T12-L1", "L5-S1", "L5", "T12"]
    assert labels.lumbar_order(shuffled) == ["T12", "T12-L1", "L1", "L4-L5", "L5", "L5-S1", "S1"]


def test_itksnap_description_lists_every_structure():
    text = labels.itksnap_label_description()
    for s in Structure:
        assert f'"{s.name}"' in text
