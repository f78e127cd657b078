"""Benchmark: phantom rendering, truth table and voxel-vs-truth agreement.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_phantom.py [--repeats 3]``. Prints a
Markdown table (CPU seconds = process time, robust on a shared machine; wall seconds too).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from spinemetrics.labels import level_id
from spinemetrics.phantom import make_phantom, random_params

CASES = [
    ("1 mm iso, seg+levels", dict(spacing=(1.0, 1.0, 1.0), with_image=False)),
    ("1 mm iso, seg+levels+T2 image", dict(spacing=(1.0, 1.0, 1.0))),
    ("1 mm iso, rotated (10, -8, 6)°, +image", dict(spacing=(1.0, 1.0, 1.0),
                                                  rotation_deg=(10, -8, 6))),
    ("sagittal 4×0.5×0.5 mm, +image", dict(spacing=(4.0, 0.5, 0.5))),
    ("2 mm iso, seg+levels", dict(spacing=(2.0, 2.0, 2.0), with_image=False)),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"load average: {os.getloadavg()[0]:.1f}")
    print("| case | shape | voxels (M) | CPU s (median) | wall s (median) |")
    print("|---|---|---:|---:|---:|")
    for name, kw in CASES:
        cpu, wall = [], []
        for r in range(args.repeats):
            p = random_params(seed=r)
            t0, c0 = time.perf_counter(), time.process_time()
            ph = make_phantom(p, seed=r, **kw)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - t0)
        n = int(np.prod(ph.seg.shape))
        print(f"| {name} | {'×'.join(map(str, ph.seg.shape))} | {n / 1e6:.1f} | "
              f"{np.median(cpu):.2f} | {np.median(wall):.2f} |")
    # truth table (closed forms + dense sampling)
    cpu = []
    for r in range(args.repeats):
        ph = make_phantom(random_params(seed=r), spacing=(4.0, 4.0, 4.0), with_image=False)
        c0 = time.process_time()
        _ = ph.truth
        cpu.append(time.process_time() - c0)
    print(f"| full truth table ({len(ph.truth)} rows) | – | – | {np.median(cpu):.2f} | – |")

    # voxel volumes vs analytic truth over seeds and grids
    print()
    print("| grid | rotation | n | body vol. err. median / max % | disc vol. err. median / max % |")
    print("|---|---|---:|---:|---:|")
    for sp, rot in [((1, 1, 1), (0, 0, 0)), ((1, 1, 1), (15, -10, 8)), ((4, 0.5, 0.5), (0, 0, 0)),
                    ((4, 0.5, 0.5), (0, 12, 0)), ((2, 2, 2), (-10, 0, 15))]:
        eb, ed = [], []
        for seed in range(args.repeats + 2):
            p = random_params(seed=100 + seed)
            ph = make_phantom(p, spacing=sp, rotation_deg=rot, with_image=False)
            seg, lev = ph.seg.array, ph.levels.array
            cnt = np.bincount(lev[(seg == 1) | (seg == 4)].ravel(), minlength=256)
            vv = ph.seg.voxel_volume_mm3
            for v in p.vertebrae:
                eb.append(cnt[level_id(v)] * vv / ph.truth_value(v, "vertebral_volume_mm3") - 1)
            for d in p.discs:
                ed.append(cnt[level_id(d)] * vv / ph.truth_value(d, "disc_volume_mm3") - 1)
        eb, ed = 100 * np.abs(eb), 100 * np.abs(ed)
        print(f"| {sp} | {rot} | {len(eb)}+{len(ed)} | {np.median(eb):.2f} / {eb.max():.2f} | "
              f"{np.median(ed):.2f} / {ed.max():.2f} |")


if __name__ == "__main__":
    main()
