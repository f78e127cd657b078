"""SPIDER challenge masks (lumbar MRI; van der Graaf et al., Sci Data 11:264, 2024).

Source of the ids: the SPIDER grand-challenge baseline algorithm page (interface
description, https://grand-challenge.org/algorithms/spider-baseline-iis/): "0: background,
1-25: different vertebrae numbered from the bottom (i.e. L5 = 1), 100: spinal canal,
101-125 for partially visible vertebrae, 201-225: different intervertebral discs (also
numbered from the bottom, i.e. L5/S1 = 201)". The sacrum is not segmented in SPIDER.

Levels therefore assume SPIDER's own rule that label 1 is L5 (five lumbar vertebrae);
transitional anatomy is not encoded in SPIDER masks and is flagged in the warnings.
The SPIDER canal covers the dural sac (cauda equina and, higher up, the cord): it goes to
``thecal_sac`` (canal measures use thecal_sac ∪ spinal_cord anyway).
"""

from __future__ import annotations

from spinemetrics.convert._common import VERTEBRA, ConvertResult, Target, convert_flat
from spinemetrics.image import Image
from spinemetrics.labels import VERTEBRA_IDS
from spinemetrics.labels import Structure as S

__all__ = ["TABLE", "convert"]

# Anatomical ids counted up from L5: 24 (L5), 23, …, 20 (L1), 19 (T12), … (no L6/T13).
_UPWARD = [v for v in reversed(VERTEBRA_IDS) if v not in (25, 26, 28)]


def _table() -> dict[int, Target]:
    table: dict[int, Target] = {100: Target(S.thecal_sac, None)}
    for n in range(1, len(_UPWARD) + 1):  # 1–24: L5 … C1 (25 would lie above C1)
        level = _UPWARD[n - 1]
        table[n] = Target(VERTEBRA, level)
        table[100 + n] = Target(VERTEBRA, level)  # partially visible vertebra
        table[200 + n] = Target(S.intervertebral_disc, 100 + level)  # disc below vertebra n
    return table


#: SPIDER id → (structure, contract level id).
TABLE: dict[int, Target] = _table()


def convert(img: Image, instance: Image | None = None) -> ConvertResult:
    result = convert_flat(img, TABLE, "spider", renumber=False)
    present = set(int(i) for i in img.array.ravel()[:: max(1, img.array.size // 2_000_000)])
    partial = sorted(i for i in present if 101 <= i <= 125)
    if partial:
        result.warnings.append(
            f"SPIDER ids {partial} mark vertebrae only partly in the field of view; "
            "measures of those levels are partial"
        )
    result.warnings.append(
        "SPIDER numbers vertebrae from the bottom assuming label 1 = L5; check for "
        "transitional anatomy (L6 / sacralised L5)"
    )
    return result
