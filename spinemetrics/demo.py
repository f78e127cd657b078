"""The whole pipeline on shipped data, offline: ``spinemetrics demo -o DIR``.

Steps (each one timed; a step whose module is unavailable is recorded as skipped and the
others still run):

1. ``subject`` — :func:`spinemetrics.pipeline.analyze` on the shipped real T2 sagittal
   lumbar scan (``spinemetrics/data/t2_lumbar.nii.gz``, MIT, Spinal Cord Toolbox tutorial
   data): segmentation, level map, measurement table and HTML subject report.
2. ``cohort`` — a simulated cohort of 500 subjects (:func:`spinemetrics.stats.simulate_cohort`)
   with covariates, stored as Parquet.
3. ``stats`` — cohort statistics (:func:`spinemetrics.stats.run_stats`): inter-level
   correlations, GEE/mixed models, and the cohort dashboard.
4. ``index`` — ``DIR/index.html`` linking everything.
"""

from __future__ import annotations

import html
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from spinemetrics.atomic import atomic_path, atomic_write_text
from spinemetrics.errors import SpinemetricsError

__all__ = ["DemoResult", "DEMO_STEPS", "run_demo", "sample_scan"]

log = logging.getLogger(__name__)

DEMO_STEPS = ("subject", "cohort", "stats", "index")
SAMPLE_NAME = "t2_lumbar.nii.gz"


@dataclass
class DemoResult:
    """Outcome of :func:`run_demo`: per-step status/time and the files to open."""

    out_dir: Path
    status: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(v == "ok" for v in self.status.values())


def sample_scan() -> Path:
    """Path of the shipped sample scan (real T2 sagittal thoraco-lumbar MRI, MIT licence)."""
    path = Path(str(resources.files("spinemetrics") / "data" / SAMPLE_NAME))
    if not path.exists():
        raise SpinemetricsError(f"shipped sample {path} is missing; reinstall spinemetrics")
    return path


def _step(name: str, result: DemoResult, fn: Callable[[], Any],
          progress: Callable[[str, str], None] | None) -> Any:
    if progress:
        progress(name, "start")
    t0 = time.perf_counter()
    try:
        value = fn()
    except ImportError as exc:
        result.status[name] = "skipped"
        result.notes.append(f"{name}: skipped ({exc})")
        value = None
    except SpinemetricsError as exc:
        result.status[name] = "failed"
        result.notes.append(f"{name}: {exc}")
        value = None
    except Exception as exc:  # keep the other steps going; the CLI exits non-zero at the end
        log.debug("demo step %s failed", name, exc_info=True)
        result.status[name] = "failed"
        result.notes.append(f"{name}: {type(exc).__name__}: {exc}")
        value = None
    else:
        result.status[name] = "ok"
    result.seconds[name] = round(time.perf_counter() - t0, 2)
    if progress:
        progress(name, result.status[name])
    return value


def _run_stats(table: Any, covariates: Any, out: Path) -> dict[str, Path]:
    from spinemetrics.report import cohort_dashboard
    from spinemetrics.stats import run_stats

    result = run_stats(table, covariates=covariates, out_dir=out, threads=1)
    dash = cohort_dashboard(result, out / "dashboard.html", table=table, covariates=covariates,
                            title="spinemetrics demo: simulated cohort")
    paths = {k: Path(v) for k, v in result.files.items() if k in ("correlations", "models")}
    paths["dashboard"] = Path(dash)
    return paths


def _index_html(result: DemoResult) -> str:
    rows = []
    for name in DEMO_STEPS[:-1]:
        rows.append(f"<tr><td>{name}</td><td>{html.escape(result.status.get(name, '-'))}</td>"
                    f"<td>{result.seconds.get(name, 0):.1f} s</td></tr>")
    first = ("subject report", "cohort dashboard")
    ordered = [k for k in first if k in result.outputs] + [
        k for k in result.outputs if k not in first and k != "index"]
    links = "".join(
        f'<li><a href="{html.escape(str(result.outputs[k].relative_to(result.out_dir)))}">'
        f"{html.escape(k)}</a></li>"
        for k in ordered
        if result.outputs[k].exists() and result.outputs[k].is_relative_to(result.out_dir)
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>spinemetrics demo</title><style>body{font:15px system-ui,sans-serif;"
        "max-width:46rem;margin:2rem auto;padding:0 1rem}td{padding:.2rem .8rem}</style>"
        "</head><body><h1>spinemetrics demo</h1>"
        "<p>Everything below was computed offline from data shipped with the package: one real "
        "T2-weighted sagittal lumbar MRI (Spinal Cord Toolbox tutorial data, MIT licence) and "
        "a <em>simulated</em> cohort of subjects (not real people).</p>"
        f"<h2>Open</h2><ul>{links}</ul><h2>Steps</h2><table>{''.join(rows)}</table>"
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
        + "</body></html>"
    )


def run_demo(
    out_dir: str | Path,
    *,
    n_subjects: int = 500,
    seed: int = 0,
    device: str = "auto",
    progress: Callable[[str, str], None] | None = None,
) -> DemoResult:
    """Run the demo and return what it wrote.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    n_subjects : int
        Size of the simulated cohort.
    seed : int
        Seed of the simulated cohort.
    device : str
        Torch device for the segmentation.
    progress : callable, optional
        ``progress(step, state)`` with state ``start``, ``ok``, ``skipped`` or ``failed``.

    Returns
    -------
    DemoResult
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out_dir=out)

    def subject() -> None:
        from spinemetrics.pipeline import analyze

        src = sample_scan()
        data_dir = out / "data"
        data_dir.mkdir(exist_ok=True)
        for name in (SAMPLE_NAME, "LICENSE.txt", "SOURCE.md"):
            shutil.copyfile(src.parent / name, data_dir / name)
        res = analyze(data_dir / SAMPLE_NAME, out / "subject", subject="sct-t2-lumbar",
                      scan="t2_lumbar", device=device)
        result.outputs.update({f"subject {k}": v for k, v in res.outputs.items()})
        result.notes.extend(f"subject: {w}" for w in res.warnings)

    def cohort() -> tuple[Any, Any]:
        from spinemetrics.stats import simulate_cohort

        table, covariates, _truth = simulate_cohort(n_subjects, seed=seed)
        cdir = out / "cohort"
        with atomic_path(cdir / "measurements.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        with atomic_path(cdir / "covariates.csv") as tmp:
            covariates.to_csv(tmp, index=False)
        result.outputs["cohort measurements"] = cdir / "measurements.parquet"
        result.outputs["cohort covariates"] = cdir / "covariates.csv"
        return table, covariates

    _step("subject", result, subject, progress)
    simulated = _step("cohort", result, cohort, progress)
    if simulated is not None:
        paths = _step("stats", result, lambda: _run_stats(*simulated, out / "cohort"), progress)
        for k, v in (paths or {}).items():
            result.outputs[f"cohort {k}"] = v
    else:
        result.status["stats"] = "skipped"
        result.seconds["stats"] = 0.0

    def index() -> None:
        result.outputs["index"] = out / "index.html"
        atomic_write_text(out / "index.html", _index_html(result))

    _step("index", result, index, progress)
    atomic_write_text(out / "demo_summary.json", json.dumps(
        {"status": result.status, "seconds": result.seconds, "notes": result.notes,
         "outputs": {k: str(v) for k, v in result.outputs.items()}}, indent=2))
    return result
