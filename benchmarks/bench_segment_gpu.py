"""GPU segmentation timing: one typical sagittal volume (512×512×15), end to end, per stage.

The same phantom volume as ``bench_segment.py`` (T2, 4 × 0.6 × 0.6 mm) is written as NIfTI
and segmented in one process with the model loaded once, as ``spinemetrics segment`` does
for a batch of files: read → segment (network on the GPU; post-processing and level naming
on the CPU) → write. The first volume (CUDA context, kernel selection) is reported apart;
the per-volume figure is the median of the following repeats.

Usage (on a machine with a CUDA GPU)::

    python benchmarks/bench_segment_gpu.py --repeat 7 --json gpu_bench.json

Stages are timed with ``torch.cuda.synchronize()`` at their ends. ``--batch-slices``
compares slice batch sizes of the network pass (the library's default is 4).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

_STUB = """
class _Missing:
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self


def __getattr__(name):
    if name.startswith("__"):  # inspect and importlib probe dunders: be a plain module
        raise AttributeError(name)
    return _Missing()
"""


def _stub_simpleitk(force: bool = False) -> bool:
    """NIfTI is read with nibabel; SimpleITK (MetaImage/NRRD/DICOM) is only imported. On a
    GPU image without it, an inert placeholder module lets the package import (reported);
    it is a file on PYTHONPATH so that the batch's spawned workers find it too."""
    if not force:
        try:
            import SimpleITK  # noqa: F401
            return False
        except ImportError:
            pass
    folder = Path(tempfile.mkdtemp(prefix="sitk_stub_"))
    (folder / "SimpleITK.py").write_text(_STUB)
    sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(folder)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    sys.modules.pop("SimpleITK", None)
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--weights", type=Path, default=None,
                    help="weight file to time (default: the shipped one)")
    ap.add_argument("--batch-slices", default="4,16", help="comma-separated sizes to compare")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--stub-simpleitk", action="store_true",
                    help="use the placeholder even where SimpleITK is installed (to test it)")
    ap.add_argument("--device", default="cuda", help="cuda (cpu only to check the script)")
    ap.add_argument("--batch", type=int, default=0,
                    help="also segment this many copies as one batch (segment_files)")
    ap.add_argument("--workers", default="0,8,14",
                    help="worker processes of the batch runs to compare")
    args = ap.parse_args()
    stubbed = _stub_simpleitk(args.stub_simpleitk)
    t_start = time.perf_counter()
    import torch

    from spinemetrics.io import read_image, write_image
    from spinemetrics.levels import derive_levels
    from spinemetrics.phantom import make_phantom, random_params
    from spinemetrics.segment import inference as inf
    from spinemetrics.segment import load_model, segment

    t_import = time.perf_counter() - t_start
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA GPU: this benchmark is for a GPU machine (CPU: bench_segment.py)")
    dev = torch.device(args.device)

    def sync() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    result: dict = {
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
        "simpleitk_stub": stubbed, "import_s": t_import,
        "weights": str(args.weights) if args.weights else "shipped",
    }
    with tempfile.TemporaryDirectory() as tmp:
        ph = make_phantom(random_params(91_000), spacing=(4.0, 0.6, 0.6), contrast="T2",
                          fov_mm=(60.0, 307.2, 307.2))
        path = Path(tmp) / "bench.nii.gz"
        import nibabel as nib

        nib.save(ph.image.to_nifti(), str(path))
        t0 = time.perf_counter()
        torch.zeros(1, device=dev)
        t1 = sync()
        model = load_model(args.device, args.weights)
        t2 = sync()
        result.update(cuda_init_s=t1 - t0, load_model_s=t2 - t1,
                      traced_network=isinstance(model[0], torch.jit.ScriptModule))

        runs = []
        for r in range(args.repeat + 1):
            a = time.perf_counter()
            img = read_image(path)
            b = sync()
            res = segment(img, device=args.device, model=model)
            c = sync()
            write_image(res.seg, Path(tmp) / "x_seg.nii.gz")
            write_image(res.levels, Path(tmp) / "x_levels.nii.gz")
            d = time.perf_counter()
            runs.append({"read_s": b - a, "segment_s": c - b, "write_s": d - c,
                         "end_to_end_s": d - a})
            print(("first " if r == 0 else "") + json.dumps(runs[-1]), flush=True)
        result["first_volume"] = runs[0]
        warm = runs[1:]
        result["per_volume_median"] = {k: statistics.median(x[k] for x in warm) for k in warm[0]}
        result["per_volume_min_end_to_end_s"] = min(x["end_to_end_s"] for x in warm)
        result["shape"] = list(img.shape)
        result["structures"] = sorted({int(v) for v in res.seg.array.ravel()[::7]})

        # Stage split inside segment(): network pass, post-processing, level naming.
        net, cfg, _ = model
        canon = img if img.orientation == ("R", "A", "S") else img.to_canonical()
        stages: dict = {}
        for bs in (int(s) for s in args.batch_slices.split(",")):
            times = []
            for _ in range(max(3, args.repeat // 2)):
                a = sync()
                lab = inf.predict_probabilities(canon, net, cfg, dev, batch_slices=bs)
                times.append(sync() - a)
            stages[f"network_pass_batch{bs}_s"] = statistics.median(times)
        times_pp, times_lv = [], []
        for _ in range(3):
            a = time.perf_counter()
            post, _notes = inf.postprocess(lab.copy(), canon.voxel_volume_mm3, canon.spacing)
            b = time.perf_counter()
            derive_levels(canon.with_array(post.astype("uint8"), kind="seg"))
            times_pp.append(b - a)
            times_lv.append(time.perf_counter() - b)
        if dev.type == "cuda":
            # the same network on the CPU: the GPU path (resampling, normalisation and
            # network on the device) must give the CPU's class map
            net_cpu, cfg_cpu, _ = load_model("cpu", args.weights)
            lab_cpu = inf.predict_probabilities(canon, net_cpu, cfg_cpu, "cpu")
            result["cpu_gpu_label_agreement"] = float((lab_cpu == lab).mean())
        stages["postprocess_s"] = statistics.median(times_pp)
        stages["derive_levels_s"] = statistics.median(times_lv)
        result["stages"] = stages
        if dev.type == "cuda":
            result["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        if args.batch:
            result["batch"] = _batch(path, Path(tmp), args, model)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


def _batch(path: Path, tmp: Path, args, model) -> list[dict]:
    """Wall time of ``segment_files`` over ``--batch`` copies, per worker count (the
    process pool's start included; 0 workers = one scan at a time in this process)."""
    import shutil

    from spinemetrics.segment.batch import segment_files

    files = []
    for i in range(args.batch):
        f = tmp / f"copy{i:03d}.nii.gz"
        shutil.copy(path, f)
        files.append(f)
    rows = []
    for w in (int(x) for x in args.workers.split(",")):
        n = len(files) if w else min(len(files), 8)  # sequential: fewer scans suffice
        a = time.perf_counter()
        outs = list(segment_files(files[:n], tmp / f"out{w}", device=args.device, model=model,
                                  workers=w))
        wall = time.perf_counter() - a
        rows.append({"workers": w, "scans": n, "failed": sum(o.error is not None for o in outs),
                     "wall_s": wall, "per_scan_s": wall / n})
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
