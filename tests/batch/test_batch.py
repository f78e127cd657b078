"""Batch runs on Dask: one row set per good scan, one error row per bad file, outputs on the
input grid, resumability after a hard kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from spinemetrics.batch import (
    collect_errors,
    part_path,
    read_measurements,
    run_batch,
    scan_dir,
)
from spinemetrics.pipeline import TABLE_COLUMNS

KEY = ["subject", "scan", "level", "side", "measure"]
# Same values as tests/batch/conftest.py (fixtures carry them; conftest is not importable).
GOOD = ("sub-01", "sub-02", "sub-03")


@pytest.fixture(scope="module")
def dask_run(batch_inputs, tmp_path_factory):
    """One uninterrupted batch on a 2-process LocalCluster (the reference for later tests)."""
    out = tmp_path_factory.mktemp("batch_out")
    events = []
    summary = run_batch(batch_inputs.root, out, workers=2, report=False,
                        segmenter=batch_inputs.segmenter, progress=events.append)
    return out, summary, events


def test_one_row_set_per_good_scan_and_one_error_per_bad_file(dask_run, batch_inputs):
    out, summary, events = dask_run
    BAD = batch_inputs.bad
    assert set(batch_inputs.good) == set(GOOD)
    assert summary.total == len(GOOD) + len(BAD)  # notes.txt is not a scan
    assert (summary.done, summary.failed, summary.skipped) == (len(GOOD), len(BAD), 0)
    assert len(events) == summary.total and events[-1].completed == summary.total

    table = read_measurements(out)
    assert list(table.columns[: len(TABLE_COLUMNS)]) == list(TABLE_COLUMNS)
    assert set(table.subject) == set(GOOD)
    assert not table.duplicated(KEY).any()
    # Each scan's rows are exactly what the geometry module gives on that scan's label maps.
    from spinemetrics.geometry import measure

    for name, ph in batch_inputs.phantoms.items():
        expect = measure(ph.seg, ph.levels, subject=name, scan=name)
        got = table[table.subject == name]
        assert len(got) == len(expect)
        merged = got.merge(expect, on=["level", "side", "measure"], suffixes=("", "_direct"))
        assert len(merged) == len(expect)
        assert (merged.unit == merged.unit_direct).all()
        # Every level, including those cut by the crop: float32 rounding of the affine in
        # the NIfTI header must not change any value or qc.
        assert merged.value.notna().sum() > 20
        np.testing.assert_allclose(merged.value, merged.value_direct, rtol=1e-6, equal_nan=True)
        assert (merged.qc == merged.qc_direct).all()

    errors = collect_errors(out)
    assert sorted(errors.subject) == sorted(BAD)
    for row in errors.itertuples():
        assert row.stage in BAD[row.subject], (row.subject, row.stage, row.reason)
        assert "\n" not in row.reason and row.reason
        assert row.path.endswith(".nii.gz")


def test_values_are_orientation_invariant_end_to_end(dask_run):
    """sub-03 is sub-01's anatomy stored as PIR: the same numbers must come out."""
    table = read_measurements(dask_run[0])
    a = table[table.subject == "sub-01"].set_index(["level", "side", "measure"]).value
    b = table[table.subject == "sub-03"].set_index(["level", "side", "measure"]).value
    assert a.index.sort_values().equals(b.index.sort_values())
    np.testing.assert_allclose(a.sort_index(), b.sort_index(), rtol=1e-6, atol=1e-6,
                               equal_nan=True)


def test_outputs_lie_on_the_input_grid(dask_run, batch_inputs):
    out = dask_run[0]
    for name in GOOD:
        src = nib.load(batch_inputs.root / f"{name}.nii.gz")
        sdir = scan_dir(out, name, name)
        for suffix in ("_seg.nii.gz", "_levels.nii.gz"):
            seg = nib.load(sdir / f"{name}{suffix}")
            assert seg.shape == src.shape
            np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)
        # the written seg is the phantom's seg, voxel for voxel, in the file's own axis order
        sidecar = nib.load(batch_inputs.segs / f"{name}_seg.nii.gz")
        written = nib.load(sdir / f"{name}_seg.nii.gz")
        np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(sidecar.dataobj))
        marker = json.loads((sdir / "done.json").read_text())
        assert marker["rows"] > 0 and marker["input_sha256"]
        assert set(marker["timings_s"]) >= {"read", "segment", "measure", "write"}
    # the cohort dataset is one file per scan, readable by DuckDB with a glob
    import duckdb

    glob = f"{out}/measurements.parquet/**/*.parquet"
    n = duckdb.sql(f"select count(distinct subject) from read_parquet('{glob}')").fetchall()[0][0]
    assert n == len(GOOD)


