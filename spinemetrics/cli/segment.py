"""``spinemetrics segment IMAGE... -o DIR``: CNN segmentation + level labelling."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from spinemetrics.cli._progress import scan_progress, stderr_console


def segment_cmd(
    images: list[Path] = typer.Argument(
        ..., help="Image files (NIfTI, MHA/MHD, NRRD) or DICOM series folders.", show_default=False
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder.", show_default=False),
    device: str = typer.Option("auto", help="Torch device: auto, cpu, cuda, cuda:N, mps."),
    series: str = typer.Option(
        None, help="DICOM SeriesInstanceUID or description when a folder holds several series."
    ),
    model: Path = typer.Option(None, help="Weight file (default: the shipped model)."),
    threads: int = typer.Option(
        0, help="Torch CPU threads (0 = all available cores, less one per worker process)."),
    workers: int = typer.Option(
        -1, help="Processes that read and post-process scans while the network runs "
        "(-1 = auto: up to 8 on a GPU with several scans, else 0 = one scan at a time)."),
    keep_low_cord: bool = typer.Option(
        False, "--keep-low-cord",
        help="Keep cord labels below the L2-L3 disc (default: relabel them thecal sac, as "
        "cauda equina; use this when studying a low-lying conus)."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log details."),
) -> None:
    """Segment 11 lumbar structures and name the levels.

    Writes DIR/<stem>_seg.nii.gz (contract §2 ids) and DIR/<stem>_levels.nii.gz (contract §3
    ids) on the grid and in the orientation of each input. Warnings go to stderr.
    """
    from spinemetrics.cli import fail
    from spinemetrics.segment import available_threads, load_model
    from spinemetrics.segment.batch import segment_files
    from spinemetrics.segment.model import resolve_device

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    console = stderr_console()
    loaded = load_model(device, model)  # fail early (missing weights, no GPU)
    if workers < 0:
        on_gpu = resolve_device(device).type == "cuda"
        workers = min(8, available_threads() - 1) if on_gpu and len(images) > 1 else 0
    failures: list[str] = []
    with scan_progress(console) as progress:
        task = progress.add_task("segment", total=len(images), counts="")
        for outcome in segment_files(images, out, device=device, model=loaded, series=series,
                                     conus_prior=not keep_low_cord, threads=threads or None,
                                     workers=workers):
            progress.update(task, description=f"segment {outcome.path.name}")
            for w in outcome.warnings:
                console.print(f"warning: {w}", highlight=False, markup=False)
            if outcome.error:
                failures.append(f"{outcome.path}: {outcome.error}")
                console.print(f"error: {outcome.path}: {outcome.error}", highlight=False,
                              markup=False)
            progress.advance(task)
    if failures:
        fail(f"{len(failures)} of {len(images)} scan(s) failed; first: {failures[0]}")


def register(app: typer.Typer) -> None:
    app.command("segment")(segment_cmd)
