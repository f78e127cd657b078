"""Scale benchmark of ``spinemetrics stats``: 100 000 subjects × 5 levels × 20 series.

20 series = 16 unsided measures + 2 sided measures × 2 sides, 5 levels each, so the table has
``subjects × 100`` rows (10 M for the default 100 000 subjects). Steps:

1. simulate the cohort and write ``measurements.parquet`` + ``covariates.parquet``
   (not timed);
2. run :func:`spinemetrics.stats.run_stats` on the Parquet file in a *fresh child process*
   (timed; peak resident memory of that process from ``getrusage``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_stats.py --subjects 100000 --workdir /tmp/bench_stats

Prints one JSON line with the figures; record them in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

MEASURES = [
    "disc_height_anterior_mm",
    "disc_height_middle_mm",
    "disc_height_posterior_mm",
    "disc_height_index",
    "disc_depth_mm",
    "disc_wedge_angle_deg",
    "disc_volume_mm3",
    "vertebral_height_anterior_mm",
    "vertebral_height_middle_mm",
    "vertebral_height_posterior_mm",
    "vertebral_depth_mm",
    "vertebral_wedge_index",
    "dural_sac_area_mm2",
    "canal_ap_mm",
    "segmental_angle_deg",
    "slip_percent",
    "foraminal_height_mm",
    "ligamentum_flavum_thickness_mm",
]


def generate(n_subjects: int, workdir: Path, seed: int = 7) -> dict:
    """Simulate and write the cohort as Parquet; returns row count and file sizes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spinemetrics.stats import simulate_cohort

    workdir.mkdir(parents=True, exist_ok=True)
    table_path = workdir / "measurements.parquet"
    writer = None
    n_rows = 0
    chunk = 20_000  # subjects per chunk keeps generation memory small
    covs = []
    for start in range(0, n_subjects, chunk):
        n = min(chunk, n_subjects - start)
        tab, cov, _ = simulate_cohort(n, seed=seed + start, measures=MEASURES, missing_rate=0.01)
        # Unique subject ids across chunks.
        prefix = f"c{start // chunk:03d}-"
        tab["subject"] = prefix + tab["subject"].astype(str)
        tab["scan"] = prefix + tab["scan"].astype(str)
        cov["subject"] = prefix + cov["subject"].astype(str)
        covs.append(cov)
        t = pa.Table.from_pandas(tab, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(table_path, t.schema, compression="zstd")
        writer.write_table(t)
        n_rows += len(tab)
    writer.close()
    import pandas as pd

    cov_path = workdir / "covariates.parquet"
    pd.concat(covs, ignore_index=True).to_parquet(cov_path, index=False)
    return {
        "rows": n_rows,
        "table_mb": round(table_path.stat().st_size / 1e6, 1),
        "covariates_mb": round(cov_path.stat().st_size / 1e6, 2),
    }


def run_child(workdir: Path, permutations: int) -> dict:
    """Time run_stats in this process (called in a child)."""
    from spinemetrics.stats import run_stats

    t0 = time.perf_counter()
    stamps = {}

    def progress(measure: str, i: int, n: int) -> None:
        c = resource.getrusage(resource.RUSAGE_SELF)
        stamps[f"{i:02d}_{measure}"] = [
            round(time.perf_counter() - t0, 1),
            round(c.ru_utime + c.ru_stime, 1),
        ]

    res = run_stats(
        workdir / "measurements.parquet",
        workdir / "covariates.parquet",
        workdir / "out",
        n_permutations=permutations,
        progress=progress,
    )
    total = time.perf_counter() - t0
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_seconds_self": round(cpu.ru_utime + cpu.ru_stime, 1),
        "progress_wall_s": stamps,
        "seconds_total": round(total, 1),
        "seconds_store_ready": stamps.get(next(iter(sorted(stamps)), ""), [None])[0],
        "n_subjects": res.summary["n_subjects"],
        "n_rows": res.summary["n_rows"],
        "correlation_rows": len(res.correlations),
        "model_rows": len(res.models),
        "models_not_converged": int((~res.models["converged"].astype(bool)).sum()),
        "peak_rss_mb_self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_stats"))
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_child(args.workdir, args.permutations)))
        return
    info = {"subjects": args.subjects, "machine": f"{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs visible, Python {platform.python_version()}"}  # fmt: skip
    if not args.skip_generate:
        t0 = time.perf_counter()
        info.update(generate(args.subjects, args.workdir))
        info["seconds_generate"] = round(time.perf_counter() - t0, 1)
    cmd = [sys.executable, __file__, "--child", "--workdir", str(args.workdir),
           "--permutations", str(args.permutations)]  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    info["seconds_wall_child"] = round(time.perf_counter() - t0, 1)
    info.update(json.loads(out.stdout.strip().splitlines()[-1]))
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    info["peak_rss_mb_child"] = round(usage.ru_maxrss / 1024, 0)
    # CPU seconds of the child: on a shared machine wall time depends on the other load,
    # CPU time does not (DuckDB uses up to 2 threads, numpy 1 with OMP_NUM_THREADS=1).
    info["cpu_seconds_child"] = round(usage.ru_utime + usage.ru_stime, 1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
