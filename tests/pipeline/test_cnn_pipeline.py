"""One scan through the real shipped CNN (no injected segmenter): analyze() end to end."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd

from spinemetrics.labels import Structure, is_disc_id, is_vertebra_id
from spinemetrics.pipeline import TABLE_COLUMNS, analyze


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def test_analyze_with_the_shipped_cnn_on_a_phantom(tmp_path):
    from spinemetrics.io import write_image
    from spinemetrics.phantom import make_phantom, random_params

    # a clinical-like sagittal T2 stack: 4 mm slices, 1 mm in-plane, stored PIR
    ph = make_phantom(random_params(seed=11), spacing=(4.0, 1.0, 1.0), orientation="PIR",
                      seed=11)
    path = tmp_path / "cnn_ph.nii.gz"
    write_image(ph.image, path)
    res = analyze(path, tmp_path / "out", device="cpu", report=False)

    src = nib.load(path)
    seg = nib.load(res.outputs["seg"])
    lev = nib.load(res.outputs["levels"])
    assert seg.shape == src.shape and lev.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-4)
    seg_arr = np.asarray(seg.dataobj)
    assert set(np.unique(seg_arr)) <= set(range(12))
    for lid in np.unique(np.asarray(lev.dataobj)):
        assert lid == 0 or is_vertebra_id(int(lid)) or is_disc_id(int(lid)), lid
    # the network finds the spine: vertebral bodies and discs overlap the phantom's truth
    # (floors far below the model's targets; they catch grid/orientation mix-ups)
    truth = np.asarray(ph.seg.array)
    assert _dice(seg_arr == Structure.vertebral_body, truth == Structure.vertebral_body) > 0.5
    assert _dice(seg_arr == Structure.intervertebral_disc,
                 truth == Structure.intervertebral_disc) > 0.3
    table = pd.read_parquet(res.outputs["measurements"])
    assert list(table.columns[:8]) == list(TABLE_COLUMNS)
    assert table.value.notna().sum() > 10
    prov = json.loads(res.outputs["provenance"].read_text())
    assert prov["model"]["model"] == "spinemetrics CNN"
    assert prov["timings_s"]["segment"] > 0
