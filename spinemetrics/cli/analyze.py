"""``spinemetrics analyze IMAGE... -o DIR``: segment + measure + subject report per scan."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from spinemetrics.cli._progress import scan_progress, stderr_console


def analyze_cmd(
    images: list[Path] = typer.Argument(
        ..., help="Image files (NIfTI, MHA/MHD, NRRD) or DICOM series folders.", show_default=False
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder.", show_default=False),
    subject: str = typer.Option(None, help="Subject id (one image only; default: file stem)."),
    scan: str = typer.Option(None, help="Scan id (one image only; default: file stem)."),
    device: str = typer.Option("auto", help="Torch device: auto, cpu, cuda, cuda:1, mps."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write the HTML report."),
    report_plotly: str = typer.Option(
        "inline", help="inline: self-contained report (~5 MB); shared: one plotly.js in "
        "OUT/assets/ loaded by relative path (~0.3 MB per report)."),
    series: str = typer.Option(
        None, help="DICOM SeriesInstanceUID or description when a folder holds several series."
    ),
    segmenter: str = typer.Option(
        None,
        help="cnn (default), sidecar[:DIR] to reuse existing <stem>_seg.nii.gz label maps, "
        "or package.module:function.",
    ),
    age: float = typer.Option(None, help="Age in years, for normative z-scores in the report."),
    sex: str = typer.Option(None, help="Sex (F or M), for normative z-scores in the report."),
    csv: bool = typer.Option(False, "--csv", help="Write the table as CSV instead of Parquet."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log warnings and details."),
) -> None:
    """Segment, measure and report one or more scans.

    Writes <stem>_seg.nii.gz, <stem>_levels.nii.gz (on the input grid),
    <stem>_measurements.parquet, <stem>_report.html and <stem>_provenance.json per scan
    into DIR.
    """
    from spinemetrics.cli import fail
    from spinemetrics.pipeline import AnalysisError, analyze
    from spinemetrics.report._html import plotly_js_for

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if len(images) > 1 and (subject or scan):
        fail("--subject/--scan apply to a single image; use `spinemetrics batch` with a "
             "manifest for many")
    covariates = None
    if age is not None or sex is not None:
        if sex is not None and sex.upper() not in ("F", "M"):
            fail(f"--sex must be F or M, got {sex!r}")
        covariates = {k: v for k, v in (("age", age), ("sex", sex and sex.upper())) if v}
    try:
        plotly_js = plotly_js_for(report_plotly, out)
    except ValueError:
        fail(f"--report-plotly must be shared or inline, got {report_plotly!r}")
    console = stderr_console()
    failures: list[str] = []
    with scan_progress(console) as progress:
        task = progress.add_task("analyze", total=len(images), counts="")
        for image in images:
            progress.update(task, description=f"analyze {image.name}")
            try:
                res = analyze(image, out, subject=subject, scan=scan, device=device,
                              report=report, series=series, segmenter=segmenter,
                              covariates=covariates, table_format="csv" if csv else "parquet",
                              plotly_js=plotly_js,
                              on_stage=lambda st, name=image.name: progress.update(
                                  task, description=f"analyze {name}: {st}"))
            except AnalysisError as exc:
                failures.append(f"{image}: {exc}")
            except KeyboardInterrupt:
                progress.stop()
                fail(f"interrupted while analysing {image}; outputs already written are "
                     "complete", code=130)
            else:
                for w in res.warnings:
                    console.print(f"[yellow]warning[/] {image.name}: {w}")
                for path in res.outputs.values():
                    typer.echo(str(path))
            progress.advance(task)
            progress.update(task, counts=f"{len(failures)} failed" if failures else "")
    if failures:
        for line in failures[:-1]:
            typer.echo(f"error: {line}", err=True)
        fail(failures[-1] if len(images) == 1 else
             f"{len(failures)} of {len(images)} scans failed (last: {failures[-1]})")


def register(app: typer.Typer) -> None:
    app.command("analyze", no_args_is_help=True)(analyze_cmd)
