"""``spinemetrics batch INPUT -o DIR``: many scans on Dask, resumable, with a progress bar."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from spinemetrics.cli._progress import scan_progress, stderr_console


def batch_cmd(
    inputs: list[Path] = typer.Argument(
        ...,
        help="A folder tree of images / DICOM series, a BIDS dataset, a CSV manifest "
        "(subject, scan, path, covariates...) or image paths.",
        show_default=False,
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder.", show_default=False),
    workers: int = typer.Option(
        None, "--workers", "-w",
        help="Local worker processes (1 thread each); default: CPU count; 0 = no Dask.",
    ),
    scheduler: str = typer.Option(
        None, help="Existing Dask scheduler address (tcp://host:8786); see docs/cluster.md."
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="Write per-scan reports."),
    report_plotly: str = typer.Option(
        "shared", help="shared: one plotly.js in OUT/assets/ loaded by every report (~0.3 MB "
        "reports); inline: each report a self-contained ~5 MB file."),
    device: str = typer.Option("cpu", help="Torch device on the workers (cpu, cuda, auto)."),
    segmenter: str = typer.Option(
        None, help="cnn (default), sidecar[:DIR] (existing label maps), or module:function."
    ),
    force: bool = typer.Option(False, "--force", help="Redo scans whose outputs are complete."),
    csv: bool = typer.Option(
        False, "--csv", help="Per-scan tables as CSV (the dataset stays Parquet)."
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log warnings and details."),
) -> None:
    """Analyse many scans in parallel on Dask, resumably.

    Rerun the same command after an interruption to finish the work. Writes
    DIR/scans/<subject>/<scan>/, DIR/measurements.parquet/ (input for `spinemetrics stats`),
    DIR/errors.csv (subject, scan, path, stage, reason) and DIR/scans.csv.
    """
    from spinemetrics.batch import run_batch
    from spinemetrics.cli import fail
    from spinemetrics.report._html import plotly_js_for

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if workers is not None and workers < 0:
        fail("--workers must be 0 or more")
    try:
        plotly_js_for(report_plotly, out)
    except ValueError:
        fail(f"--report-plotly must be shared or inline, got {report_plotly!r}")
    console = stderr_console()
    counts = {"done": 0, "skipped": 0, "failed": 0}
    with scan_progress(console) as progress:
        task = progress.add_task("batch", total=None, counts="")

        def on_start(total: int) -> None:
            progress.update(task, total=total, description=f"batch ({total} scans)")

        def on_event(ev) -> None:  # noqa: ANN001 - BatchEvent
            counts[ev.status] += 1
            if ev.status == "failed" and verbose:
                console.print(f"[red]failed[/] {ev.subject}/{ev.scan}: {ev.stage}: {ev.reason}")
            progress.update(task, completed=ev.completed, counts=(
                f"[green]{counts['done']} done[/] [cyan]{counts['skipped']} skipped[/] "
                f"[red]{counts['failed']} failed[/]"))

        try:
            summary = run_batch(
                inputs if len(inputs) > 1 else inputs[0], out, workers=workers,
                scheduler=scheduler, report=report, device=device, segmenter=segmenter,
                table_format="csv" if csv else "parquet", force=force,
                progress=on_event, on_start=on_start, report_plotly=report_plotly,
            )
        except KeyboardInterrupt:
            progress.stop()
            fail(f"interrupted after {sum(counts.values())} scans; rerun the same command to "
                 "resume (finished scans are kept)", code=130)
    console.print(
        f"{summary.total} scans: {summary.done} analysed, {summary.skipped} already done, "
        f"{summary.failed} failed in {summary.elapsed_s:.1f} s"
    )
    typer.echo(str(summary.measurements))
    typer.echo(str(summary.errors))
    if summary.total and summary.failed == summary.total:
        fail(f"every scan failed; see {summary.errors}")


def register(app: typer.Typer) -> None:
    app.command("batch", no_args_is_help=True)(batch_cmd)
