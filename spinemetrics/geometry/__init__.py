"""Per-level geometry from label maps: every contract §5 measure, one module per family.

>>> from spinemetrics.geometry import measure, to_wide, MEASURE_UNITS
>>> table = measure(seg, levels, subject="s01", scan="t2")  # doctest: +SKIP
"""

from spinemetrics.geometry.measure import COLUMNS, MEASURE_INFO, MEASURE_UNITS, measure, to_wide

__all__ = ["measure", "to_wide", "MEASURE_UNITS", "MEASURE_INFO", "COLUMNS"]
