"""`spinemetrics demo`: the whole pipeline on shipped data, offline, every step ok."""

from __future__ import annotations

import json
import re

import pandas as pd

from spinemetrics.cli import main
from spinemetrics.demo import sample_scan
from spinemetrics.provenance import file_sha256

# byte-identical copy of the shared sample (SOURCE.md gives this SHA-256)
SAMPLE_SHA256 = "380bbd7ad8c90fdfc5f43ab297190fe49b8b7e8eea69fabba42b4b30d28c844f"


def test_shipped_sample_is_the_documented_file():
    path = sample_scan()
    assert file_sha256(path) == SAMPLE_SHA256
    for name in ("LICENSE.txt", "SOURCE.md"):
        assert (path.parent / name).is_file()
    assert "MIT" in (path.parent / "LICENSE.txt").read_text()


def test_demo_runs_every_step_offline(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "-o", str(out), "--subjects", "60", "--device", "cpu"])
    printed = capsys.readouterr()
    summary = json.loads((out / "demo_summary.json").read_text())
    assert rc == 0, (summary, printed.err[-2000:])
    assert summary["status"] == {"subject": "ok", "cohort": "ok", "stats": "ok", "index": "ok"}
    assert str(out / "index.html") in printed.out
    # the files the index links to exist
    index = (out / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+)"', index)
    assert links and all((out / link).exists() for link in links)
    pages = [out / "index.html", *out.rglob("*_report.html"), out / "cohort" / "dashboard.html"]
    for html in pages:
        text = html.read_text(encoding="utf-8")
        assert not re.search(r'<script[^>]+src="https?:', text), html  # nothing from the network
    table = pd.read_parquet(next((out / "subject").glob("*_measurements.parquet")))
    assert (table.subject == "sct-t2-lumbar").all()
    assert table.value.notna().sum() > 10  # the real scan yields real numbers
    for name in ("correlations.csv", "models.csv"):
        assert (out / "cohort" / name).exists()
