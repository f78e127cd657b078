"""Benchmark: batch throughput (scans per minute) with 1 and 2 Dask workers, and the per-scan
cost of each pipeline stage (read, segment, measure, report, write).

Usage::

    python benchmarks/bench_batch.py                 # 8 phantom scans, CNN, reports on
    python benchmarks/bench_batch.py --scans 4 --workers 1 2 --segmenter sidecar --no-report

Scans are phantoms (``spinemetrics.phantom``) rendered like a clinical sagittal T2 series
(default 3.3 mm slices, 0.8 mm in-plane). ``--segmenter cnn`` runs the shipped network;
``sidecar`` reuses the phantom's exact label maps (isolates the non-CNN cost). Each worker
count runs on a fresh output folder; the wall time includes starting the LocalCluster, the
"steady" rate counts from the first finished scan to the last. Prints a Markdown section and
writes ``benchmarks/results/bench_batch.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

STAGES = ["read", "check", "segment", "levels", "measure", "norms", "report", "write", "dataset"]


def make_inputs(folder: Path, n: int, spacing: tuple[float, float, float]) -> Path:
    from spinemetrics.io import write_image
    from spinemetrics.phantom import make_phantom, random_params

    segs = folder / "segs"
    segs.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ph = make_phantom(random_params(seed=100 + i), spacing=spacing, orientation="PIR",
                          seed=i)
        write_image(ph.image, folder / f"bench{i:03d}.nii.gz")
        write_image(ph.seg, segs / f"bench{i:03d}_seg.nii.gz")
        write_image(ph.levels, segs / f"bench{i:03d}_levels.nii.gz")
    return segs


def run(inputs: Path, out: Path, workers: int, segmenter: str | None, report: bool) -> dict:
    from spinemetrics.batch import run_batch

    finish_times: list[float] = []
    t0 = time.perf_counter()
    summary = run_batch(inputs, out, workers=workers, report=report, segmenter=segmenter,
                        progress=lambda ev: finish_times.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    n = summary.done
    steady = (finish_times[-1] - finish_times[0]) if len(finish_times) > 1 else float("nan")
    stages = summary.timings.drop(columns=["subject", "scan"], errors="ignore")
    cpu = stages[[c for c in stages.columns if c.startswith("cpu_")]]
    stages = stages[[c for c in stages.columns if not c.startswith("cpu_")]]
    return {
        "workers": workers,
        "scans": n,
        "failed": summary.failed,
        "wall_s": round(wall, 2),
        "scans_per_min_wall": round(60.0 * n / wall, 2),
        "scans_per_min_steady": round(60.0 * (n - 1) / steady, 2) if steady == steady else None,
        "stage_mean_s": {k: round(float(v), 3) for k, v in stages.mean().items()},
        "stage_mean_cpu_s": {k[4:]: round(float(v), 3) for k, v in cpu.mean().items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--spacing", type=float, nargs=3, default=[3.3, 0.8, 0.8],
                    help="phantom voxel size LR AP SI (mm)")
    ap.add_argument("--segmenter", default="cnn", help="cnn or sidecar")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--keep", type=Path, help="keep inputs/outputs in this folder")
    args = ap.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_batch_"))
    inputs = base / "inputs"
    t0 = time.perf_counter()
    segs = make_inputs(inputs, args.scans, tuple(args.spacing))
    t_make = time.perf_counter() - t0
    seg_spec = None if args.segmenter == "cnn" else f"sidecar:{segs}"
    results = []
    for w in args.workers:
        out = base / f"out_w{w}"
        shutil.rmtree(out, ignore_errors=True)
        results.append(run(inputs, out, w, seg_spec, not args.no_report))
    sizes = {}
    out1 = base / f"out_w{args.workers[0]}" / "scans"
    for pattern in ("*_seg.nii.gz", "*_levels.nii.gz", "*_measurements.parquet", "*_report.html"):
        files = list(out1.rglob(pattern))
        if files:
            sizes[pattern] = round(sum(f.stat().st_size for f in files) / len(files) / 1e3, 1)
    info = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores visible, no GPU",
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
        "python": platform.python_version(),
        "scans": args.scans,
        "spacing_mm": args.spacing,
        "segmenter": args.segmenter,
        "report": not args.no_report,
        "phantom_generation_s": round(t_make, 1),
        "output_kb_per_scan": sizes,
        "runs": results,
    }
    res_dir = Path(__file__).resolve().parent / "results"
    res_dir.mkdir(exist_ok=True)
    (res_dir / "bench_batch.json").write_text(json.dumps(info, indent=2))
    print(render(info))
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


def render(info: dict) -> str:
    lines = [
        f"Machine: {info['machine']} (1-min load average {info.get('load_average_1min_at_end')} "
        f"at the end: shared with other jobs); {info['scans']} phantom scans "
        f"({' × '.join(str(s) for s in info['spacing_mm'])} mm voxels), segmenter "
        f"`{info['segmenter']}`, reports {'on' if info['report'] else 'off'}.",
        "",
        "| workers | scans | wall (s) | scans/min (wall, incl. cluster start) | "
        "scans/min (steady) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in info["runs"]:
        lines.append(f"| {r['workers']} | {r['scans']} | {r['wall_s']} | "
                     f"{r['scans_per_min_wall']} | {r['scans_per_min_steady']} |")
    lines += ["", "Mean seconds per scan and stage, worker side (wall / process CPU):", "",
              "| workers | " + " | ".join(STAGES) + " |", "|---:|" + "---:|" * len(STAGES)]
    for r in info["runs"]:
        st, cp = r["stage_mean_s"], r.get("stage_mean_cpu_s", {})
        lines.append(f"| {r['workers']} | " + " | ".join(
            (f"{st[s]:.2f} / {cp[s]:.2f}" if s in cp else f"{st[s]:.2f}") if s in st else "–"
            for s in STAGES) + " |")
    if info["output_kb_per_scan"]:
        lines += ["", "Output size per scan (kB): " + ", ".join(
            f"`{k}` {v}" for k, v in info["output_kb_per_scan"].items())]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
