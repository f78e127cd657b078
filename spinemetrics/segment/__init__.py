"""Segmentation CNN: 11 lumbar structures from sagittal MR, trained on synthetic images.

>>> from spinemetrics.io import read_image
>>> from spinemetrics.segment import segment
>>> res = segment(read_image("t2.nii.gz"))  # doctest: +SKIP
>>> res.seg, res.levels, res.warnings  # doctest: +SKIP
>>> from spinemetrics.segment import segment_files  # many scans; GPU + CPU workers overlapped
>>> for outcome in segment_files(paths, "out", device="cuda", workers=8):  # doctest: +SKIP
...     print(outcome.path, outcome.error or outcome.outputs)

The model is a compact 2.5D MONAI UNet (three neighbouring sagittal slices in, 12 classes
out) trained only on images synthesised from label maps; see ``docs/model.md``.
"""

from spinemetrics.segment.batch import FileOutcome, segment_files
from spinemetrics.segment.inference import (
    DEFAULT_WEIGHTS,
    SegmentationResult,
    available_threads,
    load_model,
    segment,
)

__all__ = ["segment", "segment_files", "FileOutcome", "load_model", "SegmentationResult",
           "DEFAULT_WEIGHTS", "available_threads"]
