"""Timings of image I/O and label conversion on the shared sample data.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_io_convert.py [DATA_DIR]
Prints a Markdown table (median of N runs, wall-clock seconds; output file sizes).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from spinemetrics.convert import convert_labels
from spinemetrics.io import read_image, read_labels, write_image

DATA = (
    Path(sys.argv[1])
    if len(sys.argv) > 1
    else Path(__file__).resolve().parents[2] / "shared" / "data"
)
N = 3


def timed(fn, n=N):
    times = []
    out = None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    rows = []
    pan = DATA / "panoptica_lumbar_labels"
    cases = [
        (
            "read NIfTI labels 512×512×17 (panoptica)",
            lambda: read_labels(pan / "semantic" / "pred.nii.gz"),
        ),
        (
            "read NIfTI T2 38×257×201 (sct)",
            lambda: read_image(DATA / "sct_t2_lumbar" / "t2_lumbar.nii.gz"),
        ),
        (
            "read DICOM CT series 512×512×20",
            lambda: read_image(DATA / "totalseg_ct_dicom" / "series"),
        ),
    ]
    for name, fn in cases:
        t, _ = timed(fn)
        rows.append((name, t, ""))
    seg = read_labels(pan / "semantic" / "pred.nii.gz")
    t2 = read_image(DATA / "sct_t2_lumbar" / "t2_lumbar.nii.gz")
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".nii.gz", ".mha", ".nrrd"):
            p = Path(tmp) / f"seg{suffix}"
            t, _ = timed(lambda p=p: write_image(seg, p))
            rows.append(
                (f"write labels 512×512×17 as {suffix}", t, f"{p.stat().st_size / 1024:.0f} KiB")
            )
            q = Path(tmp) / f"t2{suffix}"
            t, _ = timed(lambda q=q: write_image(t2, q))
            rows.append(
                (f"write T2 38×257×201 as {suffix}", t, f"{q.stat().st_size / 1024:.0f} KiB")
            )
    conv = [
        (
            "convert spineps subregion+instance (panoptica pred)",
            lambda: convert_labels(
                pan / "semantic" / "pred.nii.gz",
                "spineps",
                instance=pan / "matched_instance" / "pred.nii.gz",
            ),
        ),
        (
            "convert spineps instance only, with split (panoptica pred)",
            lambda: convert_labels(pan / "matched_instance" / "pred.nii.gz", "spineps"),
        ),
        (
            "convert tptbox CT subregion+instance 73×47×73",
            lambda: convert_labels(
                DATA / "tptbox_lumbar_ct" / "sub-ct_seg-subreg_label-22_msk.nii.gz",
                "tptbox",
                instance=DATA / "tptbox_lumbar_ct" / "sub-ct_seg-vert_label-22_msk.nii.gz",
            ),
        ),
        (
            "convert totalsegmentator_ct 122×101×30",
            lambda: convert_labels(
                DATA / "totalseg_ct_abdomen" / "example_seg.nii.gz", "totalsegmentator_ct"
            ),
        ),
        (
            "convert totalsegmentator_mr 117×91×20",
            lambda: convert_labels(
                DATA / "totalseg_mr_abdomen" / "example_seg_mr.nii.gz", "totalsegmentator_mr"
            ),
        ),
    ]
    for name, fn in conv:
        t, res = timed(fn)
        rows.append((name, t, f"{len(res.warnings)} warnings"))
    print("| operation | median s | note |")
    print("|---|---:|---|")
    for name, t, note in rows:
        print(f"| {name} | {t:.3f} | {note} |")


if __name__ == "__main__":
    main()
