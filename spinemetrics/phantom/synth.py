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
posterior el. cortex 0.10 0.08  0.08
posterior el. marrow 0.55 0.42  0.17
annulus             0.30  0.25  0.30
nucleus             0.35  0.85  0.80
degenerated nucleus 0.30  0.30  0.30
CSF                 0.15  0.95  0.95
cord / conus        0.40  0.45  0.55
nerve root          0.40  0.40  0.50
epidural fat        0.90  0.75  0.08
ligamentum flavum   0.35  0.30  0.35
muscle              0.35  0.25  0.25
ilium / rib marrow  0.62  0.48  0.20  (cortex as vertebral cortex; label 0)
liver               0.45  0.28  0.35
Modic marrow band   0.30  0.70  0.70  (type 1 oedema; half the time type 2: fat-like)
hemangioma          0.85  0.75  0.30
cauda equina        0.40  0.35  0.45
spleen              0.35  0.50  0.55
artery / vein       0.10  0.15  0.20  (flow voids; half the images: random 0.05–0.7)
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
    T.AIR: (0.02, 0.02, 0.02),
    T.SUBCUT_FAT: (0.95, 0.80, 0.08),
    T.SOFT: (0.40, 0.45, 0.40),
    T.BOWEL: (0.45, 0.60, 0.55),
    T.KIDNEY: (0.35, 0.55, 0.60),
    T.CORTEX: (0.06, 0.05, 0.05),
    T.MARROW: (0.60, 0.45, 0.18),
    T.PE_BONE: (0.10, 0.08, 0.08),
    T.ANNULUS: (0.30, 0.25, 0.30),
    T.NUCLEUS: (0.35, 0.85, 0.80),
    T.CSF: (0.15, 0.95, 0.95),
    T.CORD: (0.40, 0.45, 0.55),
    T.ROOT: (0.40, 0.40, 0.50),
    T.EPIDURAL_FAT: (0.90, 0.75, 0.08),
    T.LF: (0.35, 0.30, 0.35),
    T.MUSCLE: (0.35, 0.25, 0.25),
    T.ARTERY: (0.10, 0.15, 0.20),
    T.VEIN: (0.15, 0.30, 0.35),
    T.NUCLEUS_DEGEN: (0.30, 0.30, 0.30),
    T.SACRAL_MARROW: (0.62, 0.47, 0.18),
    T.PE_MARROW: (0.55, 0.42, 0.17),
    T.OTHER_CORTEX: (0.06, 0.05, 0.05),
    T.OTHER_MARROW: (0.62, 0.48, 0.2),
    T.LIVER: (0.45, 0.28, 0.35),
    T.MODIC: (0.3, 0.7, 0.7),
    T.HEMANGIOMA: (0.85, 0.75, 0.3),
    T.CAUDA: (0.4, 0.35, 0.45),
    T.SPLEEN: (0.35, 0.5, 0.55),
    T.LIGAMENT: (0.08, 0.07, 0.07),
}
for _i, _c in enumerate(("T1", "T2", "STIR")):
    INTENSITY[_c] = np.array([_TABLE[t][_i] for t in range(T.N_TISSUES)], np.float32)

_LABEL_TISSUE = {
    1: T.MARROW,
    2: T.PE_MARROW,
    3: T.SACRAL_MARROW,
    4: T.ANNULUS,
    5: T.CSF,
    6: T.CORD,
    7: T.ROOT,
    8: T.EPIDURAL_FAT,
    9: T.LF,
    10: T.MUSCLE,
    11: T.ARTERY,
}


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


