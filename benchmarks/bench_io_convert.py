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


def _write_study(folder: Path) -> None:
    """Uncompressed MR study: sagittal T2 (15 × 512²), sagittal T1 (15 × 512²), axial T2
    (120 × 256²) — 150 files, like a routine lumbar exam."""
    import numpy as np
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(0)
    specs = [
        ("t2_tse_sag", (0, 1, 0, 0, 0, -1), 512, 15, 4.0),
        ("t1_tse_sag", (0, 1, 0, 0, 0, -1), 512, 15, 4.0),
        ("t2_tse_tra", (1, 0, 0, 0, 1, 0), 256, 120, 3.0),
    ]
    for desc, iop, n, slices, gap in specs:
        uid = generate_uid()
        normal = np.cross(iop[:3], iop[3:])
        for k in range(slices):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = pydicom.Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", generate_uid()
            ds.Modality, ds.SeriesInstanceUID, ds.SeriesDescription = "MR", uid, desc
            ds.ImageOrientationPatient = list(iop)
            ds.ImagePositionPatient = list(map(float, k * gap * normal))
            ds.PixelSpacing, ds.SliceThickness, ds.InstanceNumber = [0.6, 0.6], gap, k + 1
            ds.Rows = ds.Columns = n
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated = ds.BitsStored = 16
            ds.HighBit, ds.PixelRepresentation = 15, 0
            ds.PixelData = rng.integers(0, 1000, (n, n), dtype=np.uint16).tobytes()
            ds.save_as(folder / f"{desc}_{k:03d}.dcm", enforce_file_format=True)


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
    with tempfile.TemporaryDirectory() as tmp:
        _write_study(Path(tmp))
        from spinemetrics.io import list_dicom_series

        t, _ = timed(lambda: list_dicom_series(tmp))
        rows.append(("list series of a 150-file MR study (3 series)", t, ""))
        t, img = timed(lambda: read_image(tmp))
        rows.append(
            (
                "read default series of that study (sag T2 512²×15)",
                t,
                img.meta["series_description"],
            )
        )
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
