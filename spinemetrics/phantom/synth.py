"""MR-like image synthesis from a label map (cheap; reusable for CNN training).

Intensity model, per tissue (mean on a 0–1 scale, before random jitter):

==================  ====  ====  ====
tissue               T1    T2   STIR
==================  ====  ====  ====
air                 0.02  0.02  0.02
subcutaneous fat    0.95  0.80  0.08
soft tissue / bowel 0.40  0.45  0.40
kidney              0.35  0.55  0.60
cortical bone       0.06  0.05  0.05
vertebral marrow    0.60  0.45  0.18
posterior el. bone  0.50  0.40  0.15
annulus             0.30  0.25  0.30
nucleus             0.35  0.85  0.80
degenerated nucleus 0.30  0.30  0.30
CSF                 0.15  0.95  0.95
cord / conus        0.40  0.45  0.55
nerve root          0.40  0.40  0.50
epidural fat        0.90  0.75  0.08
ligamentum flavum   0.35  0.30  0.35
muscle              0.35  0.25  0.25
artery / vein       0.10  0.15  0.20  (flow voids, sometimes bright)
==================  ====  ====  ====

(qualitative conventions: T2 CSF and nucleus bright, annulus dark; fat bright on T1/T2, dark
on STIR; cortex dark on all.) Each tissue gets a random ±15 % jitter, soft tissue is split
into smooth random blobs (bowel / organs), then texture, partial-volume blur, a smooth
multiplicative bias field and Rician noise are applied; the result is scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spinemetrics.errors import InputError
from spinemetrics.image import Image
from spinemetrics.phantom import tissues as T

__all__ = ["synthesize_mr", "tissue_from_seg", "INTENSITY"]

#: mean intensity per tissue and contrast
INTENSITY: dict[str, np.ndarray] = {}
_TABLE = {
    T.AIR: (0.02, 0.02, 0.02), T.SUBCUT_FAT: (0.95, 0.80, 0.08), T.SOFT: (0.40, 0.45, 0.40),
    T.BOWEL: (0.45, 0.60, 0.55), T.KIDNEY: (0.35, 0.55, 0.60), T.CORTEX: (0.06, 0.05, 0.05),
    T.MARROW: (0.60, 0.45, 0.18), T.PE_BONE: (0.10, 0.08, 0.08), T.ANNULUS: (0.30, 0.25, 0.30),
    T.NUCLEUS: (0.35, 0.85, 0.80), T.CSF: (0.15, 0.95, 0.95), T.CORD: (0.40, 0.45, 0.55),
    T.ROOT: (0.40, 0.40, 0.50), T.EPIDURAL_FAT: (0.90, 0.75, 0.08), T.LF: (0.35, 0.30, 0.35),
    T.MUSCLE: (0.35, 0.25, 0.25), T.ARTERY: (0.10, 0.15, 0.20), T.VEIN: (0.15, 0.30, 0.35),
    T.NUCLEUS_DEGEN: (0.30, 0.30, 0.30), T.SACRAL_MARROW: (0.62, 0.47, 0.18),
    T.PE_MARROW: (0.55, 0.42, 0.17),
}
for _i, _c in enumerate(("T1", "T2", "STIR")):
    INTENSITY[_c] = np.array([_TABLE[t][_i] for t in range(T.N_TISSUES)], np.float32)

_LABEL_TISSUE = {1: T.MARROW, 2: T.PE_MARROW, 3: T.SACRAL_MARROW, 4: T.ANNULUS, 5: T.CSF, 6: T.CORD,
                 7: T.ROOT, 8: T.EPIDURAL_FAT, 9: T.LF, 10: T.MUSCLE, 11: T.ARTERY}


def tissue_from_seg(seg: np.ndarray, spacing, rng: np.random.Generator) -> np.ndarray:
    """Guess a tissue map from a contract label map (cortical rim, nucleus, background blobs)."""
    seg = np.asarray(seg)
    tis = np.full(seg.shape, T.SOFT, np.uint8)
    for lab, t in _LABEL_TISSUE.items():
        tis[seg == lab] = t
    bone = np.isin(seg, (1, 2, 3))
    if bone.any():
        dist = ndimage.distance_transform_edt(bone, sampling=spacing)
        tis[bone & (dist <= 1.2)] = T.CORTEX
    disc = seg == 4
    if disc.any():
        dist = ndimage.distance_transform_edt(disc, sampling=spacing)
        tis[disc & (dist >= 2.5)] = T.NUCLEUS
    return tis


def _smooth_field(shape, rng, scale_vox, n_low=6):
    """Random smooth field by upsampling low-resolution noise (cheap)."""
    low = tuple(max(2, int(np.ceil(s / max(sc, 1.0))) + 1) for s, sc in zip(shape, scale_vox))
    low = tuple(min(lo, n_low * 4) for lo in low)
    noise = rng.standard_normal(low).astype(np.float32)
    zoom = [s / lo for s, lo in zip(shape, low)]
    f = ndimage.zoom(noise, zoom, order=1, mode="nearest", grid_mode=True)
    return f[: shape[0], : shape[1], : shape[2]]


def synthesize_mr(seg: Image, contrast: str = "T2", rng: np.random.Generator | int | None = None,
                  tissue: Image | np.ndarray | None = None, noise: float = 0.03,
                  bias: float = 0.25, blur_mm: float = 0.6) -> Image:
    """Synthesise an MR-like image for a label map.

    Parameters
    ----------
    seg : Image
        Contract label map (ids 0–11) on the target grid.
    contrast : {"T1", "T2", "STIR"}
        Weighting; selects the intensity table in the module docstring.
    rng : numpy.random.Generator or int, optional
        Random source (or seed); images are deterministic for a given seed.
    tissue : Image or array, optional
        Tissue sub-label map from the phantom (:mod:`spinemetrics.phantom.tissues`); guessed
        from ``seg`` when not given.
    noise : float
        Rician noise standard deviation relative to the [0, 1] intensity scale.
    bias : float
        Amplitude of the smooth multiplicative bias field.
    blur_mm : float
        Gaussian partial-volume blur (sigma, mm), applied in-plane and through-plane alike.

    Returns
    -------
    Image
        float32 image on the grid of ``seg``, scaled to [0, 1].
    """
    contrast = contrast.upper()
    if contrast not in INTENSITY:
        raise InputError(f"unknown contrast {contrast!r}; use 'T1', 'T2' or 'STIR'")
    rng = np.random.default_rng(rng)
    spacing = np.asarray(seg.spacing, float)
    if tissue is None:
        tis = tissue_from_seg(seg.array, spacing, rng)
    else:
        tis = np.asarray(tissue.array if isinstance(tissue, Image) else tissue)
    shape = tis.shape
    # soft tissue split into random organs / bowel: threshold a smooth field
    soft = tis == T.SOFT
    table = INTENSITY[contrast] * rng.uniform(0.85, 1.15, T.N_TISSUES).astype(np.float32)
    img = table[tis]
    if soft.any():
        blobs = _smooth_field(shape, rng, 25.0 / spacing)
        bowel_val = table[T.BOWEL]
        img = np.where(soft & (blobs > 0.4), bowel_val, img)
        img = np.where(soft & (blobs < -0.8), table[T.SUBCUT_FAT] * 0.8, img)
    # texture (marrow heterogeneity, muscle striation surrogate)
    tex = _smooth_field(shape, rng, 3.0 / spacing, n_low=40)
    img = img * (1.0 + 0.06 * tex)
    if blur_mm > 0:
        img = ndimage.gaussian_filter(img, sigma=blur_mm / spacing, mode="nearest", truncate=2.5)
    if bias > 0:
        field = _smooth_field(shape, rng, 120.0 / spacing, n_low=4)
        img = img * np.exp(bias * field / max(float(np.abs(field).max()), 1e-6))
    if noise > 0:
        n1 = rng.standard_normal(shape, dtype=np.float32) * noise
        n2 = rng.standard_normal(shape, dtype=np.float32) * noise
        img = np.sqrt((img + n1) ** 2 + n2**2)
    hi = float(np.percentile(img[:: max(1, img.shape[0] // 16)], 99.5))
    img = np.clip(img / max(hi, 1e-6), 0.0, 1.0).astype(np.float32)
    return seg.with_array(img, contrast=contrast, kind="synthetic_mr")
