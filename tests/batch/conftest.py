"""Fixtures for the batch tests: a folder of small phantom scans mixed with bad files.

Good scans are real phantoms (spinemetrics.phantom) at low resolution with a cropped field of
view, so that each takes a few seconds to measure; their exact label maps are written as
sidecars in a separate folder and fed back through ``--segmenter sidecar:DIR``, which keeps
the tests independent of the CNN's quality (one test in test_pipeline.py uses the real CNN).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SPACING = (4.0, 2.0, 2.0)
FOV_MM = (48.0, 170.0, 130.0)  # L2…S1: a handful of levels keeps measuring fast

#: name → (phantom seed, output orientation)
GOOD = {"sub-01": (0, "RAS"), "sub-02": (1, "RAS"), "sub-03": (0, "PIR")}
#: name → error stage(s) each bad file must produce
BAD = {
    "corrupt": {"read"},
    "empty": {"read"},
    "ct_like": {"check"},
    "axial_only": {"check"},
    "flat_2d": {"read", "check"},
}


@dataclass
class BatchInputs:
    root: Path  # scan folder (good + bad files + an unrelated text file)
    segs: Path  # sidecar label maps of the good scans
    phantoms: dict  # name → Phantom
    good: dict  # GOOD
    bad: dict  # BAD

    @property
    def segmenter(self) -> str:
        return f"sidecar:{self.segs}"


def _write_bad_files(root: Path) -> None:
    (root / "empty.nii.gz").write_bytes(b"")
    rng = np.random.default_rng(0)
    (root / "corrupt.nii.gz").write_bytes(gzip.compress(rng.bytes(4000))[:2500])  # truncated
    ct = rng.normal(-1000.0, 20.0, (40, 60, 80)).astype(np.int16)
    ct[10:30, 20:40, :] = 40  # soft tissue inside air, like a CT
    nib.save(nib.Nifti1Image(ct, np.diag([1.0, 1.0, 1.0, 1.0])), root / "ct_like.nii.gz")
    axial = rng.uniform(0, 300, (96, 96, 12)).astype(np.float32)
    nib.save(nib.Nifti1Image(axial, np.diag([0.8, 0.8, 5.0, 1.0])), root / "axial_only.nii.gz")
    flat = rng.uniform(0, 300, (64, 64)).astype(np.float32)
    nib.save(nib.Nifti1Image(flat, np.diag([0.5, 0.5, 1.0, 1.0])), root / "flat_2d.nii.gz")
    (root / "notes.txt").write_text("not an image; discovery must ignore it\n")


@pytest.fixture(scope="session")
def batch_inputs(tmp_path_factory) -> BatchInputs:
    from spinemetrics.io import write_image
    from spinemetrics.phantom import make_phantom, random_params

    root = tmp_path_factory.mktemp("batch_in")
    segs = tmp_path_factory.mktemp("batch_segs")
    phantoms = {}
    cache: dict = {}
    for name, (seed, orientation) in GOOD.items():
        key = (seed, orientation)
        if key not in cache:
            cache[key] = make_phantom(random_params(seed=seed), spacing=SPACING, fov_mm=FOV_MM,
                                      orientation=orientation, seed=seed)
        ph = cache[key]
        phantoms[name] = ph
        write_image(ph.image, root / f"{name}.nii.gz")
        write_image(ph.seg, segs / f"{name}_seg.nii.gz")
        write_image(ph.levels, segs / f"{name}_levels.nii.gz")
    _write_bad_files(root)
    return BatchInputs(root=root, segs=segs, phantoms=phantoms, good=GOOD, bad=BAD)