def _interp_matrix(n_out: int, n_low: int) -> np.ndarray:
    """(n_out, n_low) Gaussian-weighted interpolation from ``n_low`` nodes (smooth, cheap)."""
    pos = (np.arange(n_out) + 0.5) / n_out * (n_low - 1)
    nodes = np.arange(n_low)
    w = np.exp(-0.5 * ((pos[:, None] - nodes[None, :]) / 0.6) ** 2)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _smooth_field(shape, rng, scale_vox, n_max=16):
    """Zero-mean, unit-scale random field with correlation length ≈ ``scale_vox`` voxels.

    Low-resolution Gaussian noise is expanded with separable smooth interpolation matrices
    (three small tensor contractions), far cheaper than ``ndimage.zoom`` on large volumes.
    """
    low = [
        int(np.clip(np.ceil(s / max(sc, 1.0)) + 1, 2, n_max))
        for s, sc in zip(shape, scale_vox, strict=False)
    ]
    f = rng.standard_normal(low).astype(np.float32)
    W = [_interp_matrix(n, lo) for n, lo in zip(shape, low, strict=False)]
    f = f / float(
        np.sqrt((W[0] ** 2).sum(1).mean() * (W[1] ** 2).sum(1).mean() * (W[2] ** 2).sum(1).mean())
    )  # ≈ unit variance after smoothing
    a, b, c = low
    f = (f.reshape(a * b, c) @ W[2].T).reshape(a, b, shape[2])  # (a, b, n2)
    f = np.matmul(W[1], f)  # (a, n1, n2)
    f = (W[0] @ f.reshape(a, -1)).reshape(shape)  # (n0, n1, n2), one BLAS product
    return f


def synthesize_mr(
    seg: Image,
    contrast: str = "T2",
    rng: np.random.Generator | int | None = None,
    tissue: Image | np.ndarray | None = None,
    noise: float = 0.03,
    bias: float = 0.25,
    blur_mm: float = 0.6,
    slice_tissues: list[np.ndarray] | None = None,
) -> Image:
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
    slice_tissues : list of arrays, optional
        Tissue maps of the same grid sampled at sub-slice offsets across the slice thickness
        (from :func:`spinemetrics.phantom.make_phantom` on anisotropic grids): the signal is
        averaged over them, i.e. through-slice partial volume of a thick 2D acquisition.

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
    table = INTENSITY[contrast] * rng.uniform(0.85, 1.15, T.N_TISSUES).astype(np.float32)
    if rng.random() < 0.5:  # Modic type 2 (fatty) instead of type 1 (oedema)
        table[T.MODIC] = 0.9 * table[T.SUBCUT_FAT]
    if rng.random() < 0.5:  # vessels: flow void or bright (slow flow / in-flow)
        table[[T.ARTERY, T.VEIN]] = rng.uniform(0.05, 0.7, 2)
    # soft tissue split into random organs / bowel: threshold a smooth field
    soft_vals = np.array([table[T.SOFT], table[T.BOWEL], 0.8 * table[T.SUBCUT_FAT]], np.float32)
    blobs = _smooth_field(shape, rng, 25.0 / spacing)
    cls = (blobs > 0.4).astype(np.uint8)
    cls[blobs < -0.8] = 2
    del blobs

    def signal(t: np.ndarray) -> np.ndarray:
        out = table[t]
        soft = t == T.SOFT
        out[soft] = soft_vals[cls[soft]]
        return out

    if slice_tissues:
        img = np.zeros(shape, np.float32)
        for t in slice_tissues:
            img += signal(np.asarray(t))
        img *= 1.0 / len(slice_tissues)
    else:
        img = signal(tis)
    # texture (marrow heterogeneity, muscle striation surrogate) and smooth bias, one product
    mult = _smooth_field(shape, rng, 6.0 / spacing, n_max=24)
    mult *= 0.06
    mult += 1.0
    if bias > 0:
        field = _smooth_field(shape, rng, 120.0 / spacing, n_max=4)
        field *= bias / max(float(np.abs(field).max()), 1e-6)
        np.exp(field, out=field)
        mult *= field
        del field
    if blur_mm > 0:
        sig = blur_mm / spacing
        sig = np.where(sig < 0.25, 0.0, sig)  # no blur along coarse axes (slice profile)
        img = ndimage.gaussian_filter(img, sigma=sig, mode="nearest", truncate=2.5)
    img *= mult
    del mult
    if noise > 0:
        # Rician magnitude of a complex signal; the imaginary part reuses the real noise
        # shifted by half the volume (independent in practice, half the cost)
        n1 = rng.standard_normal(shape, dtype=np.float32)
        n1 *= noise
        n2 = np.roll(n1, shape[0] // 2 + 1, axis=0)
        img += n1
        np.square(img, out=img)
        np.square(n2, out=n2)
        img += n2
        np.sqrt(img, out=img)
    hi = float(np.percentile(img[:: max(1, img.shape[0] // 16)], 99.5))
    img *= 1.0 / max(hi, 1e-6)
    np.clip(img, 0.0, 1.0, out=img)
    return seg.with_array(
        img.astype(np.float32, copy=False), contrast=contrast, kind="synthetic_mr"
    )
