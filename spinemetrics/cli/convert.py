"""``spinemetrics convert LABELS --from TOOL [--instance FILE] -o OUT``: foreign labels."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd")


def _split_suffix(out: Path) -> tuple[str, str]:
    name = out.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    return name, ".nii.gz"


def levels_path(out: Path) -> Path:
    """``seg.nii.gz`` → ``seg_levels.nii.gz`` (same folder, same format)."""
    stem, suffix = _split_suffix(out)
    return out.with_name(f"{stem}_levels{suffix}")


def convert_cmd(
    labels: Path = typer.Argument(
        ..., help="Label map made by another tool (.nii/.nii.gz/.mha/.nrrd).", show_default=False
    ),
    source: str = typer.Option(
        ...,
        "--from",
        help="Convention of LABELS: spineps, tptbox, spider, totalspineseg, "
        "totalsegmentator_ct, totalsegmentator_mr, verse.",
        show_default=False,
    ),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Output semantic map (.nii.gz, .nii, .mha, .nrrd).",
        show_default=False,
    ),
    instance: Path = typer.Option(
        None, "--instance",
        help="SPINEPS/TPTBox instance map (seg-vert) on the same grid: gives the level map.",
    ),
    label_description: bool = typer.Option(
        False, "--itksnap",
        help="Also write ITK-SNAP label descriptions (<stem>_labels.txt, "
        "<stem>_levels_labels.txt).",
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log details."),
) -> None:
    """Convert another tool's labels to spinemetrics' 11 structures and level ids.

    Writes OUT (contract §2 semantic map) and, when the source names vertebrae/discs, the level
    map <OUT stem>_levels<ext> (contract §3: vertebrae 20 = L1 … 24 = L5, 26 = sacrum, discs
    100 + the vertebra above). Both lie on the input's grid and orientation, so they overlay
    LABELS in any viewer. Warnings (dropped classes, renumbered levels, fixed swaps) go to
    stderr. Nothing is written when the input cannot be converted.
    """
    import numpy as np

    from spinemetrics.atomic import atomic_write_text
    from spinemetrics.cli import fail
    from spinemetrics.convert import convert_labels
    from spinemetrics.io import write_image
    from spinemetrics.io.itksnap import level_label_description
    from spinemetrics.labels import itksnap_label_description

    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not out.name.lower().endswith(_SUFFIXES):
        fail(f"output {out.name}: use a .nii.gz, .nii, .mha or .nrrd file name")
    result = convert_labels(labels, source, instance=instance)
    for w in result.warnings:
        typer.echo(f"warning: {w}", err=True)
    if result.seg is None and result.levels is None:
        fail(f"{labels.name} holds no spine structure of the {source} convention; nothing written")
    written = []
    if result.seg is not None:
        written.append(write_image(result.seg, out, labels=True))
    if result.levels is not None:
        written.append(write_image(result.levels, levels_path(out), labels=True))
    if label_description:
        stem = _split_suffix(out)[0]
        if result.seg is not None:
            txt = out.with_name(f"{stem}_labels.txt")
            written.append(atomic_write_text(txt, itksnap_label_description()))
        if result.levels is not None:
            present = np.flatnonzero(np.bincount(np.asarray(result.levels.array).ravel()))
            txt = out.with_name(f"{stem}_levels_labels.txt")
            written.append(atomic_write_text(txt, level_label_description(present)))
    for path in written:
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_cmd)
