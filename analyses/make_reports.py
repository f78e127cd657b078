"""Regenerate everything in ``reports/``: the demo's outputs and the worked analyses.

Usage: ``python analyses/make_reports.py [--smoke] [--skip-demo]``

* ``reports/demo/`` — ``spinemetrics demo`` (real shipped T2 scan + simulated cohort): the
  subject report, the cohort dashboard, the statistics tables and the index page;
* ``reports/<analysis>/`` — each script of ``analyses/`` in full size (``--smoke``: reduced);
* ``reports/assets/plotly.min.js`` — one copy of plotly shared by all analysis figures (the
  demo's report and dashboard embed their own, so they open on their own).

Total size stays around 15 MB (two self-contained HTML files of ~5 MB each + one plotly).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
ANALYSES = ["adjacent_levels", "normative_disc_height", "segmentation_agreement"]
#: Demo outputs not worth keeping in the repository (the input copy; the simulated cohort's
#: 0.8 MB table, which the demo re-creates in seconds).
DEMO_DROP = ["data", "cohort/measurements.parquet"]


def _plotly_asset() -> Path:
    import plotly

    src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    dst = REPORTS / "assets" / "plotly.min.js"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def run_analysis(name: str, smoke: bool) -> float:
    out = REPORTS / name
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(ROOT / "analyses" / f"{name}.py"), "--out", str(out),
           "--plotlyjs", "../assets/plotly.min.js"] + (["--smoke"] if smoke else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - t0


def run_demo(smoke: bool) -> float:
    out = REPORTS / "demo"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "spinemetrics", "demo", "-o", str(out)]
    if smoke:
        cmd += ["--subjects", "100"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    for name in DEMO_DROP:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
    _drop_dead_links(out / "index.html")
    return time.perf_counter() - t0


def _drop_dead_links(index: Path) -> None:
    """Remove index entries whose file was dropped from the repository copy."""
    import re

    text = index.read_text(encoding="utf-8")
    def keep(m: re.Match) -> str:
        return m.group(0) if (index.parent / m.group(1)).exists() else ""
    index.write_text(re.sub(r'<li><a href="([^"]+)">[^<]*</a></li>', keep, text),
                     encoding="utf-8")


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def write_index(times: dict[str, float]) -> None:
    lines = [
        "# Example outputs",
        "",
        "Regenerate with `python analyses/make_reports.py` (a few minutes on 2 CPU cores; "
        "`--smoke` for a quick reduced run). Everything opens offline.",
        "",
        "| folder | what | open |",
        "|---|---|---|",
        "| [demo/](demo/) | `spinemetrics demo`: the shipped real T2 lumbar scan segmented, "
        "measured and reported; a simulated cohort's statistics and dashboard | "
        "[index.html](demo/index.html) |",
        "| [adjacent_levels/](adjacent_levels/) | (a) adjacent-level clustering of disc "
        "degeneration and canal stenosis (simulated cohort, checked against the truth) | "
        "[summary.md](adjacent_levels/summary.md) |",
        "| [normative_disc_height/](normative_disc_height/) | (b) normative disc height by "
        "age, sex and level, z-score calibration | "
        "[summary.md](normative_disc_height/summary.md) |",
        "| [segmentation_agreement/](segmentation_agreement/) | (c) Bland–Altman agreement of "
        "every measure between two segmentations of a real scan | "
        "[summary.md](segmentation_agreement/summary.md) |",
        "",
        ("Run times of the last regeneration (shared 2-core machine, wall): "
         + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + ". " if times else "")
        + f"Total size {_size_mb(REPORTS):.1f} MB.",
        "",
    ]
    (REPORTS / "README.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="reduced sizes (CI)")
    ap.add_argument("--skip-demo", action="store_true", help="only the analyses")
    args = ap.parse_args()
    REPORTS.mkdir(exist_ok=True)
    _plotly_asset()
    times = {}
    for name in ANALYSES:
        times[name] = run_analysis(name, args.smoke)
    if not args.skip_demo:
        times["demo"] = run_demo(args.smoke)
    write_index(times)
    print(f"{REPORTS} ({_size_mb(REPORTS):.1f} MB)")


if __name__ == "__main__":
    main()
