"""Round trips through every writable format, all 48 axis orientations, tables."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from spinemetrics.image import Image
from spinemetrics.io import read_image, read_labels, read_table, write_image, write_table


def _rotation(ax_deg: float, ay_deg: float, az_deg: float) -> np.ndarray:
    ax, ay, az = np.radians([ax_deg, ay_deg, az_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _oblique_affine() -> np.ndarray:
    # Sagittal-ish (first axis ~ A→P, second ~ S→I, third ~ L→R), 12° oblique, anisotropic.
    base = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    lin = _rotation(7.0, -12.0, 4.0) @ base @ np.diag([0.6, 0.7, 3.3])
    aff = np.eye(4)
    aff[:3, :3] = lin
    aff[:3, 3] = [-21.5, 140.25, 180.0]
    return aff


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
@pytest.mark.parametrize("kind", ["intensity", "labels"])
def test_every_format_round_trips_array_spacing_direction(tmp_path, suffix, kind):
    rng = np.random.default_rng(1)
    shape = (9, 11, 7)
    if kind == "labels":
        data = rng.integers(0, 12, size=shape).astype(np.uint8)
        data[0, 0, 0] = 124  # a level id, must survive exactly
    else:
        data = rng.normal(300, 80, size=shape).astype(np.float32)
    # The "file" orientation is oblique sagittal; the library works in canonical RAS.
    src_affine = _oblique_affine()
    src = Image(data, src_affine).to_canonical()
    out = write_image(src, tmp_path / f"img{suffix}")
    back = read_image(out, check=False)

    np.testing.assert_array_equal(back.array, src.array)
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-5)
    # Reorientation permutes axes only: the voxel sizes are those of the file, in some order.
    np.testing.assert_allclose(sorted(back.spacing), [0.6, 0.7, 3.3], atol=1e-6)
    np.testing.assert_allclose(back.direction, src.direction, atol=1e-6)
    # On disk: the original (non-canonical) grid, not the canonical one.
    np.testing.assert_allclose(back.source_affine, src_affine, atol=1e-5)
    np.testing.assert_array_equal(back.to_source().array, data)
    if kind == "labels":
        assert back.array.dtype == np.uint8
    if suffix.startswith(".nii"):
        hdr = nib.load(str(out)).header
        assert int(hdr["sform_code"]) == 1 and int(hdr["qform_code"]) == 1


def test_spacing_values_survive_exactly(tmp_path):
    aff = np.diag([0.5859375, 0.5859375, 3.3, 1.0])
    img = Image(np.zeros((4, 5, 6), np.int16) + 3, aff)
    for suffix in (".nii.gz", ".mha", ".nrrd"):
        back = read_image(write_image(img, tmp_path / f"s{suffix}"), check=False)
        np.testing.assert_allclose(back.spacing, (0.5859375, 0.5859375, 3.3), rtol=1e-6)


def _all_orientations():
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((1, -1), repeat=3):
            yield np.array([[perm[i], flips[i]] for i in range(3)], dtype=float)


def test_48_orientations_read_back_to_same_canonical_array(tmp_path):
    rng = np.random.default_rng(7)
    canon = rng.integers(0, 1000, size=(5, 6, 7)).astype(np.int16)
    canon_aff = np.diag([1.1, 1.2, 1.3, 1.0])
    canon_aff[:3, 3] = [-10.0, 20.0, 30.0]
    orientations = list(_all_orientations())
    assert len(orientations) == 48
    seen = set()
    for n, ornt in enumerate(orientations):
        # ornt maps canonical axes onto file axes; build that file with plain nibabel.
        data = nib.orientations.apply_orientation(canon, ornt)
        aff = canon_aff @ nib.orientations.inv_ornt_aff(ornt, canon.shape)
        seen.add(nib.aff2axcodes(aff))
        path = tmp_path / f"o{n}.nii.gz"
        nib.save(nib.Nifti1Image(data, aff), str(path))
        img = read_image(path, check=False)
        np.testing.assert_array_equal(img.array, canon)
        np.testing.assert_allclose(img.affine, canon_aff, atol=1e-5)
        assert img.orientation == ("R", "A", "S")
    assert len(seen) == 48  # really 48 distinct axis codes


@pytest.mark.parametrize("n", [3, 17, 40])
def test_orientations_through_itk_formats(tmp_path, n):
    ornt = list(_all_orientations())[n]
    canon = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    canon_aff = np.diag([1.1, 1.2, 1.3, 1.0])
    data = nib.orientations.apply_orientation(canon, ornt)
    aff = canon_aff @ nib.orientations.inv_ornt_aff(ornt, canon.shape)
    # Write the MetaImage with SimpleITK directly (LPS), independent of our writer.
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff
    sp = np.linalg.norm(lps[:3, :3], axis=0)
    simg = sitk.GetImageFromArray(np.transpose(data, (2, 1, 0)).copy())
    simg.SetSpacing(sp.tolist())
    simg.SetDirection((lps[:3, :3] / sp).ravel().tolist())
    simg.SetOrigin(lps[:3, 3].tolist())
    sitk.WriteImage(simg, str(tmp_path / "o.mha"))
    img = read_image(tmp_path / "o.mha", check=False)
    np.testing.assert_array_equal(img.array, canon)
    np.testing.assert_allclose(img.affine, canon_aff, atol=1e-5)


def test_real_pir_labels_written_back_on_input_grid(tmp_path, shared_data):
    src = shared_data / "panoptica_lumbar_labels" / "semantic" / "pred.nii.gz"
    seg = read_labels(src)
    assert seg.orientation == ("R", "A", "S")
    out = write_image(seg.with_array(seg.array.copy()), tmp_path / "seg.nii.gz")
    a, b = nib.load(str(src)), nib.load(str(out))
    assert nib.aff2axcodes(b.affine) == ("P", "I", "R")  # SOURCE.md: file is PIR
    assert b.shape == a.shape == (512, 512, 17)
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asanyarray(b.dataobj), np.asanyarray(a.dataobj))
    assert b.get_data_dtype() == np.uint8


def test_reference_grid_for_plain_arrays(tmp_path, shared_data):
    ref = read_image(shared_data / "tptbox_cervical_mri" / "sub-mri_label-6_T2w.nii.gz")
    mask = (ref.array > np.percentile(ref.array, 90)).astype(np.uint8)
    bare = Image(mask, ref.affine)  # no provenance: would be written canonical
    out = write_image(bare, tmp_path / "m.nii.gz", reference=ref)
    disk = nib.load(str(out))
    assert nib.aff2axcodes(disk.affine) == ("P", "I", "R")
    np.testing.assert_allclose(disk.affine, ref.source_affine, atol=1e-4)
    assert read_image(out, check=False).array.sum() == mask.sum()


def test_real_lps_sform_only_file_reads_canonical(shared_data):
    img = read_image(shared_data / "totalseg_mr_abdomen" / "example_mr_sm.nii.gz")
    # SOURCE.md: 117 (R→L) × 91 (A→P) × 20 (I→S), 3 mm, LPS.
    assert img.shape == (117, 91, 20)
    np.testing.assert_allclose(img.spacing, (3.0, 3.0, 3.0))
    src = nib.load(str(shared_data / "totalseg_mr_abdomen" / "example_mr_sm.nii.gz"))
    raw = np.asanyarray(src.dataobj)
    np.testing.assert_array_equal(img.array, raw[::-1, ::-1, :])
    assert img.meta["input_sha256"] == (
        "209b46efaff595dd54a9332872e17a722b62654bbb68dbd89acd5090701bbd4f"
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".tsv"])
def test_tables_round_trip(tmp_path, suffix):
    df = pd.DataFrame(
        {
            "subject": ["s1", "s1", "s2"],
            "scan": ["a", "a", "b"],
            "level": ["L4-L5", "L4-L5", "L5"],
            "side": ["L", "", ""],
            "measure": ["foraminal_height_mm", "disc_volume_mm3", "vertebral_height_anterior_mm"],
            "value": [18.25, np.nan, 27.0],
            "unit": ["mm", "mm3", "mm"],
            "qc": ["ok", "partial_fov", "ok"],
        }
    )
    out = write_table(df, tmp_path / f"t{suffix}")
    back = read_table(out)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back.loc[1, "side"] == "" and np.isnan(back.loc[1, "value"])
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temp left behind
