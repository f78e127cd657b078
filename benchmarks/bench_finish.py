"""CPU time of the stage after the network: post-processing, level naming, conus prior.

On a GPU the network takes ~0.1 s of a 512×512×15 scan and this stage ~0.8 s
(``bench_segment_gpu.py``), so it decides the single-scan latency. The script renders
scans once (the ``bench_segment.py`` volume: phantom T2, 15 × 512 × 512 at 4 × 0.6 × 0.6 mm;
phantom T1 / T2 / STIR clinical stacks; the real T2 lumbar scan of ``../shared/data`` when
present), runs the network once per scan on the CPU, and then times
:func:`~spinemetrics.segment.finish_segmentation` on the raw class maps:

- one thread: process CPU time and wall time, best of ``--repeat``;
- ``--threads 2,4``: wall time with that many threads (the per-structure passes run
  concurrently; scipy's labelling and distance maps release the GIL).

``--scans DIR`` keeps the rendered scans, so that another version of the code (or of
the phantom) times the very same images. It also writes a SHA-256 of every output (label
map, level map, warnings, qc), so two versions can be checked to give identical results::

    python benchmarks/bench_finish.py --scans /tmp/scans --out benchmarks/results/bench_finish.json
    # older code (no threads argument): same script and scans, that commit's package
    PYTHONPATH=<old checkout> python benchmarks/bench_finish.py --scans /tmp/scans --out old.json
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _render():
    from spinemetrics.phantom import make_phantom, random_params
    from spinemetrics.segment.calibrate import clinical_sagittal_geometry

    ph = make_phantom(random_params(91_000), spacing=(4.0, 0.6, 0.6), contrast="T2",
                      fov_mm=(60.0, 307.2, 307.2))
    yield "phantom_T2_512x512x15", ph.image
    rng = np.random.default_rng(5)
    for seed, contrast in ((92_000, "T1"), (92_001, "T2"), (92_002, "STIR")):
        spacing, rot = clinical_sagittal_geometry(rng)
        ph = make_phantom(random_params(seed), spacing=spacing, rotation_deg=rot,
                          contrast=contrast)
        yield f"phantom_{contrast}_{'x'.join(map(str, ph.image.shape))}", ph.image


def _scans(folder: Path):
    """The test scans, rendered once into ``folder`` (NIfTI) and read from there, so that
    runs of different code versions time the same images."""
    from spinemetrics.io import read_image, write_image

    if not any(folder.glob("*.nii.gz")):
        folder.mkdir(parents=True, exist_ok=True)
        for name, img in _render():
            write_image(img, folder / f"{name}.nii.gz")
    for path in sorted(folder.glob("*.nii.gz")):
        yield path.name.removesuffix(".nii.gz"), read_image(path)
    real = SHARED / "sct_t2_lumbar" / "t2_lumbar.nii.gz"
    if real.exists():
        yield "real_T2_lumbar", read_image(real)


def _digest(res) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(res.seg.array).tobytes())
    h.update(np.ascontiguousarray(res.levels.array).tobytes())
    h.update(json.dumps([res.warnings, res.qc], sort_keys=True).encode())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="2", help="comma-separated thread counts to time")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    ap.add_argument("--scans", type=Path, default=None,
                    help="folder for the rendered scans (kept; default a temporary folder)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from spinemetrics.segment import inference
    from spinemetrics.segment.inference import finish_segmentation, predict_labels

    has_threads = "threads" in inspect.signature(finish_segmentation).parameters
    thread_counts = [int(t) for t in args.threads.split(",") if t] if has_threads else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, img in _scans(args.scans or Path(tmp)):
            raw, warnings = predict_labels(img, device="cpu")
            row = {"scan": name, "shape": list(img.shape)}
            cpu, wall = [], []
            for _ in range(args.repeat):
                c0, w0 = time.process_time(), time.perf_counter()
                res = finish_segmentation(raw, list(warnings))
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            row.update(cpu_s=min(cpu), wall_s=min(wall), digest=_digest(res))
            labels = np.asarray(raw.array)
            c0 = time.process_time()
            pp, _ = inference.postprocess(labels, raw.voxel_volume_mm3, raw.spacing)
            row["postprocess_cpu_s"] = time.process_time() - c0
            for n in thread_counts:
                times = []
                for _ in range(args.repeat):
                    w0 = time.perf_counter()
                    res_n = finish_segmentation(raw, list(warnings), threads=n)
                    times.append(time.perf_counter() - w0)
                row[f"wall_s_threads{n}"] = min(times)
                row[f"digest_threads{n}"] = _digest(res_n)
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "threads_argument": has_threads,
        "total_cpu_s": sum(r["cpu_s"] for r in rows),
        "total_wall_s": sum(r["wall_s"] for r in rows),
        "scans": rows,
    }
    for n in thread_counts:
        summary[f"total_wall_s_threads{n}"] = sum(r[f"wall_s_threads{n}"] for r in rows)
    print(json.dumps({k: v for k, v in summary.items() if k != "scans"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = args.out.with_suffix(".tmp")
        tmp_out.write_text(json.dumps(summary, indent=1))
        tmp_out.replace(args.out)


if __name__ == "__main__":
    main()