def test_rerun_skips_complete_scans(dask_run, batch_inputs):
    out, first, _ = dask_run
    before = read_measurements(out)
    again = run_batch(batch_inputs.root, out, workers=0, report=False,
                      segmenter=batch_inputs.segmenter)
    assert (again.skipped, again.done, again.failed) == (len(GOOD), 0, len(batch_inputs.bad))
    pd.testing.assert_frame_equal(read_measurements(out), before)


def _run_cli_and_kill(args: list[str], out: Path, after_done: int, timeout: float = 240.0):
    """Start `spinemetrics batch` in its own process group; SIGKILL it after N scans finish."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spinemetrics", "batch", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            done = list((out / "scans").glob("*/*/done.json")) if (out / "scans").exists() else []
            if len(done) >= after_done or proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we started: CLI + any Dask workers
        proc.wait(timeout=30)
    return proc.returncode


def test_hard_kill_then_resume_gives_the_uninterrupted_result(dask_run, batch_inputs, tmp_path):
    reference_out = dask_run[0]
    out = tmp_path / "killed"
    args = [str(batch_inputs.root), "-o", str(out), "--workers", "0", "--no-report",
            "--segmenter", batch_inputs.segmenter]
    rc = _run_cli_and_kill(args, out, after_done=1)
    assert rc == -signal.SIGKILL, "the run finished before it could be killed; test is void"
    finished = list((out / "scans").glob("*/*/done.json"))
    assert 1 <= len(finished) < len(GOOD)
    # nothing half-written is visible in the dataset, and each visible part is complete
    parts = list((out / "measurements.parquet").rglob("*"))
    assert not [p for p in parts if p.is_file() and not p.name.endswith(".parquet")]
    assert not [p for p in parts if p.name.startswith(".")]
    for p in parts:
        if p.is_file():
            pd.read_parquet(p)

    resumed = run_batch(batch_inputs.root, out, workers=0, report=False,
                        segmenter=batch_inputs.segmenter)
    assert resumed.skipped == len(finished)
    assert resumed.done == len(GOOD) - len(finished)
    got, ref = read_measurements(out), read_measurements(reference_out)
    pd.testing.assert_frame_equal(got, ref)
    pd.testing.assert_frame_equal(collect_errors(out).sort_values("subject").reset_index(
        drop=True)[["subject", "stage"]], collect_errors(reference_out).sort_values(
        "subject").reset_index(drop=True)[["subject", "stage"]])


def test_a_stale_part_is_replaced_not_duplicated(dask_run, batch_inputs, tmp_path):
    """A scan killed after its part was written but before its marker: redone, no duplicate."""
    out = tmp_path / "stale"
    items = ["sub-02"]
    run_batch([batch_inputs.root / f"{n}.nii.gz" for n in items], out, workers=0,
              report=False, segmenter=batch_inputs.segmenter)
    marker = scan_dir(out, "sub-02", "sub-02") / "done.json"
    marker.unlink()  # as if killed between the part and the marker
    (scan_dir(out, "sub-02", "sub-02") / ".sub-02_seg.nii.gz.abc.tmp.nii.gz").write_bytes(b"x")
    assert part_path(out, "sub-02", "sub-02").exists()
    again = run_batch([batch_inputs.root / "sub-02.nii.gz"], out, workers=0, report=False,
                      segmenter=batch_inputs.segmenter)
    assert again.done == 1 and marker.exists()
    table = read_measurements(out)
    assert not table.duplicated(KEY).any()
    ref = read_measurements(dask_run[0])
    pd.testing.assert_frame_equal(table, ref[ref.subject == "sub-02"].reset_index(drop=True))
    assert not list(scan_dir(out, "sub-02", "sub-02").glob(".*.tmp*"))
