"""Header corner cases: qform-only, sform/qform disagreement, no orientation, .mhd pairs,
DICOM duplicates and gantry tilt."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from spinemetrics.io import read_image

sys.path.insert(0, str(Path(__file__).parent))
from test_io_dicom import GEOM, write_series  # noqa: E402


def test_qform_only_is_honoured(tmp_path):
    aff = np.array([[0, 0, 3.3, -10], [-0.6, 0, 0, 120], [0, -0.6, 0, 90], [0, 0, 0, 1.0]])
    img = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), None)
    img.set_qform(aff, code=1)
    img.set_sform(None, code=0)
    nib.save(img, str(tmp_path / "q.nii.gz"))
    back = read_image(tmp_path / "q.nii.gz", check=False)
    np.testing.assert_allclose(back.source_affine, aff, atol=1e-4)
    assert back.meta["warnings"] == []


def test_sform_wins_and_disagreement_is_reported(tmp_path):
    sform = np.diag([0.5, 0.5, 2.0, 1.0])
    qform = np.diag([-0.5, 0.5, 2.0, 1.0])  # left-right flipped
    img = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), None)
    img.set_sform(sform, code=1)
    img.set_qform(qform, code=1)
    nib.save(img, str(tmp_path / "d.nii.gz"))
    back = read_image(tmp_path / "d.nii.gz", check=False)
    np.testing.assert_allclose(back.source_affine, sform)
    assert any("disagree" in w for w in back.meta["warnings"])


def test_no_orientation_is_reported(tmp_path):
    img = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.eye(4))
    img.set_sform(None, code=0)
    img.set_qform(None, code=0)
    nib.save(img, str(tmp_path / "n.nii"))
    back = read_image(tmp_path / "n.nii", check=False)
    assert any("neither sform nor qform" in w for w in back.meta["warnings"])


def test_mhd_with_raw_file(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(6, 5, 4)  # ITK order z, y, x
    s = sitk.GetImageFromArray(data)
    s.SetSpacing((0.7, 0.8, 2.5))
    s.SetOrigin((10.0, -20.0, 30.0))
    sitk.WriteImage(s, str(tmp_path / "a.mhd"))
    assert (tmp_path / "a.raw").exists() or (tmp_path / "a.zraw").exists()
    img = read_image(tmp_path / "a.mhd", check=False)
    # identity LPS direction → RAS affine diag(-0.7, -0.8, 2.5) at (-10, 20, 30)
    np.testing.assert_allclose(img.source_affine[:3, 3], [-10.0, 20.0, 30.0])
    np.testing.assert_allclose(np.diag(img.source_affine)[:3], [-0.7, -0.8, 2.5])
    np.testing.assert_array_equal(img.to_source().array, np.transpose(data, (2, 1, 0)))


def test_dicom_duplicate_positions_warn(tmp_path):
    vol = np.full((6, 5, 4), 3, np.uint16)
    uid = write_series(tmp_path / "d", vol, **GEOM, description="t2 sag", shuffle_seed=1)
    write_series(tmp_path / "d" / "echo2", vol * 2, **GEOM, description="t2 sag", uid=uid)
    img = read_image(tmp_path / "d")
    assert img.meta["n_slices"] == 4
    assert any("share a slice position" in w for w in img.meta["warnings"])


def test_dicom_gantry_tilt_keeps_true_slice_positions(tmp_path):
    """Slices shifted along the rows as the table moves (tilted acquisition): the slice axis
    of the affine must follow the real positions, not the plane normal."""
    from pydicom import dcmread

    vol = np.arange(6 * 5 * 5, dtype=np.uint16).reshape(6, 5, 5)
    folder = tmp_path / "tilt"
    write_series(folder, vol, row_dir=(1, 0, 0), col_dir=(0, 1, 0), spacing_rc=(1.0, 1.0),
                 gap=2.0, origin=(0.0, 0.0, 0.0), description="tilted")
    for f in folder.iterdir():  # shift each slice by 0.5 mm per mm of z along y (tilt)
        ds = dcmread(str(f))
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [f"{x:.4f}", f"{y + 0.5 * z:.4f}", f"{z:.4f}"]
        ds.save_as(str(f))
    img = read_image(folder)
    step_lps = np.array([0.0, 1.0, 2.0])  # 2 mm in z, +1 mm in y per slice
    np.testing.assert_allclose(img.source_affine[:3, 2], step_lps * [-1, -1, 1], atol=1e-4)


def test_dicom_missing_slice_warns_without_itk_noise(tmp_path, capfd):
    vol = np.arange(6 * 5 * 6, dtype=np.uint16).reshape(6, 5, 6)
    write_series(tmp_path / "gap", vol, **GEOM, description="t2 sag")
    files = sorted((tmp_path / "gap").iterdir(), key=lambda f: int(f.name.split("_")[1]))
    files[3].unlink()  # slice 3 missing: gaps 3.5, 3.5, 7.0, 3.5 mm
    img = read_image(tmp_path / "gap")
    assert img.meta["n_slices"] == 5
    assert any("uneven slice spacing" in w for w in img.meta["warnings"])
    assert "ITK" not in capfd.readouterr().err


def test_dicom_without_preamble_is_read(tmp_path):
    import pydicom

    vol = np.arange(6 * 5 * 4, dtype=np.uint16).reshape(6, 5, 4)
    write_series(tmp_path / "raw", vol, **GEOM, description="t2 sag")
    for f in (tmp_path / "raw").iterdir():  # strip the 128-byte preamble and "DICM"
        ds = pydicom.dcmread(str(f))
        ds.save_as(str(f), enforce_file_format=False, implicit_vr=False, little_endian=True)
        f.write_bytes(f.read_bytes()[132:] if f.read_bytes()[128:132] == b"DICM" else
                      f.read_bytes())
    (tmp_path / "raw" / "notes").write_bytes(b"\x00\x01 random binary, no DICOM")
    img = read_image(tmp_path / "raw")
    np.testing.assert_array_equal(img.to_source().array, np.transpose(vol, (1, 0, 2)))


def test_dicom_truncated_pixel_data_is_one_line_error(tmp_path):
    import pytest

    from spinemetrics.errors import InputError

    vol = np.ones((16, 16, 4), np.uint16)
    write_series(tmp_path / "bad", vol, **GEOM, description="t2 sag")
    victim = sorted((tmp_path / "bad").iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:-200])  # cut into the pixel data
    with pytest.raises(InputError) as e:
        read_image(tmp_path / "bad")
    assert "cannot decode the pixel data" in str(e.value) and "\n" not in str(e.value)
