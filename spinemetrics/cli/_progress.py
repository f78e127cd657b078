"""Rich progress bars shared by the long-running verbs (the library itself never prints)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["stderr_console", "scan_progress"]


def stderr_console() -> Console:
    """Progress and notes go to stderr, so stdout stays clean for paths and pipes."""
    return Console(stderr=True)


class _RateColumn(ProgressColumn):
    """Scans per minute over the whole run (steadier than rich's instantaneous speed)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        if not elapsed or not task.completed:
            return Text("– scans/min", style="progress.data.speed")
        return Text(f"{60.0 * task.completed / elapsed:.1f} scans/min", style="progress.data.speed")


def scan_progress(console: Console | None = None) -> Progress:
    """Bar with M/N, status counts (task field ``counts``), rate, elapsed time and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or stderr_console(),
        transient=False,
    )
