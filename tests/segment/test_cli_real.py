"""`spinemetrics segment` on the real T2 scan: outputs overlay the input file exactly."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from spinemetrics.cli import main


def test_segment_cli_real_t2_writes_maps_on_input_grid(shared_data, tmp_path):
    src = shared_data / "sct_t2_lumbar" / "t2_lumbar.nii.gz"
    rc = main(["segment", str(src), "-o", str(tmp_path), "--device", "cpu", "--threads", "1"])
    assert rc == 0
    ref = nib.load(str(src))
    for kind in ("seg", "levels"):
        out = nib.load(str(tmp_path / f"t2_lumbar_{kind}.nii.gz"))
        assert out.shape == ref.shape
        assert np.allclose(out.affine, ref.affine, atol=1e-4)
        assert np.issubdtype(out.get_data_dtype(), np.integer)
    seg = np.asarray(nib.load(str(tmp_path / "t2_lumbar_seg.nii.gz")).dataobj)
    assert set(np.unique(seg).tolist()) <= set(range(12))


def test_segment_cli_missing_file_is_one_line_error(tmp_path, capsys):
    rc = main(["segment", str(tmp_path / "nope.nii.gz"), "-o", str(tmp_path)])
    assert rc != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error:")
