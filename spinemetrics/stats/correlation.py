"""Between-level correlations of one measure across subjects (contract §6 ``correlations.csv``).

For each measure and side, the subjects × levels matrix gives a level × level Spearman
matrix (pairwise-complete subjects). Confidence intervals:

* ``fisher`` (default): Fisher z = atanh(ρ) with the Bonett–Wright standard error for
  Spearman, ``SE = sqrt((1 + ρ²/2) / (n − 3))`` (Bonett DG, Wright TA. Psychometrika
  2000;65:23–28), back-transformed with tanh;
* ``bootstrap``: percentile interval of ρ over subject-level resamples (seeded).

p-values are the usual t-approximation (``t = ρ·sqrt((n−2)/(1−ρ²))``, n−2 df), identical to
:func:`scipy.stats.spearmanr`. :func:`adjacency_test` asks whether adjacent levels
correlate more than distant ones, by a subject-level permutation test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats as st

__all__ = [
    "level_position",
    "order_levels",
    "spearman_pair",
    "level_correlations",
    "adjacency_test",
    "CORRELATION_COLUMNS",
]

#: Fixed leading columns of correlations.csv (contract §6); extra columns follow.
CORRELATION_COLUMNS = [
    "measure",
    "level_a",
    "level_b",
    "n",
    "rho",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
]

_VERTEBRAE = ["T11", "T12", "T13", "L1", "L2", "L3", "L4", "L5", "L6", "S1"]


def level_position(name: str) -> float:
    """Cranio-caudal position of a level name: vertebra index, disc = upper index + 0.5.

    ``"L1"`` → 3, ``"L1-L2"`` → 3.5, ``"L5-S1"`` → 7.5; unknown names → NaN. Spans of more
    than one segment (``"L1-S1"``) are NaN: they are not a level of a level series.
    """
    text = str(name).strip().upper()
    if "-" in text:
        up, _, low = text.partition("-")
        if up in _VERTEBRAE and low in _VERTEBRAE:
            i, j = _VERTEBRAE.index(up), _VERTEBRAE.index(low)
            # Discs join consecutive vertebrae (T13/L6 may be skipped when absent).
            if 0 < j - i <= 2:
                return i + 0.5
        return math.nan
    return float(_VERTEBRAE.index(text)) if text in _VERTEBRAE else math.nan


def order_levels(levels) -> list[str]:
    """Sort level names cranial → caudal (unknown names last, alphabetically)."""

    def key(name: str) -> tuple[bool, float, str]:
        pos = level_position(name)
        return (math.isnan(pos), 0.0 if math.isnan(pos) else pos, str(name))

    return sorted(set(levels), key=key)


def _ci_fisher(rho: float, n: int, conf: float) -> tuple[float, float]:
    if n < 4 or not np.isfinite(rho):
        return math.nan, math.nan
    if abs(rho) >= 1.0:
        return rho, rho
    z = math.atanh(rho)
    se = math.sqrt((1.0 + rho**2 / 2.0) / (n - 3))
    crit = st.norm.ppf(0.5 + conf / 2.0)
    return math.tanh(z - crit * se), math.tanh(z + crit * se)


def _p_value(rho: float, n: int) -> float:
    if n < 3 or not np.isfinite(rho):
        return math.nan
    if abs(rho) >= 1.0:
        return 0.0
    t = rho * math.sqrt((n - 2) / (1.0 - rho**2))
    return float(2.0 * st.t.sf(abs(t), n - 2))


def _rank(x: np.ndarray) -> np.ndarray:
    return st.rankdata(x, method="average")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else math.nan


def spearman_pair(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Spearman ρ of the pairwise-complete values of two vectors, and their count."""
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3:
        return math.nan, n
    return _pearson(_rank(x[ok]), _rank(y[ok])), n


