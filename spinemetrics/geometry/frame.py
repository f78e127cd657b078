"""Local frames, endplate planes and the canal centreline (MEASURES.md §0).

* :class:`Frame` — origin + orthonormal (SI, AP, LR) axes in world RAS mm. SI points
  cranially, AP anteriorly, LR to the patient's right (``LR = AP × SI``, right-handed in RAS).
* :class:`Plane` — a fitted endplate plane (point, unit normal pointing cranially, RMS).
* :func:`fit_plane` — least-squares plane with one round of outlier rejection.
* :class:`Centreline` — smoothing spline through dural-sac section centroids, parameterised
  by arc length, with the tangent ``t(s)`` and plane crossings used by canal measures.
* :func:`tilt_deg` — signed sagittal tilt of a normal, the building block of every angle:
  the angle between two planes in the mid-sagittal plane is the difference of their tilts,
  positive = lordotic (anterior opening; contract §5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.ndimage import gaussian_filter1d
from scipy.spatial import cKDTree

__all__ = ["Frame", "Plane", "fit_plane", "Centreline", "tilt_deg", "unit", "orthogonalise"]


def unit(v: np.ndarray) -> np.ndarray:
    """``v / |v|``."""
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def orthogonalise(v: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Unit component of ``v`` perpendicular to the unit vector ``ref``."""
    return unit(v - (v @ ref) * ref)


