"""Label scheme of the public contract (CONTRACT.md sections 2 and 3).

* :class:`Structure`: the 11 semantic structures (ids 1–11, 0 = background).
* Level ids (VerSe / TPTBox / SPINEPS convention): vertebrae T1–T12 = 8–19, L1–L6 = 20–25,
  sacrum (S1) = 26, T13 = 28; discs = 100 + id of the vertebra above.
* Level names used in tables: ``"L4"``, ``"L4-L5"``, ``"L5-S1"``, ``"S1"``.
"""

from __future__ import annotations

from enum import IntEnum

from spinemetrics.errors import LevelError

__all__ = [
    "Structure",
    "STRUCTURE_COLORS",
    "VERTEBRA_IDS",
    "SACRUM_ID",
    "DISC_OFFSET",
    "vertebra_name",
    "vertebra_id",
    "disc_id",
    "disc_name",
    "level_name",
    "level_id",
    "is_disc_id",
    "is_vertebra_id",
    "lumbar_order",
    "itksnap_label_description",
]


class Structure(IntEnum):
    """The 11 lumbar structures segmented by spinemetrics (contract section 2)."""

    background = 0
    vertebral_body = 1
    posterior_elements = 2
    sacrum = 3
    intervertebral_disc = 4
    thecal_sac = 5
    spinal_cord = 6
    nerve_root = 7
    epidural_fat = 8
    ligamentum_flavum = 9
    paraspinal_muscle = 10
    vessel = 11

    @property
    def label(self) -> str:
        """Human-readable name for reports ("vertebral body")."""
        return self.name.replace("_", " ")


#: Dural sac = thecal sac ∪ spinal cord (canal measures use this union).
DURAL_SAC = (Structure.thecal_sac, Structure.spinal_cord)

#: RGB colours (0–255) per structure, chosen to be distinguishable and colour-blind aware.
STRUCTURE_COLORS: dict[Structure, tuple[int, int, int]] = {
    Structure.background: (0, 0, 0),
    Structure.vertebral_body: (230, 159, 0),
    Structure.posterior_elements: (240, 228, 66),
    Structure.sacrum: (213, 94, 0),
    Structure.intervertebral_disc: (86, 180, 233),
    Structure.thecal_sac: (0, 114, 178),
    Structure.spinal_cord: (204, 121, 167),
    Structure.nerve_root: (0, 158, 115),
    Structure.epidural_fat: (255, 255, 153),
    Structure.ligamentum_flavum: (153, 102, 255),
    Structure.paraspinal_muscle: (200, 60, 60),
    Structure.vessel: (150, 0, 0),
}

DISC_OFFSET = 100
SACRUM_ID = 26
T13_ID = 28

_VERTEBRA_NAMES: dict[int, str] = {}
for _n in range(1, 8):
    _VERTEBRA_NAMES[_n] = f"C{_n}"
for _n in range(1, 13):
    _VERTEBRA_NAMES[7 + _n] = f"T{_n}"
for _n in range(1, 7):
    _VERTEBRA_NAMES[19 + _n] = f"L{_n}"
_VERTEBRA_NAMES[SACRUM_ID] = "S1"
_VERTEBRA_NAMES[T13_ID] = "T13"
_NAME_TO_VERTEBRA = {v: k for k, v in _VERTEBRA_NAMES.items()}

#: Vertebra ids in cranio-caudal order (T13 sits between T12 and L1).
VERTEBRA_IDS: tuple[int, ...] = tuple(
    list(range(1, 20)) + [T13_ID] + list(range(20, 26)) + [SACRUM_ID]
)


def is_vertebra_id(label_id: int) -> bool:
    return int(label_id) in _VERTEBRA_NAMES


def is_disc_id(label_id: int) -> bool:
    return int(label_id) > DISC_OFFSET and (int(label_id) - DISC_OFFSET) in _VERTEBRA_NAMES and (
        int(label_id) - DISC_OFFSET
    ) != SACRUM_ID


def vertebra_name(label_id: int) -> str:
    """``22`` → ``"L3"``; ``26`` → ``"S1"``."""
    try:
        return _VERTEBRA_NAMES[int(label_id)]
    except KeyError:
        raise LevelError(
            f"unknown vertebra id {label_id}; valid ids are 1-25, 26 (S1) and 28 (T13)"
        ) from None


def vertebra_id(name: str) -> int:
    """``"L3"`` → ``22``."""
    key = str(name).strip().upper()
    try:
        return _NAME_TO_VERTEBRA[key]
    except KeyError:
        raise LevelError(
            f"unknown vertebra level {name!r}; use names like 'T12', 'L1'…'L6', 'S1'"
        ) from None


def _next_below(vid: int) -> int:
    order = list(VERTEBRA_IDS)
    return order[order.index(vid) + 1]


def disc_id(upper: int | str) -> int:
    """Disc id from the vertebra above (id or name): ``"L4"`` → ``123``."""
    vid = vertebra_id(upper) if isinstance(upper, str) else int(upper)
    if vid == SACRUM_ID or vid not in _VERTEBRA_NAMES:
        raise LevelError(f"no disc below vertebra {upper!r}; the sacrum has no disc below it")
    return DISC_OFFSET + vid


def disc_name(label_id: int, lower: int | None = None) -> str:
    """``123`` → ``"L4-L5"``; ``124`` → ``"L5-S1"`` (L6/T13 handled via ``lower``)."""
    upper = int(label_id) - DISC_OFFSET
    if upper not in _VERTEBRA_NAMES or upper == SACRUM_ID:
        raise LevelError(f"unknown disc id {label_id}; disc ids are 100 + the vertebra above")
    if lower is None:
        lower = _next_below(upper)
        # In a standard 5-lumbar spine, L5's neighbour below is the sacrum, not L6.
        if upper == 24:
            lower = SACRUM_ID
        if upper == 19:
            lower = 20
    return f"{vertebra_name(upper)}-{vertebra_name(lower)}"


def level_name(label_id: int) -> str:
    """Name of any level id (vertebra or disc)."""
    if is_disc_id(label_id):
        return disc_name(label_id)
    return vertebra_name(label_id)


def level_id(name: str) -> int:
    """Inverse of :func:`level_name`: ``"L4-L5"`` → ``123``, ``"L4"`` → ``23``."""
    text = str(name).strip().upper()
    if "-" in text:
        upper, _, lower = text.partition("-")
        uid = vertebra_id(upper)
        vertebra_id(lower)  # validates
        return disc_id(uid)
    return vertebra_id(text)


def lumbar_order(names: list[str] | tuple[str, ...]) -> list[str]:
    """Sort level names cranio-caudally (vertebrae and discs interleaved)."""

    def key(name: str) -> float:
        text = name.upper()
        if "-" in text:
            up = VERTEBRA_IDS.index(vertebra_id(text.split("-")[0]))
            return up + 0.5
        return float(VERTEBRA_IDS.index(vertebra_id(text)))

    return sorted(names, key=key)


def itksnap_label_description() -> str:
    """ITK-SNAP label description file (load via Segmentation → Import Label Descriptions)."""
    lines = ["# ITK-SNAP Label Description File", "# IDX  -R-  -G-  -B-  -A--  VIS MSH  LABEL"]
    for s in Structure:
        r, g, b = STRUCTURE_COLORS[s]
        alpha = 0 if s == Structure.background else 1
        lines.append(f'{int(s):5d} {r:5d} {g:4d} {b:4d} {alpha:8d} {1:2d} {1:2d}    "{s.name}"')
    return "\n".join(lines) + "\n"
