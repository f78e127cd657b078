"""Command line: ``spinemetrics VERB``. Each verb lives in its own module and holds no logic.

Verb modules define ``register(app)``; add new ones to ``_VERB_MODULES``. Errors derived
from :class:`spinemetrics.errors.SpinemetricsError` (and missing files) are printed as one
line on stderr with exit status 2 — never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="spinemetrics",
    help="Lumbar-spine MRI morphometry: segment, measure, report, analyse cohorts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order = order shown in --help.
_VERB_MODULES = [
    "spinemetrics.cli.demo",
    "spinemetrics.cli.segment",
    "spinemetrics.cli.measure",
    "spinemetrics.cli.analyze",
    "spinemetrics.cli.batch",
    "spinemetrics.cli.stats",
    "spinemetrics.cli.report",
    "spinemetrics.cli.convert",
    "spinemetrics.cli.info",
    "spinemetrics.cli.phantom",
    "spinemetrics.cli.train",
]


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        from spinemetrics import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


def _register() -> None:
    for name in _VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A verb is registered only once its module exists (work in progress elsewhere).
            if exc.name == name:
                continue
            raise
        module.register(app)


_register()


def fail(message: str, code: int = 2) -> None:
    """Print one line on stderr and exit non-zero."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; converts expected errors into one-line messages."""
    from spinemetrics.errors import SpinemetricsError

    try:
        # With standalone_mode=False click *returns* the code of typer.Exit (e.g. from fail()).
        rv = app(args=argv, standalone_mode=False)
    except SpinemetricsError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except FileNotFoundError as exc:
        typer.echo(f"error: file not found: {exc.filename or exc}; check the path", err=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except KeyboardInterrupt:
        typer.echo("error: interrupted; rerun the same command to resume", err=True)
        return 130
    except Exception as exc:  # click usage errors
        usage, abort = _click_error_types()
        if isinstance(exc, usage):
            exc.show()
            return exc.exit_code
        if isinstance(exc, abort):
            typer.echo("error: aborted", err=True)
            return 1
        raise
    return int(rv) if isinstance(rv, int) else 0


def _click_error_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage-error, abort) exception classes of click *and* of the copy of click that
    typer ≥ 0.20 carries inside itself (``typer._click``): typer raises its own, which are
    not click's, and caught as click's they ended in a traceback instead of one line."""
    usage: set[type] = {c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"}
    abort: set[type] = {typer.Abort}
    try:
        import click

        usage.add(click.exceptions.ClickException)
        abort.add(click.exceptions.Abort)
    except ImportError:  # pragma: no cover - typer without a separate click
        pass
    try:
        from typer._click.exceptions import Abort

        abort.add(Abort)
    except ImportError:  # pragma: no cover - typer that uses click itself
        pass
    return tuple(usage), tuple(abort)


if __name__ == "__main__":
    sys.exit(main())
