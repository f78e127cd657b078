"""Dice of the shipped CNN on the one real labelled MR image available here.

``/work/shared/data/tptbox_cervical_mri`` is a real T2w MRI crop (C5–C7, 1.5 mm isotropic)
with TPTBox/SPINEPS expert-style labels. It is *cervical* — the model was trained for the
lumbar spine — so this is a stress test of generalisation to real image statistics, not an
estimate of lumbar accuracy. Only structures the reference labels are scored: vertebral
body (body + endplates) and disc; posterior elements are reported for information.

Usage: ``python benchmarks/eval_real_cervical.py [--weights PATH] [--json OUT] [--png OUT]``
(``--png``: mid-sagittal image | reference | prediction, for the model card).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from spinemetrics.convert import convert_labels
from spinemetrics.io import read_image
from spinemetrics.labels import Structure
from spinemetrics.segment import segment

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tptbox_cervical_mri"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else float("nan")


def _picture(img: np.ndarray, truth: np.ndarray, pred: np.ndarray, path: str) -> None:
    from PIL import Image as PILImage

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses"))
    from overlay_real import _gray, _to_display, overlay

    x = int(np.argmax((truth == Structure.vertebral_body).sum((1, 2))))
    gray = _gray(_to_display(img[x]))
    panels = [np.repeat(gray[..., None], 3, -1)] + [
        overlay(gray, _to_display(lab[x]).astype(np.uint8)) for lab in (truth, pred)]
    pic = np.concatenate(panels, 1)
    PILImage.fromarray(pic).resize((pic.shape[1] * 3, pic.shape[0] * 3),
                                   PILImage.NEAREST).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="weight file (default: shipped)")
    ap.add_argument("--json", default=None, help="write the result here")
    ap.add_argument("--png", default=None, help="write a mid-sagittal comparison picture")
    args = ap.parse_args()
    image = read_image(DATA / "sub-mri_label-6_T2w.nii.gz", check=False)
    ref = convert_labels(DATA / "sub-mri_seg-subreg_label-6_msk.nii.gz", "tptbox",
                         instance=DATA / "sub-mri_seg-vert_label-6_msk.nii.gz").seg
    t0 = time.perf_counter()
    res = segment(image, device="cpu", model=args.weights, derive_level_map=False)
    seconds = time.perf_counter() - t0
    pred = np.asarray(res.seg.to_canonical().array)
    truth = np.asarray(ref.to_canonical().array)
    if pred.shape != truth.shape:
        raise SystemExit(f"grids differ: {pred.shape} vs {truth.shape}")
    out = {"image": str(DATA.name), "seconds": round(seconds, 2), "weights": args.weights or
           "shipped"}
    for s in (Structure.vertebral_body, Structure.intervertebral_disc,
              Structure.posterior_elements):
        out[f"dice_{s.name}"] = round(dice(pred == s, truth == s), 3)
    print(json.dumps(out, indent=1))
    if args.png:
        _picture(np.asarray(image.to_canonical().array, np.float32), truth, pred, args.png)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
