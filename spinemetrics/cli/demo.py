"""``spinemetrics demo -o DIR``: the whole pipeline on shipped data, offline."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from spinemetrics.cli._progress import stderr_console

_LABELS = {
    "subject": "segment + measure + report the shipped T2 scan",
    "cohort": "simulate a cohort",
    "stats": "cohort statistics + dashboard",
    "index": "index page",
}


def demo_cmd(
    out: Path = typer.Option(Path("demo_out"), "-o", "--out", help="Output folder."),
    subjects: int = typer.Option(500, "--subjects", min=20, help="Simulated cohort size."),
    seed: int = typer.Option(0, help="Seed of the simulated cohort."),
    device: str = typer.Option("auto", help="Torch device for the segmentation."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log details."),
) -> None:
    """Run everything on data shipped with the package, offline.

    Segments, measures and reports a real T2 sagittal lumbar MRI (Spinal Cord Toolbox
    tutorial data, MIT), simulates a cohort, runs the cohort statistics and builds the
    dashboard. Ends by printing the files to open (start with DIR/index.html).
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from spinemetrics.cli import fail
    from spinemetrics.demo import DEMO_STEPS, run_demo

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    console = stderr_console()
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                  TextColumn("{task.completed}/{task.total} steps"), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("demo", total=len(DEMO_STEPS))

        def on_step(step: str, state: str) -> None:
            if state == "start":
                progress.update(task, description=_LABELS.get(step, step))
            else:
                progress.advance(task)
                colour = {"ok": "green", "skipped": "yellow"}.get(state, "red")
                console.print(f"[{colour}]{state:>7}[/] {_LABELS.get(step, step)}")

        try:
            result = run_demo(out, n_subjects=subjects, seed=seed, device=device,
                              progress=on_step)
        except KeyboardInterrupt:
            progress.stop()
            fail("interrupted; run `spinemetrics demo` again to redo it", code=130)
    for note in result.notes:
        console.print(f"[yellow]note[/] {note}")
    console.print("\nOpen these files in a browser (they work offline):")
    for key in ("index", "subject report", "cohort dashboard"):
        if key in result.outputs:
            typer.echo(f"  {key:20s} {result.outputs[key]}")
    for key, path in result.outputs.items():
        if key not in ("index", "subject report", "cohort dashboard"):
            typer.echo(f"  {key:20s} {path}")
    failed = [s for s, v in result.status.items() if v == "failed"]
    if failed:
        fail(f"demo step(s) failed: {', '.join(failed)}; see the notes above")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
