from __future__ import annotations

import numpy as np
import pytest
import torch

from spinemetrics.image import Image

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def phantom_t2():
    """A held-out phantom (seed never used in training) as a clinical sagittal T2 stack."""
    from spinemetrics.phantom import make_phantom, random_params

    return make_phantom(random_params(90_001), spacing=(4.0, 0.9, 0.9), contrast="T2", seed=5,
                        fov_mm=(64.0, 180.0, 240.0))


@pytest.fixture()
def ras_image() -> Image:
    rng = np.random.default_rng(0)
    arr = rng.normal(100, 10, (12, 64, 80)).astype(np.float32)
    aff = np.diag([3.5, 0.8, 0.8, 1.0])
    return Image(arr, aff, meta={"source_path": "noise.nii.gz"})
