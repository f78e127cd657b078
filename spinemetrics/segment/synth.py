"""Domain-randomised synthesis of 2.5D sagittal training samples from label sources.

Each sample is a stack of ``n_ctx`` neighbouring sagittal slices (channels) of a random
oblique slab cut through a :class:`~spinemetrics.segment.sources.LabelSource`, with the class
map of the centre slice as target. The image is invented from the labels (SynthSeg-style):
random intensity per sub-label (half of the time from jittered T1/T2/STIR/Dixon-like
priors, otherwise uniform), texture, slice thickness 1–6 mm with partial-volume averaging,
slice spacing 1–6 mm between channels, in-plane resolution loss, blur, bias field, gamma,
Gaussian/Rician noise, occasional inversion and field-of-view cuts; geometry gets a random
3D rotation, anisotropic scaling and a smooth elastic warp. The patch axes follow the
inference convention: rows = anterior-posterior (RAS y), columns = inferior-superior (z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spinemetrics.segment.sources import IGNORE, LabelSource

__all__ = ["SynthConfig", "Synthesizer", "normalize_percentile"]


@dataclass
class SynthConfig:
    """Ranges of the randomisation (all lengths in mm; the patch grid is 1 mm)."""

    patch: tuple[int, int] = (128, 128)
    n_ctx: int = 3
    slice_spacing_mm: tuple[float, float] = (1.0, 6.0)
    rotation_inplane_deg: float = 25.0
    rotation_tilt_deg: float = 10.0
    scale: tuple[float, float] = (0.85, 1.2)
    scale_aniso: float = 0.07
    elastic_mm: float = 3.0
    p_prior_contrast: float = 0.5
    p_invert: float = 0.08
    p_fov_cut: float = 0.15
    p_lowres: float = 0.3
    offmid_mm: float = 45.0
    p_offmid: float = 0.3


# Contrast priors (relative signal, 0 = dark, 1 = bright) by sub-label, for common sagittal
# lumbar sequences. Only rough orderings matter; each value is jittered by ±0.12 per sample.
# Keys: sub-label ids of sources.py (10*c + k; phantom background tissue t is 220 + t:
# 221 subcutaneous and perineural fat, 241 ilium/rib cortex, 248 longitudinal ligaments);
# others fall back to uniform random.
_PRIORS: dict[str, dict[int, float]] = {
    "T2": {10: 0.08, 11: 0.45, 12: 0.05, 20: 0.08, 21: 0.40, 30: 0.08, 31: 0.45, 40: 0.15,
           41: 0.45, 42: 0.75, 50: 0.95, 55: 0.35, 60: 0.45, 70: 0.45, 80: 0.75, 90: 0.15,
           100: 0.22, 101: 0.65, 110: 0.08, 221: 0.75, 241: 0.08, 248: 0.08},
    "T1": {10: 0.08, 11: 0.65, 12: 0.05, 20: 0.08, 21: 0.60, 30: 0.08, 31: 0.65, 40: 0.30,
           41: 0.32, 42: 0.35, 50: 0.12, 55: 0.38, 60: 0.38, 70: 0.35, 80: 0.90, 90: 0.25,
           100: 0.30, 101: 0.85, 110: 0.10, 221: 0.90, 241: 0.08, 248: 0.08},
    "STIR": {10: 0.05, 11: 0.15, 12: 0.04, 20: 0.05, 21: 0.15, 30: 0.05, 31: 0.15, 40: 0.25,
             41: 0.50, 42: 0.80, 50: 0.95, 55: 0.45, 60: 0.50, 70: 0.55, 80: 0.06, 90: 0.15,
             100: 0.25, 101: 0.08, 110: 0.10, 221: 0.06, 241: 0.05, 248: 0.06},
    "DIXON_W": {10: 0.05, 11: 0.25, 12: 0.04, 20: 0.05, 21: 0.22, 30: 0.05, 31: 0.25,
                40: 0.30, 41: 0.50, 42: 0.65, 50: 0.85, 55: 0.45, 60: 0.50, 70: 0.50, 80: 0.08,
                90: 0.20, 100: 0.40, 101: 0.10, 110: 0.30, 221: 0.08, 241: 0.05, 248: 0.06},
}


def normalize_percentile(x: torch.Tensor, lo: float = 0.5, hi: float = 99.5) -> torch.Tensor:
    """Map the ``lo``/``hi`` percentiles of ``x`` to 0/1 (clamped to [-0.2, 1.5])."""
    flat = x.reshape(-1).float()
    if flat.numel() > 200_000:  # quantile on a subsample: same answer, far cheaper
        idx = torch.linspace(0, flat.numel() - 1, 200_000, device=flat.device).long()
        flat = flat[idx]
    q = torch.quantile(flat, torch.tensor([lo / 100, hi / 100], device=flat.device))
    scale = (q[1] - q[0]).clamp_min(1e-6)
    return ((x - q[0]) / scale).clamp(-0.2, 1.5)


def _rotation(rng: np.random.Generator, inplane: float, tilt: float) -> np.ndarray:
    def rot(axis: int, deg: float) -> np.ndarray:
        a = np.deg2rad(deg)
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m

    return (
        rot(0, rng.uniform(-inplane, inplane))
        @ rot(1, rng.uniform(-tilt, tilt))
        @ rot(2, rng.uniform(-tilt, tilt))
    )


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], coarse: int, std: float
) -> torch.Tensor:
    f = torch.from_numpy(rng.standard_normal((1, 1, coarse, coarse)).astype(np.float32)) * std
    return F.interpolate(f, size=shape, mode="bicubic", align_corners=False)[0, 0]


def _gauss_blur(x: torch.Tensor, sig_r: float, sig_c: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(C, H, W)``; sigma in pixels (0 = none)."""
    for dim, sig in ((2, sig_r), (3, sig_c)):
        if sig < 0.2:
            continue
        r = int(np.ceil(3 * sig))
        k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sig) ** 2)
        k = k / k.sum()
        shape = [1, 1, 1, 1]
        shape[dim] = k.numel()
        xx = x.unsqueeze(1) if x.dim() == 3 else x
        pad = [0, 0, 0, 0]
        if dim == 3:
            pad[0] = pad[1] = r
        else:
            pad[2] = pad[3] = r
        xx = F.conv2d(F.pad(xx, pad, mode="replicate"), k.view(shape))
        x = xx.squeeze(1) if x.dim() == 3 else xx
    return x


