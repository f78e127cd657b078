"""``spinemetrics stats TABLE [--covariates FILE] -o DIR``: cohort statistics + dashboard."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from spinemetrics.cli._progress import stderr_console


def stats_cmd(
    table: Path = typer.Argument(
        ...,
        help="Measurement table (contract §5): .csv, .parquet or a folder of Parquet files.",
        show_default=False,
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder.", show_default=False),
    covariates: Path = typer.Option(
        None, "--covariates", "-c", help="Covariates: one row per subject (subject, age, sex, …)."
    ),
    ci: str = typer.Option("fisher", help="Correlation CIs: fisher (Bonett–Wright) or bootstrap."),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples (with --ci bootstrap)."),
    permutations: int = typer.Option(
        999, help="Permutations of the adjacent-vs-distant test (0: skip)."
    ),
    no_mixedlm: bool = typer.Option(False, "--no-mixedlm", help="Fit GEE only (faster)."),
    adjust: str = typer.Option(
        "age,sex", help="Comma-separated covariates the models adjust for (e.g. age,sex,bmi)."
    ),
    include_flagged: bool = typer.Option(
        False, "--include-flagged", help="Also analyse rows whose qc is not 'ok'."
    ),
    seed: int = typer.Option(0, help="Seed for bootstrap and permutations."),
    dashboard: bool = typer.Option(
        True, "--dashboard/--no-dashboard", help="Write DIR/dashboard.html."
    ),
    threads: int = typer.Option(2, help="DuckDB threads."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log details."),
) -> None:
    """Cohort statistics: between-level correlations, findings, GEE/mixed models, norms.

    Writes correlations.csv, models.csv, adjacency.csv, prevalence.csv, neighbour_odds.csv,
    findings.csv, norms.csv, zscores_summary.csv, warnings.csv, summary.json and
    dashboard.html into DIR.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from spinemetrics.cli import fail
    from spinemetrics.stats import run_stats

    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if ci not in ("fisher", "bootstrap"):
        fail(f"--ci must be fisher or bootstrap, got {ci!r}")
    if not table.exists():
        fail(f"measurement table not found: {table}; check the TABLE path")
    console = stderr_console()
    methods = ("gee_exchangeable",) if no_mixedlm else ("gee_exchangeable", "mixedlm")
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("stats: reading table", total=None)

        def report(measure: str, i: int, n: int) -> None:
            progress.update(task, description=f"stats: {measure}", completed=i, total=n)

        result = run_stats(
            table,
            covariates,
            out,
            ci=ci,
            n_boot=n_boot,
            n_permutations=permutations,
            methods=methods,
            adjust=tuple(a.strip() for a in adjust.split(",") if a.strip()),
            qc_ok_only=not include_flagged,
            seed=seed,
            threads=threads,
            progress=report,
        )
        if dashboard:
            progress.update(task, description="stats: dashboard")
            _dashboard(result, out, table, covariates, console)
        progress.update(task, description="stats: done")
    n_warn = len(result.warnings)
    console.print(
        f"{result.summary['n_subjects']} subjects, {len(result.summary['measures'])} measures;"
        f" {n_warn} warning(s) in {out / 'warnings.csv'}"
    )
    typer.echo(str(out))


def _dashboard(result, out: Path, table: Path, covariates: Path | None, console) -> None:
    try:
        from spinemetrics.report import cohort_dashboard
    except ImportError:
        console.print("note: spinemetrics.report is not available; dashboard.html not written")
        return
    cohort_dashboard(result, out / "dashboard.html", table=table, covariates=covariates)


def register(app: typer.Typer) -> None:
    app.command("stats")(stats_cmd)