@dataclass
class Frame:
    """Local anatomical frame (all vectors unit, world RAS).

    Attributes
    ----------
    origin : (3,) array
    si, ap, lr : (3,) arrays
        Cranial, anterior and right-pointing axes.
    """

    origin: np.ndarray
    si: np.ndarray
    ap: np.ndarray
    lr: np.ndarray
    qc: set[str] = field(default_factory=set)

    @classmethod
    def from_si_ap(cls, origin: np.ndarray, si: np.ndarray, ap: np.ndarray) -> Frame:
        si = unit(si)
        ap = orthogonalise(ap, si)
        lr = unit(np.cross(ap, si))
        return cls(np.asarray(origin, dtype=np.float64), si, ap, lr)

    def point(self, ap: float | np.ndarray = 0.0, lr: float | np.ndarray = 0.0,
              si: float | np.ndarray = 0.0) -> np.ndarray:
        """World point(s) at local coordinates (mm)."""
        ap, lr, si = np.broadcast_arrays(np.asarray(ap, float), np.asarray(lr, float),
                                         np.asarray(si, float))
        return (self.origin + ap[..., None] * self.ap + lr[..., None] * self.lr
                + si[..., None] * self.si)

    def local(self, pts: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` → local ``(..., 3)`` as (ap, lr, si)."""
        d = np.asarray(pts, dtype=np.float64) - self.origin
        return np.stack([d @ self.ap, d @ self.lr, d @ self.si], axis=-1)


@dataclass
class Plane:
    """A fitted plane: ``point``, unit ``normal`` (oriented cranially), fit RMS in mm."""

    point: np.ndarray
    normal: np.ndarray
    rms_mm: float = float("nan")
    n_points: int = 0

    def height_along(self, origin: np.ndarray, direction: np.ndarray) -> float:
        """Distance ``t`` such that ``origin + t·direction`` lies on the plane (NaN if parallel)."""
        den = float(direction @ self.normal)
        if abs(den) < 1e-9:
            return float("nan")
        return float((self.point - origin) @ self.normal / den)


def fit_plane(points: np.ndarray, up: np.ndarray) -> Plane | None:
    """Least-squares plane through ``points`` (N, 3) with the normal oriented along ``up``.

    One refit after dropping points farther than ``max(3·MAD, 0.5 mm)`` from the first fit,
    so that a few rays that slipped past a rim or into a Schmorl node do not tilt the plane.
    Returns ``None`` with fewer than 6 finite points.
    """
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) < 6:
        return None
    for _ in range(2):
        c = pts.mean(axis=0)
        _, _, vt = np.linalg.svd(pts - c, full_matrices=False)
        n = vt[2]
        if n @ up < 0:
            n = -n
        res = (pts - c) @ n
        mad = float(np.median(np.abs(res - np.median(res)))) * 1.4826
        keep = np.abs(res) <= max(3 * mad, 0.5)
        if keep.all() or keep.sum() < 6:
            break
        pts = pts[keep]
    res = (pts - c) @ n
    return Plane(point=c, normal=n, rms_mm=float(np.sqrt(np.mean(res**2))), n_points=len(pts))


def tilt_deg(normal: np.ndarray, si: np.ndarray, ap: np.ndarray) -> float:
    """Sagittal tilt of a plane normal in the (SI, AP) plane, degrees (+ = faces anteriorly)."""
    return float(np.degrees(np.arctan2(normal @ ap, normal @ si)))


class Centreline:
    """Smoothed canal centreline through dural-sac section centroids.

    Parameters
    ----------
    sac_points : (N, 3) array
        World coordinates of dural-sac voxels (thecal sac ∪ cord).
    guide : (M, 3) array
        Ordered guide points (vertebral-body centroids, caudal → cranial) used to bin the
        sac voxels into 2-mm sections along the spine before taking section centroids.
    bin_mm : float
        Section thickness along the guide.
    """

    def __init__(self, sac_points: np.ndarray, guide: np.ndarray, bin_mm: float = 2.0) -> None:
        guide = np.asarray(guide, dtype=np.float64)
        if len(guide) < 2:
            # One body: use the principal axis of the sac itself as guide.
            c = sac_points.mean(axis=0)
            _, _, vt = np.linalg.svd(sac_points - c, full_matrices=False)
            a = vt[0] if vt[0][2] >= 0 else -vt[0]
            guide = np.stack([c - 60 * a, c + 60 * a])
        # Extend the guide beyond its ends so sac sections above/below are binned too.
        ext0 = guide[0] - 40 * unit(guide[1] - guide[0])
        ext1 = guide[-1] + 40 * unit(guide[-1] - guide[-2])
        guide = np.vstack([ext0, guide, ext1])
        seg_len = np.linalg.norm(np.diff(guide, axis=0), axis=1)
        s_guide = np.concatenate([[0.0], np.cumsum(seg_len)])
        s_dense = np.arange(0.0, s_guide[-1], 0.5)
        dense = np.stack([np.interp(s_dense, s_guide, guide[:, k]) for k in range(3)], axis=1)
        _, nn = cKDTree(dense).query(sac_points)
        s_pts = s_dense[nn]
        bins = np.floor(s_pts / bin_mm).astype(int)
        uniq, inv, counts = np.unique(bins, return_inverse=True, return_counts=True)
        sums = np.zeros((len(uniq), 3))
        np.add.at(sums, inv, sac_points)
        cents = sums / counts[:, None]
        # Drop bins at the ends of the guide (sections there are cut obliquely) and sparse bins.
        ok = (counts >= max(3, 0.1 * np.median(counts))) & (uniq > 0) & (
            uniq < int(s_dense[-1] // bin_mm)
        )
        s_c = (uniq[ok] + 0.5) * bin_mm
        cents = cents[ok]
        self.valid = len(s_c) >= 5
        self.s_range = (float(s_c.min()), float(s_c.max())) if len(s_c) else (0.0, 0.0)
        if not self.valid:
            self.s = np.zeros(0)
            self.points = np.zeros((0, 3))
            self.tangents = np.zeros((0, 3))
            return
        # Gaussian smoothing of the section centroids (σ = 3 mm along the spine) removes the
        # staircase of thick slices; a cubic spline then gives points and tangents.
        sigma = 3.0 / bin_mm
        sm = np.stack([gaussian_filter1d(cents[:, k], sigma, mode="nearest") for k in range(3)],
                      axis=1)
        spline = CubicSpline(s_c, sm, axis=0)
        s = np.arange(s_c.min(), s_c.max(), 0.2)
        pts = spline(s)
        der = spline(s, 1)
        tang = der / np.linalg.norm(der, axis=1, keepdims=True)
        self.s, self.points, self.tangents = s, pts, tang
        self.section_centroids = cents

    def crossing(
        self, point: np.ndarray, normal: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Where the plane (``point``, ``normal``) crosses the centreline: (point, tangent).

        The crossing nearest to ``point`` is returned; ``None`` if the centreline does not
        reach the plane (sac not in view at that level).
        """
        if not self.valid:
            return None
        f = (self.points - point) @ normal
        sign = np.sign(f)
        idx = np.nonzero(sign[:-1] * sign[1:] <= 0)[0]
        if len(idx) == 0:
            return None
        d = np.linalg.norm(self.points[idx] - point, axis=1)
        i = int(idx[np.argmin(d)])
        f0, f1 = f[i], f[i + 1]
        w = 0.0 if f1 == f0 else f0 / (f0 - f1)
        p = self.points[i] + w * (self.points[i + 1] - self.points[i])
        t = unit(self.tangents[i] + w * (self.tangents[i + 1] - self.tangents[i]))
        return p, t