def level_correlations(
    wide: pd.DataFrame,
    *,
    measure: str = "",
    side: str = "",
    ci: str = "fisher",
    conf: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Level × level Spearman correlations of one measure (upper triangle, long format).

    Parameters
    ----------
    wide : pandas.DataFrame
        Subjects × levels values (NaN = missing); columns are level names.
    measure, side : str
        Copied into the output rows.
    ci : {"fisher", "bootstrap"}
        Confidence-interval method (see module docstring).
    conf : float
        Confidence level.
    n_boot, seed : int
        Bootstrap resamples and seed (``ci="bootstrap"`` only).

    Returns
    -------
    pandas.DataFrame
        :data:`CORRELATION_COLUMNS` (``q_value`` NaN: filled per family by the caller) plus
        side, distance (level positions apart; 1 = adjacent of the same kind), adjacent,
        ci_method.
    """
    if ci not in ("fisher", "bootstrap"):
        raise ValueError("ci must be 'fisher' or 'bootstrap'")
    levels = order_levels(wide.columns)
    values = wide[levels].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    boot_idx = None
    if ci == "bootstrap":
        boot_idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    rows = []
    for (i, a), (j, b) in itertools.combinations(enumerate(levels), 2):
        rho, n = spearman_pair(values[:, i], values[:, j])
        if ci == "fisher":
            lo, hi = _ci_fisher(rho, n, conf)
        else:
            reps = np.array([spearman_pair(values[k, i], values[k, j])[0] for k in boot_idx])
            reps = reps[np.isfinite(reps)]
            if n < 4 or reps.size < 10:
                lo = hi = math.nan
            else:
                lo, hi = np.quantile(reps, [(1 - conf) / 2, (1 + conf) / 2])
        pa, pb = level_position(a), level_position(b)
        same_kind = (pa % 1.0) == (pb % 1.0)
        dist = abs(pa - pb)
        rows.append(
            {
                "measure": measure,
                "level_a": a,
                "level_b": b,
                "n": n,
                "rho": rho,
                "ci_low": float(lo),
                "ci_high": float(hi),
                "p_value": _p_value(rho, n),
                "q_value": math.nan,
                "side": side,
                "distance": dist,
                "adjacent": bool(same_kind and dist == 1.0),
                "ci_method": "fisher_bonett_wright" if ci == "fisher" else "bootstrap_percentile",
            }
        )
    cols = CORRELATION_COLUMNS + ["side", "distance", "adjacent", "ci_method"]
    return pd.DataFrame(rows, columns=cols)


def _corr_stat(x: np.ndarray, adj: np.ndarray, dist: np.ndarray) -> float:
    c = np.corrcoef(x, rowvar=False)
    return float(c[adj].mean() - c[dist].mean())


def _permuted_stats(
    r: np.ndarray,
    perms: np.ndarray,
    rng: np.random.Generator,
    n_permutations: int,
    adj: np.ndarray,
    far: np.ndarray,
) -> np.ndarray:
    """Statistic under B within-subject permutations, without materialising permuted data.

    Subject i drawn permutation π puts ``x_i[π]``; the permuted data's cross-product matrix
    is ``Σ_π P_π (Σ_{i: π_i = π} x_i x_iᵀ) P_πᵀ``, so per replicate only per-permutation
    sums of the subjects' outer products (``bincount``) and a gather are needed.
    """
    n, k = r.shape
    n_perm = len(perms)
    w = k * k + k
    # Per subject: the k² outer-product entries and the k values, one weight row of width w.
    weights = np.hstack([(r[:, :, None] * r[:, None, :]).reshape(n, k * k), r]).ravel()
    offs = np.arange(w)
    out = np.empty(n_permutations)
    # Replicates in chunks: one bincount and one gather per chunk of ``chunk`` permutations.
    chunk = max(1, min(64, 2_000_000 // max(n * w, 1)))
    bidx = np.arange(chunk)[:, None, None, None]
    pidx = np.arange(n_perm)[None, :, None, None]
    rows, cols = perms[None, :, :, None], perms[None, :, None, :]
    rows1 = perms[None, :, :]
    for start in range(0, n_permutations, chunk):
        nb = min(chunk, n_permutations - start)
        draw = rng.integers(0, n_perm, (nb, n))
        key = ((np.arange(nb)[:, None] * n_perm + draw)[:, :, None] * w + offs).ravel()
        g = np.bincount(key, np.tile(weights, nb), nb * n_perm * w).reshape(nb, n_perm, w)
        g2 = g[:, :, : k * k].reshape(nb, n_perm, k, k)
        s2 = g2[bidx[:nb], pidx, rows, cols].sum(axis=1) / n
        s1 = g[:, :, k * k :][np.arange(nb)[:, None, None], pidx[..., 0], rows1].sum(axis=1) / n
        cov = s2 - s1[:, :, None] * s1[:, None, :]
        sd = np.sqrt(np.einsum("bii->bi", cov))
        c = cov / (sd[:, :, None] * sd[:, None, :])
        out[start : start + nb] = c[:, adj].mean(axis=1) - c[:, far].mean(axis=1)
    return out


def adjacency_test(
    wide: pd.DataFrame,
    *,
    n_permutations: int = 999,
    seed: int = 0,
    max_subjects: int | None = 2000,
) -> dict[str, float]:
    """Do adjacent levels correlate more than distant ones? Subject-level permutation test.

    Uses subjects with all levels present. Each level is rank-transformed, so the Pearson
    correlations of the ranks are the Spearman matrix; the statistic is
    ``T = mean ρ(adjacent pairs) − mean ρ(pairs ≥ 2 apart)``. Under the null hypothesis that
    a subject's level values are exchangeable (correlation does not depend on distance),
    permuting the values *within each subject* independently leaves the distribution of the
    data unchanged, so the one-sided p-value is ``(1 + #{T_perm ≥ T}) / (B + 1)``.

    Parameters
    ----------
    wide : pandas.DataFrame
        Subjects × levels (one level kind, e.g. the five discs).
    n_permutations : int
        Number of permutations B.
    seed : int
        Seed of the permutations.
    max_subjects : int or None
        Test on a seeded random subset of this many complete subjects (the cost grows with
        n × B, and 2000 subjects detect a difference of 0.1 in ρ with power > 0.9 at the
        simulated correlations); None = all.

    Returns
    -------
    dict
        n_subjects, n_levels, mean_rho_adjacent, mean_rho_distant, difference, p_value,
        n_permutations (NaN values when fewer than 3 levels or 10 complete subjects).
    """
    levels = order_levels(wide.columns)
    pos = np.array([level_position(lv) for lv in levels])
    x = wide[levels].to_numpy(dtype=float)
    x = x[np.isfinite(x).all(axis=1)]
    rng = np.random.default_rng(seed)
    if max_subjects is not None and len(x) > max_subjects:
        x = x[np.sort(rng.choice(len(x), size=max_subjects, replace=False))]
    n, k = x.shape
    out = {
        "n_subjects": n,
        "n_levels": k,
        "mean_rho_adjacent": math.nan,
        "mean_rho_distant": math.nan,
        "difference": math.nan,
        "p_value": math.nan,
        "n_permutations": 0,
    }
    d = np.abs(pos[:, None] - pos[None, :])
    upper = np.triu(np.ones((k, k), bool), 1)
    adj = upper & (d == 1.0)
    far = upper & (d >= 2.0)
    if k < 3 or n < 10 or not adj.any() or not far.any():
        return out
    r = np.apply_along_axis(_rank, 0, x)
    r = (r - r.mean(axis=0)) / r.std(axis=0).clip(min=1e-12)
    c = np.corrcoef(r, rowvar=False)
    t_obs = float(c[adj].mean() - c[far].mean())
    exceed = 0
    if k <= 6:
        perms = np.array(list(itertools.permutations(range(k))))
        t_perm = _permuted_stats(r, perms, rng, n_permutations, adj, far)
        exceed = int(np.sum(t_perm >= t_obs))
    else:
        for _ in range(n_permutations):
            idx = np.argsort(rng.random((n, k)), axis=1)
            exceed += _corr_stat(np.take_along_axis(r, idx, axis=1), adj, far) >= t_obs
    out.update(
        mean_rho_adjacent=float(c[adj].mean()),
        mean_rho_distant=float(c[far].mean()),
        difference=t_obs,
        p_value=(1.0 + exceed) / (n_permutations + 1.0),
        n_permutations=n_permutations,
    )
    return out
