"""File input/output: images (NIfTI, MetaImage, NRRD, DICOM) and tables (CSV, Parquet).

Public API::

    read_image(path, series=None)        -> Image (canonical RAS+)
    read_labels(path, allowed=None)      -> Image (integer label map)
    write_image(img, path, reference=None)   # back on the input's own grid, atomic
    list_dicom_series(folder)            -> DataFrame (no patient identifiers)
    check_mr_sagittal(img)               -> list[str] warnings
    write_table(df, path) / read_table(path)
"""

from spinemetrics.io.dicom import list_dicom_series
from spinemetrics.io.images import (
    WRITE_FORMATS,
    check_mr_sagittal,
    image_format,
    read_image,
    read_labels,
    write_image,
)
from spinemetrics.io.tables import read_table, write_table

__all__ = [
    "read_image",
    "read_labels",
    "write_image",
    "list_dicom_series",
    "check_mr_sagittal",
    "image_format",
    "write_table",
    "read_table",
    "WRITE_FORMATS",
]
