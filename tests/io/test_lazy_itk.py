"""SimpleITK is loaded only when a MetaImage/NRRD/DICOM file needs it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from spinemetrics.image import Image

CHILD = r"""
import sys
from spinemetrics.io import read_image, write_image
img = read_image(sys.argv[1])
write_image(img, sys.argv[2])
print("after nifti", "SimpleITK._SimpleITK" in sys.modules)
back = read_image(sys.argv[3])
print("after mha", "SimpleITK._SimpleITK" in sys.modules, back.shape == img.shape)
"""


def test_simpleitk_is_loaded_only_for_itk_formats(tmp_path):
    from spinemetrics.io import write_image

    arr = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    img = Image(arr, np.diag([2.0, 0.5, 0.5, 1.0]))
    src, mha = tmp_path / "a.nii.gz", tmp_path / "c.mha"
    write_image(img, src)
    write_image(img, mha)
    # a fresh interpreter: this test process may have loaded SimpleITK already
    out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(tmp_path / "b.nii.gz"),
                          str(mha)], capture_output=True, text=True, check=True)
    assert "after nifti False" in out.stdout  # NIfTI read and write never load ITK
    assert "after mha True True" in out.stdout  # an ITK format loads it on demand
