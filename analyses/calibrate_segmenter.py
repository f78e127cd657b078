"""Fit the segmenter's class-prior correction on held-out synthetic scans and save it.

Renders phantoms with seeds the training (0–95; 0–47 before v1.4) and the test benchmark
(90 000+) never use (80 000+), in the clinical sagittal protocol of
``benchmarks/eval_segmenter.py`` (T2, T1, STIR), collects the network's class probabilities
on a random subsample of voxels, fits one log factor per class
(:func:`spinemetrics.segment.calibrate.fit_class_log_scale`) for the test-time augmentation
the file will be used with (``--tta``, ``--mirror``) and writes a new weight file with
``config["class_log_scale"]`` and the fit recorded in
``meta["calibration"]``. See docs/model.md, *Class-prior calibration*.

    OMP_NUM_THREADS=1 python analyses/calibrate_segmenter.py \\
        --weights runs/seg/best.pt --out spinemetrics/segment/weights/unet2p5d.pt
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import torch

from spinemetrics.labels import Structure
from spinemetrics.phantom import make_phantom, random_params
from spinemetrics.segment.calibrate import (
    clinical_sagittal_geometry,
    fit_class_log_scale,
    scan_log_probabilities,
)
from spinemetrics.segment.model import load_weights, save_weights

CONTRASTS = ("T2", "T1", "STIR")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, required=True, help="weight file to calibrate")
    ap.add_argument("--out", type=Path, required=True, help="calibrated weight file to write")
    ap.add_argument("--n", type=int, default=3, help="scans per contrast")
    ap.add_argument("--seed0", type=int, default=80_000)
    ap.add_argument("--voxel-fraction", type=float, default=0.3,
                    help="random share of each scan's voxels used in the fit")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tta", default="0.9,1.0,1.1",
                    help="in-plane working grids (mm) whose predictions are averaged; stored "
                         "in the weight file as config['tta_inplane_spacings_mm']")
    ap.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=False,
                    help="also average the left-right mirrored context (config['tta_mirror'])")
    ap.add_argument("--min-log-factor", type=float, default=-1.5,
                    help="smallest log factor tried for any class (see --max-log-factor)")
    ap.add_argument("--max-log-factor", type=float, default=1.0,
                    help="largest log factor tried for any class. A prior correction undoes "
                         "the class weights of training (1-4: log factors 0 to -1.4); a "
                         "factor far outside that range bridges a gap between the synthetic "
                         "test renderer and the network instead, and does not transfer to "
                         "real scans: unbounded, v1.4 fitted +2.6 for the spinal cord and "
                         "filled the real T2 canal with cord (docs/model.md)")
    ap.add_argument("--fit-data", type=Path, default=None,
                    help="npz of the pooled probabilities: written after collection, read "
                         "instead of collecting when it exists (refit with other bounds in "
                         "seconds)")
    ap.add_argument("--model-version", default=None,
                    help="version string stored as meta['model_version'] (provenance)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net, cfg, meta = load_weights(args.weights, trainable=True)
    cfg = {**cfg, "tta_inplane_spacings_mm": [float(v) for v in args.tta.split(",")],
           "tta_mirror": bool(args.mirror)}
    t0 = time.perf_counter()
    # The pooled probabilities belong to one weight file under one test-time augmentation.
    weights_sha = hashlib.sha256(args.weights.read_bytes() + repr(
        (cfg["tta_inplane_spacings_mm"], cfg["tta_mirror"], args.n, args.seed0,
         args.voxel_fraction)).encode()).hexdigest()
    if args.fit_data is not None and args.fit_data.exists():
        z = np.load(args.fit_data)
        if str(z["weights_sha256"]) != weights_sha:
            raise SystemExit(f"{args.fit_data} holds probabilities of another weight file or "
                             "set-up; delete it or give another --fit-data path")
        lp, truth, seeds = z["log_probs"], z["truth"], [int(v) for v in z["seeds"]]
        print(f"read {truth.size} voxels from {args.fit_data}")
    else:
        lp, truth, seeds = _collect(args, net, cfg)
        if args.fit_data is not None:
            np.savez(args.fit_data, log_probs=lp, truth=truth, seeds=np.asarray(seeds),
                     weights_sha256=weights_sha)
    grid = np.round(np.arange(args.min_log_factor, args.max_log_factor + 0.001, 0.1), 2)
    log_scale, before, after = fit_class_log_scale(lp, truth, grid=grid)
    _report_and_save(args, net, cfg, meta, truth, seeds, (log_scale, before, after), t0)


def _collect(args, net, cfg) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Render the calibration scans and pool a random share of their voxels."""
    rng = np.random.default_rng(args.seed0)
    log_probs, truths, seeds = [], [], []
    for ci, contrast in enumerate(CONTRASTS):
        for i in range(args.n):
            seed = args.seed0 + 100 * ci + i
            spacing, rot = clinical_sagittal_geometry(rng)
            ph = make_phantom(random_params(seed), spacing=spacing, rotation_deg=rot,
                              contrast=contrast, seed=seed, fov_mm=(70.0, 200.0, 280.0))
            truth = np.asarray(ph.seg.array)
            keep = rng.random(truth.shape) < args.voxel_fraction
            log_probs.append(scan_log_probabilities(ph.image, net, cfg, keep=keep))
            truths.append(truth[keep])
            seeds.append(seed)
            print(f"{contrast} seed {seed}: {keep.sum()} voxels", flush=True)
    return np.concatenate(log_probs, 1), np.concatenate(truths), seeds


def _report_and_save(args, net, cfg, meta, truth, seeds, fit, t0) -> None:
    log_scale, before, after = fit
    names = [s.name for s in Structure if s != Structure.background]
    print("| structure | log factor | Dice before | Dice after |\n|---|---:|---:|---:|")
    for k, nm in enumerate(names):
        print(f"| {nm} | {log_scale[k + 1]:+.1f} | {before[k]:.3f} | {after[k]:.3f} |")
    print(f"| mean | | {np.nanmean(before):.3f} | {np.nanmean(after):.3f} |")
    cfg = {**cfg, "class_log_scale": [round(float(v), 3) for v in log_scale]}
    meta = {**meta, "calibration": {
        "method": "per-class log prior factors, coordinate ascent on pooled mean Dice",
        "log_factor_bounds": [args.min_log_factor, args.max_log_factor],
        "seeds": seeds, "contrasts": list(CONTRASTS), "voxel_fraction": args.voxel_fraction,
        "voxels": int(truth.size), "source_weights": args.weights.name,
        "dice_before": [round(float(v), 4) for v in before],
        "dice_after": [round(float(v), 4) for v in after],
        "minutes": round((time.perf_counter() - t0) / 60, 1)}}
    if args.model_version:
        meta["model_version"] = args.model_version
    save_weights(net, args.out, cfg, meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
