"""Bad input gives one-line, actionable errors from the library (CLI tests: tests/convert)."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from spinemetrics.errors import ImageGeometryError, InputError, LabelError
from spinemetrics.image import Image
from spinemetrics.io import check_mr_sagittal, read_image, read_labels, write_image


def _nifti(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and len(msg) < 400
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as e:
        read_image(tmp_path / "nope.nii.gz")
    assert "not found" in _one_line(e)


def test_truncated_gzip(tmp_path):
    good = _nifti(tmp_path / "g.nii.gz", np.ones((20, 20, 20), np.float32))
    raw = good.read_bytes()
    bad = tmp_path / "t.nii.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError) as e:
        read_image(bad)
    assert "corrupt or truncated" in _one_line(e)


def test_truncated_uncompressed(tmp_path):
    good = _nifti(tmp_path / "g.nii", np.ones((20, 20, 20), np.float32))
    bad = tmp_path / "t.nii"
    bad.write_bytes(good.read_bytes()[:600])
    with pytest.raises(InputError):
        read_image(bad)


def test_text_file_renamed(tmp_path):
    fake = tmp_path / "scan.nii.gz"
    fake.write_text("subject,age\ns1,54\n")
    with pytest.raises(InputError) as e:
        read_image(fake)
    assert "not a gzipped NIfTI" in _one_line(e)
    fake2 = tmp_path / "scan.nii"
    fake2.write_text("hello" * 100)
    with pytest.raises(InputError, match="not a NIfTI"):
        read_image(fake2)
    gz = tmp_path / "text.nii.gz"
    gz.write_bytes(gzip.compress(b"just text, gzipped" * 50))
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_image(gz)


def test_unknown_extension(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="unknown image type"):
        read_image(f)


def test_2d_image(tmp_path):
    with pytest.raises(ImageGeometryError) as e:
        read_image(_nifti(tmp_path / "a.nii.gz", np.ones((30, 40), np.int16)))
    assert "2D" in _one_line(e)


def test_single_slice_3d_is_2d(tmp_path):
    with pytest.raises(ImageGeometryError, match="2D"):
        read_image(_nifti(tmp_path / "a.nii.gz", np.ones((30, 40, 1), np.int16)))


def test_4d(tmp_path):
    with pytest.raises(ImageGeometryError) as e:
        read_image(_nifti(tmp_path / "a.nii.gz", np.ones((10, 11, 12, 3), np.int16)))
    assert "4D" in _one_line(e)


def test_4d_with_one_volume_is_squeezed(tmp_path):
    data = np.arange(10 * 11 * 12, dtype=np.int16).reshape(10, 11, 12, 1)
    img = read_image(_nifti(tmp_path / "a.nii.gz", data))
    assert img.shape == (10, 11, 12)
    np.testing.assert_array_equal(img.array, data[..., 0])


def test_zero_spacing(tmp_path):
    # nibabel refuses to write pixdim 0, so patch the bytes (pixdim[3] sits at offset 88),
    # as a broken converter would leave them; no sform/qform, so pixdim is all there is.
    img = nib.Nifti1Image(np.ones((5, 5, 5), np.int16), np.eye(4))
    img.set_sform(None, code=0)
    img.set_qform(None, code=0)
    nib.save(img, str(tmp_path / "a.nii"))
    raw = bytearray((tmp_path / "a.nii").read_bytes())
    raw[88:92] = np.float32(0.0).tobytes()
    (tmp_path / "a.nii").write_bytes(bytes(raw))
    with pytest.raises(ImageGeometryError) as e:
        read_image(tmp_path / "a.nii")
    assert "spacing" in _one_line(e)


def test_corrupt_mha(tmp_path):
    bad = tmp_path / "x.mha"
    bad.write_text("ObjectType = Image\nNDims = 3\nDimSize = 10 10 10\n"
                   "ElementType = MET_SHORT\nElementDataFile = LOCAL\n" + "ab")
    with pytest.raises(InputError, match="cannot read x.mha"):
        read_image(bad)


def test_labels_checks(tmp_path):
    with pytest.raises(LabelError, match="empty"):
        read_labels(_nifti(tmp_path / "e.nii.gz", np.zeros((5, 5, 5), np.uint8)))
    with pytest.raises(LabelError, match="non-integer"):
        read_labels(_nifti(tmp_path / "f.nii.gz", np.full((5, 5, 5), 0.5, np.float32)))
    data = np.zeros((5, 5, 5), np.uint8)
    data[1, 1, 1], data[2, 2, 2], data[3, 3, 3] = 1, 77, 201
    with pytest.raises(LabelError) as e:
        read_labels(_nifti(tmp_path / "u.nii.gz", data), allowed=range(12))
    msg = _one_line(e)
    assert "77, 201" in msg and "--from" in msg
    # float file holding integers is accepted and comes back as integers
    lab = read_labels(_nifti(tmp_path / "i.nii.gz", data.astype(np.float32)))
    assert lab.array.dtype == np.uint8 and lab.array[2, 2, 2] == 77


def test_write_refuses_unknown_suffix_and_leaves_nothing(tmp_path):
    img = Image(np.ones((4, 4, 4), np.uint8), np.eye(4))
    with pytest.raises(InputError, match="cannot write"):
        write_image(img, tmp_path / "x.mhd")
    assert list(tmp_path.iterdir()) == []


def test_mr_sagittal_checks():
    rng = np.random.default_rng(0)
    ct_like = rng.normal(-950, 30, (20, 20, 10)).astype(np.int16)
    ct_like[5:10, 5:10, :] = 900
    axial = Image(ct_like, np.diag([0.8, 0.8, 5.0, 1.0]))
    warnings = check_mr_sagittal(axial)
    assert any("looks like CT" in w for w in warnings)
    assert any("axial" in w for w in warnings)
    sag_mr = Image(rng.uniform(0, 500, (10, 20, 20)), np.diag([4.0, 0.7, 0.7, 1.0]))
    assert check_mr_sagittal(sag_mr) == []


def test_rgb_and_complex_refused(tmp_path):
    rgb = np.zeros((6, 6, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(tmp_path / "rgb.nii.gz"))
    with pytest.raises(ImageGeometryError, match="colour"):
        read_image(tmp_path / "rgb.nii.gz")
    cplx = np.ones((6, 6, 6), np.complex64)
    nib.save(nib.Nifti1Image(cplx, np.eye(4)), str(tmp_path / "c.nii.gz"))
    with pytest.raises(ImageGeometryError, match="complex"):
        read_image(tmp_path / "c.nii.gz")
