"""Optional static export (PNG, SVG, PDF) of a plotly figure through kaleido + Chromium.

Kaleido ≥ 1 drives a local Chrome/Chromium; on Debian ``apt-get install chromium`` is enough
(the path is taken from ``$BROWSER_PATH``, else ``/usr/bin/chromium``). Install the extra
with ``pip install "spinemetrics[export]"``. Nothing here is needed for the HTML reports.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from spinemetrics.atomic import atomic_path
from spinemetrics.errors import InputError

__all__ = ["export_static", "find_chromium"]

_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg",
            ".webp": "webp"}


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable, or ``None``."""
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).exists():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def export_static(fig: Any, path: str | os.PathLike[str], *, width: int = 1100,
                  height: int | None = None, scale: float = 2.0) -> Path:
    """Write ``fig`` as a static image; the format follows the extension.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        Figure to export.
    path : path-like
        ``.png``, ``.svg``, ``.pdf``, ``.jpg`` or ``.webp`` (written atomically).
    width, height : int
        Size in CSS pixels (height defaults to the figure's own or 700).
    scale : float
        Pixel density for raster formats.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    out = Path(path)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot export to {out.suffix!r}; use one of "
                         f"{', '.join(sorted(_FORMATS))}")
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise InputError("static export needs kaleido; install it with "
                         "pip install 'spinemetrics[export]'") from None
    browser = find_chromium()
    if browser is None:
        raise InputError("static export needs Chromium; install it (apt-get install chromium) "
                         "or set BROWSER_PATH to a Chrome executable")
    os.environ.setdefault("BROWSER_PATH", browser)
    h = height or (fig.layout.height if fig.layout.height else 700)
    with atomic_path(out) as tmp:
        fig.write_image(str(tmp), format=fmt, width=width, height=h, scale=scale)
    return out
