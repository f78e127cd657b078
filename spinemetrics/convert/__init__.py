"""Foreign label conventions → the contract's semantic (§2) and level (§3) maps.

One module per convention, each holding its id table in one place with the source cited:

======================  ==========================================================
``source``              module
======================  ==========================================================
``spineps``, ``tptbox``  :mod:`spinemetrics.convert.tptbox` (subregion + instance)
``spider``              :mod:`spinemetrics.convert.spider`
``totalspineseg``       :mod:`spinemetrics.convert.totalspineseg`
``totalsegmentator_ct`` :mod:`spinemetrics.convert.totalsegmentator` (task ``total``)
``totalsegmentator_mr`` :mod:`spinemetrics.convert.totalsegmentator` (task ``total_mr``)
``verse``               :mod:`spinemetrics.convert.verse`
======================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

from spinemetrics.convert import spider, totalsegmentator, totalspineseg, tptbox, verse
from spinemetrics.convert._common import ConvertResult
from spinemetrics.errors import InputError
from spinemetrics.image import Image

__all__ = ["convert_labels", "ConvertResult", "SOURCES", "KNOWN_IDS", "candidate_sources"]

SOURCES: dict[str, Callable[..., ConvertResult]] = {
    "spineps": partial(tptbox.convert, source="spineps"),
    "tptbox": partial(tptbox.convert, source="tptbox"),
    "spider": spider.convert,
    "totalspineseg": totalspineseg.convert,
    "totalsegmentator_ct": totalsegmentator.convert_ct,
    "totalsegmentator_mr": totalsegmentator.convert_mr,
    "verse": verse.convert,
}


#: Every id each convention defines (from the one table of its module).
KNOWN_IDS: dict[str, frozenset[int]] = {
    "spineps": frozenset(tptbox.SUBREGION) | frozenset(tptbox.INSTANCE),
    "tptbox": frozenset(tptbox.SUBREGION) | frozenset(tptbox.INSTANCE),
    "spider": frozenset(spider.TABLE),
    "totalspineseg": frozenset(totalspineseg.TABLE),
    "totalsegmentator_ct": frozenset(totalsegmentator.CT_TABLE),
    "totalsegmentator_mr": frozenset(totalsegmentator.MR_TABLE),
    "verse": frozenset(verse.TABLE),
}


def candidate_sources(ids) -> list[str]:
    """Conventions that define every non-zero id in ``ids`` (a hint, not a detection:
    small maps often fit several)."""
    present = {int(i) for i in ids if int(i) != 0}
    if not present:
        return []
    return [name for name, known in KNOWN_IDS.items() if present <= known]


def convert_labels(
    img_or_path: Image | str | os.PathLike[str],
    source: str,
    *,
    instance: Image | str | os.PathLike[str] | None = None,
) -> ConvertResult:
    """Convert a label map made by another tool to spinemetrics label maps.

    Parameters
    ----------
    img_or_path : Image or path
        The tool's label map (any format :func:`spinemetrics.io.read_image` reads). For
        SPINEPS/TPTBox this is the subregion map (``seg-spine``) or, alone, the instance map
        (``seg-vert``).
    source : str
        One of ``spineps``, ``tptbox``, ``spider``, ``totalspineseg``,
        ``totalsegmentator_ct``, ``totalsegmentator_mr``, ``verse``.
    instance : Image or path, optional
        SPINEPS/TPTBox instance map on the same grid (gives the level map).

    Returns
    -------
    ConvertResult
        ``seg`` (section 2) and ``levels`` (section 3, when the source has levels), both on
        the input's grid (written back in its orientation by ``write_image``), and warnings.

    Raises
    ------
    LabelError
        Ids that the chosen convention does not define (the message suggests ``--from``).
    """
    from spinemetrics.io import read_labels

    key = str(source).strip().lower().replace("-", "_")
    if key not in SOURCES:
        raise InputError(
            f"unknown label convention {source!r}; choose one of {', '.join(SOURCES)}"
        )
    if instance is not None and key not in ("spineps", "tptbox"):
        raise InputError(
            f"--instance is only used with spineps/tptbox maps; {key} maps carry their levels "
            "in the one label map"
        )
    img = img_or_path if isinstance(img_or_path, Image) else read_labels(img_or_path)
    inst = None
    if instance is not None:
        inst = instance if isinstance(instance, Image) else read_labels(instance)
    return SOURCES[key](img, inst)
