"""`spinemetrics analyze` / `batch` / `demo` on the command line: exit codes, one-line errors."""

from __future__ import annotations

import pandas as pd

from spinemetrics.cli import main


def test_analyze_bad_file_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08not really gzip")
    rc = main(["analyze", str(bad), "-o", str(tmp_path / "out"), "--segmenter", "sidecar"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: ") and "read failed" in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_analyze_rejects_ids_for_many_images_and_bad_sex(tmp_path, capsys):
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    rc = main(["analyze", str(a), str(b), "-o", str(tmp_path), "--subject", "x"])
    assert rc == 2 and "single image" in capsys.readouterr().err
    rc = main(["analyze", str(a), "-o", str(tmp_path), "--sex", "Q"])
    assert rc == 2 and "--sex" in capsys.readouterr().err


def test_batch_cli_runs_reports_and_resumes(batch_inputs, tmp_path, capsys):
    out = tmp_path / "cli_out"
    one = batch_inputs.root / "sub-02.nii.gz"
    bad = batch_inputs.root / "ct_like.nii.gz"
    args = ["batch", str(one), str(bad), "-o", str(out), "--workers", "0",
            "--segmenter", batch_inputs.segmenter]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert str(out / "measurements.parquet") in captured.out
    assert "1 analysed" in captured.err and "1 failed" in captured.err
    errors = pd.read_csv(out / "errors.csv")
    assert errors.subject.tolist() == ["ct_like"] and errors.stage.tolist() == ["check"]
    scans = pd.read_csv(out / "scans.csv")
    assert sorted(scans.status) == ["done", "failed"]
    report = next((out / "scans" / "sub-02" / "sub-02").glob("*_report.html"))
    assert report.stat().st_size > 10_000
    # Batch reports share one plotly.js (OUT/assets), referred to by relative path.
    (shared,) = (out / "assets").glob("plotly-*.min.js")
    assert report.stat().st_size < shared.stat().st_size / 2
    assert f'src="../../../assets/{shared.name}"' in report.read_text("utf-8")
    assert main(args) == 0  # second run: nothing to redo
    assert "1 already done" in capsys.readouterr().err
    # Asking for self-contained reports redoes the reports (the marker records the mode).
    assert main([*args, "--report-plotly", "inline"]) == 0
    assert "1 analysed" in capsys.readouterr().err
    assert report.stat().st_size > shared.stat().st_size


def test_batch_cli_all_failed_exits_non_zero(batch_inputs, tmp_path, capsys):
    rc = main(["batch", str(batch_inputs.root / "empty.nii.gz"), "-o", str(tmp_path),
               "--workers", "0", "--no-report"])
    assert rc == 2 and "every scan failed" in capsys.readouterr().err


def test_every_verb_of_mine_has_help(capsys):
    for verb in ("analyze", "batch", "demo"):
        assert main([verb, "--help"]) == 0
        assert "Usage" in capsys.readouterr().out


INTERRUPTING_SEGMENTER = '''
import os

from spinemetrics.pipeline import sidecar_segmenter

_sidecar = sidecar_segmenter({segs!r})


def segment(image, device="cpu"):
    if "sub-02" in image.meta["source_path"] and os.environ.get("SM_TEST_CTRL_C"):
        raise KeyboardInterrupt  # the user presses Ctrl-C during this scan
    return _sidecar(image)
'''


def test_ctrl_c_exits_130_with_one_line_and_the_rerun_finishes(batch_inputs, tmp_path, capsys,
                                                               monkeypatch):
    (tmp_path / "ctrlc_seg_for_test.py").write_text(
        INTERRUPTING_SEGMENTER.format(segs=str(batch_inputs.segs)))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    inputs = [str(batch_inputs.root / f"{n}.nii.gz") for n in ("sub-01", "sub-02")]
    args = ["batch", *inputs, "-o", str(out), "--workers", "0", "--no-report",
            "--segmenter", "ctrlc_seg_for_test:segment"]
    monkeypatch.setenv("SM_TEST_CTRL_C", "1")
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and err[-1].startswith("error: interrupted after 1 scans")
    assert not (out / ".batch.lock").exists()
    assert (out / "scans" / "sub-01" / "sub-01" / "done.json").exists()
    monkeypatch.delenv("SM_TEST_CTRL_C")
    rc = main(args)
    assert rc == 0 and "1 analysed, 1 already done" in capsys.readouterr().err


def test_usage_errors_are_a_short_message_not_a_traceback(tmp_path, capsys):
    """Unknown options and malformed option values (typer ≥ 0.20 raises its own copy of
    click's exceptions) end with click's usage message and exit code 2."""
    for argv, expected in (
        (["measure", "--bogus"], "No such option: --bogus"),
        (["train", "-o", str(tmp_path), "--class-weights", "1,x"], "comma-separated"),
        (["train", "-o", str(tmp_path), "--widen", "24,48"], "--widen needs --init"),
    ):
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2, argv
        assert expected in err and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())  # nothing trained or written
