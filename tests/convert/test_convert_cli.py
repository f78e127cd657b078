"""``spinemetrics convert`` end to end, and bad input through the CLI: exit status, one line
on stderr, no traceback, nothing written."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from spinemetrics.cli import main
from spinemetrics.labels import Structure as S


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_convert_writes_seg_and_levels_on_input_grid(tmp_path, shared_data, capsys):
    base = shared_data / "tptbox_lumbar_ct"
    src = base / "sub-ct_seg-subreg_label-22_msk.nii.gz"
    out = tmp_path / "out" / "ct_seg.nii.gz"
    rc, stdout, err = run(["convert", src, "--from", "tptbox", "--instance",
                           base / "sub-ct_seg-vert_label-22_msk.nii.gz", "-o", out, "--itksnap"],
                          capsys)
    assert rc == 0, err
    levels = tmp_path / "out" / "ct_seg_levels.nii.gz"
    assert out.is_file() and levels.is_file() and (tmp_path / "out" / "ct_seg_labels.txt").is_file()
    a, b = nib.load(str(src)), nib.load(str(out))
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-4)  # same grid, PIR as input
    assert nib.aff2axcodes(b.affine) == ("P", "I", "R")
    raw = np.asanyarray(a.dataobj)
    seg = np.asanyarray(b.dataobj)
    assert b.get_data_dtype() == np.uint8
    # voxelwise: every source 41–48 voxel is posterior_elements, 49/50 vertebral_body
    np.testing.assert_array_equal(seg == S.posterior_elements, (raw >= 41) & (raw <= 48))
    np.testing.assert_array_equal(seg == S.vertebral_body, (raw == 49) | (raw == 50))
    lev = np.asanyarray(nib.load(str(levels)).dataobj)
    vert = np.asanyarray(nib.load(str(base / "sub-ct_seg-vert_label-22_msk.nii.gz")).dataobj)
    np.testing.assert_array_equal(lev, vert)  # 21–23 are already contract ids
    assert str(out) in stdout
    desc = (tmp_path / "out" / "ct_seg_levels_labels.txt").read_text()
    assert '"L2"' in desc and '"L4"' in desc and '"L1"' not in desc  # only levels present


def test_convert_mha_output(tmp_path, shared_data, capsys):
    src = shared_data / "totalseg_mr_abdomen" / "example_seg_mr.nii.gz"
    rc, _, err = run(["convert", src, "--from", "totalsegmentator_mr", "-o",
                      tmp_path / "s.mha"], capsys)
    assert rc == 0, err
    assert "warning:" in err  # dropped organs, no levels
    assert not (tmp_path / "s_levels.mha").exists()  # total_mr has no levels


def _nii(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _bad_inputs(tmp_path):
    noisy = np.random.default_rng(0).integers(0, 12, (20, 20, 20)).astype(np.uint8)
    good = _nii(tmp_path / "good.nii.gz", noisy)  # incompressible enough to cut in half
    truncated = tmp_path / "trunc.nii.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.nii.gz"
    text.write_text("this is a text file, not an image\n")
    unknown = np.zeros((10, 10, 10), np.uint8)
    unknown[2:4, 2:4, 2:4] = 49
    unknown[5:7, 5:7, 5:7] = 177
    empty_dicom = tmp_path / "dicom"
    empty_dicom.mkdir()
    return {
        "missing": (tmp_path / "nope.nii.gz", "not found"),
        "truncated": (truncated, "truncated"),
        "2d": (_nii(tmp_path / "flat.nii.gz", np.ones((30, 30), np.uint8)), "2D"),
        "4d": (_nii(tmp_path / "vol4.nii.gz", np.ones((8, 8, 8, 2), np.uint8)), "4D"),
        "text": (text, "not a gzipped NIfTI"),
        "unknown_ids": (_nii(tmp_path / "odd.nii.gz", unknown), "177"),
        "empty_dicom": (empty_dicom, "no DICOM image series"),
    }


@pytest.mark.parametrize("case", ["missing", "truncated", "2d", "4d", "text", "unknown_ids",
                                  "empty_dicom"])
def test_bad_input_one_line_no_traceback_nothing_written(tmp_path, capsys, case):
    path, expect = _bad_inputs(tmp_path)[case]
    out_dir = tmp_path / "out"
    rc, stdout, err = run(["convert", path, "--from", "spineps", "-o", out_dir / "x.nii.gz"],
                          capsys)
    assert rc != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expect in lines[0]
    assert "Traceback" not in err and stdout == ""
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_unknown_convention_and_bad_output_name(tmp_path, shared_data, capsys):
    src = shared_data / "tptbox_lumbar_ct" / "sub-ct_seg-vert_label-22_msk.nii.gz"
    rc, _, err = run(["convert", src, "--from", "itk", "-o", tmp_path / "x.nii.gz"], capsys)
    assert rc == 2 and "unknown label convention" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(["convert", src, "--from", "verse", "-o", tmp_path / "x.png"], capsys)
    assert rc == 2 and ".nii.gz" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "labels, source, instance",
    [
        ("panoptica_lumbar_labels/semantic/ref.nii.gz", "spineps",
         "panoptica_lumbar_labels/matched_instance/ref.nii.gz"),
        ("tptbox_cervical_mri/sub-mri_seg-vert_label-6_msk.nii.gz", "tptbox", None),
        ("totalseg_ct_abdomen/example_seg.nii.gz", "totalsegmentator_ct", None),
    ],
)
def test_outputs_overlay_their_input(tmp_path, shared_data, capsys, labels, source, instance):
    src = shared_data / labels
    argv = ["convert", src, "--from", source, "-o", tmp_path / "seg.nii.gz"]
    if instance:
        argv += ["--instance", shared_data / instance]
    rc, _, err = run(argv, capsys)
    assert rc == 0, err
    a = nib.load(str(src))
    for name in ("seg.nii.gz", "seg_levels.nii.gz"):
        b = nib.load(str(tmp_path / name))
        assert b.shape == a.shape
        np.testing.assert_allclose(b.affine, a.affine, atol=1e-4)
        hdr = b.header
        assert int(hdr["sform_code"]) == 1 and int(hdr["qform_code"]) == 1
    # every labelled source voxel is labelled in the output, and nothing else is
    raw = np.asanyarray(a.dataobj)
    out = np.asanyarray(nib.load(str(tmp_path / "seg.nii.gz")).dataobj)
    if source != "totalsegmentator_ct":  # TotalSegmentator drops organs by design
        np.testing.assert_array_equal(out > 0, raw > 0)
