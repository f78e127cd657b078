"""`spinemetrics report subject|dashboard` rebuild reports from saved files."""

from __future__ import annotations

import json

import pytest

from spinemetrics.cli import main
from spinemetrics.io import write_image, write_table

from .conftest import fake_stats, subject_table
from .test_dashboard import make_cohort


def test_report_subject_from_files(phantom, tmp_path, capsys):
    image, seg, lev, _ = phantom
    write_image(image, tmp_path / "img.nii.gz")
    write_image(seg.with_array(seg.array.astype("uint8")), tmp_path / "seg.nii.gz")
    write_image(lev.with_array(lev.array.astype("uint16")), tmp_path / "lev.nii.gz")
    write_table(subject_table(), tmp_path / "m.csv")
    (tmp_path / "prov.json").write_text(json.dumps({"model_version": "cnn-test-7"}))
    (tmp_path / "warn.txt").write_text("first warning\nsecond warning\n")
    out = tmp_path / "r.html"
    code = main(["report", "subject", "--image", str(tmp_path / "img.nii.gz"),
                 "--seg", str(tmp_path / "seg.nii.gz"), "--levels", str(tmp_path / "lev.nii.gz"),
                 "--table", str(tmp_path / "m.csv"), "--provenance", str(tmp_path / "prov.json"),
                 "--warnings", str(tmp_path / "warn.txt"), "-o", str(out)])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    text = out.read_text("utf-8")
    assert "cnn-test-7" in text and "second warning" in text and "L4-L5" in text


def test_report_dashboard_from_stats_dir(tmp_path):
    tab, cov = make_cohort(200)
    corr, models = fake_stats(tab)
    d = tmp_path / "stats"
    d.mkdir()
    corr.to_csv(d / "correlations.csv", index=False)
    models.to_csv(d / "models.csv", index=False)
    write_table(tab, tmp_path / "m.parquet")
    cov.to_csv(tmp_path / "cov.csv", index=False)
    out = tmp_path / "dash.html"
    code = main(["report", "dashboard", str(d), "--table", str(tmp_path / "m.parquet"),
                 "--covariates", str(tmp_path / "cov.csv"), "-o", str(out)])
    assert code == 0 and out.stat().st_size > 1_000_000
    assert '"n_subjects":200' in out.read_text("utf-8")


def test_report_missing_stats_dir_is_one_line_error(tmp_path, capsys):
    code = main(["report", "dashboard", str(tmp_path / "nope"), "-o", str(tmp_path / "d.html")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "spinemetrics stats" in err


@pytest.mark.parametrize("verb", ["subject", "dashboard"])
def test_help(verb, capsys):
    assert main(["report", verb, "--help"]) == 0
    assert "-o" in capsys.readouterr().out
