"""pipeline.analyze: input checks, outputs on the input grid, provenance, stage-named errors."""

from __future__ import annotations

import json
import pickle

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from spinemetrics.errors import InputError
from spinemetrics.image import Image
from spinemetrics.pipeline import (
    STAGES,
    TABLE_COLUMNS,
    AnalysisError,
    analyze,
    check_input,
    load_segmenter,
    scan_stem,
    standardize_table,
)
from spinemetrics.provenance import file_sha256


def _img(shape, spacing, fill=None, seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.uniform(0, 500, shape).astype(np.float32) if fill is None else np.full(
        shape, fill, np.float32)
    return Image(arr, np.diag([*spacing, 1.0]))


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (_img((3, 200, 200), (1, 1, 1)), "2D"),
        (_img((200, 200, 12), (0.8, 0.8, 5.0)), "cranio-caudally"),  # axial thick slices
        (_img((20, 200, 40), (1, 1, 1)), "covers only 40 mm"),
        (_img((30, 100, 100), (1, 1, 1), fill=7.0), "constant"),
    ],
)
def test_check_input_rejects_unusable_geometry(image, words):
    with pytest.raises(InputError, match=words):
        check_input(image)


def test_check_input_rejects_ct_by_hounsfield_air_and_by_modality():
    ct = _img((40, 100, 100), (1, 1, 1))
    ct.array[:, :30, :] = -1000.0  # 30 % air
    with pytest.raises(InputError, match="CT"):
        check_input(ct)
    mr = _img((40, 100, 100), (1, 1, 1))
    mr.meta["modality"] = "CT"
    with pytest.raises(InputError, match="CT"):
        check_input(mr)
    assert check_input(_img((40, 100, 100), (1, 1, 1))) == []  # MR-like passes


def test_check_input_accepts_non_canonical_sagittal():
    # PIR array of a sagittal scan: the S axis is the second array axis, 0.5 mm apart
    img = Image(np.random.default_rng(1).uniform(0, 1, (256, 256, 15)).astype(np.float32),
                np.array([[0, 0, 4.0, 0], [-0.5, 0, 0, 0], [0, -0.5, 0, 0], [0, 0, 0, 1]]))
    assert img.orientation == ("P", "I", "R")
    assert check_input(img) == []


def test_scan_stem_and_table_standardisation(tmp_path):
    assert scan_stem("a/sub-01_T2w.nii.gz") == "sub-01_T2w"
    assert scan_stem("x.mha") == "x" and scan_stem("y.nrrd") == "y"
    (tmp_path / "dicomdir").mkdir()
    assert scan_stem(tmp_path / "dicomdir") == "dicomdir"
    raw = pd.DataFrame({"measure": ["disc_height_middle_mm"], "value": ["8.5"], "level": ["L4-L5"],
                        "unit": ["mm"], "extra": [1]})
    out = standardize_table(raw, "s1", "t2")
    assert list(out.columns) == [*TABLE_COLUMNS, "extra"]
    assert out.loc[0, "value"] == 8.5 and out.loc[0, "qc"] == "ok" and out.loc[0, "side"] == ""
    assert (out.subject == "s1").all() and out.value.dtype == np.float64


def test_analysis_error_is_one_line_and_picklable():
    err = AnalysisError("read", "file is\n  broken; re-export it")
    assert str(err) == "read failed: file is broken; re-export it"
    back = pickle.loads(pickle.dumps(err))
    assert (back.stage, back.reason) == ("read", err.reason)


def test_unknown_segmenter_spec_is_a_clear_error():
    with pytest.raises(InputError, match="segmenter"):
        load_segmenter("nonsense")
    with pytest.raises(InputError, match="cannot import"):
        load_segmenter("no_such_module_xyz:fn")


def test_analyze_writes_everything_on_the_input_grid(small_phantom_files, tmp_path):
    path, segs, ph = small_phantom_files
    res = analyze(path, tmp_path, segmenter=f"sidecar:{segs}", report=True,
                  covariates={"age": 61.0, "sex": "F"})
    assert res.subject == res.scan == "ph03_T2w"
    src = nib.load(path)
    for key in ("seg", "levels"):
        out = nib.load(res.outputs[key])
        assert out.shape == src.shape  # PIR file in, PIR file out
        np.testing.assert_allclose(out.affine, src.affine, atol=1e-4)
    # the written maps are the phantom's, voxel for voxel, in the file's axis order
    np.testing.assert_array_equal(np.asarray(nib.load(res.outputs["seg"]).dataobj),
                                  np.asarray(ph.seg.array))
    np.testing.assert_array_equal(np.asarray(nib.load(res.outputs["levels"]).dataobj),
                                  np.asarray(ph.levels.array))
    table = pd.read_parquet(res.outputs["measurements"])
    assert list(table.columns[:8]) == list(TABLE_COLUMNS)
    assert (table.subject == "ph03_T2w").all()
    # measured disc volumes agree with the phantom's exact ones (loose: 4 × 2 × 2 mm voxels)
    truth = ph.truth[ph.truth.measure == "disc_volume_mm3"].set_index("level").value
    got = table[(table.measure == "disc_volume_mm3") & (table.qc == "ok")].set_index("level")
    common = got.index.intersection(truth.index)
    assert len(common) >= 3
    np.testing.assert_allclose(got.value[common], truth[common], rtol=0.25)
    html = res.outputs["report"].read_text(encoding="utf-8")
    assert "ph03_T2w" in html and len(html) > 10_000
    prov = json.loads(res.outputs["provenance"].read_text())
    assert prov["input_sha256"] == file_sha256(path)
    assert set(prov["timings_s"]) >= {"read", "check", "segment", "measure", "write", "report"}
    assert set(prov["timings_s"]) <= set(STAGES)
    assert prov["outputs"]["report"] == res.outputs["report"].name
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("content", "stage"),
    [(b"", "read"), (b"\x1f\x8b\x08garbage", "read")],
)
def test_analyze_names_the_failing_stage(tmp_path, content, stage):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(content)
    with pytest.raises(AnalysisError) as info:
        analyze(bad, tmp_path / "out", segmenter="sidecar")
    assert info.value.stage == stage and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_analyze_missing_sidecar_fails_in_segment_stage(small_phantom_files, tmp_path):
    path, _segs, _ph = small_phantom_files
    with pytest.raises(AnalysisError) as info:
        analyze(path, tmp_path, segmenter=f"sidecar:{tmp_path}")
    assert info.value.stage == "segment" and "no label map" in info.value.reason
