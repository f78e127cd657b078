"""A scan that kills its worker process (segfault, out of memory) becomes one error row with
stage "worker"; the other scans finish and the batch does not hang."""

from __future__ import annotations

import dask

from spinemetrics.batch import collect_errors, read_measurements, run_batch

CRASHING_SEGMENTER = '''
import os
from spinemetrics.pipeline import sidecar_segmenter

_sidecar = sidecar_segmenter({segs!r})


def segment(image, device="cpu"):
    if "sub-02" in image.meta["source_path"]:
        os._exit(3)  # what an out-of-memory kill looks like to Dask
    return _sidecar(image)
'''


def test_worker_crash_is_recorded_and_others_finish(batch_inputs, tmp_path, monkeypatch):
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "crashing_seg_for_test.py").write_text(
        CRASHING_SEGMENTER.format(segs=str(batch_inputs.segs)))
    # spawned worker processes get the parent's sys.path (multiprocessing) or PYTHONPATH
    monkeypatch.syspath_prepend(str(mod_dir))
    monkeypatch.setenv("PYTHONPATH", str(mod_dir))
    items = [batch_inputs.root / "sub-01.nii.gz", batch_inputs.root / "sub-02.nii.gz"]
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        summary = run_batch(items, tmp_path / "out", workers=1, report=False,
                            segmenter="crashing_seg_for_test:segment")
    errors = collect_errors(tmp_path / "out")
    # sub-01's result may have been lost with the dead worker and recomputed: the rerun finds
    # its done-marker and reports "skipped", so count successes, not fresh analyses.
    assert (summary.succeeded, summary.failed) == (1, 1), errors.to_dict("records")
    assert errors.subject.tolist() == ["sub-02"] and errors.stage.tolist() == ["worker"]
    assert "worker died" in errors.reason.iloc[0]
    assert set(read_measurements(tmp_path / "out").subject) == {"sub-01"}
