"""Self-contained HTML pages: escaping, safe inline JSON, plotly.js embedded once.

By default every report is one file that opens offline: plotly.js, CSS and the report's own
JS are inlined, images are ``data:`` URIs, and nothing points to a URL. For large batches,
:func:`plotly_script_tag` with a folder writes plotly.js once beside the reports and each
page loads it by a *relative* path — still offline, but about 4.6 MB smaller per page.

All text that comes from data (subject ids, file names, warnings, provenance) goes through
:func:`esc`; JSON embedded in ``<script>`` goes through :func:`script_json` so a string such
as ``"</script>"`` cannot close the script element.
"""

from __future__ import annotations

import html
import json
import math
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["esc", "script_json", "page", "plotly_js", "plotly_script_tag", "plotly_js_for",
           "asset_text", "figure_div", "INLINE", "SHARED_ASSETS_DIR"]

#: ``plotly_js`` value that embeds plotly.js in the page (the default).
INLINE = "inline"
#: Folder, in an output folder, of the shared plotly.js (``report_plotly="shared"``).
SHARED_ASSETS_DIR = "assets"

#: Plotly config: no logo/link to plotly.com, no "edit in chart studio", PNG export stays local.
PLOTLY_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "responsive": True,
    "showLink": False,
    "showSendToCloud": False,
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}


def esc(value: Any) -> str:
    """HTML-escape any value for element text *and* attribute values (quotes included)."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "—"
    return html.escape(str(value), quote=True)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.bool_):
        return bool(obj)
    return str(obj)


def _clean(obj: Any) -> Any:
    # NaN/inf are not JSON; null lets plotly leave gaps.
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def script_json(obj: Any) -> str:
    """JSON text safe to place inside ``<script>``: ``</``, ``<!--`` and U+2028/9 escaped."""
    text = json.dumps(_clean(obj), default=_default, ensure_ascii=False, separators=(",", ":"))
    return safe_script_text(text)


def safe_script_text(text: str) -> str:
    """Escape sequences that would end or confuse a ``<script>`` element (valid JS/JSON)."""
    return (
        text.replace("</", "<\\/")
        .replace("<!--", "<\\!--")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (no CDN, no MathJax)."""
    from plotly.offline import get_plotlyjs

    return safe_script_text(get_plotlyjs())


def plotly_file_name() -> str:
    """Versioned file name of the shared plotly.js bundle, e.g. ``plotly-3.0.1.min.js``."""
    import plotly

    return f"plotly-{plotly.__version__}.min.js"


def plotly_js_for(report_plotly: str, out_dir: str | os.PathLike[str]) -> str:
    """The ``plotly_js`` argument of the report writers for a user's ``"inline"`` /
    ``"shared"`` choice: ``"inline"``, or ``OUT/assets`` (absolute) for ``"shared"``.

    Raises
    ------
    ValueError
        For any other choice.
    """
    if report_plotly == INLINE:
        return INLINE
    if report_plotly != "shared":
        raise ValueError(f"report_plotly must be 'shared' or 'inline', not {report_plotly!r}")
    return str(Path(out_dir).resolve() / SHARED_ASSETS_DIR)


def plotly_script_tag(plotly_js_mode: str | os.PathLike[str], page_path: str | os.PathLike[str]
                      ) -> str | None:
    """The ``plotly_tag`` of :func:`page` for the page at ``page_path``.

    Parameters
    ----------
    plotly_js_mode : str or path-like
        ``"inline"``: ``None`` (the page embeds the bundle). Otherwise a folder (absolute,
        or relative to the page's folder) that holds the shared bundle
        :func:`plotly_file_name`; it is written there (atomically) when missing and the
        returned ``<script>`` refers to it by a relative path, so a folder of reports can be
        moved or zipped as a whole.
    page_path : path-like
        Where the page will be written.
    """
    if str(plotly_js_mode) == INLINE:
        return None
    from spinemetrics.atomic import atomic_write_text

    page_dir = Path(page_path).parent
    folder = Path(plotly_js_mode)
    if not folder.is_absolute():
        folder = page_dir / folder
    target = folder / plotly_file_name()
    if not target.exists():
        from plotly.offline import get_plotlyjs

        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, get_plotlyjs())
    rel = Path(os.path.relpath(target.resolve(), page_dir.resolve())).as_posix()
    return f'<script src="{esc(rel)}"></script>'


def asset_text(name: str) -> str:
    """Text of a file in ``spinemetrics/report/assets``."""
    return resources.files("spinemetrics.report").joinpath("assets", name).read_text("utf-8")


def figure_div(div_id: str, fig: Any, *, height: int | None = None, cls: str = "fig") -> str:
    """A ``<div>`` plus the script that draws plotly figure ``fig`` into it."""
    spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
    # Give the div the figure's height: responsive plotly sizes itself to its container.
    height = height or spec.get("layout", {}).get("height")
    style = f' style="height:{int(height)}px"' if height else ""
    payload = script_json({"data": spec.get("data", []), "layout": spec.get("layout", {})})
    return (
        f'<div id="{esc(div_id)}" class="{esc(cls)}"{style}></div>\n'
        f"<script>(function(){{var f={payload};"
        f"Plotly.newPlot({json.dumps(div_id)},f.data,f.layout,SM_CONFIG);}})();</script>"
    )


def page(title: str, body: str, *, extra_head: str = "", scripts: str = "",
         plotly_tag: str | None = None) -> str:
    """Full HTML document: CSP that forbids any network fetch, inline CSS, plotly.js, body.

    ``plotly_tag`` replaces the inline plotly.js (see :func:`plotly_script_tag`).
    """
    # The CSP is defence in depth: even a bug that injected a URL could not fetch it. A
    # shared plotly.js is allowed from the page's own origin only ('self'; file: for
    # browsers that give local files no origin).
    script_src = "'unsafe-inline' 'unsafe-eval'" if plotly_tag is None else \
        "'self' file: 'unsafe-inline' 'unsafe-eval'"
    csp = (
        f"default-src 'none'; script-src {script_src}; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'"
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{asset_text('report.css')}</style>\n{extra_head}"
        f"{plotly_tag or '<script>' + plotly_js() + '</script>'}\n"
        f"<script>var SM_CONFIG={script_json(PLOTLY_CONFIG)};</script>\n"
        f"</head>\n<body>\n{body}\n{scripts}\n</body>\n</html>\n"
    )
