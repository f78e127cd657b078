"""Batch segmentation: the pipelined mode (worker processes beside the network) writes the
same maps as one-at-a-time segmentation, keeps input order, and records failures."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from spinemetrics.segment import load_model, segment
from spinemetrics.segment.batch import output_paths, segment_files


@pytest.fixture(scope="module")
def scans(phantom_t2, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans")
    img = phantom_t2.image
    ras = folder / "a_ras.nii.gz"
    nib.save(img.to_nifti(), str(ras))
    # the same scan stored in LPS voxel order: a different file, the same anatomy
    lps_arr = img.array[::-1, ::-1, :].copy()
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[0, 3], flip[1, 3] = img.shape[0] - 1, img.shape[1] - 1
    lps = folder / "c_lps.nii.gz"
    nib.save(nib.Nifti1Image(lps_arr.astype(np.float32), img.affine @ flip), str(lps))
    bad = folder / "b_corrupt.nii.gz"
    bad.write_bytes(b"not a nifti file")
    return [ras, bad, lps]


def test_pipelined_batch_equals_sequential_and_single_scan(scans, tmp_path):
    model = load_model("cpu")
    seq = list(segment_files(scans, tmp_path / "seq", device="cpu", model=model, workers=0))
    par = list(segment_files(scans, tmp_path / "par", device="cpu", model=model, workers=2))
    for outcomes in (seq, par):
        assert [o.path for o in outcomes] == scans  # input order kept
        assert outcomes[1].error and not outcomes[1].outputs  # failure recorded, batch went on
        assert not (tmp_path / "seq" / "b_corrupt_seg.nii.gz").exists()
        assert all(o.error is None and len(o.outputs) == 2 for o in (outcomes[0], outcomes[2]))
    assert seq[1].error == par[1].error
    from spinemetrics.io import read_image

    direct = segment(read_image(scans[0]), device="cpu", model=model)
    for k in (0, 2):
        assert seq[k].warnings == par[k].warnings
        for a, b in zip(seq[k].outputs, par[k].outputs, strict=True):
            va, vb = nib.load(a), nib.load(b)
            np.testing.assert_array_equal(np.asarray(va.dataobj), np.asarray(vb.dataobj))
            np.testing.assert_array_equal(va.affine, vb.affine)
    # written on the input grid: equal to segmenting the scan directly
    np.testing.assert_array_equal(
        np.asarray(nib.load(seq[0].outputs[0]).dataobj), direct.seg.to_source().array)
    # the LPS copy gives the same anatomy, flipped back into its own voxel order
    seg_lps = np.asarray(nib.load(seq[2].outputs[0]).dataobj)
    agree = (seg_lps[::-1, ::-1, :] == direct.seg.array).mean()
    assert agree > 0.99


def test_output_paths_strip_image_suffixes(tmp_path):
    seg, levels = output_paths(tmp_path / "sub-01_T2w.nii.gz", tmp_path / "out")
    assert seg.name == "sub-01_T2w_seg.nii.gz" and levels.name == "sub-01_T2w_levels.nii.gz"


def test_cli_segment_with_workers_records_the_failure_and_writes_the_rest(scans, tmp_path,
                                                                         capsys):
    from spinemetrics.cli import main

    out = tmp_path / "cli"
    rc = main(["segment", str(scans[0]), str(scans[1]), "-o", str(out), "--device", "cpu",
               "--threads", "1", "--workers", "2"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "1 of 2 scan(s) failed" in err and "b_corrupt.nii.gz" in err
    seg, levels = output_paths(scans[0], out)
    assert seg.exists() and levels.exists()
    assert not output_paths(scans[1], out)[0].exists()


def test_pipelined_batch_bounds_the_scans_in_flight(scans, phantom_t2, tmp_path, monkeypatch):
    """The network may run ahead of the CPU stages by at most 2 scans per worker (a cohort
    must not pile up label maps in memory), even when it is instant: a stand-in returning
    the phantom's true labels makes the single worker the bottleneck."""
    import spinemetrics.segment.inference as inf

    truth = np.asarray(phantom_t2.seg.array).astype(np.uint8)
    ahead: list[int] = []
    done: list = []

    def instant_network(image, **kwargs):
        ahead.append(len(ahead) - len(done))  # scans passed the network but not yet reported
        ras = image if image.orientation == ("R", "A", "S") else image.to_canonical()
        return ras.with_array(truth, kind="seg"), []

    monkeypatch.setattr(inf, "predict_labels", instant_network)
    for outcome in segment_files([scans[0]] * 5, tmp_path, device="cpu",
                                 model=load_model("cpu"), workers=1):
        done.append(outcome)
    assert len(done) == 5 and all(o.error is None for o in done)
    assert max(ahead) <= 2, ahead


@pytest.mark.parametrize(("workers", "n_files", "expected"), [(8, 3, 8), (3, 3, 13), (8, 1, 16),
                                                             (0, 3, 16), (20, 3, 1)])
def test_default_threads_leave_a_core_per_worker(workers, n_files, expected, monkeypatch,
                                                 tmp_path):
    """Torch threads beyond the cores the workers leave oversubscribe the machine."""
    import spinemetrics.segment.batch as batch
    import spinemetrics.segment.inference as inference

    seen = {}

    def fake(kind):
        def run(paths, out_dir, model, device, series, conus_prior, threads, *rest):
            seen.update(kind=kind, threads=threads)
            return iter(())
        return run

    monkeypatch.setattr(inference, "available_threads", lambda: 16)
    monkeypatch.setattr(batch, "_pipelined", fake("pipelined"))
    monkeypatch.setattr(batch, "_sequential", fake("sequential"))
    files = [tmp_path / f"s{i}.nii.gz" for i in range(n_files)]
    list(batch.segment_files(files, tmp_path / "out", model=(None, {}, {}), workers=workers))
    assert seen["threads"] == expected
    assert seen["kind"] == ("pipelined" if workers and n_files > 1 else "sequential")
    list(batch.segment_files(files, tmp_path / "out", model=(None, {}, {}), workers=workers,
                             threads=5))
    assert seen["threads"] == 5
