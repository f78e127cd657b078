"""Held-out evaluation of the segmenter on phantoms it never saw, in contrasts it never saw.

The training images come from ``spinemetrics.segment.synth`` (random-intensity synthesis
from label maps of phantom seeds 0–95 and real maps). Here the test images are rendered by
the phantom package's *own* MR simulator (``spinemetrics.phantom.synthesize_mr``: T1, T2,
STIR tables, its own noise/bias/blur) on new seeds (90 000+), as clinical sagittal stacks
(3–4.5 mm slices, 0.6–0.9 mm in-plane) with random tilt. Dice is computed on the native
grid per structure; level naming is checked per vertebra (majority vote inside each true
vertebral body).

    OMP_NUM_THREADS=2 python benchmarks/eval_segmenter.py --n 6 --out benchmarks/results

It also writes the voxel confusion matrix (rows: truth, columns: prediction, percent of each
true class) so that errors can be read as "which structure took the missing voxels".
``--cache DIR`` keeps the rendered test scans, so comparing weight files re-renders nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from spinemetrics.image import Image
from spinemetrics.labels import Structure
from spinemetrics.phantom import make_phantom, random_params
from spinemetrics.segment import load_model, segment
from spinemetrics.segment.calibrate import clinical_sagittal_geometry

CONTRASTS = ("T2", "T1", "STIR")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else float("nan")


def level_accuracy(
    pred_levels: np.ndarray, truth_levels: np.ndarray, truth_seg: np.ndarray
) -> tuple[int, int]:
    """(correct, total) over true lumbar vertebrae + sacrum, by majority vote in the body."""
    ok = tot = 0
    for vid in (20, 21, 22, 23, 24, 25, 26):
        m = (truth_levels == vid) & np.isin(truth_seg, (Structure.vertebral_body, Structure.sacrum))
        if m.sum() < 50:
            continue
        vals = pred_levels[m]
        vals = vals[vals > 0]
        tot += 1
        if vals.size and np.bincount(vals).argmax() == vid:
            ok += 1
    return ok, tot


def test_scan(seed: int, spacing: tuple, rot: tuple, contrast: str,
              cache: Path | None, slice_profile: bool = False
              ) -> tuple[Image, np.ndarray, np.ndarray]:
    """Render (or load from ``cache``) one held-out scan: image, truth labels, truth levels."""
    tag = "_sp" if slice_profile else ""
    f = (None if cache is None
         else cache / f"{contrast}_{seed}_{spacing[0]}_{spacing[1]:.4f}{tag}.npz")
    if f is not None and f.exists():
        z = np.load(f)
        return Image(z["image"], z["affine"]), z["seg"], z["levels"]
    ph = make_phantom(random_params(seed), spacing=spacing, rotation_deg=rot,
                      contrast=contrast, seed=seed, fov_mm=(70.0, 200.0, 280.0),
                      slice_profile=slice_profile)
    image, seg, lev = ph.image, np.asarray(ph.seg.array), np.asarray(ph.levels.array)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, image=np.asarray(image.array, np.float32), seg=seg,
                            levels=lev, affine=image.affine)
        tmp.replace(f)
    return image, seg, lev


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=6, help="phantoms per contrast")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="folder for the rendered scans")
    ap.add_argument("--slice-profile", action="store_true",
                    help="render each thick slice as the average of 3 sub-slices (through-plane "
                         "partial volume, as real 3-4.5 mm slices have) instead of sampling "
                         "the slice centre")
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="render other scans: seeds 90 000 + offset + 100·contrast + i and "
                         "geometry stream 2024 + offset (0 = the standing test sets; keep "
                         "offset + n ≤ 100 so that contrasts do not share seeds)")
    args = ap.parse_args()
    if args.seed_offset < 0 or args.seed_offset + args.n > 100:
        ap.error("--seed-offset must be ≥ 0 with --seed-offset + --n ≤ 100")
    torch.set_num_threads(args.threads)
    model = load_model("cpu", args.model)
    rng = np.random.default_rng(2024 + args.seed_offset)
    rows = []
    n_cls = len(Structure)
    confusion = np.zeros((n_cls, n_cls), np.int64)
    for ci, contrast in enumerate(CONTRASTS):
        for i in range(args.n):
            seed = 90_000 + args.seed_offset + 100 * ci + i
            spacing, rot = clinical_sagittal_geometry(rng)
            image, truth, truth_levels = test_scan(seed, spacing, rot, contrast, args.cache,
                                                   args.slice_profile)
            t0 = time.perf_counter()
            res = segment(image, device="cpu", model=model)
            dt = time.perf_counter() - t0
            pred = np.asarray(res.seg.array)
            confusion += np.bincount(truth.ravel().astype(np.int64) * n_cls + pred.ravel(),
                                     minlength=n_cls * n_cls).reshape(n_cls, n_cls)
            row = {"seed": seed, "contrast": contrast, "spacing": spacing, "seconds": round(dt, 2)}
            for s in Structure:
                if s == Structure.background:
                    continue
                row[s.name] = dice(pred == s, truth == s)
            ok, tot = level_accuracy(np.asarray(res.levels.array), truth_levels, truth)
            row["levels_correct"], row["levels_total"] = ok, tot
            rows.append(row)
            print(contrast, seed, {k: (round(v, 3) if isinstance(v, float) else v)
                                   for k, v in row.items() if k not in ("contrast", "seed")},
                  flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    names = [s.name for s in Structure if s != Structure.background]
    lines = ["| structure | " + " | ".join(CONTRASTS) + " | all | all: 95 % CI of the mean |",
             "|---|" + "---:|" * (len(CONTRASTS) + 2)]
    boot = np.random.default_rng(0)
    for nm in names:
        cells = []
        for c in (*CONTRASTS, None):
            v = np.array([r[nm] for r in rows if c is None or r["contrast"] == c], float)
            cells.append(f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}")
        # percentile bootstrap over scans: how far the mean could move on other test scans
        v = np.array([r[nm] for r in rows], float)
        v = v[np.isfinite(v)]
        means = v[boot.integers(0, len(v), (2000, len(v)))].mean(1) if len(v) else [np.nan]
        lo, hi = np.percentile(means, [2.5, 97.5])
        cells.append(f"{lo:.3f}–{hi:.3f}")
        lines.append(f"| {nm} | " + " | ".join(cells) + " |")
    ok = sum(r["levels_correct"] for r in rows)
    tot = sum(r["levels_total"] for r in rows)
    lines.append(f"\nLevel naming: {ok}/{tot} vertebrae (L1–L5, S1) named correctly; "
                 f"mean time per scan {np.mean([r['seconds'] for r in rows]):.1f} s.")
    pct = 100.0 * confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    short = ["bg", *[s.name[:6] for s in Structure if s != Structure.background]]
    lines += ["", "Confusion (rows: truth, columns: prediction, % of the true class):", "",
              "| truth \\ pred | " + " | ".join(short) + " |", "|---|" + "---:|" * n_cls]
    for i, r in enumerate(pct):
        lines.append(f"| {short[i]} | " + " | ".join(f"{v:.1f}" for v in r) + " |")
    table = "\n".join(lines)
    print(table)
    (args.out / "eval_segmenter.json").write_text(json.dumps(rows, indent=1))
    (args.out / "eval_segmenter.md").write_text(table + "\n")
    (args.out / "eval_segmenter_confusion.json").write_text(
        json.dumps({"classes": short, "voxels": confusion.tolist()}))


if __name__ == "__main__":
    main()
