"""VerSe challenge masks (spine CT; Sekuboyina et al. 2021, Löffler et al. 2020).

Source: VerSe 2020 data description on OSF (https://osf.io/b2wxj/wiki): "1-7: cervical spine
C1-C7, 8-19: thoracic spine T1-T12, 20-25: lumbar spine L1-L6, 26, 27: sacrum, cocygis — not
labeled in this dataset, 28: additional 13th thoracic vertebra, T13". These are the contract's
level ids already; each id is a whole vertebra (split into body / posterior elements here).
"""

from __future__ import annotations

from spinemetrics.convert._common import VERTEBRA, ConvertResult, Target, convert_flat
from spinemetrics.image import Image
from spinemetrics.labels import Structure as S

__all__ = ["TABLE", "convert"]

TABLE: dict[int, Target] = {v: Target(VERTEBRA, v) for v in list(range(1, 26)) + [28]}
TABLE[26] = Target(S.sacrum, 26)
TABLE[27] = Target(S.sacrum, None)  # coccyx


def convert(img: Image, instance: Image | None = None) -> ConvertResult:
    return convert_flat(img, TABLE, "verse", renumber=False)
