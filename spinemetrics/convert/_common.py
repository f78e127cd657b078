"""Machinery shared by the converters: look-up tables, checks, level fixes.

Each convention module only declares its table (``{source id: Target}``) with a citation;
everything that turns a table into contract label maps lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from spinemetrics.convert._split import split_vertebrae
from spinemetrics.errors import ImageGeometryError, LabelError
from spinemetrics.image import Image
from spinemetrics.io._shape import label_ids
from spinemetrics.labels import DISC_OFFSET, SACRUM_ID, VERTEBRA_IDS, Structure, level_name

__all__ = ["Target", "ConvertResult", "convert_flat", "apply_table", "check_same_grid",
           "anchor_at_sacrum", "fix_cord_canal_swap", "VERTEBRA"]

#: Pseudo-structure: a whole vertebra, split into body + posterior elements afterwards.
VERTEBRA = "vertebra"


@dataclass(frozen=True)
class Target:
    """Where one source id goes: a contract structure (or ``VERTEBRA``/None) and a level id."""

    structure: Structure | str | None
    level: int | None = None


@dataclass
class ConvertResult:
    """Output of :func:`spinemetrics.convert.convert_labels`.

    Attributes
    ----------
    seg : Image or None
        Contract section-2 semantic map (uint8), on the input grid.
    levels : Image or None
        Contract section-3 level map (vertebra ids, 100 + id for discs), when the source has
        per-level labels.
    warnings : list of str
        What was dropped, guessed, renumbered or fixed.
    """

    seg: Image | None
    levels: Image | None
    warnings: list[str] = field(default_factory=list)


def _name(img: Image) -> str:
    return Path(str(img.meta.get("source_path", "label map"))).name


def unknown_ids(array: np.ndarray, known: set[int]) -> list[int]:
    present = label_ids(array)
    return sorted(int(i) for i in present if int(i) != 0 and int(i) not in known)


def raise_unknown(img: Image, unknown: list[int], source: str) -> None:
    from spinemetrics.convert import candidate_sources

    shown = ", ".join(str(u) for u in unknown[:12]) + (" …" if len(unknown) > 12 else "")
    fits = [c for c in candidate_sources(label_ids(img.array)) if c != source.split()[0]]
    hint = (
        f"its ids fit --from {' or '.join(fits)}"
        if fits
        else "check --from (spineps, tptbox, spider, totalspineseg, totalsegmentator_ct, "
        "totalsegmentator_mr, verse) or whether this is the instance map (--instance)"
    )
    raise LabelError(
        f"{_name(img)} has label ids {shown} that the {source} convention does not define; "
        f"{hint}"
    )


def lut(table: dict[int, int], max_id: int) -> np.ndarray:
    out = np.zeros(max(max_id, max(table, default=0)) + 1, dtype=np.int32)
    for k, v in table.items():
        out[k] = v
    return out


def apply_table(array: np.ndarray, table: dict[int, int]) -> np.ndarray:
    """Vectorised id remapping; ids absent from ``table`` become 0."""
    arr = np.asarray(array)
    return lut(table, int(arr.max()) if arr.size else 0)[arr]


def check_same_grid(a: Image, b: Image) -> None:
    if a.shape != b.shape or not np.allclose(a.affine, b.affine, atol=1e-2):
        raise ImageGeometryError(
            f"{_name(b)} is not on the grid of {_name(a)} (shape {b.shape} vs {a.shape}); "
            "give the instance map that belongs to this segmentation"
        )


def dropped_message(img: Image, ids: list[int], names: dict[int, str], source: str) -> str:
    listed = ", ".join(f"{i} {names.get(i, '')}".strip() for i in ids[:10])
    more = " …" if len(ids) > 10 else ""
    return (
        f"{_name(img)}: {len(ids)} {source} classes are outside the 11 lumbar structures and "
        f"were left out ({listed}{more})"
    )


# ------------------------------------------------------------------------- level fixes
def _centroid_z(levels: np.ndarray, affine: np.ndarray, ids: list[int]) -> dict[int, float]:
    """World superior coordinate (RAS z, mm) of each id's centroid."""
    idx = np.nonzero(levels)
    lab = levels[idx].astype(np.int64)
    counts = np.bincount(lab)
    means = [np.bincount(lab, weights=ax) / np.maximum(counts, 1) for ax in idx]
    out = {}
    for i in ids:
        com = np.array([m[i] for m in means])
        out[i] = float((affine[:3, :3] @ com + affine[:3, 3])[2])
    return out


