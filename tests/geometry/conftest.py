from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(__file__))

from analytic import analytic_spine  # noqa: E402


@pytest.fixture(scope="session")
def straight_iso():
    """Analytic spine, 1 mm isotropic, grid-aligned."""
    return analytic_spine((1.0, 1.0, 1.0))


@pytest.fixture(scope="session")
def oblique_sagittal():
    """Analytic spine, 4 × 0.5 × 0.5 mm (sagittal stack), oblique by (15, 10, −12)°."""
    return analytic_spine((4.0, 0.5, 0.5), (15.0, 10.0, -12.0))
