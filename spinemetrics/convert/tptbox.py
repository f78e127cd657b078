"""SPINEPS / TPTBox convention: subregion map (``seg-spine``) + instance map (``seg-vert``).

Source of the ids (read through the code index):

* Subregions: Hendrik-code/TPTBox ``TPTBox/core/vert_constants.py``, class ``Location``
  (commit 03bc4dfd7b16422b9a4ea7b488df6dd8f81bbfc4; same numbers at 3427a5d0): 40
  Vertebra_Full, 41 Arcus_Vertebrae, 42 Spinosus_Process, 43/44 Costal_Process_Left/Right,
  45/46 Superior_Articular_Left/Right, 47/48 Inferior_Articular_Left/Right,
  49 Vertebra_Corpus_border, 50 Vertebra_Corpus, 51 Dens_axis, 52/53 Vertebral_Body_Endplate_
  Superior/Inferior, 60 Spinal_Cord, 61 Spinal_Canal, 62 Endplate, 63/64 Rib_Left/Right,
  100 Vertebra_Disc; 26 = sacrum in SPINEPS output (Hendrik-code/spineps README "Labels").
* Instances: same file, class ``Vertebra_Instance`` / ``v_idx2name``: 1–7 C1–C7, 8–19
  T1–T12, 28 T13, 20–25 L1–L6, 26 S1 (sacrum), 27 coccyx, 29–33 S2–S6; disc = vertebra + 100,
  endplate = vertebra + 200 (``VERTEBRA_INSTANCE_IVD/ENDPLATE_LABEL_OFFSET``), rib = vertebra
  + 32 (``VERTEBRA_INSTANCE_RIB_LABEL_OFFSET``; T13's rib 53).
* Endplate ids 200 + X are **not** "the endplates of vertebra X": SPINEPS
  (Hendrik-code/spineps ``phase_post.py``, ``add_ivd_ep_vert_label``) gives every endplate
  connected component, like every disc component, the id of the nearest vertebra *above*
  it, so 200 + X holds both endplates bounding disc 100 + X — the inferior endplate of X and
  the superior endplate of the vertebra below. The panoptica maps in
  ``/work/shared/data/panoptica_lumbar_labels`` show exactly that (each 20X has one component
  touching body X and one touching body X + 1). :func:`split_endplates` therefore gives each
  endplate component the level of the body it touches.

In SPINEPS MRI output 49 alone is the whole vertebral body; in TPTBox CT maps 49 is the
cortical shell and 50 the cancellous interior (measured, see the tptbox_lumbar_ct
SOURCE.md) — both go to ``vertebral_body``. Spinal_Canal (CSF space around the cord and the
cauda equina) is the contract's ``thecal_sac``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from spinemetrics.convert._common import (
    VERTEBRA,
    ConvertResult,
    Target,
    anchor_at_sacrum,
    apply_table,
    check_same_grid,
    convert_flat,
    dropped_message,
    fix_cord_canal_swap,
    raise_unknown,
    unknown_ids,
)
from spinemetrics.errors import LabelError
from spinemetrics.image import Image
from spinemetrics.io._shape import label_ids
from spinemetrics.labels import Structure as S

__all__ = ["SUBREGION", "INSTANCE", "convert", "split_endplates"]

#: TPTBox ``Location`` id → contract structure (None = outside the 11 structures).
SUBREGION: dict[int, S | None] = {
    26: S.sacrum,
    40: S.vertebral_body,  # Vertebra_Full (whole vertebra, rare in maps): see note in docs
    41: S.posterior_elements,  # Arcus_Vertebrae
    42: S.posterior_elements,  # Spinosus_Process
    43: S.posterior_elements,  # Costal_Process_Left (transverse process)
    44: S.posterior_elements,  # Costal_Process_Right
    45: S.posterior_elements,  # Superior_Articular_Left
    46: S.posterior_elements,  # Superior_Articular_Right
    47: S.posterior_elements,  # Inferior_Articular_Left
    48: S.posterior_elements,  # Inferior_Articular_Right
    49: S.vertebral_body,  # Vertebra_Corpus_border (whole body in MRI, shell in CT)
    50: S.vertebral_body,  # Vertebra_Corpus (cancellous interior, CT)
    51: S.vertebral_body,  # Dens_axis (part of C2's body)
    52: S.vertebral_body,  # Vertebral_Body_Endplate_Superior
    53: S.vertebral_body,  # Vertebral_Body_Endplate_Inferior
    60: S.spinal_cord,  # Spinal_Cord
    61: S.thecal_sac,  # Spinal_Canal
    62: S.vertebral_body,  # Endplate (contract: bodies include endplates)
    63: None,  # Rib_Left
    64: None,  # Rib_Right
    100: S.intervertebral_disc,  # Vertebra_Disc
}
SUBREGION_NAMES = {63: "Rib_Left", 64: "Rib_Right"}

_RIB_OFFSET = 32  # VERTEBRA_INSTANCE_RIB_LABEL_OFFSET (= 40 - 8)
_VERTS = list(range(1, 26)) + [28]


def _instance_table() -> dict[int, Target]:
    table: dict[int, Target] = {}
    for v in _VERTS:
        table[v] = Target(VERTEBRA, v)
        table[100 + v] = Target(S.intervertebral_disc, 100 + v)
        table[200 + v] = Target(S.vertebral_body, v)  # endplate belongs to its vertebra
    table[26] = Target(S.sacrum, 26)
    table[226] = Target(S.sacrum, 26)
    for s in range(29, 34):  # S2–S6: sacrum, one level
        table[s] = Target(S.sacrum, 26)
    table[27] = Target(S.sacrum, None)  # coccyx: sacrum structure, no level
    for v in range(7, 21):  # ribs of C7–L1 (and T13's at 53) carry no contract structure
        table.setdefault(v + _RIB_OFFSET, Target(None, None))
    table.setdefault(21 + _RIB_OFFSET, Target(None, None))
    return table


#: TPTBox ``Vertebra_Instance`` id → (structure, level id).
INSTANCE: dict[int, Target] = _instance_table()
INSTANCE_NAMES = {v + _RIB_OFFSET: f"rib of vertebra {v}" for v in range(7, 21)}

_SUBREGION_ONLY = {40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 60, 61, 62, 100}


_ENDPLATE_OFFSET = 200
_SACRAL = (26, 29, 30, 31, 32, 33)


def split_endplates(inst: np.ndarray) -> np.ndarray:
    """Relabel SPINEPS endplate components (200 + X) to the vertebra they touch.

    SPINEPS stores both endplates of disc 100 + X as 200 + X (module docstring). Each
    connected component (26-connected) of an endplate id takes ``200 + id`` of the vertebra
    (ids 1–33 except the coccyx) with the most voxels in its one-voxel shell; a sacral
    vertebra counts as the sacrum (226). A component that touches no vertebra keeps its id.

    Parameters
    ----------
    inst : numpy.ndarray
        TPTBox/SPINEPS instance map.

    Returns
    -------
    numpy.ndarray
        A copy with endplate ids moved to the touching vertebra (same dtype).
    """
    inst = np.asarray(inst)
    ep_ids = [int(i) for i in label_ids(inst) if 201 <= i <= 233]
    if not ep_ids:
        return inst
    out = inst.copy()
    full = ndimage.generate_binary_structure(3, 3)
    for e in ep_ids:
        lab, n = ndimage.label(inst == e, structure=full)
        for k, sl in enumerate(ndimage.find_objects(lab), start=1):
            if sl is None:
                continue
            # Grow the box by one voxel so the shell is seen.
            sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
            comp = lab[sl] == k
            shell = ndimage.binary_dilation(comp, structure=full) & ~comp
            near = inst[sl][shell].astype(np.int64)
            near = near[(near >= 1) & (near <= 33) & (near != 27)]
            if not len(near):
                continue
            v = int(np.bincount(near).argmax())
            v = 26 if v in _SACRAL else v
            out[sl][comp] = _ENDPLATE_OFFSET + v
    return out


def looks_like_subregion_map(array: np.ndarray) -> bool:
    """A subregion map holds 41–62 / 100 and no vertebra instance ids (1–25 except 26)."""
    present = set(label_ids(array).tolist())
    has_sub = bool(present & _SUBREGION_ONLY)
    has_inst = any(1 <= i <= 25 or 101 <= i <= 133 or 201 <= i <= 233 for i in present)
    return has_sub and not has_inst


def convert(
    img: Image, instance: Image | None = None, *, source: str = "tptbox", fix_swaps: bool = True
) -> ConvertResult:
    """Subregion map (+ optional instance map) → contract maps; or an instance map alone."""
    arr = np.asarray(img.array)
    if not looks_like_subregion_map(arr):
        if instance is not None:
            raise LabelError(
                f"{Path(str(img.meta.get('source_path', 'LABELS'))).name} looks like an instance "
                "map (vertebra ids), not a subregion map; give the subregion map (seg-spine) "
                "as LABELS and the instance map (seg-vert) with --instance"
            )
        fixed = split_endplates(arr)
        return convert_flat(img if fixed is arr else img.with_array(fixed), INSTANCE, source,
                            INSTANCE_NAMES)
    bad = unknown_ids(arr, set(SUBREGION))
    if bad:
        raise_unknown(img, bad, source)
    warnings: list[str] = []
    if fix_swaps:
        name = Path(str(img.meta.get("source_path", "label map"))).name
        arr, w = fix_cord_canal_swap(arr, 60, 61, name)
        warnings += w
    present = [int(i) for i in label_ids(arr) if i]
    dropped = [i for i in present if SUBREGION[i] is None]
    if dropped:
        warnings.append(dropped_message(img, dropped, SUBREGION_NAMES, source))
    seg = apply_table(arr, {k: int(v) for k, v in SUBREGION.items() if v is not None})
    result = ConvertResult(img.with_array(seg.astype(np.uint8), kind="labels"), None, warnings)
    if instance is None:
        warnings.append(
            "no instance map given (--instance): level labels not produced; they can be "
            "derived from the semantic map"
        )
        return result
    check_same_grid(img, instance)
    inst = np.asarray(instance.array)
    bad = unknown_ids(inst, set(INSTANCE))
    if bad:
        raise_unknown(instance, bad, f"{source} instance")
    inst = split_endplates(inst)
    levels = apply_table(inst, {k: t.level for k, t in INSTANCE.items() if t.level is not None})
    levels, w = anchor_at_sacrum(levels.astype(np.uint8), img.affine)
    warnings += w
    result.levels = img.with_array(levels, kind="levels")
    return result
