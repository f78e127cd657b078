"""``spinemetrics info PATH``: geometry of an image, or the series of a DICOM folder."""

from __future__ import annotations

from pathlib import Path

import typer


def info_cmd(
    path: Path = typer.Argument(
        ..., help="Image file (.nii/.nii.gz/.mha/.mhd/.nrrd) or DICOM folder.", show_default=False
    ),
    series: str = typer.Option(
        None, "--series", help="DICOM: SeriesInstanceUID or part of the SeriesDescription."
    ),
) -> None:
    """Print how spinemetrics reads PATH: shape, voxel size, orientation, modality, warnings.

    For a DICOM folder the series table comes first (UID, description, modality, slices,
    orientation; never patient identifiers), then the series that would be used. Nothing is
    written.
    """
    import logging

    import numpy as np

    from spinemetrics.io import list_dicom_series, read_image

    logging.basicConfig(level=logging.ERROR)  # warnings are echoed below, once

    if path.is_dir():
        table = list_dicom_series(path)
        if len(table):
            typer.echo(table.to_string(index=False))
            typer.echo("")
    img = read_image(path, series=series)
    src_affine = img.source_affine if img.source_affine is not None else img.affine
    src_codes = "".join(_axcodes(src_affine))
    lines = {
        "format": img.meta.get("format"),
        "file shape": img.source_shape,
        "file orientation": src_codes,
        "canonical shape (RAS+)": img.shape,
        "voxel size (mm)": tuple(round(v, 4) for v in img.spacing),
        "dtype": str(img.array.dtype),
        "value range": (float(np.min(img.array)), float(np.max(img.array))),
        "modality": img.meta.get("modality") or "unknown",
        "series": img.meta.get("series_description"),
        "sha256": img.meta.get("input_sha256"),
    }
    for key, value in lines.items():
        if value is not None:
            typer.echo(f"{key:24s}{value}")
    for w in img.meta.get("warnings", []):
        typer.echo(f"warning: {w}", err=True)


def _axcodes(affine) -> tuple[str, ...]:
    import nibabel as nib

    return tuple(nib.aff2axcodes(affine))


def register(app: typer.Typer) -> None:
    app.command("info")(info_cmd)
