"""Speed and memory of ``spinemetrics.geometry.measure`` on a real 512 × 512 × 17 label map.

Usage::

    python benchmarks/bench_measure.py [--repeat 5] [--threads 2]

Input: the SPINEPS-style reference map of ``/work/shared/data/panoptica_lumbar_labels``
(0.586 × 0.586 × 3.3 mm sagittal, 7 vertebrae + sacrum, converted with
``spinemetrics.convert``). Times ``measure(seg, levels)`` (given level map) and
``measure(seg)`` (levels derived), reports the median wall-clock and process-CPU time of
``--repeat`` runs (CPU time is the figure that survives a loaded shared machine), and the peak
Python heap (tracemalloc) and peak resident set size (``resource``) of the process.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

DATA = Path(os.environ.get("SPINEMETRICS_SHARED_DATA", Path(__file__).resolve().parents[2]
                           / "shared" / "data")) / "panoptica_lumbar_labels"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import numpy as np

    from spinemetrics.convert import convert_labels
    from spinemetrics.geometry import measure

    res = convert_labels(DATA / "semantic" / "ref.nii.gz", "spineps",
                         instance=DATA / "matched_instance" / "ref.nii.gz")
    seg, lev = res.seg, res.levels
    measure(seg, lev)  # warm-up (imports, caches)
    load0 = f"{os.getloadavg()[0]:.1f}"
    out = {}
    for label, levels in (("given levels", lev), ("derived levels", None)):
        times, cpu = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            table = measure(seg, levels)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out[label] = (float(np.median(times)), float(np.min(times)), float(np.median(cpu)),
                      len(table), int(table.value.notna().sum()))
    tracemalloc.start()
    measure(seg, None)
    _, peak_heap = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB → MiB (Linux)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python "
          f"{platform.python_version()}, OMP_NUM_THREADS={args.threads}")
    print(f"input: {seg.shape} voxels, spacing {tuple(round(s, 3) for s in seg.spacing)} mm")
    print(f"load average before/after: {load0} / {os.getloadavg()[0]:.1f}")
    for label, (med, best, cpu, n, n_ok) in out.items():
        print(f"measure ({label}): wall median {med:.2f} s, best {best:.2f} s; process CPU "
              f"median {cpu:.2f} s over {args.repeat} runs; {n} rows, {n_ok} finite")
    print(f"peak Python heap (tracemalloc): {peak_heap / 2**20:.0f} MiB; "
          f"peak RSS of the process: {peak_rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
