"""``spinemetrics report subject|dashboard``: rebuild HTML reports from saved files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

report_app = typer.Typer(
    help="Rebuild HTML reports (subject report, cohort dashboard) from saved files.",
    no_args_is_help=True,
)


def _read_warnings(path: Path | None) -> list[str]:
    if path is None:
        return []
    return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]


@report_app.command("subject", no_args_is_help=True)
def subject_cmd(
    image: Path = typer.Option(..., "--image", help="MRI (NIfTI, MHA/MHD, NRRD or DICOM folder).",
                               show_default=False),
    seg: Path = typer.Option(..., "--seg", help="Semantic label map (contract §2).",
                             show_default=False),
    table: Path = typer.Option(..., "--table", help="Measurement table (.csv or .parquet).",
                               show_default=False),
    out: Path = typer.Option(..., "-o", "--out", help="Output .html file.", show_default=False),
    levels: Path = typer.Option(None, "--levels", help="Level map (contract §3)."),
    zscores: Path = typer.Option(None, "--zscores",
                                 help="Normative z-scores table (level, measure, z, centile)."),
    provenance_file: Path = typer.Option(
        None, "--provenance", help="JSON provenance of the analysis (<stem>_provenance.json)."),
    warnings_file: Path = typer.Option(None, "--warnings",
                                       help="Text file with one QC warning per line."),
    plotly_dir: Path = typer.Option(
        None, "--plotly-dir", help="Folder for one shared plotly.js that the page loads by "
        "relative path (default: embed it; the page is then one ~5 MB file)."),
    subject: str = typer.Option(None, help="Subject id shown in the title."),
    series: str = typer.Option(None, help="DICOM series UID or description."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log details."),
) -> None:
    """Subject report from an image, its label maps and the saved measurement table."""
    from spinemetrics.io import read_image, read_labels, read_table
    from spinemetrics.provenance import provenance
    from spinemetrics.report import subject_report

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    img = read_image(image, series=series, check=False)
    seg_img = read_labels(seg)
    lev_img = read_labels(levels) if levels is not None else None
    tab = read_table(table)
    z = read_table(zscores) if zscores is not None else None
    prov = provenance(image, rebuilt_from=table.name)
    if provenance_file is not None:
        saved = json.loads(provenance_file.read_text("utf-8"))
        if isinstance(saved, dict):
            prov = {**saved, "report_rebuilt_utc": prov["created_utc"]}
    path = subject_report(img, seg_img, lev_img, tab, out, provenance=prov, zscores=z,
                          warnings=_read_warnings(warnings_file), subject=subject,
                          plotly_js=plotly_dir.resolve() if plotly_dir else "inline")
    typer.echo(str(path))


@report_app.command("dashboard", no_args_is_help=True)
def dashboard_cmd(
    stats_dir: Path = typer.Argument(..., help="Output folder of `spinemetrics stats`.",
                                     show_default=False),
    out: Path = typer.Option(..., "-o", "--out", help="Output .html file.", show_default=False),
    table: Path = typer.Option(None, "--table", help="Cohort measurement table (.csv/.parquet)."),
    covariates: Path = typer.Option(None, "--covariates",
                                    help="Covariates (subject, age, sex), .csv or .parquet."),
    sample_cap: int = typer.Option(400, help="Most subjects embedded as individual points."),
    title: str = typer.Option("Cohort dashboard", help="Page title."),
    plotly_dir: Path = typer.Option(
        None, "--plotly-dir", help="Folder for one shared plotly.js that the page loads by "
        "relative path (default: embed it; the page is then one ~5 MB file)."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log details."),
) -> None:
    """Cohort dashboard from saved statistics (correlations.csv, models.csv) and the table."""
    from spinemetrics.cli._progress import stderr_console
    from spinemetrics.report import cohort_dashboard

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    with stderr_console().status("aggregating cohort and writing the dashboard…"):
        path = cohort_dashboard(stats_dir, out, table=table, covariates=covariates,
                                sample_cap=sample_cap, title=title,
                                plotly_js=plotly_dir.resolve() if plotly_dir else "inline")
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
