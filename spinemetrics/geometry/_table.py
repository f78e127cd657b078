"""Shared record type and measure-definition table entries for the measure families."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["MeasureInfo", "Record", "qc_text"]


@dataclass(frozen=True)
class MeasureInfo:
    """Unit, one-line definition and citation tag (MEASURES.md section / reference ids)."""

    unit: str
    definition: str
    citation: str
    level_kind: str  # "disc", "vertebra", "disc+vertebra", "L1-S1", "S1"
    sided: bool = False


@dataclass
class Record:
    """One value of the long table before subject/scan columns are attached."""

    level: str
    measure: str
    value: float
    side: str = ""
    qc: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        v = float(self.value) if self.value is not None else math.nan
        self.value = v
        if not math.isfinite(v) and not self.qc:
            self.qc = {"not_measurable"}


def qc_text(reasons: set[str]) -> str:
    """``"ok"`` or the sorted reasons joined by ``;``.

    ``partial_fov`` (cut at any face) governs ``partial_fov_lr`` (cut only at the left/right
    faces), so a record never carries both.
    """
    reasons = {r for r in reasons if r and r != "ok"}
    if "partial_fov" in reasons:
        reasons.discard("partial_fov_lr")
    return ";".join(sorted(reasons)) if reasons else "ok"
