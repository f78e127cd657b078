"""Parametric lumbar-spine phantom with exact truth (test bed for geometry, CNN training source).

>>> from spinemetrics.phantom import random_params, make_phantom
>>> ph = make_phantom(random_params(seed=0), spacing=(4.0, 0.5, 0.5), rotation_deg=(0, 10, 0))
>>> ph.seg, ph.levels, ph.image, ph.truth  # doctest: +SKIP

The geometric model and every truth definition are documented in
:mod:`spinemetrics.phantom.model`, :mod:`spinemetrics.phantom.truth` and ``docs/phantom.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from spinemetrics.image import Image
from spinemetrics.phantom.model import Anatomy, build_anatomy
from spinemetrics.phantom.params import PhantomParams, random_params, spine_levels
from spinemetrics.phantom.render import grid_for, rasterize, reorient, rotation_matrix
from spinemetrics.phantom.synth import synthesize_mr, tissue_from_seg
from spinemetrics.phantom.truth import SAMPLED_MEASURES, truth_table

__all__ = [
    "PhantomParams",
    "random_params",
    "spine_levels",
    "make_phantom",
    "Phantom",
    "synthesize_mr",
    "tissue_from_seg",
    "build_anatomy",
]


@dataclass
class Phantom:
    """A rendered phantom.

    Attributes
    ----------
    seg : Image
        Contract §2 label map (uint8, ids 0–11).
    levels : Image
        Contract §3 level map (uint8: 19 = T12, 20–25 = L1–L6, 26 = sacrum, 100 + id for discs).
    image : Image or None
        Synthetic MR image (float32, [0, 1]) or None when ``with_image=False``.
    tissue : Image
        Tissue sub-labels used for synthesis (:mod:`spinemetrics.phantom.tissues`).
    params : PhantomParams
    anatomy : Anatomy
        Analytic geometry (frames, planes, canal centreline, shapes).
    anat_to_world : numpy.ndarray
        4×4 matrix from the anatomical frame (spine in x = 0) to world RAS mm.
    truth : pandas.DataFrame
        Contract §5 long table of exact values (computed on first access, then cached).
    """

    seg: Image
    levels: Image
    image: Image | None
    tissue: Image
    params: PhantomParams
    anatomy: Anatomy
    anat_to_world: np.ndarray
    scan: str = "phantom"
    _truth: pd.DataFrame | None = field(default=None, repr=False)
    _analytic: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def truth(self) -> pd.DataFrame:
        if self._truth is None:
            self._truth = truth_table(self.anatomy, self.anat_to_world[:3, :3], scan=self.scan)
        return self._truth

    @property
    def analytic_truth(self) -> pd.DataFrame:
        """Only the closed-form rows of :attr:`truth` (no dense sampling; instant)."""
        if self._truth is not None:
            return self._truth[~self._truth.measure.isin(SAMPLED_MEASURES)]
        if self._analytic is None:
            self._analytic = truth_table(
                self.anatomy, self.anat_to_world[:3, :3], scan=self.scan, sampled=False
            )
        return self._analytic

    def truth_value(self, level: str, measure: str, side: str = "") -> float:
        """One truth value (sampled measures trigger the full table once)."""
        t = self.truth if measure in SAMPLED_MEASURES else self.analytic_truth
        row = t[(t.level == level) & (t.measure == measure) & (t.side == side)]
        if row.empty:
            raise KeyError(f"no truth for {measure} at {level} {side}".strip())
        return float(row.value.iloc[0])

    def to_world(self, pts_anat: np.ndarray) -> np.ndarray:
        """Anatomical points (…, 3) → world RAS mm."""
        A = self.anat_to_world
        return np.asarray(pts_anat, float) @ A[:3, :3].T + A[:3, 3]


def make_phantom(
    params: PhantomParams,
    spacing=(1.0, 1.0, 1.0),
    rotation_deg=(0.0, 0.0, 0.0),
    contrast: str = "T2",
    seed: int | None = 0,
    with_image: bool = True,
    orientation: str = "RAS",
    fov_mm=None,
    scan: str = "phantom",
    slice_profile: bool = False,
) -> Phantom:
    """Render a phantom on a voxel grid.

    Parameters
    ----------
    params : PhantomParams
        From :func:`random_params` (or edited by hand).
    spacing : sequence of 3 float
        Voxel size in mm along world x (LR), y (AP), z (SI), e.g. ``(4, 0.5, 0.5)`` for a
        clinical sagittal stack.
    rotation_deg : sequence of 3 float
        Rotation of the anatomy about world x, y, z (applied in that order), up to ±20°.
    contrast : {"T2", "T1", "STIR"}
        Image weighting for :func:`synthesize_mr`.
    seed : int, optional
        Seed of the image synthesis (noise, jitter, bias).
    with_image : bool
        Skip the image (faster) when False.
    orientation : str
        Axis codes of the output arrays (``"RAS"``, ``"PIR"``, ``"LPS"``, …); spacing stays
        given in RAS order.
    fov_mm : sequence of 3 float, optional
        World field of view (LR, AP, SI); default covers T-top to coccyx, ±80 mm LR.
    scan : str
        Scan id written into the truth table.
    slice_profile : bool
        Off by default (speed). When True, on anisotropic grids (largest spacing
        ≥ 2× the smallest), synthesise the image from three sub-slices across the
        slice thickness (at −1/3, 0, +1/3 of the slice;
        through-slice partial volume, ≈ 3× the label rendering time); the label maps are
        always sampled at voxel centres.

    Returns
    -------
    Phantom
    """
    an = build_anatomy(params)
    R = rotation_matrix(rotation_deg)
    top = an.bodies[params.vertebrae[0]].superior.point
    pivot = 0.5 * (top + an.sacrum[0].superior.point)
    affine, shape = grid_for(an, spacing, R, pivot, fov_mm)
    seg, lev, tis = rasterize(an, affine, shape, R, pivot)
    (seg, lev, tis), aff = reorient([seg, lev, tis], affine, orientation)
    meta = {"phantom_seed": params.seed, "subject": params.subject}
    seg_img = Image(seg, aff, meta={**meta, "kind": "seg"})
    lev_img = Image(lev, aff, meta={**meta, "kind": "levels"})
    tis_img = Image(tis, aff, meta={**meta, "kind": "tissue"})
    image = None
    if with_image:
        slices = None
        sp = np.asarray(spacing, float)
        thick = int(np.argmax(sp))
        if slice_profile and sp[thick] >= 2.0 * np.min(sp):
            # thick slices: average the signal of sub-slices across the slice thickness
            slices = [tis]  # the centre (already rendered) and two off-centre sub-slices
            for off in (-1.0 / 3.0, 1.0 / 3.0):
                aff = affine.copy()
                aff[thick, 3] += off * sp[thick]
                _, _, t_sub = rasterize(an, aff, shape, R, pivot)
                slices.append(reorient([t_sub], affine, orientation)[0][0])
        image = synthesize_mr(
            seg_img, contrast, np.random.default_rng(seed), tissue=tis, slice_tissues=slices
        )
    a2w = np.eye(4)
    a2w[:3, :3] = R
    a2w[:3, 3] = -R @ pivot
    return Phantom(seg_img, lev_img, image, tis_img, params, an, a2w, scan=scan)