class Synthesizer:
    """Draws random (image, label) training batches from a list of label sources.

    Parameters
    ----------
    sources : list of LabelSource
    weights : list of float, optional
        Sampling weight per source (default: equal).
    config : SynthConfig, optional
    seed : int
        Seed of the generator; a given seed gives the same stream of samples.
    """

    def __init__(
        self,
        sources: list[LabelSource],
        weights: list[float] | None = None,
        config: SynthConfig | None = None,
        seed: int = 0,
    ) -> None:
        if not sources:
            raise ValueError("no label sources given")
        self.sources = sources
        w = np.ones(len(sources)) if weights is None else np.asarray(weights, dtype=float)
        self.p = w / w.sum()
        self.cfg = config or SynthConfig()
        self.rng = np.random.default_rng(seed)
        # Voxels worth centring a patch on: the spine if labelled, else any tissue.
        self._centres = []
        for s in sources:
            cls = s.lut[s.sub]
            pts = np.argwhere((cls >= 1) & (cls <= 6))
            if len(pts) == 0:
                pts = np.argwhere(s.sub > 0)
            step = max(1, len(pts) // 5000)
            self._centres.append(pts[::step].astype(np.float32))

    # ------------------------------------------------------------------ intensities
    def _intensity_lut(self) -> np.ndarray:
        rng = self.rng
        means = rng.uniform(0, 1, 256).astype(np.float32)
        if rng.random() < self.cfg.p_prior_contrast:
            prior = _PRIORS[rng.choice(list(_PRIORS))]
            for k, v in prior.items():
                means[k] = np.clip(v + rng.normal(0, 0.12), 0, 1)
        # Outside the field of view: usually air.
        means[0] = rng.uniform(0, 0.08) if rng.random() < 0.8 else rng.uniform(0, 1)
        # Sometimes merge random sub-labels (e.g. rim = marrow) for robustness.
        if rng.random() < 0.3:
            a, b = rng.integers(0, 256, (2, 20))
            means[a] = means[b]
        return means

    # ------------------------------------------------------------------ geometry
    def _coords(self, src_i: int) -> tuple[np.ndarray, np.ndarray, float]:
        """World (voxel) coordinates ``(n_ctx, n_sub, H, W, 3)`` and centre-plane coords."""
        cfg, rng = self.cfg, self.rng
        src = self.sources[src_i]
        H, W = cfg.patch
        c = self._centres[src_i][rng.integers(len(self._centres[src_i]))].astype(float)
        c[1:] += rng.normal(0, 20, 2)
        if rng.random() < cfg.p_offmid:
            c[0] = src.midline_x + rng.uniform(-cfg.offmid_mm, cfg.offmid_mm)
        else:
            c[0] = src.midline_x + rng.normal(0, 4)
        R = _rotation(rng, cfg.rotation_inplane_deg, cfg.rotation_tilt_deg)
        sc = rng.uniform(*cfg.scale) * rng.uniform(1 - cfg.scale_aniso, 1 + cfg.scale_aniso, 3)
        A = R * sc[None, :]  # columns: normal, row (A-P), column (S-I) directions
        u = np.arange(H) - (H - 1) / 2
        v = np.arange(W) - (W - 1) / 2
        uu, vv = np.meshgrid(u, v, indexing="ij")
        uu = uu + _smooth_field(rng, (H, W), 5, cfg.elastic_mm).numpy()
        vv = vv + _smooth_field(rng, (H, W), 5, cfg.elastic_mm).numpy()
        spacing = float(rng.uniform(*cfg.slice_spacing_mm))
        thick = max(1.0, spacing * rng.uniform(0.7, 1.0))
        n_sub = int(np.clip(round(thick / 1.5), 1, 3))
        subs = np.linspace(-thick / 2, thick / 2, n_sub) if n_sub > 1 else np.zeros(1)
        ks = np.arange(cfg.n_ctx) - cfg.n_ctx // 2
        off = (ks[:, None] * spacing + subs[None, :])  # (n_ctx, n_sub) along the normal
        pts = (
            c[None, None, None, None, :]
            + off[:, :, None, None, None] * A[:, 0]
            + uu[None, None, :, :, None] * A[:, 1]
            + vv[None, None, :, :, None] * A[:, 2]
        )
        centre = c[None, None, :] + uu[..., None] * A[:, 1] + vv[..., None] * A[:, 2]
        return pts, centre, spacing

    @staticmethod
    def _gather(vol: np.ndarray, pts: np.ndarray) -> np.ndarray:
        idx = np.rint(pts).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < np.asarray(vol.shape)), axis=-1)
        idx = np.where(inside[..., None], idx, 0)
        out = vol[idx[..., 0], idx[..., 1], idx[..., 2]]
        return np.where(inside, out, 0)

    # ------------------------------------------------------------------ one sample
    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One ``(image (n_ctx, H, W) float32, target (H, W) int64)`` pair."""
        cfg, rng = self.cfg, self.rng
        si = int(rng.choice(len(self.sources), p=self.p))
        src = self.sources[si]
        pts, centre, _ = self._coords(si)
        sub = self._gather(src.sub, pts)  # (n_ctx, n_sub, H, W)
        target = src.lut[self._gather(src.sub, centre)].astype(np.int64)
        means = self._intensity_lut()
        if src.image is not None and rng.random() < 0.7:  # real intensities (fine-tuning)
            real = self._gather(src.image, pts).astype(np.float32)
            img = torch.from_numpy(real / max(1e-6, float(np.percentile(real, 99.5))))
        else:
            img = torch.from_numpy(means[sub])  # (n_ctx, n_sub, H, W)
        img = img.mean(1)  # partial-volume average over the slice thickness
        # Tissue texture: smooth noise scaled per sub-label (centre sub-plane's labels).
        tex_std = torch.from_numpy(rng.uniform(0, 0.08, 256).astype(np.float32))
        per_px = tex_std[torch.from_numpy(sub[:, sub.shape[1] // 2].astype(np.int64))]
        noise = torch.randn(img.shape, generator=self._tgen()) * per_px
        img = img + _gauss_blur(noise, 0.8, 0.8)
        H, W = cfg.patch
        if rng.random() < cfg.p_lowres:  # lower acquired in-plane resolution
            f = rng.uniform(1.2, 2.2, 2)
            small = (max(8, int(H / f[0])), max(8, int(W / f[1])))
            img = F.interpolate(F.interpolate(img[None], size=small, mode="area"), size=(H, W),
                                mode="bilinear", align_corners=False)[0]
        img = _gauss_blur(img, rng.uniform(0, 1.0), rng.uniform(0, 1.0))
        if rng.random() < cfg.p_invert:
            img = 1.0 - img
        bias = torch.exp(_smooth_field(rng, (H, W), 4, rng.uniform(0, 0.35)))
        img = img * bias[None]
        img = img.clamp_min(0) ** float(np.exp(rng.normal(0, 0.3)))
        sigma = rng.uniform(0, 0.06) * float(img.max().clamp_min(1e-3))
        n1 = torch.randn(img.shape, generator=self._tgen()) * sigma
        if rng.random() < 0.5:  # Rician magnitude noise
            n2 = torch.randn(img.shape, generator=self._tgen()) * sigma
            img = torch.sqrt((img + n1) ** 2 + n2**2)
        else:
            img = img + n1
        tgt = torch.from_numpy(target)
        if rng.random() < cfg.p_fov_cut:  # partial field of view: image ends, air beyond
            axis = int(rng.integers(2))
            n = (H, W)[axis]
            cut = int(rng.uniform(0.6, 0.95) * n)
            sl = [slice(None)] * 2
            sl[axis] = slice(cut, None) if rng.random() < 0.5 else slice(0, n - cut)
            img[(slice(None), *sl)] = 0
            tgt[tuple(sl)] = 0
        img = normalize_percentile(img)
        return img.float(), tgt

    def _tgen(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.rng.integers(2**31)))

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples stacked: ``(n, n_ctx, H, W)`` float32 and ``(n, H, W)`` int64."""
        xs, ys = zip(*(self.sample() for _ in range(n)), strict=False)
        return torch.stack(xs), torch.stack(ys)


assert IGNORE == 255  # noqa: S101 - the loss relies on this value
