"""Self-contained HTML pages: escaping, safe inline JSON, plotly.js embedded once.

Every report is one file that opens offline: plotly.js, CSS and the report's own JS are
inlined, images are ``data:`` URIs, and nothing points to a URL. All text that comes from
data (subject ids, file names, warnings, provenance) goes through :func:`esc`; JSON embedded
in ``<script>`` goes through :func:`script_json` so a string such as ``"</script>"`` cannot
close the script element.
"""

from __future__ import annotations

import html
import json
import math
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

__all__ = ["esc", "script_json", "page", "plotly_js", "asset_text", "figure_div"]

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


def page(title: str, body: str, *, extra_head: str = "", scripts: str = "") -> str:
    """Full HTML document: CSP that forbids any network fetch, inline CSS, plotly.js, body."""
    # The CSP is defence in depth: even a bug that injected a URL could not fetch it.
    csp = (
        "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'"
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{asset_text('report.css')}</style>\n{extra_head}"
        f"<script>{plotly_js()}</script>\n"
        f"<script>var SM_CONFIG={script_json(PLOTLY_CONFIG)};</script>\n"
        f"</head>\n<body>\n{body}\n{scripts}\n</body>\n</html>\n"
    )
