from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep torch single-threaded and deterministic in tests.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SPINEMETRICS_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    # Fail loudly (not skip): the real-data tests are part of what CI must check.
    assert SHARED_DATA.is_dir(), f"shared sample data not found at {SHARED_DATA}"
    return SHARED_DATA
