"""End-to-end segmentation time and peak memory for a 512 × 512 × 15 sagittal volume.

A phantom T2 stack (15 sagittal slices of 4 mm, 512 × 512 at 0.6 mm) is written to a
temporary NIfTI, then a *fresh* Python process reads it, loads the model, segments,
names the levels and writes both label maps (what ``spinemetrics segment`` does). The
child reports wall time per stage and its peak resident memory (``ru_maxrss``).

    python benchmarks/bench_segment.py --threads 2 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import os
os.environ.setdefault("OMP_NUM_THREADS", sys.argv[3])
import torch
torch.set_num_threads(int(sys.argv[3]))
from spinemetrics.io import read_image, write_image
from spinemetrics.segment import load_model, segment
t_import = time.perf_counter()
img = read_image(sys.argv[1])
t_read = time.perf_counter()
model = load_model("cpu")
t_load = time.perf_counter()
res = segment(img, device="cpu", model=model)
t_seg = time.perf_counter()
write_image(res.seg, sys.argv[2] + "/x_seg.nii.gz")
write_image(res.levels, sys.argv[2] + "/x_levels.nii.gz")
t_write = time.perf_counter()
print(json.dumps({
    "shape": list(img.shape), "import_s": t_import - t0, "read_s": t_read - t_import,
    "load_model_s": t_load - t_read, "segment_s": t_seg - t_load, "write_s": t_write - t_seg,
    "end_to_end_s": t_write - t_import, "total_with_import_s": t_write - t0,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "cpu_s": (lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_SELF)),
    "structures": sorted(set(int(v) for v in res.seg.array.ravel()[::7])),
}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from spinemetrics.phantom import make_phantom, random_params

    with tempfile.TemporaryDirectory() as tmp:
        ph = make_phantom(random_params(91_000), spacing=(4.0, 0.6, 0.6), contrast="T2",
                          fov_mm=(60.0, 307.2, 307.2))
        path = Path(tmp) / "bench.nii.gz"
        import nibabel as nib

        nib.save(ph.image.to_nifti(), str(path))
        results = []
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), tmp, str(args.threads)],
                                 capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(results[-1], flush=True)
    best = min(results, key=lambda r: r["end_to_end_s"])
    median = sorted(r["end_to_end_s"] for r in results)[len(results) // 2]
    print(json.dumps({"threads": args.threads, "best": best, "median_end_to_end_s": median},
                     indent=1))


if __name__ == "__main__":
    main()
