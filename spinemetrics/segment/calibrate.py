"""Class-prior calibration of the segmenter on held-out synthetic scans.

The network is trained with class-weighted cross-entropy (thin structures such as nerve
roots and the ligamentum flavum weigh up to 4× the background) so that it learns them at
all. The price is a shifted decision rule: the weighted classes' posteriors are inflated and
the arg-max over-segments them (on held-out phantoms the v1.1 weights predicted 1.47× the
true posterior-element volume and 1.78× the nerve-root volume). The textbook fix is a prior
correction — multiply each class probability by a factor before the arg-max (Saerens et al.,
*Neural Computation* 14:21–41, 2002). Here the factors are fitted, per class, by coordinate
ascent on the mean Dice of scans that are neither training nor test data, and stored in the
weight file (``config["class_log_scale"]``), where :func:`spinemetrics.segment.inference.
predict_probabilities` applies them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from spinemetrics.image import Image
from spinemetrics.segment.inference import iter_slice_probabilities

__all__ = [
    "clinical_sagittal_geometry",
    "scan_log_probabilities",
    "pooled_dice",
    "fit_class_log_scale",
]


def clinical_sagittal_geometry(rng: np.random.Generator) -> tuple[tuple, tuple]:
    """Draw a clinical sagittal acquisition: (spacing RAS mm, rotation deg).

    3–4.5 mm slices, 0.6–0.9 mm in-plane, tilt ≤ 8° about LR and ≤ 5° about SI — the
    protocol of ``benchmarks/eval_segmenter.py`` (same draw order, so seeds reproduce).
    """
    inplane = float(rng.uniform(0.6, 0.9))
    spacing = (float(rng.choice([3.0, 3.5, 4.0, 4.5])), inplane, inplane)
    rot = (float(rng.uniform(-8, 8)), 0.0, float(rng.uniform(-5, 5)))
    return spacing, rot


def scan_log_probabilities(
    img: Image,
    net: torch.nn.Module,
    config: dict,
    *,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Log class probabilities ``(classes, n)`` (float32) of the voxels selected by ``keep``.

    ``keep`` is a boolean mask of the image's shape (default: every voxel); uncalibrated,
    i.e. without the weight file's own ``class_log_scale``.
    """
    img = img if img.orientation == ("R", "A", "S") else img.to_canonical()
    keep = np.ones(img.shape, bool) if keep is None else np.asarray(keep, bool)
    if keep.shape != img.shape:
        raise ValueError(f"keep mask shape {keep.shape} != image shape {img.shape}")
    parts = []
    for idx, prob in iter_slice_probabilities(img, net, config):
        p = prob.permute(1, 0, 2, 3).reshape(prob.shape[1], -1).numpy()
        parts.append(np.log(np.maximum(p[:, keep[idx].ravel()], 1e-8)))
    return np.concatenate(parts, axis=1).astype(np.float32)


def pooled_dice(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """Dice per class 1..n_classes-1 over all voxels pooled (NaN where a class is absent)."""
    idx = truth.astype(np.int64) * n_classes + pred.astype(np.int64)
    cm = np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm)[1:].astype(float)
    denom = cm.sum(0)[1:] + cm.sum(1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def fit_class_log_scale(
    log_probs: np.ndarray,
    truth: np.ndarray,
    *,
    grid: Sequence[float] = tuple(np.round(np.arange(-3.0, 3.01, 0.1), 2)),
    rounds: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class log factors that maximise the mean Dice of the arg-max.

    Parameters
    ----------
    log_probs : ndarray, shape (classes, n)
        Log probabilities of n voxels (from :func:`scan_log_probabilities`, pooled over scans).
    truth : ndarray, shape (n,)
        True class of each voxel.
    grid : sequence of float
        Candidate log factors per class (background stays 0: only ratios matter).
    rounds : int
        Passes of coordinate ascent over the classes.

    Returns
    -------
    log_scale : ndarray, shape (classes,)
    dice_before, dice_after : ndarray, shape (classes - 1,)
        Pooled Dice per foreground class with no correction and with ``log_scale``.
    """
    lp = np.asarray(log_probs, np.float32)
    truth = np.asarray(truth).ravel()
    n_cls = lp.shape[0]
    if truth.shape[0] != lp.shape[1]:
        raise ValueError(f"{lp.shape[1]} voxels of probabilities but {truth.shape[0]} of truth")
    log_scale = np.zeros(n_cls, np.float32)
    before = pooled_dice(lp.argmax(0), truth, n_cls)
    grid = np.asarray(grid, np.float32)
    for _ in range(rounds):
        for c in range(1, n_cls):
            others = lp + log_scale[:, None]
            others[c] = -np.inf
            best_other, arg_other = others.max(0), others.argmax(0)
            best, best_v = -np.inf, log_scale[c]
            for v in grid[np.argsort(np.abs(grid), kind="stable")]:
                pred = np.where(lp[c] + v > best_other, c, arg_other)
                score = np.nanmean(pooled_dice(pred, truth, n_cls))
                if score > best + 1e-6:  # grid runs outwards from 0: ties keep the smaller factor
                    best, best_v = score, v
            log_scale[c] = best_v
    after = pooled_dice((lp + log_scale[:, None]).argmax(0), truth, n_cls)
    return log_scale, before, after
