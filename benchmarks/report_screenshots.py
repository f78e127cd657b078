"""Regenerate docs/img/subject_report.png and docs/img/dashboard.png (headless Chromium).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/report_screenshots.py [--subjects 5000]

The subject report shows a rendered phantom with its truth table (one disc made stenotic so the
findings are visible); the dashboard a simulated cohort run through ``run_stats`` (falls back to
correlations only when the stats package is unavailable).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _shot(html: Path, png: Path, height: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": height})
        page.goto(html.resolve().as_uri())
        page.wait_for_timeout(2000)
        page.screenshot(path=str(png))
        browser.close()


def subject(tmp: Path) -> Path:
    from spinemetrics.phantom import make_phantom, random_params
    from spinemetrics.provenance import provenance
    from spinemetrics.report import subject_report

    ph = make_phantom(random_params(3), spacing=(3.3, 0.7, 0.7), rotation_deg=(8, 0, 0))
    table = ph.truth.copy()
    # Make the example informative: a narrowed canal at L4-L5 and a relative one at L3-L4.
    dsa = table["measure"] == "dural_sac_area_mm2"
    table.loc[dsa & (table["level"] == "L4-L5"), "value"] = 71.0
    table.loc[dsa & (table["level"] == "L3-L4"), "value"] = 94.0
    out = tmp / "subject.html"
    subject_report(ph.image, ph.seg, ph.levels, table, out, subject="sub-0003",
                   provenance=provenance(None, model_version="phantom-demo"),
                   warnings=["example: values at L3-L4/L4-L5 edited to show findings"])
    return out


def dashboard(tmp: Path, n: int) -> Path:
    from spinemetrics.report import cohort_dashboard
    from spinemetrics.stats.simulate import simulate_cohort

    measures = ["dural_sac_area_mm2", "disc_height_middle_mm", "disc_height_posterior_mm",
                "foraminal_height_mm", "slip_percent", "canal_ap_mm"]
    table, cov, _ = simulate_cohort(n, seed=4, measures=measures)
    stats_dir = tmp / "stats"
    try:
        from spinemetrics.stats.run import run_stats

        run_stats(table, cov, stats_dir, n_permutations=0, methods=("gee_exchangeable",),
                  reference_norms=None)
    except Exception as exc:  # the figure still shows the other panels
        print(f"run_stats failed ({exc}); dashboard without models")
        stats_dir = {}
    out = tmp / "dashboard.html"
    cohort_dashboard(stats_dir, out, table=table, covariates=cov)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=5000)
    args = ap.parse_args()
    img = ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        _shot(subject(tmp), img / "subject_report.png", 1700)
        _shot(dashboard(tmp, args.subjects), img / "dashboard.png", 1900)
    print("wrote", img / "subject_report.png", img / "dashboard.png")


if __name__ == "__main__":
    main()
