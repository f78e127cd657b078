"""ITK-SNAP label description files for the level map (contract §3).

The semantic map's file comes from :func:`spinemetrics.labels.itksnap_label_description`;
this module adds the equivalent for level maps (``L4``, ``L4-L5`` …), so both open with
names and colours in ITK-SNAP (*Segmentation → Import Label Descriptions*).
"""

from __future__ import annotations

from collections.abc import Iterable

from spinemetrics.labels import DISC_OFFSET, VERTEBRA_IDS, level_name

__all__ = ["level_label_description"]

# Alternating warm colours for vertebrae (neighbours differ), cool for discs.
_VERT_COLOURS = ((230, 159, 0), (213, 94, 0), (240, 228, 66), (204, 121, 167))
_DISC_COLOURS = ((86, 180, 233), (0, 114, 178))


def level_label_description(ids: Iterable[int] | None = None) -> str:
    """ITK-SNAP label description text for level ids (default: every vertebra and disc).

    Parameters
    ----------
    ids : iterable of int, optional
        Level ids to describe (e.g. those present in a map); unknown ids are skipped.

    Returns
    -------
    str
        File content, one line per id.
    """
    all_ids = list(VERTEBRA_IDS) + [DISC_OFFSET + v for v in VERTEBRA_IDS if v != 26]
    wanted = sorted(set(all_ids) if ids is None else {int(i) for i in ids} & set(all_ids))
    lines = ["# ITK-SNAP Label Description File (spinemetrics level map)",
             "# IDX  -R-  -G-  -B-  -A--  VIS MSH  LABEL",
             '    0     0    0    0        0  0  0    "background"']
    for lid in wanted:
        if lid > DISC_OFFSET:
            r, g, b = _DISC_COLOURS[VERTEBRA_IDS.index(lid - DISC_OFFSET) % 2]
        else:
            r, g, b = _VERT_COLOURS[VERTEBRA_IDS.index(lid) % 4]
        lines.append(f'{lid:5d} {r:5d} {g:4d} {b:4d} {1:8d} {1:2d} {1:2d}    "{level_name(lid)}"')
    return "\n".join(lines) + "\n"
