from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_phantom_files(tmp_path_factory):
    """One small phantom scan on disk (PIR orientation, like many sagittal files) and its
    exact label maps as sidecars: (image path, sidecar folder, Phantom)."""
    from spinemetrics.io import write_image
    from spinemetrics.phantom import make_phantom, random_params

    root = tmp_path_factory.mktemp("pipe_in")
    segs = tmp_path_factory.mktemp("pipe_segs")
    ph = make_phantom(random_params(seed=3), spacing=(4.0, 2.0, 2.0), orientation="PIR", seed=3)
    path = Path(root) / "ph03_T2w.nii.gz"
    write_image(ph.image, path)
    write_image(ph.seg, Path(segs) / "ph03_T2w_seg.nii.gz")
    write_image(ph.levels, Path(segs) / "ph03_T2w_levels.nii.gz")
    return path, Path(segs), ph
