"""Multiple-testing control: Benjamini–Hochberg false discovery rate.

Benjamini Y, Hochberg Y. J R Stat Soc B 1995;57:289–300 (MEASURES.md R58). Implemented here
(not imported) so that NaN p-values are skipped instead of poisoning the family; checked
against ``statsmodels.stats.multitest.multipletests(method="fdr_bh")`` in the tests.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fdr_bh"]


def fdr_bh(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values) of one family of tests.

    ``q_(i) = min_{j ≥ i} min(1, m · p_(j) / j)`` over the m finite p-values sorted
    ascending; NaN p-values stay NaN and do not count in m.

    Parameters
    ----------
    p_values : array_like
        p-values in [0, 1]; NaN for tests that could not be done.

    Returns
    -------
    numpy.ndarray
        q-values, same shape and order as the input.
    """
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv, kind="mergesort")
    ranked = pv[order] * m / np.arange(1, m + 1)
    # Step-up: running minimum from the largest p-value down.
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(ranked, 0.0, 1.0)
    q[ok] = out
    return q
