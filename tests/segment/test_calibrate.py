"""Class-prior calibration: known-answer fits, the Dice helper, and its use at inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinemetrics.errors import ModelError
from spinemetrics.image import Image
from spinemetrics.segment.calibrate import (
    clinical_sagittal_geometry,
    fit_class_log_scale,
    pooled_dice,
    scan_log_probabilities,
)
from spinemetrics.segment.inference import predict_probabilities


class _FixedLogits(torch.nn.Module):
    """Stub network: the same logits at every pixel."""

    def __init__(self, logits) -> None:
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32)
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[None, :, None, None].expand(x.shape[0], -1, *x.shape[2:]).clone()


_CFG = {"in_channels": 3, "inplane_spacing_mm": 1.0, "context_spacing_mm": 3.5}


def _image() -> Image:
    arr = np.random.default_rng(0).normal(100, 10, (6, 32, 40)).astype(np.float32)
    return Image(arr, np.diag([3.5, 1.0, 1.0, 1.0]))


def test_pooled_dice_known_counts():
    truth = np.array([0, 1, 1, 1, 2, 2, 0, 0])
    pred = np.array([0, 1, 1, 2, 2, 0, 1, 0])
    # class 1: tp 2, |pred| 3, |truth| 3 -> 4/6; class 2: tp 1, |pred| 2, |truth| 2 -> 0.5
    d = pooled_dice(pred, truth, 4)
    assert d[0] == pytest.approx(4 / 6) and d[1] == pytest.approx(0.5)
    assert np.isnan(d[2])  # class 3 absent from both


def _noisy_logits(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth classes and unit-noise logits with +2 on the true class (a calibrated model)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    logits = rng.normal(0.0, 1.0, (k, n)).astype(np.float32)
    logits[truth, np.arange(n)] += 2.0
    return truth, logits


def test_fit_recovers_a_known_prior_shift():
    """Logits with class 2 inflated by +1.5 (as a ×e^1.5 class weight would): the fit undoes it."""
    k = 4
    truth, logits = _noisy_logits(1, 60_000, k)
    unbiased = pooled_dice(logits.argmax(0), truth, k)
    biased = logits.copy()
    biased[2] += 1.5
    log_p = biased - np.log(np.exp(biased).sum(0, keepdims=True))
    log_scale, before, after = fit_class_log_scale(log_p, truth)
    assert log_scale[0] == 0.0
    # only differences to the other classes matter: class 2 must sit ~1.5 below them
    rel = log_scale[2] - np.mean(np.delete(log_scale, 2))
    assert rel == pytest.approx(-1.5, abs=0.25)
    assert np.nanmean(before) < np.nanmean(unbiased) - 0.02
    assert np.nanmean(after) >= np.nanmean(unbiased) - 0.005
    assert np.nanmean(after) > np.nanmean(before)


def test_fit_leaves_calibrated_probabilities_alone():
    truth, logits = _noisy_logits(2, 40_000, 3)
    log_scale, before, after = fit_class_log_scale(logits, truth)
    assert np.all(np.abs(log_scale) <= 0.2)
    assert np.nanmean(after) == pytest.approx(np.nanmean(before), abs=0.01)


def test_fit_rejects_mismatched_truth():
    with pytest.raises(ValueError, match="voxels"):
        fit_class_log_scale(np.zeros((3, 10), np.float32), np.zeros(9, int))


def test_prior_scale_changes_the_argmax_exactly():
    logits = [1.0, 0.0, 0.9] + [-5.0] * 9
    net = _FixedLogits(logits)
    img = _image()
    plain = predict_probabilities(img, net, _CFG)
    assert np.all(plain == 0)
    zeros = predict_probabilities(img, net, {**_CFG, "class_log_scale": [0.0] * 12})
    np.testing.assert_array_equal(zeros, plain)
    # class 2 sits 0.1 below class 0 in log space: a +0.2 factor flips it, +0.05 does not
    up = [0.0] * 12
    up[2] = 0.2
    assert np.all(predict_probabilities(img, net, {**_CFG, "class_log_scale": up}) == 2)
    up[2] = 0.05
    assert np.all(predict_probabilities(img, net, {**_CFG, "class_log_scale": up}) == 0)


def test_bad_class_log_scale_is_a_clear_error():
    net = _FixedLogits([0.0] * 12)
    with pytest.raises(ModelError, match="class_log_scale"):
        predict_probabilities(_image(), net, {**_CFG, "class_log_scale": [0.0] * 5})


def test_scan_log_probabilities_selects_voxels_in_order():
    logits = np.linspace(-1, 1, 12)
    img = _image()
    keep = np.zeros(img.shape, bool)
    keep[2, 3:7, 5] = True
    lp = scan_log_probabilities(img, _FixedLogits(logits), _CFG, keep=keep)
    assert lp.shape == (12, 4)
    expected = logits - np.log(np.exp(logits).sum())
    np.testing.assert_allclose(lp[:, 0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        scan_log_probabilities(img, _FixedLogits(logits), _CFG, keep=keep[:3])


def test_clinical_geometry_stays_in_protocol():
    rng = np.random.default_rng(3)
    for _ in range(50):
        spacing, rot = clinical_sagittal_geometry(rng)
        assert spacing[0] in (3.0, 3.5, 4.0, 4.5) and 0.6 <= spacing[1] == spacing[2] <= 0.9
        assert abs(rot[0]) <= 8 and rot[1] == 0 and abs(rot[2]) <= 5


def test_tta_averages_the_working_grids():
    """TTA = mean of the per-grid probabilities (taken on the first working grid, then one
    upsampling to the input grid)."""
    from spinemetrics.segment.inference import iter_slice_probabilities

    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 12, 3, padding=1).eval()
    img = _image()

    def probs(cfg):
        out = np.zeros((12, *img.shape), np.float32)
        for idx, p in iter_slice_probabilities(img, net, cfg):
            out[:, idx] = p.permute(1, 0, 2, 3).numpy()
        return out

    grids = (0.9, 1.0, 1.1)
    cfg1 = {**_CFG, "tta_mirror": False}
    tta = probs({**cfg1, "tta_inplane_spacings_mm": list(grids)})
    singles = [probs({**cfg1, "tta_inplane_spacings_mm": [r]}) for r in grids]
    np.testing.assert_allclose(tta.sum(0), 1.0, atol=1e-5)
    assert not np.allclose(singles[0], singles[2], atol=1e-3)  # the grids really differ
    # averaging on the working grid vs on the input grid: equal up to interpolation error
    np.testing.assert_allclose(tta, np.mean(singles, axis=0), atol=0.03)
    assert np.abs(tta - np.mean(singles, axis=0)).mean() < 0.003
    # one grid: exactly the single-grid prediction; default = 1 mm grid + mirrored context
    np.testing.assert_allclose(probs({**cfg1, "tta_inplane_spacings_mm": [1.0]}), singles[1],
                               atol=1e-6)
    mirrored = probs({**_CFG, "tta_inplane_spacings_mm": [1.0], "tta_mirror": True})
    np.testing.assert_allclose(probs(_CFG), mirrored, atol=1e-6)
    assert not np.allclose(mirrored, singles[1], atol=1e-4)


def test_fast_argmax_matches_torch_including_ties():
    from spinemetrics.segment.inference import _argmax_classes

    g = torch.Generator().manual_seed(0)
    p = torch.rand(3, 12, 40, 50, generator=g)
    p[:, 7] = p[:, 3]  # exact ties: the first maximum wins, as in torch.argmax
    np.testing.assert_array_equal(_argmax_classes(p).numpy(), p.argmax(1).numpy())
    assert _argmax_classes(p).dtype == torch.uint8
