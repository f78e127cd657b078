"""``spinemetrics measure`` and the table helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spinemetrics.cli import main
from spinemetrics.geometry import COLUMNS, MEASURE_INFO, MEASURE_UNITS, measure, to_wide
from spinemetrics.io import write_image

#: The measure names and units fixed by contract §5.
CONTRACT = {
    "disc_height_anterior_mm": "mm", "disc_height_middle_mm": "mm",
    "disc_height_posterior_mm": "mm", "disc_height_index": "1", "disc_depth_mm": "mm",
    "disc_wedge_angle_deg": "deg", "disc_volume_mm3": "mm3",
    "vertebral_height_anterior_mm": "mm", "vertebral_height_middle_mm": "mm",
    "vertebral_height_posterior_mm": "mm", "vertebral_depth_mm": "mm",
    "vertebral_wedge_index": "1", "vertebral_volume_mm3": "mm3",
    "dural_sac_area_mm2": "mm2", "dural_sac_ap_mm": "mm", "canal_ap_mm": "mm",
    "foraminal_height_mm": "mm", "foraminal_width_mm": "mm", "foraminal_area_mm2": "mm2",
    "lumbar_lordosis_deg": "deg", "segmental_angle_deg": "deg", "slip_percent": "%",
    "sacral_slope_deg": "deg", "ligamentum_flavum_thickness_mm": "mm",
    "paraspinal_muscle_area_mm2": "mm2", "epidural_fat_area_mm2": "mm2",
}


def test_every_contract_measure_is_defined_with_its_unit():
    for name, unit in CONTRACT.items():
        assert MEASURE_UNITS[name] == unit
        info = MEASURE_INFO[name]
        assert info.definition and info.citation


@pytest.fixture(scope="module")
def files(tmp_path_factory, straight_iso):
    seg, lev, _ = straight_iso
    d = tmp_path_factory.mktemp("m")
    write_image(seg, d / "s01_seg.nii.gz", labels=True)
    write_image(lev, d / "s01_levels.nii.gz", labels=True)
    return d


def test_cli_writes_contract_table(files, straight_iso):
    out = files / "table.csv"
    rc = main(["measure", str(files / "s01_seg.nii.gz"), "--levels",
               str(files / "s01_levels.nii.gz"), "-o", str(out)])
    assert rc == 0
    t = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(t.columns) == COLUMNS
    assert set(t.subject) == {"s01"}
    h = t[(t.measure == "disc_height_middle_mm")].value.astype(float)
    assert np.allclose(h, straight_iso[2]["disc_height_middle_mm"], atol=0.3)


def test_cli_parquet_and_derived_levels(files, tmp_path):
    out = tmp_path / "t.parquet"
    rc = main(["measure", str(files / "s01_seg.nii.gz"), "-o", str(out), "--subject", "x",
               "--write-levels", str(tmp_path / "lev.nii.gz")])
    assert rc == 0 and (tmp_path / "lev.nii.gz").exists()
    t = pd.read_parquet(out)
    assert set(t.subject) == {"x"} and "L5-S1" in set(t.level)


def test_cli_bad_output_suffix_fails_with_one_line(files, tmp_path, capsys):
    rc = main(["measure", str(files / "s01_seg.nii.gz"), "-o", str(tmp_path / "t.txt")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.count("\n") == 0 and ".csv" in err


def test_cli_rejects_foreign_labels(tmp_path, straight_iso):
    seg, _, _ = straight_iso
    write_image(seg.with_array(seg.array * 10), tmp_path / "x.nii.gz", labels=True)
    rc = main(["measure", str(tmp_path / "x.nii.gz"), "-o", str(tmp_path / "t.csv")])
    assert rc != 0 and not (tmp_path / "t.csv").exists()


def test_to_wide(straight_iso):
    seg, lev, _ = straight_iso
    long = measure(seg, lev, subject="a", scan="b", families=("disc", "soft_tissue"))
    wide = to_wide(long)
    assert wide.shape[0] == 1
    assert "disc_height_middle_mm.L4-L5" in wide.columns
    assert "paraspinal_muscle_area_mm2.L4-L5.L" in wide.columns
    assert wide.loc[("a", "b"), "disc_height_middle_mm.L4-L5"] == pytest.approx(
        long[(long.level == "L4-L5") & (long.measure == "disc_height_middle_mm")].value.iloc[0])
