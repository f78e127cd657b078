"""TotalSpineSeg (neuropoly) final ``step2_output`` labels (MRI, whole spine).

Source: neuropoly/totalspineseg ``README.md``, section "List of Classes" (current release;
read through the code index, commit 67f03f6772ca3365580945d26789bf5805512e34): 1 spinal_cord,
2 spinal_canal, 11–17 vertebrae C1–C7, 21–32 T1–T12, 41–45 L1–L5, 50 sacrum, discs 63–67
C2-C3 … C6-C7, 71 C7-T1, 72–82 T1-T2 … T11-T12, 91 T12-L1, 92–95 L1-L2 … L4-L5, 100 L5-S.

Older TotalSpineSeg releases used TotalSegmentator-v1-like ids (18–41 vertebrae, 92
sacrum, 200/201 cord/canal, 202–224 discs); those files are not accepted here (their ids
collide) — rerun the current release. The canal label excludes the cord (both are labelled
in one map), so it maps to ``thecal_sac``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spinemetrics.convert._common import (
    VERTEBRA,
    ConvertResult,
    Target,
    convert_flat,
    fix_cord_canal_swap,
)
from spinemetrics.image import Image
from spinemetrics.labels import Structure as S

__all__ = ["TABLE", "convert"]


def _table() -> dict[int, Target]:
    table: dict[int, Target] = {
        1: Target(S.spinal_cord),
        2: Target(S.thecal_sac),
        50: Target(S.sacrum, 26),
    }
    for n in range(1, 8):  # C1–C7 = 11–17 → contract 1–7
        table[10 + n] = Target(VERTEBRA, n)
    for n in range(1, 13):  # T1–T12 = 21–32 → 8–19
        table[20 + n] = Target(VERTEBRA, 7 + n)
    for n in range(1, 6):  # L1–L5 = 41–45 → 20–24
        table[40 + n] = Target(VERTEBRA, 19 + n)
    # Discs, named by the vertebra above: C2-C3 … C6-C7 = 63–67 → 102–106
    for n in range(2, 7):
        table[61 + n] = Target(S.intervertebral_disc, 100 + n)
    table[71] = Target(S.intervertebral_disc, 107)  # C7-T1
    for n in range(1, 12):  # T1-T2 … T11-T12 = 72–82 → 108–118
        table[71 + n] = Target(S.intervertebral_disc, 107 + n)
    table[91] = Target(S.intervertebral_disc, 119)  # T12-L1
    for n in range(1, 5):  # L1-L2 … L4-L5 = 92–95 → 120–123
        table[91 + n] = Target(S.intervertebral_disc, 119 + n)
    table[100] = Target(S.intervertebral_disc, 124)  # L5-S
    return table


#: TotalSpineSeg id → (structure, contract level id).
TABLE: dict[int, Target] = _table()


def convert(img: Image, instance: Image | None = None) -> ConvertResult:
    name = Path(str(img.meta.get("source_path", "label map"))).name
    arr, fixed = fix_cord_canal_swap(np.asarray(img.array), 1, 2, name)
    result = convert_flat(img.with_array(arr), TABLE, "totalspineseg", renumber=False)
    result.warnings[:0] = fixed
    return result
