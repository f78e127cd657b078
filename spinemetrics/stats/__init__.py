"""Cohort statistics: cohort store, between-level correlations, findings, models, norms.

Public API (see docs/statistics.md): :func:`run_stats` → :class:`StatsResult`,
:func:`simulate_cohort`, :func:`fit_norms`, :func:`zscores`, :class:`NormModel`,
:func:`load_default_norms`, :func:`open_store`, :func:`fdr_bh`. This package never imports
:mod:`spinemetrics.report` (the CLI composes the dashboard).
"""

from spinemetrics.stats.correlation import adjacency_test, level_correlations
from spinemetrics.stats.covariates import read_covariates
from spinemetrics.stats.multitest import fdr_bh
from spinemetrics.stats.norms import NormModel, fit_norms, load_default_norms, zscores
from spinemetrics.stats.run import OUTPUT_FILES, StatsResult, run_stats
from spinemetrics.stats.simulate import CohortTruth, simulate_cohort
from spinemetrics.stats.store import CohortStore, open_store

__all__ = [
    "run_stats",
    "StatsResult",
    "OUTPUT_FILES",
    "simulate_cohort",
    "CohortTruth",
    "fit_norms",
    "zscores",
    "NormModel",
    "load_default_norms",
    "open_store",
    "CohortStore",
    "read_covariates",
    "level_correlations",
    "adjacency_test",
    "fdr_bh",
]
