"""Level naming when the field of view ends in the sacrum.

Lumbar sagittal scans often end a little below the lumbosacral disc, so the sacrum in view
is S1 alone or S1 and part of S2. S1 looks like a vertebral body: if the network calls it
"vertebral body" instead of "sacrum", the lowest body is S1, it is named L5, and every name
above shifts by one. This script takes held-out test scans (the phantom renderer of
``eval_segmenter.py``, cached there with ``--cache``), removes everything caudal to a plane
``cut_mm`` below the bottom of the L5-S1 disc (perpendicular to the scanner's S axis), and
checks the names of L1-L5 and S1 (majority vote inside each true body, as in
``eval_segmenter.py``).

    OMP_NUM_THREADS=2 python benchmarks/eval_sacral_cut.py --cache DIR [--model W] \
        [--cuts 8,15,25,40] [--json OUT]

S1 is about 28 mm high (MEASURES.md); a cut 8 mm below the disc leaves a sliver of S1, a
cut at 40 mm leaves S1 and part of S2.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from spinemetrics.image import Image
from spinemetrics.segment import load_model, segment

L5_S1_DISC = 124


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True, help="eval_segmenter.py scan cache")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--cuts", default="8,15,25,40", help="mm below the L5-S1 disc")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("cpu", args.model)
    from eval_segmenter import level_accuracy  # same folder

    cuts = [float(c) for c in args.cuts.split(",")]
    rows = []
    for f in sorted(args.cache.glob("*.npz")):
        z = np.load(f)
        img, seg, lev, aff = z["image"], z["seg"], z["levels"], z["affine"]
        si_axis = int(np.argmax(np.abs(aff[2, :3])))
        step = float(aff[2, si_axis])  # mm of S per voxel along that axis (sign: direction)
        disc = np.argwhere(lev == L5_S1_DISC)
        if len(disc) == 0:
            continue
        s_disc = (aff[:3, :3] @ disc.T + aff[:3, 3:]).T[:, 2].min()  # bottom of the disc
        # S coordinate of every index along si_axis, at the disc's centre in the other axes
        pts = np.repeat(disc.mean(0)[None], img.shape[si_axis], 0)
        pts[:, si_axis] = np.arange(img.shape[si_axis])
        s_idx = (aff[:3, :3] @ pts.T + aff[:3, 3:]).T[:, 2]
        for cut in cuts:
            keep = np.flatnonzero(s_idx >= s_disc - cut)
            lo, hi = int(keep.min()), int(keep.max()) + 1
            sl = [slice(None)] * 3
            sl[si_axis] = slice(lo, hi)
            sl = tuple(sl)
            shift = np.eye(4)
            shift[si_axis, 3] = lo
            crop = Image(img[sl], aff @ shift)
            t0 = time.perf_counter()
            res = segment(crop, model=model)
            ok, tot = level_accuracy(np.asarray(res.levels.array), lev[sl], seg[sl])
            no_sacrum = any("no sacrum" in w for w in res.warnings)
            rows.append({"scan": f.stem, "cut_mm": cut, "correct": ok, "total": tot,
                         "sacrum_found": not no_sacrum,
                         "seconds": round(time.perf_counter() - t0, 2)})
            print(f"{f.stem} cut {cut:4.0f} mm: {ok}/{tot} named, sacrum "
                  f"{'found' if not no_sacrum else 'MISSING'} (step {step:+.2f})", flush=True)
    print("\n| cut below L5-S1 disc | scans all named | vertebrae named | sacrum found |")
    print("|---:|---:|---:|---:|")
    summary = []
    for cut in cuts:
        r = [x for x in rows if x["cut_mm"] == cut]
        n_all = sum(x["correct"] == x["total"] for x in r)
        ok = sum(x["correct"] for x in r)
        tot = sum(x["total"] for x in r)
        found = sum(x["sacrum_found"] for x in r)
        summary.append({"cut_mm": cut, "scans": len(r), "scans_all_named": n_all,
                        "vertebrae_named": ok, "vertebrae": tot, "sacrum_found": found})
        print(f"| {cut:.0f} mm | {n_all}/{len(r)} | {ok}/{tot} | {found}/{len(r)} |")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model or "shipped"),
                                         "summary": summary, "scans": rows}, indent=1))


if __name__ == "__main__":
    main()
