"""``spinemetrics info``: what the reader sees, without identifiers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from spinemetrics.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_io_dicom import GEOM, SECRETS, write_series  # noqa: E402


def test_info_nifti(shared_data, capsys):
    rc = main(["info", str(shared_data / "panoptica_lumbar_labels" / "semantic" / "ref.nii.gz")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "PIR" in out and "(512, 512, 17)" in out and "(17, 512, 512)" in out


def test_info_dicom_lists_series_without_identifiers(tmp_path, capsys):
    write_series(tmp_path / "s", np.ones((6, 5, 4), np.uint16), **GEOM, description="t2_sag")
    write_series(tmp_path / "a", np.ones((6, 5, 7), np.uint16), row_dir=(1, 0, 0),
                 col_dir=(0, 1, 0), spacing_rc=(1.0, 1.0), gap=3.0, origin=(0, 0, 0),
                 description="t2_tra")
    rc = main(["info", str(tmp_path)])
    cap = capsys.readouterr()
    assert rc == 0
    assert "t2_sag" in cap.out and "t2_tra" in cap.out and "sagittal" in cap.out
    for secret in SECRETS:
        assert secret not in cap.out + cap.err


def test_info_missing(tmp_path, capsys):
    rc = main(["info", str(tmp_path / "none.nii.gz")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and err.count("\n") == 1
