"""Input discovery: folder trees, DICOM folders, BIDS datasets, CSV manifests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from spinemetrics.batch import discover_inputs, part_path, scan_dir
from spinemetrics.errors import InputError


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folder_tree_ids_dicom_folders_and_label_maps_skipped(tmp_path, shared_data):
    _touch(tmp_path / "top.nii.gz")
    _touch(tmp_path / "P001" / "visit1" / "t2.mha")
    _touch(tmp_path / "P001" / "t2_seg.nii.gz")  # a label map, not a scan
    _touch(tmp_path / "P002" / "sag.nrrd")
    _touch(tmp_path / "P002" / "notes.txt")
    _touch(tmp_path / ".hidden" / "x.nii.gz")
    shutil.copytree(shared_data / "totalseg_ct_dicom", tmp_path / "P003" / "MR1")
    items, errors = discover_inputs(tmp_path)
    got = {(i.subject, i.scan): i.path.relative_to(tmp_path).as_posix() for i in items}
    assert got == {
        ("top", "top"): "top.nii.gz",
        ("P001", "visit1_t2"): "P001/visit1/t2.mha",
        ("P002", "sag"): "P002/sag.nrrd",
        ("P003", "MR1_series"): "P003/MR1/series",  # the folder holding the DICOM files
    }
    assert errors == []


def test_bids_dataset_with_sessions_and_participants(tmp_path):
    (tmp_path / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8"}')
    (tmp_path / "participants.tsv").write_text(
        "participant_id\tage\tsex\nsub-01\t54\tF\nsub-02\tn/a\tM\n")
    _touch(tmp_path / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T2w.nii.gz")
    _touch(tmp_path / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_T2w.nii.gz")
    _touch(tmp_path / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_T1w.nii.gz")  # not T2w
    _touch(tmp_path / "sub-02" / "anat" / "sub-02_acq-sag_T2w.nii.gz")
    items, errors = discover_inputs(tmp_path)
    ids = {(i.subject, i.scan) for i in items}
    assert ids == {("sub-01", "ses-1_T2w"), ("sub-01", "ses-2_T2w"), ("sub-02", "acq-sag_T2w")}
    cov = {i.subject: i.covariates for i in items}
    assert cov["sub-01"] == {"age": 54, "sex": "F"}
    assert cov["sub-02"] == {"sex": "M"}  # n/a dropped
    assert errors == []


def test_manifest_relative_paths_missing_files_and_duplicates(tmp_path):
    _touch(tmp_path / "imgs" / "a.nii.gz")
    _touch(tmp_path / "imgs" / "b.nii.gz")
    pd.DataFrame({
        "subject": ["001", "002", "003", "001"],
        "scan": ["base", "base", "base", "base"],
        "path": ["imgs/a.nii.gz", str(tmp_path / "imgs" / "b.nii.gz"), "imgs/missing.nii.gz",
                 "imgs/b.nii.gz"],
        "age": ["61", "47.5", "70", "61"],
        "site": ["A", "B", "A", "A"],
    }).to_csv(tmp_path / "manifest.csv", index=False)
    items, errors = discover_inputs(tmp_path / "manifest.csv")
    assert [(i.subject, i.scan) for i in items] == [("001", "base"), ("002", "base")]
    assert items[0].path == (tmp_path / "imgs" / "a.nii.gz").resolve()
    assert items[0].covariates == {"age": 61, "site": "A"}
    assert items[1].covariates["age"] == 47.5
    stages = sorted((e["subject"], e["stage"]) for e in errors)
    assert stages == [("001", "discover"), ("003", "discover")]
    assert all("\n" not in e["reason"] for e in errors)


def test_manifest_without_path_column_and_missing_input_are_clear_errors(tmp_path):
    (tmp_path / "m.csv").write_text("subject,file\na,b\n")
    with pytest.raises(InputError, match="path"):
        discover_inputs(tmp_path / "m.csv")
    with pytest.raises(InputError, match="not found"):
        discover_inputs(tmp_path / "nope")


def test_ids_become_safe_path_components(tmp_path):
    d = scan_dir(tmp_path, "../etc", "a b/c")
    assert d.parent.parent == tmp_path / "scans"
    assert ".." not in d.parts and "/" not in d.name
    assert part_path(tmp_path, "001", "x").name == "x.parquet"
    # distinct ids never share a folder
    assert scan_dir(tmp_path, "a/b", "s") != scan_dir(tmp_path, "a_b", "s")


def test_one_batch_per_output_folder_and_stale_locks_are_taken_over(tmp_path):
    import json
    import os
    import socket
    import subprocess
    import sys

    from spinemetrics.batch import LOCK_NAME, run_batch

    empty = tmp_path / "in"
    empty.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    host = socket.gethostname()
    (out / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "host": host}))
    with pytest.raises(InputError, match="another batch"):
        run_batch(empty, out, workers=0)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (out / LOCK_NAME).write_text(json.dumps({"pid": int(dead), "host": host}))
    summary = run_batch(empty, out, workers=0)  # stale lock of a finished process
    assert summary.total == 0 and not (out / LOCK_NAME).exists()
