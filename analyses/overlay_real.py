"""Mid-sagittal overlays of the shipped model on a real scan (for docs/model.md).

    python analyses/overlay_real.py /work/shared/data/sct_t2_lumbar/t2_lumbar.nii.gz \
        --out docs/img/segment_sct_t2

Writes ``<out>_mid.png`` (image | overlay, mid-sagittal slice with level names) and
``<out>_slices.png`` (overlays of five sagittal slices from right to left).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from spinemetrics.io import read_image
from spinemetrics.labels import STRUCTURE_COLORS, level_name
from spinemetrics.segment import segment


def _gray(sl: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(sl, [0.5, 99.5])
    return (np.clip((sl - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def _to_display(a: np.ndarray) -> np.ndarray:
    """Array slice [y (A), z (S)] → display rows = superior at top, anterior to the right."""
    return np.flipud(a.T)


def overlay(gray: np.ndarray, lab: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    pal = np.zeros((256, 3), np.float32)
    for k, v in STRUCTURE_COLORS.items():
        pal[int(k)] = v
    rgb = np.repeat(gray[..., None], 3, -1).astype(np.float32)
    m = lab > 0
    rgb[m] = (1 - alpha) * rgb[m] + alpha * pal[lab[m]]
    return rgb.astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("image", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/img/segment_overlay"))
    ap.add_argument("--scale", type=int, default=2)
    args = ap.parse_args()
    img = read_image(args.image)
    res = segment(img, device="cpu")
    arr = np.asarray(img.array, float)
    seg, lev = np.asarray(res.seg.array), np.asarray(res.levels.array)
    sy, sz = img.spacing[1], img.spacing[2]
    # Mid-sagittal: the slice with most canal (thecal sac + cord) voxels, else the centre.
    canal = np.isin(seg, (5, 6)).sum((1, 2))
    mid = int(np.argmax(canal)) if canal.any() else img.shape[0] // 2

    def panel(i: int, with_names: bool) -> PILImage.Image:
        g = _to_display(_gray(arr[i]))
        lab = _to_display(seg[i])
        both = np.concatenate([np.repeat(g[..., None], 3, -1), overlay(g, lab)], 1)
        im = PILImage.fromarray(both)
        w, h = im.size
        im = im.resize((int(w * args.scale * sy), int(h * args.scale * sz)), PILImage.NEAREST)
        if with_names:
            d = ImageDraw.Draw(im)
            li = _to_display(lev[i])
            bone = _to_display(np.isin(seg[i], (1, 3)))  # name at the body / sacrum centre
            for vid in np.unique(li):
                if vid == 0 or vid >= 100 or not (bone & (li == vid)).any():
                    continue
                r, c = np.argwhere(bone & (li == vid)).mean(0)
                x = (g.shape[1] + c) * args.scale * sy
                y = r * args.scale * sz
                d.text((x + 4, y - 6), level_name(int(vid)), fill=(255, 255, 255))
        return im

    args.out.parent.mkdir(parents=True, exist_ok=True)
    panel(mid, True).save(f"{args.out}_mid.png")
    idx = np.clip(mid + np.array([-12, -6, 0, 6, 12]) // max(1, round(img.spacing[0])), 0,
                  img.shape[0] - 1)
    ims = [panel(int(i), False) for i in idx]
    W = sum(i.size[0] // 2 for i in ims)
    strip = PILImage.new("RGB", (W, ims[0].size[1]))
    x = 0
    for im in ims:  # overlay halves only
        half = im.crop((im.size[0] // 2, 0, im.size[0], im.size[1]))
        strip.paste(half, (x, 0))
        x += half.size[0]
    strip.save(f"{args.out}_slices.png")
    print(f"mid slice {mid}; slices {idx.tolist()}; warnings: {res.warnings}; qc: {res.qc}")
    present = {int(v): int((seg == v).sum()) for v in np.unique(seg)}
    print("voxels per label:", present)
    print("levels:", [level_name(int(v)) for v in np.unique(lev) if v])


if __name__ == "__main__":
    main()
