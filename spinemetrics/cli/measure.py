"""``spinemetrics measure SEG [--levels LEVELS] -o TABLE``: contract §5 table from label maps."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

_TABLE_SUFFIXES = (".csv", ".parquet")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    for tail in ("_seg", "_labels"):
        if name.endswith(tail):
            name = name[: -len(tail)]
    return name


def measure_cmd(
    seg: Path = typer.Argument(
        ..., help="Semantic label map (contract §2 ids; convert foreign labels first).",
        show_default=False,
    ),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Output table (.csv or .parquet).", show_default=False
    ),
    levels: Path = typer.Option(
        None, "--levels", help="Level map (contract §3) on the same grid; derived when omitted."
    ),
    subject: str = typer.Option(None, "--subject", help="Subject id (default: SEG file stem)."),
    scan: str = typer.Option(None, "--scan", help="Scan id (default: SEG file stem)."),
    levels_out: Path = typer.Option(
        None, "--write-levels", help="Also write the derived level map to this file."
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log details."),
) -> None:
    """Measure every per-level geometry value (discs, bodies, canal, foramina, alignment,
    soft tissue) and write the long table of contract §5.

    Values that cannot be measured are NaN with a reason in the qc column. Level-naming
    warnings (no sacrum in view, 4 or 6 lumbar vertebrae, merged bodies) go to stderr.
    """
    from spinemetrics.cli import fail
    from spinemetrics.geometry import measure
    from spinemetrics.io import read_labels, write_image, write_table
    from spinemetrics.levels import derive_levels
    from spinemetrics.provenance import provenance

    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not out.name.lower().endswith(_TABLE_SUFFIXES):
        fail(f"output {out.name}: use a .csv or .parquet file name")
    seg_img = read_labels(seg, allowed=set(range(12)), convention="spinemetrics (contract §2)")
    lev_img = None
    if levels is not None:
        lev_img = read_labels(levels)
        if lev_img.shape != seg_img.shape:
            fail(f"{levels.name} and {seg.name} have different grids; give matching maps")
    elif levels_out is not None:
        # Written for the user; measure() derives again so the naming heuristics' qc
        # (lstv_suspected, merged bodies) stays in the table.
        write_image(derive_levels(seg_img).levels, levels_out, labels=True)
    stem = _stem(seg)
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(f"measuring {seg.name}", spinner="dots"):
        table = measure(
            seg_img, lev_img, subject=subject or stem, scan=scan or stem,
            provenance=provenance(seg),
        )
    for w in table.attrs.get("warnings", []):
        typer.echo(f"warning: {w}", err=True)
    path = write_table(table, out)
    n_ok = int((table["qc"] == "ok").sum())
    typer.echo(str(path))
    typer.echo(f"{len(table)} values, {n_ok} with qc ok", err=True)


def register(app: typer.Typer) -> None:
    app.command("measure")(measure_cmd)
