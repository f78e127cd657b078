"""DICOM series: synthetic oblique series with identifiers, multi-series choice, real CT."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from spinemetrics.errors import InputError
from spinemetrics.io import list_dicom_series, read_image

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECRETS = ("Doe^Jane", "SECRET-ID-4711", "19610203", "Sunnyvale General")


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def write_series(folder, volume, row_dir, col_dir, spacing_rc, gap, origin, *,
                 description="T2 TSE SAG", uid=None, modality="MR", shuffle_seed=0,
                 slope=1.0, intercept=0.0):
    """Write ``volume[r, c, k]`` as one DICOM file per slice (shuffled names)."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or generate_uid()
    row_dir, col_dir = _unit(row_dir), _unit(col_dir)
    normal = np.cross(row_dir, col_dir)
    order = np.random.default_rng(shuffle_seed).permutation(volume.shape[2])
    for k in order:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MR_STORAGE
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.InstitutionName = SECRETS
        ds.Modality = modality
        ds.SeriesInstanceUID = uid
        ds.StudyInstanceUID = "1.2.3.4"
        ds.SeriesDescription = description
        ds.ProtocolName = description
        ds.InstanceNumber = int(k) + 1
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
        pos = np.asarray(origin) + k * gap * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.PixelSpacing = [f"{spacing_rc[0]:.6f}", f"{spacing_rc[1]:.6f}"]
        ds.SliceThickness = f"{gap:.3f}"
        ds.Rows, ds.Columns = volume.shape[:2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        ds.PixelData = np.ascontiguousarray(volume[:, :, k].astype(np.uint16)).tobytes()
        ds.save_as(folder / f"IM{int(k) * 7919 % 1000:04d}_{k}", enforce_file_format=True)
    return uid


_GEOM = dict(
    # Oblique sagittal: rows run ~A→P... in LPS: row dir ~ +y (posterior), col dir ~ -z
    row_dir=(0.10, 0.98, 0.12),
    col_dir=(0.05, -0.12, -0.99),
    spacing_rc=(0.7, 0.6),
    gap=3.5,
    origin=(-20.0, -110.0, 95.0),
)


def _expected_ras_affine(row_dir, col_dir, spacing_rc, gap, origin):
    row_dir, col_dir = _unit(row_dir), _unit(col_dir)
    col_dir = _unit(col_dir - np.dot(col_dir, row_dir) * row_dir)
    normal = np.cross(row_dir, col_dir)
    lps = np.eye(4)
    # index i runs along a row (column number), j down the rows, k across slices
    lps[:3, 0] = row_dir * spacing_rc[1]
    lps[:3, 1] = col_dir * spacing_rc[0]
    lps[:3, 2] = normal * gap
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _orthonormal_geom():
    g = dict(_GEOM)
    r = _unit(g["row_dir"])
    c = _unit(np.asarray(g["col_dir"]) - np.dot(g["col_dir"], r) * r)
    g["row_dir"], g["col_dir"] = tuple(r), tuple(c)
    return g


GEOM = _orthonormal_geom()


def test_oblique_series_geometry_and_no_identifier_leak(tmp_path):
    rng = np.random.default_rng(3)
    vol = rng.integers(0, 4000, size=(14, 12, 9)).astype(np.uint16)  # rows, cols, slices
    g = _orthonormal_geom()
    write_series(tmp_path / "dcm", vol, **g)
    img = read_image(tmp_path / "dcm")
    expected = _expected_ras_affine(**g)
    np.testing.assert_allclose(img.source_affine, expected, atol=1e-4)
    # file grid [i=column, j=row, k=slice] ↔ written volume[r, c, k]
    np.testing.assert_array_equal(img.to_source().array, np.transpose(vol, (1, 0, 2)))
    np.testing.assert_allclose(sorted(img.spacing), sorted((0.6, 0.7, 3.5)), atol=1e-5)
    assert img.orientation == ("R", "A", "S")
    assert img.meta["format"] == "dicom" and img.meta["modality"] == "MR"
    assert img.meta["series_description"] == "T2 TSE SAG"
    dump = repr(img.meta) + repr(list_dicom_series(tmp_path / "dcm").to_dict())
    for secret in SECRETS:
        assert secret not in dump
    # single file given: its series is read
    one = sorted((tmp_path / "dcm").iterdir())[0]
    np.testing.assert_allclose(read_image(one).source_affine, expected, atol=1e-4)


def test_rescale_slope_intercept_applied(tmp_path):
    vol = np.full((6, 5, 4), 100, np.uint16)
    write_series(tmp_path / "d", vol, **_orthonormal_geom(), slope=2.0, intercept=-50.0)
    img = read_image(tmp_path / "d")
    assert np.all(img.array == 150)


def test_multi_series_folder_picks_sagittal_t2(tmp_path):
    folder = tmp_path / "study"
    sag_vol = np.full((10, 8, 6), 7, np.uint16)
    ax_vol = np.full((8, 8, 30), 9, np.uint16)  # more slices, but axial
    t1_vol = np.full((10, 8, 12), 5, np.uint16)  # sagittal with more slices, but T1
    sag_uid = write_series(folder / "s1", sag_vol, **GEOM, description="t2_tse_sag_384")
    ax_uid = write_series(folder / "s2", ax_vol, row_dir=(1, 0, 0), col_dir=(0, 1, 0),
                          spacing_rc=(0.8, 0.8), gap=4.0, origin=(0, 0, 0),
                          description="t2_tse_tra")
    write_series(folder / "s3", t1_vol, **GEOM, description="t1_tse_sag")
    table = list_dicom_series(folder)
    assert len(table) == 3
    assert set(table.columns) >= {"uid", "description", "modality", "n_slices", "orientation"}
    assert table.iloc[0]["uid"] == sag_uid  # default first
    assert dict(zip(table.description, table.orientation, strict=True)) == {
        "t2_tse_sag_384": "sagittal", "t2_tse_tra": "axial", "t1_tse_sag": "sagittal"}
    assert read_image(folder).meta["series_uid"] == sag_uid
    assert read_image(folder).shape[0] == 6  # the sagittal T2's 6 slices lie along LR
    assert read_image(folder, series="t1_tse").meta["series_description"] == "t1_tse_sag"
    ax = read_image(folder, series=ax_uid)
    assert ax.meta["series_uid"] == ax_uid
    assert any("axial" in w for w in ax.meta["warnings"])
    with pytest.raises(InputError, match="no series matches"):
        read_image(folder, series="flair")


def test_without_t2_the_sagittal_with_most_slices_wins(tmp_path):
    folder = tmp_path / "study"
    write_series(folder / "a", np.ones((6, 6, 5), np.uint16), **GEOM, description="t1 sag")
    uid = write_series(folder / "b", np.ones((6, 6, 9), np.uint16), **GEOM, description="stir sag")
    assert read_image(folder).meta["series_uid"] == uid


def test_empty_dicom_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not dicom")
    with pytest.raises(InputError, match="no DICOM image series"):
        read_image(tmp_path / "empty")


def test_real_ct_series_geometry(shared_data):
    folder = shared_data / "totalseg_ct_dicom" / "series"
    img = read_image(folder)
    # SOURCE.md: axial CT, 20 slices of 512 × 512, 0.977 × 0.977 × 2.0 mm.
    assert img.shape == (512, 512, 20)
    np.testing.assert_allclose(img.spacing, (0.9765625, 0.9765625, 2.0), atol=1e-6)
    assert img.meta["modality"] == "CT"
    assert any("CT" in w for w in img.meta["warnings"])
    assert any("axial" in w for w in img.meta["warnings"])
    # Independent check of one slice and its position against pydicom.
    files = sorted(folder.glob("*.dcm"))
    ds = pydicom.dcmread(str(files[5]))
    z = float(ds.ImagePositionPatient[2])
    k = int(round(img.world_to_index([0.0, 0.0, z])[2]))
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # pixel (row r, col c) is at LPS x = x0 + c·dx, y = y0 + r·dy; RAS flips x and y.
    ras_x0 = -float(ds.ImagePositionPatient[0])
    ras_y0 = -float(ds.ImagePositionPatient[1])
    i0 = int(round(img.world_to_index([ras_x0, ras_y0, z])[0]))
    j0 = int(round(img.world_to_index([ras_x0, ras_y0, z])[1]))
    assert (i0, j0) == (511, 511)
    np.testing.assert_array_equal(img.array[::-1, ::-1, k].T, hu)
    assert "PatientName" not in repr(img.meta)


def test_localizer_is_not_chosen(tmp_path):
    folder = tmp_path / "study"
    write_series(folder / "loc", np.ones((6, 6, 3), np.uint16), **GEOM,
                 description="T2 localizer sag")
    uid = write_series(folder / "ax", np.ones((6, 6, 8), np.uint16), row_dir=(1, 0, 0),
                       col_dir=(0, 1, 0), spacing_rc=(1.0, 1.0), gap=3.0, origin=(0, 0, 0),
                       description="t2_tse_tra")
    assert read_image(folder).meta["series_uid"] == uid


def test_enhanced_multiframe_file(tmp_path):
    """One enhanced MR file, frames stored out of order, geometry in functional groups."""
    from pydicom.sequence import Sequence

    g = GEOM
    rng = np.random.default_rng(5)
    vol = rng.integers(0, 3000, size=(7, 6, 5)).astype(np.uint16)  # rows, cols, slices
    row_dir, col_dir = np.asarray(g["row_dir"]), np.asarray(g["col_dir"])
    normal = np.cross(row_dir, col_dir)
    order = [3, 0, 4, 1, 2]  # frame f holds slice order[f]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.InstitutionName = SECRETS
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesDescription = "MR", generate_uid(), "t2_spc_sag"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 7, 6, len(order)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    meas, orient = pydicom.Dataset(), pydicom.Dataset()
    meas.PixelSpacing = [f"{v:.6f}" for v in g["spacing_rc"]]
    meas.SliceThickness = f"{g['gap']:.3f}"
    orient.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
    shared = pydicom.Dataset()
    shared.PixelMeasuresSequence = Sequence([meas])
    shared.PlaneOrientationSequence = Sequence([orient])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for k in order:
        pos = pydicom.Dataset()
        ipp = np.asarray(g["origin"]) + k * g["gap"] * normal
        pos.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        item = pydicom.Dataset()
        item.PlanePositionSequence = Sequence([pos])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.ascontiguousarray(np.stack([vol[:, :, k] for k in order])).tobytes()
    (tmp_path / "mf").mkdir()
    ds.save_as(tmp_path / "mf" / "enhanced.dcm", enforce_file_format=True)

    img = read_image(tmp_path / "mf")
    np.testing.assert_allclose(img.source_affine, _expected_ras_affine(**g), atol=1e-4)
    np.testing.assert_array_equal(img.to_source().array, np.transpose(vol, (1, 0, 2)))
    assert img.meta["n_slices"] == 5 and img.meta["series_description"] == "t2_spc_sag"
    for secret in SECRETS:
        assert secret not in repr(img.meta)