def anchor_at_sacrum(levels: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Renumber vertebrae from the sacrum up when their ids cannot be anatomical.

    SPINEPS/TPTBox ids are anatomical (20 = L1 … 24 = L5, 26 = sacrum), but some tools and
    data sets renumber instances 1, 2, 3 … (e.g. the panoptica example maps: 2–8 above
    sacrum 26). If the vertebra directly above the sacrum is not L4, L5 or L6 (23–25), the
    ids are not levels: count up from the sacrum assuming five lumbar vertebrae, and say so.
    Discs (100 + id) follow their vertebra; contract section 3 forbids doing this silently.
    """
    present = [int(i) for i in label_ids(levels) if 0 < i < DISC_OFFSET]
    verts = [i for i in present if i != SACRUM_ID]
    if SACRUM_ID not in present or not verts:
        return levels, []
    zs = _centroid_z(levels, affine, verts + [SACRUM_ID])
    above = [v for v in verts if zs[v] > zs[SACRUM_ID]]
    if not above:
        return levels, []
    order = sorted(above, key=lambda v: zs[v])  # inferior first
    if order[0] in (23, 24, 25):
        return levels, []
    chain = list(VERTEBRA_IDS)
    chain.remove(25)  # no L6 and no T13 assumed: five lumbar, twelve thoracic
    chain.remove(28)
    start = chain.index(24)
    if len(order) > start + 1:
        return levels, [
            "vertebra ids are not anatomical and there are too many vertebrae to count up "
            "from the sacrum; level labels kept as given"
        ]
    new_of = {old: chain[start - n] for n, old in enumerate(order)}
    table = {i: i for i in label_ids(levels).tolist() if i}
    for old, new in new_of.items():
        table[old] = new
        if DISC_OFFSET + old in table:
            table[DISC_OFFSET + old] = DISC_OFFSET + new
    out = apply_table(levels, table).astype(levels.dtype)
    pairs = ", ".join(f"{o}→{level_name(n)}" for o, n in sorted(new_of.items()))
    return out, [
        f"vertebra ids {sorted(new_of)} are not anatomical levels (id {order[0]} sits on the "
        f"sacrum); renumbered from the sacrum assuming 5 lumbar vertebrae: {pairs} — check "
        "for transitional anatomy (L6 / sacralised L5)"
    ]


def fix_cord_canal_swap(
    array: np.ndarray, cord_id: int, canal_id: int, name: str
) -> tuple[np.ndarray, list[str]]:
    """Swap cord/canal ids when the "cord" encloses the "canal" (a known labelling slip).

    The cord lies inside the dural sac, so the ring just outside the cord is mostly canal,
    never the other way round. Measured on the panoptica reference map, whose 60/61 are
    swapped (see /work/shared/data/panoptica_lumbar_labels/SOURCE.md, note 2).
    """
    cord = array == cord_id
    canal = array == canal_id
    if cord.sum() == 0 or canal.sum() == 0:
        return array, []

    def ring_fraction(inner: np.ndarray, outer: np.ndarray) -> float:
        sl = ndi.find_objects(inner.astype(np.uint8))[0]
        pad = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in sl)
        ring = ndi.binary_dilation(inner[pad]) & ~inner[pad]
        return float(outer[pad][ring].mean()) if ring.any() else 0.0

    cord_in_canal = ring_fraction(cord, canal)
    canal_in_cord = ring_fraction(canal, cord)
    if canal_in_cord > cord_in_canal and canal.sum() < cord.sum():
        out = array.copy()
        out[cord] = canal_id
        out[canal] = cord_id
        return out, [
            f"{name}: label {cord_id} (cord) encloses label {canal_id} (canal) — they are "
            f"swapped in this file; swapped back ({canal_in_cord:.0%} of the 'canal' border "
            f"touches 'cord', {cord_in_canal:.0%} the other way)"
        ]
    return array, []


# --------------------------------------------------------------------------- flat tables
def convert_flat(
    img: Image,
    table: dict[int, Target],
    source: str,
    class_names: dict[int, str] | None = None,
    *,
    renumber: bool = True,
) -> ConvertResult:
    """Convert a one-map convention (each id = one structure and maybe one level).

    Whole-vertebra ids (``Target(VERTEBRA, level)``) are split into body and posterior
    elements by :func:`spinemetrics.convert._split.split_vertebrae`, per level when levels
    are known, else per connected component.
    """
    arr = np.asarray(img.array)
    bad = unknown_ids(arr, set(table))
    if bad:
        raise_unknown(img, bad, source)
    warnings: list[str] = []
    present = [int(i) for i in label_ids(arr) if i]
    dropped = [i for i in present if table[i].structure is None]
    if dropped:
        warnings.append(dropped_message(img, dropped, class_names or {}, source))

    sem_table = {i: int(t.structure) for i, t in table.items() if isinstance(t.structure, int)}
    seg = apply_table(arr, sem_table).astype(np.uint8)
    has_levels = any(table[i].level is not None for i in present)
    levels = None
    if has_levels:
        lev_table = {i: t.level for i, t in table.items() if t.level is not None}
        levels = apply_table(arr, lev_table).astype(np.uint8)
        if renumber:
            levels, w = anchor_at_sacrum(levels, img.affine)
            warnings += w

    vert_ids = [i for i in present if table[i].structure == VERTEBRA]
    if vert_ids:
        whole = np.isin(arr, vert_ids)
        if levels is not None and all(table[i].level is not None for i in vert_ids):
            instances = np.where(whole, levels, 0).astype(np.int32)
        else:
            instances, _ = ndi.label(whole)
        sac = seg == int(Structure.thecal_sac)
        canal = sac | (seg == int(Structure.spinal_cord))
        if sac.any():
            body, post, unsplit = split_vertebrae(instances, canal=canal)
        else:  # cord only (TotalSegmentator): weaker cue, used after the foramen
            body, post, unsplit = split_vertebrae(instances, cord=canal if canal.any() else None)
        seg[body] = int(Structure.vertebral_body)
        seg[post] = int(Structure.posterior_elements)
        warnings.append(
            f"{source} labels whole vertebrae; body and posterior elements were separated at "
            "the anterior wall of the vertebral canal (approximate, see docs/labels.md)"
        )
        if unsplit:
            warnings.append(
                f"{len(unsplit)} vertebra(e) without a visible canal were kept whole as "
                "vertebral_body"
            )
    if not seg.any():
        seg_img = None
        warnings.append(f"{_name(img)} holds none of the 11 lumbar structures")
    else:
        seg_img = img.with_array(seg, kind="labels", convention="spinemetrics")
    lev_img = None
    if levels is not None and levels.any():
        lev_img = img.with_array(levels, kind="levels", convention="spinemetrics")
    return ConvertResult(seg=seg_img, levels=lev_img, warnings=warnings)
