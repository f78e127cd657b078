"""Benchmark the HTML reports: subject report build time/size and 100k-subject dashboard.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_report.py [--subjects 100000] [--repeat 3]

Subject report: a rendered phantom (sagittal stack 3.3 × 0.7 × 0.7 mm, 8° tilt) with its
exact truth table as the measurement table. Dashboard: a simulated cohort
(:func:`spinemetrics.stats.simulate.simulate_cohort`, all measures, ~147 rows per subject) with
between-level Spearman correlations computed here (not timed) as the stats input.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _corr(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for measure, grp in table[table["side"].isin(["", "L"])].groupby("measure", observed=True):
        wide = grp.pivot_table(index="subject", columns="level", values="value", observed=True)
        if wide.shape[1] < 2:
            continue
        rho = wide.rank().corr()
        cols = list(wide.columns)
        for i, a in enumerate(cols):
            for b in cols[i + 1:]:
                rows.append({"measure": measure, "level_a": a, "level_b": b,
                             "n": len(wide), "rho": rho.loc[a, b], "ci_low": np.nan,
                             "ci_high": np.nan, "p_value": np.nan, "q_value": np.nan})
    return pd.DataFrame(rows)


def bench_subject(repeat: int, out_dir: Path) -> dict:
    from spinemetrics.phantom import make_phantom, random_params
    from spinemetrics.provenance import provenance
    from spinemetrics.report import subject_report

    ph = make_phantom(random_params(3), spacing=(3.3, 0.7, 0.7), rotation_deg=(8, 0, 0))
    table = ph.truth
    out = out_dir / "subject.html"
    prov = provenance(None, model_version="benchmark")
    subject_report(ph.image, ph.seg, ph.levels, table, out, provenance=prov)  # warm-up
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        subject_report(ph.image, ph.seg, ph.levels, table, out, provenance=prov)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"shape": ph.image.shape, "median_s": statistics.median(times),
            "min_s": min(times), "cpu_s": statistics.median(cpu),
            "size_mb": out.stat().st_size / 1e6}


def bench_dashboard(n_subjects: int, out_dir: Path) -> dict:
    from spinemetrics.report import cohort_dashboard
    from spinemetrics.stats.simulate import simulate_cohort

    t0 = time.perf_counter()
    table, cov, _ = simulate_cohort(n_subjects, seed=0)
    for col in ("subject", "scan", "level", "side", "measure", "unit", "qc"):
        table[col] = table[col].astype("category")  # as read from Parquet (dictionary columns)
    t_sim = time.perf_counter() - t0
    corr = _corr(table)
    out = out_dir / "dashboard.html"
    t0, c0 = time.perf_counter(), time.process_time()
    cohort_dashboard({"correlations": corr, "models": None}, out, table=table, covariates=cov)
    t_dash, c_dash = time.perf_counter() - t0, time.process_time() - c0
    return {"rows": len(table), "simulate_s": t_sim, "dashboard_s": t_dash,
            "dashboard_cpu_s": c_dash, "size_mb": out.stat().st_size / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        s = bench_subject(args.repeat, Path(tmp))
        print(f"subject report: image {s['shape']}, median {s['median_s']:.2f} s wall "
              f"(min {s['min_s']:.2f} s, CPU {s['cpu_s']:.2f} s) over {args.repeat}, "
              f"{s['size_mb']:.2f} MB")
        if not args.subjects:
            return
        d = bench_dashboard(args.subjects, Path(tmp))
        print(f"dashboard: {args.subjects} subjects, {d['rows']:,} rows, "
              f"{d['dashboard_s']:.1f} s wall, {d['dashboard_cpu_s']:.1f} s CPU (simulation "
              f"{d['simulate_s']:.1f} s not counted), "
              f"{d['size_mb']:.2f} MB")


if __name__ == "__main__":
    main()
