"""Geometric model of the phantom: frames, endplate planes, canal centreline and shapes.

Anatomical frame (mm): x → patient right, y → anterior, z → superior; the spine lies in the
mid-sagittal plane x = 0 and every sagittal direction below is a unit vector in the (y, z)
plane. A *tilt* θ (degrees) names the unit normal ``n(θ) = (0, sin θ, cos θ)`` (cranial,
tilted anteriorly by θ) and the in-plane anteroposterior axis ``a(θ) = (0, cos θ, −sin θ)``.

Construction, from the sacrum upward (all exact, no voxels involved):

* **S1 superior endplate**: the plane through the origin with tilt θ = sacral slope.
* **Disc** between a lower plane (point P1, tilt θ1) and the body above: heights ``Ha``/``Hp``
  (params) and depth ``D`` give the wedge ``w = 2·atan((Ha − Hp)/(1.6·D))``; the disc axis is
  ``u = n(θ1 − w/2)``, AP axis ``a = a(θ1 − w/2)``; the upper plane has tilt ``θ2 = θ1 − w``
  and passes through ``P2 = P1 + Hm·u + δ·a(θ2)`` (Hm = (Ha + Hp)/2), with δ chosen so that the
  slip (below) equals the parameter. The disc occupies the elliptic cylinder of axis
  ``M + t·u`` (M = (P1 + P2)/2), semi-axes D/2 along ``a`` and W/2 along x, between the two
  planes.
* **Vertebral body** above a disc: inferior plane = disc upper plane (P2, θ2); wedge
  ``w_b = 2·atan((Ha − Hp)/(1.6·D))`` (positive = lordotic, anterior taller); axis
  ``u_b = n(θ2 − w_b/2)`` = bisector of its two endplate normals; centre
  ``c = P2 + (Hm/2)·u_b``; superior plane through ``c + (Hm/2)·u_b`` with tilt ``θ2 − w_b``.
  Body = elliptic cylinder (D/2 along a_b, W/2 along x) around the axis, clipped by both
  planes. Its height along u_b at AP offset t from the axis is ``Hm + 2·t·tan(w_b/2)``, so
  the heights at 10 / 50 / 90 % of depth (t = +0.4D, 0, −0.4D) are exactly Ha, Hm, Hp and the
  volume of the sharp-edged slab is ``π/4·D·W·Hm``. Each endplate has a rounded rim (drop
  ``F·(1 − √(1 − τ²))``, τ = (ρ − 0.88)/0.12, ρ = normalised elliptic radius; ρ = 0.8 at the
  10/90 % lines, so the heights are untouched) whose volume
  :func:`spinemetrics.phantom.shapes.rim_volume` gives in closed form; that space belongs to
  the adjacent disc.
* **Sacrum**: S1 segment (elliptic slab below the S1 plate, axis = plate normal) and S2–S5 +
  3 coccygeal segments, each tilted by a share of the sacral kyphosis, plus ala / lateral
  masses and the sacral lamina (super-ellipsoids); label 3, level 26.
* **Posterior elements** (label 2, level of the vertebra) in the body frame (origin c, axes
  x, a_b, u_b; posterior wall at a = −D/2): pedicles centred at x = ±(IPD/2 + w_p/2),
  u = 0.18·Hm; a mid-line spinolaminar block whose anterior face is the plane
  a = −D/2 − canal_ap (so the bony canal AP at the mid-vertebral point is exactly the
  parameter); laminae, superior/inferior articular, transverse and spinous processes.
* **Canal centreline**: a C²-smooth cubic spline (arc-length parameter s, increasing
  cranially) through points posterior to each body and disc centre at
  ``D/2 + anterior epidural gap + r_ap`` along the local AP axis, continued through the
  sacral canal. Canal coordinates of a point: s of the nearest centreline point, ``ap`` =
  offset along the centreline's AP normal N(s) (anterior positive), ``lr`` = x. In the plane
  ⟂ T(s0) through C(s0) the canal coordinates are exactly (ap, lr, s0).
* **Dural sac** (thecal sac 5 ∪ cord 6): ``(ap/r_ap(s))² + (lr/r_lr(s))² ≤ 1``; its section
  ⟂ the centreline at s0 is exactly this ellipse (area ``π·r_ap·r_lr``). Stenosis at a disc
  multiplies the area by ``1 − ρ·exp(−((s − s_d)/4 mm)²)`` (AP takes the power 0.7, LR 0.3).
* **Ligamentum flavum** per disc and side: a straight band of thickness T (param) in the
  (ap, lr) section, spanning a range of s around the disc: its maximal inscribed diameter in
  any section ⟂ the centreline is exactly T.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline, PchipInterpolator
from scipy.spatial import cKDTree

from spinemetrics.labels import SACRUM_ID, Structure, vertebra_id
from spinemetrics.phantom import tissues as T
from spinemetrics.phantom.params import PhantomParams
from spinemetrics.phantom.shapes import (
    Capsule,
    EllipticSlab,
    FuncShape,
    Shape,
    SuperEllipsoid,
    _frame_coords,
    _pow,
)

X_AXIS = np.array([1.0, 0.0, 0.0])


def n_tilt(theta_deg: float) -> np.ndarray:
    """Cranial unit normal tilted anteriorly by ``theta_deg`` in the sagittal plane."""
    t = np.radians(theta_deg)
    return np.array([0.0, np.sin(t), np.cos(t)])


def a_tilt(theta_deg: float) -> np.ndarray:
    """Anterior in-plane axis perpendicular to :func:`n_tilt`."""
    t = np.radians(theta_deg)
    return np.array([0.0, np.cos(t), -np.sin(t)])


@dataclass
class Plane:
    point: np.ndarray
    tilt_deg: float

    @property
    def normal(self) -> np.ndarray:
        return n_tilt(self.tilt_deg)

    @property
    def ap(self) -> np.ndarray:
        return a_tilt(self.tilt_deg)

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray]:
        return self.point, self.normal


@dataclass
class BodyGeom:
    """One vertebral body (or sacral segment) in the anatomical frame."""

    name: str
    vid: int
    centre: np.ndarray
    tilt_deg: float  # axis tilt
    height_mm: float  # Hm along the axis
    depth_mm: float
    width_mm: float
    wedge_deg: float  # lordotic positive
    inferior: Plane
    superior: Plane

    @property
    def u(self) -> np.ndarray:
        return n_tilt(self.tilt_deg)

    @property
    def a(self) -> np.ndarray:
        return a_tilt(self.tilt_deg)

    def to_anat(self, x: float, a: float, u: float) -> np.ndarray:
        """Body-frame (x, a, u) → anatomical point."""
        return self.centre + x * X_AXIS + a * self.a + u * self.u

    @property
    def axes(self) -> np.ndarray:
        return np.column_stack([X_AXIS, self.a, self.u])


@dataclass
class DiscGeom:
    name: str
    did: int
    upper: str
    lower: str
    centre: np.ndarray  # M, midpoint of the two endplate centres
    tilt_deg: float
    depth_mm: float
    width_mm: float
    wedge_deg: float
    inferior: Plane  # superior endplate of the lower vertebra
    superior: Plane  # inferior endplate of the upper vertebra
    lower_endplate_depth_mm: float

    @property
    def u(self) -> np.ndarray:
        return n_tilt(self.tilt_deg)

    @property
    def a(self) -> np.ndarray:
        return a_tilt(self.tilt_deg)

    def height_at(self, t: float) -> float:
        """Exact height along u between the two planes at AP offset t (anterior +) from M."""
        q = self.centre + t * self.a
        u = self.u
        s = []
        for pl in (self.inferior, self.superior):
            nrm = pl.normal
            s.append(float(nrm @ (pl.point - q)) / float(nrm @ u))
        return s[1] - s[0]


class CanalLine:
    """Arc-length parameterised canal centreline in the sagittal plane with a fast lookup.

    Parameters
    ----------
    anchors : (K, 3) array
        Points ordered caudal → cranial (x = 0).
    step : float
        Arc-length step of the dense polyline (mm).
    lut_mm : float
        Spacing of the (y, z) lookup table of canal coordinates.
    margin : float
        Half-width of the strip around the centreline covered by the lookup (mm).
    """

    def __init__(
        self, anchors: np.ndarray, step: float = 0.1, lut_mm: float = 1.0, margin: float = 32.0
    ) -> None:
        anchors = np.asarray(anchors, float)
        chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(anchors, axis=0), axis=1))]
        spl = CubicSpline(chord, anchors[:, 1:], bc_type="natural")
        t = np.linspace(0.0, chord[-1], int(chord[-1] / 0.02) + 2)
        pts = spl(t)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        arc = np.r_[0.0, np.cumsum(seg)]
        self.length = float(arc[-1])
        self.s = np.arange(0.0, self.length, step)
        tt = np.interp(self.s, arc, t)
        yz = spl(tt)
        d = spl(tt, 1)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        n = len(self.s)
        self.points = np.column_stack([np.zeros(n), yz])
        self.tangent = np.column_stack([np.zeros(n), d])
        self.normal = np.column_stack([np.zeros(n), d[:, 1], -d[:, 0]])  # anterior
        # coarse tree (0.5 mm) for the nearest sample; s and ap are then refined linearly
        self._sub = max(1, int(round(0.5 / step)))
        self._tree = cKDTree(yz[:: self._sub])
        # lookup table over a (y, z) box
        lo = yz.min(axis=0) - margin
        hi = yz.max(axis=0) + margin
        self.lut_lo = lo
        self.lut_h = lut_mm
        gy = np.arange(lo[0], hi[0] + lut_mm, lut_mm)
        gz = np.arange(lo[1], hi[1] + lut_mm, lut_mm)
        YY, ZZ = np.meshgrid(gy, gz, indexing="ij")
        q = np.column_stack([YY.ravel(), ZZ.ravel()])
        s_lut, ap_lut = self._exact(q)
        self.lut = np.stack([s_lut.reshape(YY.shape), ap_lut.reshape(YY.shape)], axis=-1).astype(
            np.float64
        )
        self.lut_shape = YY.shape
        self._flat = self.lut.reshape(-1, 2)

    def pieces(self, s_lo: float, s_hi: float, radius: float, step: float = 30.0) -> list:
        """Capsules covering the tube of ``radius`` around the centreline on [s_lo, s_hi]."""
        s_lo, s_hi = max(s_lo, 0.0), min(s_hi, self.length)
        n = max(1, int(np.ceil((s_hi - s_lo) / step)))
        ss = np.linspace(s_lo, s_hi, n + 1)
        r = radius + step * step / 400.0 + 1.0  # sag of a chord on a bend of radius ≥ 50 mm
        return [(self.point(a), self.point(b), r) for a, b in zip(ss[:-1], ss[1:], strict=False)]

    def _exact(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dist, idx = self._tree.query(q)
        idx = idx * self._sub
        # refine to the nearest dense sample by projecting on the local tangent
        d0 = q - self.points[idx, 1:]
        shift = np.rint(np.einsum("ij,ij->i", d0, self.tangent[idx, 1:]) / (self.s[1] - self.s[0]))
        idx = np.clip(idx + shift.astype(np.int64), 0, len(self.s) - 1)
        d = q - self.points[idx, 1:]
        tang = self.tangent[idx, 1:]
        nrm = self.normal[idx, 1:]
        s = self.s[idx] + np.einsum("ij,ij->i", d, tang)
        ap = np.einsum("ij,ij->i", d, nrm)
        end = (idx == 0) | (idx == len(self.s) - 1)
        s[end] = np.nan
        ap[end] = np.nan
        return s, ap

    def coords(self, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canal coordinates (s, ap) of points, by bilinear lookup (NaN outside the strip)."""
        fy = (np.asarray(y, np.float64) - self.lut_lo[0]) * (1.0 / self.lut_h)
        fz = (np.asarray(z, np.float64) - self.lut_lo[1]) * (1.0 / self.lut_h)
        ny, nz = self.lut_shape
        valid = (fy >= 0) & (fy < ny - 1) & (fz >= 0) & (fz < nz - 1)
        fy = np.where(valid, fy, 0.0)
        fz = np.where(valid, fz, 0.0)
        iy = fy.astype(np.int64)
        iz = fz.astype(np.int64)
        wy = fy - iy
        wz = fz - iz
        flat = self._flat
        i00 = iy * nz + iz
        v00, v01 = flat[i00], flat[i00 + 1]
        v10, v11 = flat[i00 + nz], flat[i00 + nz + 1]
        wy = wy[..., None]
        wz = wz[..., None]
        v0 = v00 + (v10 - v00) * wy
        v = v0 + (v01 + (v11 - v01) * wy - v0) * wz
        v[~valid] = np.nan
        return v[..., 0], v[..., 1]

    def point(self, s: float) -> np.ndarray:
        return np.array(
            [0.0, np.interp(s, self.s, self.points[:, 1]), np.interp(s, self.s, self.points[:, 2])]
        )

    def frame(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        """Unit tangent (cranial) and AP normal (anterior) at arc length s."""
        ty = np.interp(s, self.s, self.tangent[:, 1])
        tz = np.interp(s, self.s, self.tangent[:, 2])
        t = np.array([0.0, ty, tz]) / np.hypot(ty, tz)
        return t, np.array([0.0, t[2], -t[1]])

    def crossing(self, point: np.ndarray, normal: np.ndarray) -> float:
        """Arc length where the centreline crosses the plane (point, normal)."""
        f = (self.points - point) @ normal
        sign = np.sign(f)
        idx = np.nonzero(sign[:-1] * sign[1:] <= 0)[0]
        if len(idx) == 0:
            return float("nan")
        # nearest crossing to the point
        cand = []
        for i in idx:
            s0 = self.s[i] - f[i] * (self.s[i + 1] - self.s[i]) / (f[i + 1] - f[i] + 1e-300)
            cand.append((np.linalg.norm(self.point(s0) - point), s0))
        return float(min(cand)[1])


@dataclass
class Anatomy:
    """The phantom's analytic anatomy: geometry records and the ordered list of shapes."""

    params: PhantomParams
    bodies: dict[str, BodyGeom]
    discs: dict[str, DiscGeom]
    sacrum: list[BodyGeom]
    canal: CanalLine
    s_level: dict[str, float]  # canal arc length at each body / disc mid-plane
    sac_radii: callable  # s -> (r_ap, r_lr) of the dural sac
    base_radii: callable  # s -> (r_ap, r_lr) without stenosis
    shapes: list[Shape] = field(default_factory=list)
    pedicle_x: dict[str, float] = field(default_factory=dict)
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    def pedicle_u(self, v: str, side: str) -> float:
        """Body-frame SI coordinate (mm) of the pedicle centre of vertebra ``v`` on a side."""
        b = self.bodies[v]
        return 0.18 * b.height_mm + self.params.pedicle_shift_mm.get(f"{v}:{side}", 0.0)

    def classify(self, x, y, z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Semantic label, level id and tissue at arbitrary anatomical points (exact shapes)."""
        x, y, z = np.broadcast_arrays(
            np.asarray(x, float), np.asarray(y, float), np.asarray(z, float)
        )
        seg = np.zeros(x.shape, np.uint8)
        lev = np.zeros(x.shape, np.uint8)
        tis = np.zeros(x.shape, np.uint8)
        for sh in self.shapes:
            box = (
                (x >= sh.lo[0])
                & (x <= sh.hi[0])
                & (y >= sh.lo[1])
                & (y <= sh.hi[1])
                & (z >= sh.lo[2])
                & (z <= sh.hi[2])
            )
            if not box.any():
                continue
            xs, ys, zs = x[box], y[box], z[box]
            m = sh.inside(xs, ys, zs)
            if not m.any():
                continue
            idx = np.flatnonzero(box)[m]
            seg.flat[idx] = sh.label
            lev.flat[idx] = sh.level
            tv = np.full(m.sum(), sh.tissue, np.uint8)
            c = sh.core(xs[m], ys[m], zs[m]) if sh.core_tissue is not None else None
            if c is not None:
                tv[c] = sh.core_tissue
            tis.flat[idx] = tv
        return seg, lev, tis


# --------------------------------------------------------------------------- construction
_SACRAL = ["S1", "S2", "S3", "S4", "S5", "Co1", "Co2", "Co3"]
_SACRAL_H = [None, 24.0, 20.0, 16.0, 12.5, 9.0, 7.0, 5.5]
_SACRAL_D = [1.0, 0.8, 0.66, 0.54, 0.44, 0.36, 0.3, 0.25]
_SACRAL_W = [1.0, 0.86, 0.72, 0.58, 0.46, 0.38, 0.3, 0.24]
_SACRAL_K = [0.06, 0.12, 0.18, 0.2, 0.16, 0.12, 0.1, 0.06]
_ALA_HALF = [58.0, 46.0, 35.0, 25.0, 16.0]


def _wedge(ha: float, hp: float, depth: float) -> float:
    return float(np.degrees(2.0 * np.arctan((ha - hp) / (1.6 * depth))))


def build_anatomy(p: PhantomParams) -> Anatomy:
    """Build the analytic anatomy for a parameter set (see the module docstring)."""
    bodies: dict[str, BodyGeom] = {}
    discs: dict[str, DiscGeom] = {}

    # ---- sacrum (downward from the S1 plate)
    ss = p.sacral_slope_deg
    sacrum: list[BodyGeom] = []
    top = Plane(np.zeros(3), ss)
    total_k = p.sacral_kyphosis_deg
    for i, nm in enumerate(_SACRAL):
        h = p.s1_height_mm if i == 0 else _SACRAL_H[i]
        k = total_k * _SACRAL_K[i]
        tilt = top.tilt_deg - k / 2.0
        u = n_tilt(tilt)
        c = top.point - (h / 2.0) * u
        bottom = Plane(c - (h / 2.0) * u, top.tilt_deg - k)
        sacrum.append(
            BodyGeom(
                nm,
                SACRUM_ID,
                c,
                tilt,
                h,
                p.s1_depth_mm * _SACRAL_D[i],
                p.s1_width_mm * _SACRAL_W[i],
                -k,
                bottom,
                top,
            )
        )
        top = bottom

    # ---- mobile spine (upward from the S1 plate)
    lower = Plane(np.zeros(3), ss)
    lower_ep_depth = p.s1_depth_mm
    for dname, vname in zip(reversed(p.discs), reversed(p.vertebrae), strict=False):
        up, lo = dname.split("-")
        dd, dw = p.disc_depth_mm[dname], p.disc_width_mm[dname]
        ha, hp = p.disc_height_anterior_mm[dname], p.disc_height_posterior_mm[dname]
        w = _wedge(ha, hp, dd)
        hm = 0.5 * (ha + hp)
        tilt = lower.tilt_deg - w / 2.0
        u = n_tilt(tilt)
        e1 = lower.ap
        e2 = a_tilt(lower.tilt_deg - w)
        delta = (p.slip_percent.get(dname, 0.0) / 100.0 * lower_ep_depth - hm * (u @ e1)) / (
            e2 @ e1
        )
        p2 = lower.point + hm * u + delta * e2
        upper = Plane(p2, lower.tilt_deg - w)
        m = 0.5 * (lower.point + p2)
        discs[dname] = DiscGeom(
            dname, 100 + vertebra_id(up), up, lo, m, tilt, dd, dw, w, lower, upper, lower_ep_depth
        )
        # body above
        bd, bw = p.body_depth_mm[vname], p.body_width_mm[vname]
        bha, bhp = p.body_height_anterior_mm[vname], p.body_height_posterior_mm[vname]
        wb = _wedge(bha, bhp, bd)
        bhm = 0.5 * (bha + bhp)
        btilt = upper.tilt_deg - wb / 2.0
        bu = n_tilt(btilt)
        c = p2 + (bhm / 2.0) * bu
        sup = Plane(c + (bhm / 2.0) * bu, upper.tilt_deg - wb)
        bodies[vname] = BodyGeom(vname, vertebra_id(vname), c, btilt, bhm, bd, bw, wb, upper, sup)
        lower = sup
        lower_ep_depth = bd / np.cos(np.radians(wb / 2.0))

    # ---- canal centreline and radii
    ratio = p.sac_lr_ap_ratio
    g_a = p.anterior_epidural_mm

    def rap_of(area: float) -> float:
        return float(np.sqrt(area / (np.pi * ratio)))

    s1 = sacrum[0]
    anchors = []  # (point, base r_ap, posterior gap, key)
    for seg in reversed(sacrum[1:5]):
        anchors.append((seg.centre - (seg.depth_mm / 2.0 + 4.0) * seg.a, 0.0, 2.0, seg.name))
    r = rap_of(p.sac_area_mm2["S1"])
    low_v = p.vertebrae[-1]
    gp_s1 = max(2.0, p.canal_ap_mm[low_v] - g_a - 2 * r)
    anchors.append((s1.centre - (s1.depth_mm / 2.0 + g_a + r) * s1.a, r, gp_s1, "S1"))
    for dname, vname in zip(reversed(p.discs), reversed(p.vertebrae), strict=False):
        d = discs[dname]
        r = rap_of(p.sac_area_mm2[dname])
        gp_d = 0.5 * (p.canal_ap_mm[d.upper] + p.canal_ap_mm.get(d.lower, p.canal_ap_mm[d.upper]))
        anchors.append(
            (d.centre - (d.depth_mm / 2.0 + g_a + r) * d.a, r, max(1.5, gp_d - g_a - 2 * r), dname)
        )
        b = bodies[vname]
        r = rap_of(p.sac_area_mm2[vname])
        anchors.append(
            (
                b.centre - (b.depth_mm / 2.0 + g_a + r) * b.a,
                r,
                max(1.5, p.canal_ap_mm[vname] - g_a - 2 * r),
                vname,
            )
        )
    topb = bodies[p.vertebrae[0]]
    r_top = anchors[-1][1]
    for ext in (30.0, 60.0):
        pt = (
            topb.centre
            + (topb.height_mm / 2.0 + ext) * topb.u
            - (topb.depth_mm / 2.0 + g_a + r_top) * topb.a
        )
        anchors.append((pt, r_top, anchors[-1][2], f"top+{ext:.0f}"))
    canal = CanalLine(np.array([a[0] for a in anchors]))

    s_level: dict[str, float] = {}
    for name, b in list(bodies.items()) + [("S1", s1)]:
        s_level[name] = canal.crossing(b.centre, b.u)
    for name, d in discs.items():
        s_level[name] = canal.crossing(d.centre, d.u)
    for seg in sacrum[1:]:
        s_level[seg.name] = canal.crossing(seg.centre, seg.u)

    # base radius / gap profiles along s (PCHIP through the level anchors above S1)
    keys = ["S1"] + [
        k for pair in zip(reversed(p.discs), reversed(p.vertebrae), strict=False) for k in pair
    ]
    s_k = np.array([s_level[k] for k in keys])
    r_k = np.array([rap_of(p.sac_area_mm2[k]) for k in keys])
    gp_map = {a[3]: a[2] for a in anchors}
    g_k = np.array([gp_map[k] for k in keys])
    order = np.argsort(s_k)
    s_k, r_k, g_k = s_k[order], r_k[order], g_k[order]
    r_int = PchipInterpolator(s_k, r_k, extrapolate=False)
    g_int = PchipInterpolator(s_k, g_k, extrapolate=False)
    s_end = s_level["S2"]  # dural sac ends at S2
    s_s1 = s_level["S1"]
    s_hiatus = s_level["S4"]
    sten = [(s_level[d], rho) for d, rho in p.stenosis.items() if rho > 0]

    def base_radii(s):
        s = np.asarray(s, float)
        r_ = r_int(np.clip(s, s_k[0], s_k[-1]))
        below = s < s_s1
        frac = np.clip((s - s_end) / max(s_s1 - s_end, 1e-6), 0.0, 1.0)
        r_ = np.where(below, r_k[0] * np.sqrt(frac), r_)
        return r_, ratio * r_

    def sac_radii(s):
        s = np.asarray(s, float)
        ra, rl = base_radii(s)
        f = np.ones_like(ra)
        for sd, rho in sten:
            f = f * (1.0 - rho * np.exp(-(((s - sd) / 4.0) ** 2)))
        return ra * f**0.7, rl * f**0.3

    def gap_post(s):
        s = np.asarray(s, float)
        g = g_int(np.clip(s, s_k[0], s_k[-1]))
        return np.where(s < s_s1, 2.0, g)

    an = Anatomy(p, bodies, discs, sacrum, canal, s_level, sac_radii, base_radii)
    an.shapes = _make_shapes(an, gap_post, s_hiatus)
    return an


# --------------------------------------------------------------------------- shapes
def _make_shapes(an: Anatomy, gap_post, s_hiatus: float) -> list[Shape]:
    p = an.params
    canal = an.canal
    S = Structure
    shapes: list[Shape] = []
    bodies = an.bodies
    verts = list(p.vertebrae)

    # global extent of the anatomy of interest
    pts = np.array([b.centre for b in bodies.values()] + [s.centre for s in an.sacrum])
    z_lo, z_hi = pts[:, 2].min() - 40.0, pts[:, 2].max() + 60.0

    # axial helper: canal centreline y as a function of z (z is monotone along the lumbar canal)
    cz = canal.points[:, 2]
    cy = canal.points[:, 1]
    zc = np.maximum.accumulate(cz)
    keep = np.r_[True, np.diff(zc) > 1e-6]
    zc, yc = zc[keep], cy[keep]

    def y_canal(z):
        return np.interp(z, zc, yc)

    # ---- background: body outline (subcutaneous fat ring, soft tissue inside), kidneys
    hw, pdp, adp, sf = (
        p.body_half_width_mm,
        p.posterior_depth_mm,
        p.anterior_depth_mm,
        p.subcutaneous_fat_mm,
    )
    cdy = 0.5 * (adp - pdp)
    sa, sb = 0.5 * (adp + pdp), hw

    def outline(x, y, z):
        d = y - y_canal(z) - cdy
        return (x / sb) ** 2 + (d / sa) ** 2 <= 1.0

    def inner(x, y, z):
        d = y - y_canal(z) - cdy
        return (x / (sb - sf)) ** 2 + (d / (sa - sf)) ** 2 <= 1.0

    big = 400.0
    shapes.append(
        FuncShape(
            S.background,
            0,
            T.SUBCUT_FAT,
            [-big, -big, z_lo - 200],
            [big, big, z_hi + 200],
            outline,
            "outline",
            core=inner,
            core_tissue=T.SOFT,
            coarse=True,
        )
    )
    for side in (-1.0, 1.0):
        b1 = bodies.get("L1", bodies[verts[0]])
        c = b1.centre + side * (b1.width_mm / 2.0 + 52.0) * X_AXIS - 8.0 * b1.a - 10.0 * b1.u
        shapes.append(
            SuperEllipsoid(
                S.background,
                0,
                T.KIDNEY,
                c,
                b1.axes @ _rot_x(-15.0),
                [24.0, 28.0, 55.0],
                2.0,
                name="kidney",
            )
        )

    shapes += _organs(an)

    # ---- muscles (axial cross-sections following the canal)
    shapes += _muscles(an, y_canal)
    # ---- posterior mid-line: multifidus and interspinous ligaments (before the laminae,
    # spinous processes and ligamentum flavum, which keep their own voxels)
    shapes += _posterior_midline(an)

    # ---- bones that are not spine (label 0): ilium, lowest ribs
    shapes += _pelvis_and_ribs(an)

    # ---- vessels
    shapes += _vessels(an)

    # ---- perineural fat around the exiting roots (before everything that bounds it)
    shapes += _perineural_fat(an)

    # ---- anterior longitudinal ligament (after the vessels, before the sacrum and bodies)
    shapes += _longitudinal_ligaments(an, "ALL")

    # ---- sacrum lateral masses and lamina (before the canal, which carves the sacral canal)
    low_v = verts[-1]
    for i, seg in enumerate(an.sacrum[:5]):
        c = seg.centre - 0.55 * seg.depth_mm * seg.a
        shapes.append(
            SuperEllipsoid(
                S.sacrum,
                SACRUM_ID,
                T.CORTEX,
                c,
                seg.axes,
                [
                    _ALA_HALF[i] * p.s1_width_mm / 50.0,
                    0.42 * seg.depth_mm,
                    0.5 * seg.height_mm + 1.0,
                ],
                2.5,
                core_tissue=T.SACRAL_MARROW,
                shell_mm=1.5,
                name="ala",
            )
        )
        cl = (
            seg.centre
            - (0.5 * seg.depth_mm + 0.5 * p.canal_ap_mm[low_v] * (1.0 - 0.12 * i) + 5.0) * seg.a
        )
        shapes.append(
            SuperEllipsoid(
                S.sacrum,
                SACRUM_ID,
                T.CORTEX,
                cl,
                seg.axes,
                [max(8.0, 0.3 * seg.width_mm), 4.5, 0.5 * seg.height_mm + 1.0],
                3.0,
                core_tissue=T.SACRAL_MARROW,
                shell_mm=1.2,
                name="sacral_lamina",
            )
        )

    # ---- canal contents in canal coordinates
    ratio = p.sac_lr_ap_ratio
    g_a = p.anterior_epidural_mm
    s_top = canal.length
    strip_lo = np.array([-35.0, canal.points[:, 1].min() - 35.0, canal.points[:, 2].min() - 35.0])
    strip_hi = np.array([35.0, canal.points[:, 1].max() + 35.0, canal.points[:, 2].max() + 35.0])

    def fat(x, y, z):
        s, ap = canal.coords(y, z)
        ok = np.isfinite(s) & (s >= s_hiatus)
        s = np.where(ok, s, 0.0)
        ra, rl = an.base_radii(s)
        ra = np.maximum(ra, 3.0)
        gp = gap_post(s)
        c = 0.5 * (g_a - gp)
        ha = ra + 0.5 * (g_a + gp)
        hl = ratio * ra + 3.5
        v = _pow((ap - c) / ha, 2.5) + _pow(x / hl, 2.5)
        return ok & (v <= 1.0)

    ra_all = np.maximum(an.base_radii(canal.s)[0], 3.0)
    r_fat = (
        float(
            np.max(
                np.maximum(
                    np.maximum(ra_all + gap_post(canal.s), ra_all + g_a), ratio * ra_all + 3.5
                )
            )
        )
        + 1.0
    )
    shapes.append(
        FuncShape(
            S.epidural_fat,
            0,
            T.EPIDURAL_FAT,
            strip_lo,
            strip_hi,
            fat,
            "fat",
            pieces=canal.pieces(s_hiatus, s_top, r_fat),
        )
    )

    # posterior longitudinal ligament (after the epidural fat, before roots, sac and bone)
    shapes += _longitudinal_ligaments(an, "PLL")

    # nerve roots (before the sac, which overwrites their intradural part)
    shapes += _roots(an)

    def sac(x, y, z):
        s, ap = canal.coords(y, z)
        ok = np.isfinite(s)
        s = np.where(ok, s, 0.0)
        ra, rl = an.sac_radii(s)
        return (
            ok
            & (ra > 0)
            & ((ap / np.maximum(ra, 1e-6)) ** 2 + (x / np.maximum(rl, 1e-6)) ** 2 <= 1.0)
        )

    r_sac = float(np.max(an.base_radii(canal.s)[1])) + 1.0
    shapes.append(
        FuncShape(
            S.thecal_sac,
            0,
            T.CSF,
            strip_lo,
            strip_hi,
            sac,
            "sac",
            pieces=canal.pieces(an.s_level["S2"], s_top, r_sac),
        )
    )

    # cord + conus
    first_disc = p.discs[0]
    if len(p.discs) > 1:
        s_a, s_b = an.s_level[p.discs[0]], an.s_level[p.discs[1]]
        if p.vertebrae[0] == "T11":
            s_a, s_b = an.s_level[p.discs[1]], an.s_level[p.discs[2]]
    else:  # pragma: no cover
        s_a = s_b = an.s_level[first_disc]
    if p.vertebrae[0] == "L1":
        s_a, s_b = an.s_level["L1"] + 15.0, an.s_level["L1"] + 30.0
    s_conus = s_a + p.conus_fraction * (s_b - s_a)
    rc = 0.5 * p.cord_ap_mm

    def cord(x, y, z):
        s, ap = canal.coords(y, z)
        ok = np.isfinite(s) & (s > s_conus)
        s = np.where(ok, s, s_top)
        taper = np.sqrt(np.clip((s - s_conus) / 25.0, 0.0, 1.0))
        ra, rl = an.sac_radii(s)
        ca = np.minimum(rc * taper, 0.7 * ra)
        cl = np.minimum(1.25 * rc * taper, 0.7 * rl)
        return ok & ((ap / np.maximum(ca, 1e-6)) ** 2 + (x / np.maximum(cl, 1e-6)) ** 2 <= 1.0)

    shapes.append(
        FuncShape(
            S.spinal_cord,
            0,
            T.CORD,
            strip_lo,
            strip_hi,
            cord,
            "cord",
            pieces=canal.pieces(s_conus, s_top, 1.25 * rc + 1.0),
        )
    )
    an.s_level["conus"] = s_conus

    # cauda equina: thin strands in the dorsal half of the sac below the conus (tissue only;
    # always strictly inside the sac, so the thecal-sac label is unchanged)
    strands = [
        (-0.55, -0.2),
        (-0.55, 0.2),
        (-0.35, -0.5),
        (-0.35, 0.5),
        (-0.15, -0.65),
        (-0.15, 0.65),
        (0.1, -0.45),
        (0.1, 0.45),
    ]

    def cauda(x, y, z):
        s, ap = canal.coords(y, z)
        ok = np.isfinite(s) & (s < s_conus)
        s = np.where(ok, s, s_conus)
        ra, rl = an.sac_radii(s)
        inner = (ap / np.maximum(ra, 1e-6)) ** 2 + (x / np.maximum(rl, 1e-6)) ** 2 <= 0.8
        hit = np.zeros(np.shape(x), bool)
        for fa, fl in strands:
            da, dl = ap - fa * ra, x - fl * rl
            hit |= da * da + dl * dl <= 0.8
        return ok & inner & hit

    shapes.append(
        FuncShape(
            S.thecal_sac,
            0,
            T.CAUDA,
            strip_lo,
            strip_hi,
            cauda,
            "cauda",
            pieces=canal.pieces(an.s_level["S2"], s_conus, r_sac),
        )
    )

    # ligamentum flavum, per disc and side
    for dname, d in an.discs.items():
        sd = an.s_level[dname]
        hd = d.height_at(0.0)
        for side, sgn in (("L", -1.0), ("R", 1.0)):
            shapes.append(
                _lf_shape(
                    an,
                    gap_post,
                    sd,
                    hd,
                    sgn,
                    p.lf_thickness_mm[f"{dname}:{side}"],
                    strip_lo,
                    strip_hi,
                )
            )

    # ---- posterior elements
    for v in verts:
        shapes += _posterior_elements(an, v)
    shapes += _s1_articular(an)

    # ---- discs and bodies (exact geometry, painted last). Bodies have rounded rims (drop
    # ``endplate_rim_mm`` at the rim, from 88 % of the radius: the 10/50/90 % heights are
    # untouched); the space freed by the rounding belongs to the adjacent disc.
    rim = p.endplate_rim_mm
    body_shapes = {}
    for b in bodies.values():
        body_shapes[b.name] = EllipticSlab(
            S.vertebral_body,
            b.vid,
            T.CORTEX,
            b.centre,
            b.u,
            b.a,
            b.depth_mm / 2.0,
            b.width_mm / 2.0,
            b.inferior.as_tuple(),
            b.superior.as_tuple(),
            core_tissue=T.MARROW,
            shell_mm=p.cortex_mm,
            name=b.name,
            fillet=(rim, rim),
        )
    sacral_shapes = []
    for i, seg in enumerate(an.sacrum):
        sacral_shapes.append(
            EllipticSlab(
                S.sacrum,
                SACRUM_ID,
                T.CORTEX,
                seg.centre,
                seg.u,
                seg.a,
                seg.depth_mm / 2.0,
                seg.width_mm / 2.0,
                seg.inferior.as_tuple(),
                seg.superior.as_tuple(),
                core_tissue=T.SACRAL_MARROW,
                shell_mm=p.cortex_mm,
                name=seg.name,
                fillet=(0.0, rim if i == 0 else 0.0),
            )
        )
    for d in an.discs.values():
        core_t = T.NUCLEUS_DEGEN if p.disc_degenerated.get(d.name) else T.NUCLEUS
        up = body_shapes[d.upper]
        lo = body_shapes.get(d.lower, sacral_shapes[0])
        disc = EllipticSlab(
            S.intervertebral_disc,
            d.did,
            T.ANNULUS,
            d.centre,
            d.u,
            d.a,
            d.depth_mm / 2.0,
            d.width_mm / 2.0,
            d.inferior.as_tuple(),
            d.superior.as_tuple(),
            core_tissue=core_t,
            core_scale=(0.55, 0.6, 0.75),
            name=d.name,
            notches=[(up, "lower"), (lo, "upper")] if rim > 0 else (),
        )
        if rim > 0:  # the notches lie within the neighbouring bodies' boxes
            disc.lo = np.minimum(disc.lo, np.minimum(up.lo, lo.lo))
            disc.hi = np.maximum(disc.hi, np.maximum(up.hi, lo.hi))
        shapes.append(disc)
    shapes += list(body_shapes.values()) + sacral_shapes
    shapes += _marrow_lesions(an)
    return shapes


def _longitudinal_ligaments(an: Anatomy, kind: str) -> list[Shape]:
    """Anterior (``kind="ALL"``) or posterior (``"PLL"``) longitudinal ligament (label 0,
    tissue ``LIGAMENT``).

    Each body and disc (and S1, for the ALL) gets a copy of its elliptic cylinder grown by
    the ligament's thickness; the bones and discs painted afterwards keep their own voxels,
    so what is left is a band on their surface. The ALL covers the anterior third of the
    circumference (within 60° of the mid-line in the ellipse's own coordinates), the PLL a
    strip of ``pll_width_mm`` on the posterior wall, inside the canal, where it replaces
    anterior epidural fat; the thecal sac and the roots are painted over it. Real
    ligaments are as dark as cortex on T1, T2 and STIR: without them the phantom taught
    the network that a vertebra ends where its dark rim does, and on real scans bodies and
    discs took in the ligaments (cervical T2: about one voxel too large in AP, session 8).
    """
    p = an.params
    out: list[Shape] = []
    cols = list(an.bodies.values()) + list(an.discs.values())
    if kind == "ALL":
        cols += list(an.sacrum[:1])
    t = p.all_thickness_mm if kind == "ALL" else p.pll_thickness_mm
    if t > 0.0:
        for c in cols:
            grown = EllipticSlab(0, 0, T.LIGAMENT, c.centre, c.u, c.a, c.depth_mm / 2.0 + t,
                                 c.width_mm / 2.0 + t, c.inferior.as_tuple(),
                                 c.superior.as_tuple())

            def band(x, y, z, g=grown, kind=kind):
                q0, q1, _ = _frame_coords(x, y, z, g.centre, g.axes)
                if kind == "ALL":
                    qa, qx = q1 / g.r_ap, q0 / g.r_lr
                    side = (qa > 0) & (qa * qa >= 0.25 * (qa * qa + qx * qx))
                else:
                    side = (q1 < 0) & (np.abs(q0) <= 0.5 * p.pll_width_mm)
                return side & g.inside(x, y, z)

            out.append(FuncShape(Structure.background, 0, T.LIGAMENT, grown.lo, grown.hi, band,
                                 f"{kind.lower()}_{c.name}"))
    return out


def _marrow_lesions(an: Anatomy) -> list[Shape]:
    """Modic bands next to degenerate discs and haemangiomas (tissue only, inside bodies)."""
    p = an.params
    out: list[Shape] = []
    for dname, t in p.modic_mm.items():
        if t <= 0 or dname not in an.discs:
            continue
        d = an.discs[dname]
        for geom, end in (
            (an.bodies[d.upper], "inferior"),
            (an.bodies.get(d.lower, an.sacrum[0]), "superior"),
        ):
            plane = geom.inferior if end == "inferior" else geom.superior
            sign = 1.0 if end == "inferior" else -1.0  # inward along the cranial normal
            n = plane.normal
            near = (plane.point + sign * 1.3 * n, n)
            far = (plane.point + sign * (1.3 + t) * n, n)
            lower, upper = (near, far) if end == "inferior" else (far, near)
            label = Structure.vertebral_body if geom.vid != SACRUM_ID else Structure.sacrum
            out.append(
                EllipticSlab(
                    label,
                    geom.vid,
                    T.MODIC,
                    geom.centre,
                    geom.u,
                    geom.a,
                    geom.depth_mm / 2.0 - 2.5,
                    geom.width_mm / 2.0 - 2.5,
                    lower,
                    upper,
                    name="modic",
                )
            )
    for v, (fx, fa, fu, fr) in p.hemangioma.items():
        b = an.bodies.get(v)
        if b is None:
            continue
        r = fr * min(b.depth_mm, b.width_mm, b.height_mm) / 2.0
        c = b.to_anat(fx * b.width_mm / 4.0, fa * b.depth_mm / 4.0, fu * b.height_mm / 4.0)
        out.append(
            SuperEllipsoid(
                Structure.vertebral_body,
                b.vid,
                T.HEMANGIOMA,
                c,
                b.axes,
                [r, r, r],
                2.0,
                name="hemangioma",
            )
        )
    return out


def _rot_x(deg: float) -> np.ndarray:
    t = np.radians(deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], float)


def _rot_u(deg: float) -> np.ndarray:
    """Rotation about the local third axis (in the x-a plane)."""
    t = np.radians(deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], float)


def _lf_shape(
    an: Anatomy,
    gap_post,
    sd: float,
    hd: float,
    sgn: float,
    thick: float,
    lo: np.ndarray,
    hi: np.ndarray,
) -> Shape:
    canal = an.canal
    ratio = an.params.sac_lr_ap_ratio
    s_lo, s_hi = sd - 0.5 * hd - 8.0, sd + 0.5 * hd + 6.0
    c0, c1 = canal.point(s_lo), canal.point(s_hi)
    blo = np.minimum(c0, c1) - 35.0
    bhi = np.maximum(c0, c1) + 35.0
    blo[0], bhi[0] = (-2.0, 30.0) if sgn > 0 else (-30.0, 2.0)

    def band(x, y, z):
        s, ap = canal.coords(y, z)
        ok = np.isfinite(s) & (s >= s_lo) & (s <= s_hi)
        s = np.where(ok, s, sd)
        ra, _ = an.base_radii(s)
        gp = gap_post(s)
        post = ra + gp  # posterior canal boundary (|ap|)
        # inner line from A = (ap=-post, lr=0) to B = (ap=-0.25 post, lr=sgn*(ratio*ra+3.5))
        dap = 0.75 * post
        dlr = ratio * ra + 3.5
        length = np.hypot(dap, dlr)
        lr = sgn * x
        rel_ap = ap + post
        along = (rel_ap * dap + lr * dlr) / length
        outward = (lr * dap - rel_ap * dlr) / length  # >0 away from the canal (posterolateral)
        # cut at the mid-sagittal plane (not square to the band), so the two sides meet as a
        # continuous roof; each side alone is a band of exact thickness ``thick``
        return (
            ok
            & (lr >= 0)
            & (along >= -2.0 * thick - 2.0)
            & (along <= length)
            & (outward >= 0)
            & (outward <= thick)
        )

    ss = np.linspace(s_lo, s_hi, 20)
    ra_ = an.base_radii(ss)[0]
    r = float(np.max(np.maximum(ra_ + gap_post(ss), ratio * ra_ + 3.5))) + thick + 2.0
    return FuncShape(
        Structure.ligamentum_flavum,
        0,
        T.LF,
        blo,
        bhi,
        band,
        "lf",
        pieces=canal.pieces(s_lo, s_hi, r, step=s_hi - s_lo),
    )


def _posterior_elements(an: Anatomy, v: str) -> list[Shape]:
    p = an.params
    b = an.bodies[v]
    S = Structure
    vid = b.vid
    D, Hm = b.depth_mm, b.height_mm
    pw = -D / 2.0
    C = p.canal_ap_mm[v]
    Lt = p.lamina_thickness_mm
    wp, hp = p.pedicle_width_mm[v], p.pedicle_height_mm[v]
    xp = p.interpedicular_mm[v] / 2.0 + wp / 2.0
    an.pedicle_x[v] = xp
    ax = b.axes
    out: list[Shape] = []

    def se(name, local, half, power, rot=None):
        axes = ax if rot is None else ax @ rot
        out.append(
            SuperEllipsoid(
                S.posterior_elements,
                vid,
                T.PE_BONE,
                b.to_anat(*local),
                axes,
                half,
                power,
                core_tissue=T.PE_MARROW,
                shell_mm=1.2,
                name=name,
            )
        )

    kind = "T" if v.startswith("T") else "L"
    lumbar_index = int(v[1:]) if kind == "L" else 0
    tp_len = {0: 10.0, 1: 14.0, 2: 19.0, 3: 24.0, 4: 21.0, 5: 18.0, 6: 16.0}[lumbar_index]
    for sgn in (-1.0, 1.0):
        # the pedicle runs from the articular pillar into the body; at its lateral edge the
        # elliptic body wall lies anterior of the mid-line wall, so reach 4 mm inside it there
        # (otherwise the foraminal plane sees a gap between pedicle and body)
        edge = min((xp + wp / 2.0) / (b.width_mm / 2.0), 1.0)
        a_front = -(D / 2.0) * np.sqrt(1.0 - edge**2) + 4.0
        a_back = pw - C - 1.5
        se(
            "pedicle",
            (sgn * xp, 0.5 * (a_front + a_back), an.pedicle_u(v, "R" if sgn > 0 else "L")),
            (wp / 2.0, 0.5 * (a_front - a_back), hp / 2.0),
            2.5,
        )
        se(
            "lamina",
            (sgn * (xp / 2.0 + 1.0), pw - C - Lt / 2.0 + 0.5, -0.2 * Hm),
            (xp / 2.0 + 2.0, Lt / 2.0, 0.35 * Hm),
            4.0,
            _rot_u(sgn * 12.0),
        )
        # superior articular process: its anterior face lies ``facet_gap`` behind the lateral
        # wall of the disc above (that gap is the foramen's AP width at disc level)
        side = "R" if sgn > 0 else "L"
        above = [d for d in p.discs if d.endswith(f"-{v}")]
        gap = p.facet_gap_mm.get(f"{above[0]}:{side}", 8.0) if above else 8.0
        a_wall = -(D / 2.0) * np.sqrt(max(0.05, 1.0 - (xp / (b.width_mm / 2.0)) ** 2))
        # it reaches back past the lamina front so that, with the inferior articular process
        # of the vertebra above, it closes the foramen posteriorly (no leak behind the facet)
        a_f = a_wall - gap
        a_b = min(a_f - 9.0, pw - C + 1.0)
        se("sap", (sgn * xp, 0.5 * (a_f + a_b), Hm / 2.0 + 3.0), (5.0, 0.5 * (a_f - a_b), 8.5), 3.0)
        se("iap", (sgn * (xp - 1.0), pw - C - 1.0, -Hm / 2.0 - 3.0), (4.0, 4.5, 8.0), 2.5)
        se(
            "tp",
            (sgn * (xp + wp / 2.0 + tp_len / 2.0), pw - 0.6 * C, 0.1 * Hm),
            (tp_len / 2.0 + 2.0, 4.0, 8.0 if lumbar_index >= 5 else 5.5),
            2.5,
        )
    # mid-line block centred on the mid-vertebral plane: its anterior face is exactly the
    # plane a = −D/2 − canal_ap at u = 0 (canal_ap truth)
    se("lamina_mid", (0.0, pw - C - Lt / 2.0, 0.0), (5.0, Lt / 2.0, 0.3 * Hm), 6.0)
    sp_len = _spinous_length_mm(v)
    se(
        "spinous",
        (0.0, pw - C - Lt - sp_len / 2.0 + 3.0, -0.15 * Hm),
        (3.5, sp_len / 2.0, 0.3 * Hm),
        3.0,
        _rot_x(-12.0),
    )
    return out


def _spinous_length_mm(v: str) -> float:
    """Length (mm, AP) of the spinous process of vertebra ``v`` (lumbar 30, thoracic 26)."""
    return 30.0 if v.startswith("L") else 26.0


def _s1_articular(an: Anatomy) -> list[Shape]:
    """S1 superior articular processes (sacrum label), facing the L5 inferior ones."""
    p = an.params
    s1 = an.sacrum[0]
    low = p.vertebrae[-1]
    C = p.canal_ap_mm[low]
    xp = p.interpedicular_mm[low] / 2.0 + p.pedicle_width_mm[low] / 2.0
    out = []
    for sgn in (-1.0, 1.0):
        gap = p.facet_gap_mm.get(f"{p.discs[-1]}:{'R' if sgn > 0 else 'L'}", 8.0)
        a_wall = -(s1.depth_mm / 2.0) * np.sqrt(max(0.05, 1.0 - (xp / (s1.width_mm / 2.0)) ** 2))
        a_f = a_wall - gap
        a_b = min(a_f - 11.0, -s1.depth_mm / 2.0 - C - 3.0)
        c = s1.to_anat(sgn * xp, 0.5 * (a_f + a_b), s1.height_mm / 2.0 + 1.0)
        out.append(
            SuperEllipsoid(
                Structure.sacrum,
                SACRUM_ID,
                T.CORTEX,
                c,
                s1.axes,
                [6.5, 0.5 * (a_f - a_b), 9.0],
                3.0,
                core_tissue=T.SACRAL_MARROW,
                shell_mm=1.2,
                name="s1_sap",
            )
        )
        # pedicle-like bridge from the S1 body to the articular process
        c2 = s1.to_anat(sgn * xp, -s1.depth_mm / 2.0 - C / 2.0 + 1.5, 0.25 * s1.height_mm)
        out.append(
            SuperEllipsoid(
                Structure.sacrum,
                SACRUM_ID,
                T.CORTEX,
                c2,
                s1.axes,
                [6.0, C / 2.0 + 3.0, 8.0],
                2.5,
                core_tissue=T.SACRAL_MARROW,
                shell_mm=1.2,
                name="s1_pedicle",
            )
        )
    return out


#: Perineural (foraminal) fat around each exiting root, mm beyond the root's radius; thinner
#: at degenerated discs, where foraminal narrowing obliterates the fat (Lee 2010 grades 1–2,
#: MEASURES.md R10). Real foramina are fat-filled: the roots are seen against that fat on T1
#: and T2, not against soft tissue of their own intensity.
PERINEURAL_FAT_MM = 2.0
PERINEURAL_FAT_DEGENERATED_MM = 0.8


def _root_paths(an: Anatomy) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str, str]]:
    """(p0 in the canal, p1 in the foramen, p2 lateral end, disc name, side) per exiting
    root."""
    p = an.params
    out = []
    for dname, d in an.discs.items():
        v = d.upper
        b = an.bodies[v]
        xp = p.interpedicular_mm[v] / 2.0 + p.pedicle_width_mm[v] / 2.0
        hp = p.pedicle_height_mm[v]
        s0 = an.s_level[dname] + 0.6 * (an.s_level[v] - an.s_level[dname])
        ra, rl = an.base_radii(s0)
        for sgn in (-1.0, 1.0):
            p0 = an.canal.point(s0) + sgn * (float(rl) - 1.5) * X_AXIS
            wall = (b.depth_mm / 2.0) * np.sqrt(max(0.2, 1.0 - (xp / (b.width_mm / 2.0)) ** 2))
            u_ped = an.pedicle_u(v, "R" if sgn > 0 else "L")
            p1 = b.to_anat(sgn * xp, -wall - 3.5, u_ped - hp / 2.0 - 3.5)
            p2 = b.to_anat(sgn * (xp + 28.0), -0.15 * b.depth_mm, -b.height_mm / 2.0 - 12.0)
            out.append((p0, p1, p2, dname, "R" if sgn > 0 else "L"))
    return out


def _roots(an: Anatomy) -> list[Shape]:
    out: list[Shape] = []
    for p0, p1, p2, _, _ in _root_paths(an):
        out.append(Capsule(Structure.nerve_root, 0, T.ROOT, p0, p1, 1.8, 3.0, "root"))
        out.append(Capsule(Structure.nerve_root, 0, T.ROOT, p1, p2, 3.0, 2.4, "root"))
    return out


def _perineural_fat(an: Anatomy) -> list[Shape]:
    """Fat sheaths (label 0) around the foraminal and extraforaminal root (p1 → p2).

    Thickness per root from ``params.perineural_fat_mm`` (none where it is 0: an
    obliterated foramen), else the defaults. Painted before the sacrum, canal contents,
    roots and bones, which all win over it."""
    out: list[Shape] = []
    for _, p1, p2, dname, side in _root_paths(an):
        f = an.params.perineural_fat_mm.get(
            f"{dname}:{side}",
            PERINEURAL_FAT_DEGENERATED_MM if an.params.disc_degenerated.get(dname)
            else PERINEURAL_FAT_MM)
        if f <= 0.0:
            continue
        out.append(Capsule(Structure.background, 0, T.SUBCUT_FAT, p1, p2, 3.0 + f, 2.4 + f,
                           "perineural_fat"))
    return out


def _muscles(an: Anatomy, y_canal) -> list[Shape]:
    """Psoas, erector spinae + multifidus and quadratus lumborum, left and right.

    Cross-sections are ellipses in axial planes (z = const); centres and semi-axes are
    interpolated linearly in z between anchors at each body / disc / sacral segment.
    """
    p = an.params
    verts = list(p.vertebrae)
    n = len(verts)
    rows = []  # z, psoas (cx, cd, rx, ry), erector (cx, cd, rx, ry), ql (cx, cd, rx, ry)
    for i, v in enumerate(verts):
        b = an.bodies[v]
        f = i / max(n - 1, 1)  # 0 at top, 1 at the lowest lumbar
        d_body = b.centre[1] - y_canal(b.centre[2])
        ps = p.psoas_scale
        ps_rx = (5.0 + 17.0 * f**0.8) * ps
        ps_ry = (5.0 + 13.0 * f**0.8) * ps
        ps_cx = b.width_mm / 2.0 + 0.8 * ps_rx
        ps_cd = d_body - 0.2 * b.depth_mm + 6.0 * f
        es = p.erector_scale
        es_rx = (27.0 + 4.0 * np.sin(np.pi * f) - 3.0 * f) * es
        es_ry = (21.0 + 3.0 * np.sin(np.pi * f)) * es
        ra, _ = an.base_radii(an.s_level[v])
        d_lam = -(
            float(ra)
            + p.canal_ap_mm[v]
            - p.anterior_epidural_mm
            - 2 * float(ra)
            + p.lamina_thickness_mm
        )
        es_cd = d_lam - es_ry + 10.0
        es_cx = 5.0 + es_rx
        ql = 1.0 if 0.1 < f < 0.85 else 0.0
        rows.append(
            [
                b.centre[2],
                ps_cx,
                ps_cd,
                ps_rx,
                ps_ry,
                es_cx,
                es_cd,
                es_rx,
                es_ry,
                b.width_mm / 2.0 + 42.0,
                d_body - b.depth_mm / 2.0 - 2.0,
                11.0 * ql,
                8.0 * ql,
            ]
        )
    top_b = an.bodies[verts[0]]
    rows.insert(
        0,
        [top_b.centre[2] + 120.0]
        + rows[0][1:3]
        + [rows[0][3] * 0.5, rows[0][4] * 0.5]
        + rows[0][5:9]
        + rows[0][9:11]
        + [0.0, 0.0],
    )
    s1 = an.sacrum[0]
    d_s1 = s1.centre[1] - y_canal(s1.centre[2])
    last = rows[-1]
    for k, seg in enumerate(an.sacrum[:5]):
        fz = k / 4.0
        ps_rx = last[3] * (1.0 - 0.2 * fz)
        ps_cx = s1.width_mm / 2.0 + 20.0 + 25.0 * fz
        ps_cd = d_s1 + 15.0 + 30.0 * fz
        es_rx = last[7] * (0.8 - 0.55 * fz)
        es_ry = last[8] * (0.75 - 0.55 * fz)
        d_seg = -(seg.depth_mm * 0.0 + 12.0)
        rows.append(
            [
                seg.centre[2],
                ps_cx,
                ps_cd,
                ps_rx,
                last[4] * (1.0 - 0.2 * fz),
                5.0 + es_rx,
                d_seg - es_ry + 2.0,
                es_rx,
                es_ry,
                last[9],
                last[10],
                0.0,
                0.0,
            ]
        )
    rows.append(
        [an.sacrum[5].centre[2]]
        + rows[-1][1:3]
        + [0.0, 0.0]
        + rows[-1][5:7]
        + [0.0, 0.0]
        + rows[-1][9:11]
        + [0.0, 0.0]
    )
    tab = np.array(sorted(rows, key=lambda r: r[0]))
    zt = tab[:, 0]
    # uniform 1 mm table in z (a gather is much cheaper than np.interp on millions of points)
    dz = 1.0
    zu = np.arange(zt[0], zt[-1] + dz, dz)
    tabu = np.column_stack([np.interp(zu, zt, tab[:, c]) for c in range(tab.shape[1])])
    ycu = y_canal(zu)
    nzu = len(zu)

    def make(cols, sgn, k):
        cx_t, cd_t, rx_t, ry_t = (tabu[:, c].copy() for c in cols)
        cd_t = cd_t + ycu  # absolute y of the centre
        rx_t *= k  # left/right asymmetry of the muscle's size
        ry_t *= k

        def f(x, y, z):
            fz = (z - zu[0]) * (1.0 / dz)
            inside_z = (fz >= 0) & (fz < nzu - 1)
            fz = np.where(inside_z, fz, 0.0)
            i = fz.astype(np.int64)
            w = fz - i

            def g(t):
                a = t[i]
                return a + (t[i + 1] - a) * w

            rx, ry = g(rx_t), g(ry_t)
            ex = (sgn * x - g(cx_t)) / np.maximum(rx, 1e-3)
            ey = (y - g(cd_t)) / np.maximum(ry, 1e-3)
            return inside_z & (ex * ex + ey * ey <= 1.0) & (rx > 0.5)

        # covering capsules between anchor rows (+ slack for the curved canal)
        pieces = []
        for j in range(len(zt) - 1):
            za, zb = zt[j], zt[j + 1]
            ra = k * max(tab[j, cols[2]], tab[j, cols[3]])
            rb = k * max(tab[j + 1, cols[2]], tab[j + 1, cols[3]])
            if max(ra, rb) <= 0.5:
                continue
            pa = np.array([sgn * tab[j, cols[0]], y_canal(za) + tab[j, cols[1]], za])
            pb = np.array([sgn * tab[j + 1, cols[0]], y_canal(zb) + tab[j + 1, cols[1]], zb])
            zz = np.linspace(za, zb, 9)
            lin = np.interp(zz, [za, zb], [y_canal(za), y_canal(zb)])
            sag = float(np.max(np.abs(y_canal(zz) - lin)))
            pieces.append((pa, pb, max(ra, rb) + sag + 1.0))
        return f, pieces

    out: list[Shape] = []
    ylo = an.canal.points[:, 1].min() - 150.0
    yhi = an.canal.points[:, 1].max() + 150.0
    for sgn in (-1.0, 1.0):
        for cols, name in (
            ((1, 2, 3, 4), "psoas"),
            ((5, 6, 7, 8), "erector"),
            ((9, 10, 11, 12), "ql"),
        ):
            k = p.side_scale.get(f"{name}:{'R' if sgn > 0 else 'L'}", 1.0)
            xmax = float(np.max(tab[:, cols[0]] + k * tab[:, cols[2]])) + 1.0
            xmin = float(np.min(tab[:, cols[0]] - k * tab[:, cols[2]])) - 1.0
            lo = [min(sgn * xmin, sgn * xmax), ylo, zt[0]]
            hi = [max(sgn * xmin, sgn * xmax), yhi, zt[-1]]
            f, pieces = make(cols, sgn, k)
            out.append(
                FuncShape(Structure.paraspinal_muscle, 0, T.MUSCLE, lo, hi, f, name, pieces=pieces)
            )
    return out


def _posterior_midline(an: Anatomy) -> list[Shape]:
    """Multifidus in each laminar gutter (label 10) and an interspinous ligament between
    each pair of adjacent spinous processes (label 0, tissue ``LIGAMENT`` or fat).

    Both are boxy super-ellipsoids in the frame of the vertebra above, behind the lamina;
    the laminae, spinous processes and ligamentum flavum are painted afterwards and keep
    their voxels, so the muscle ends at the bone and the ligament fills only the gap
    between the processes. The erector spinae ellipses alone left a wedge of generic soft
    tissue against the laminae and between the processes, where real scans show muscle and
    ligament.
    """
    p = an.params
    out: list[Shape] = []
    for v in [v for v in p.vertebrae if v in an.bodies]:
        b = an.bodies[v]
        back = -b.depth_mm / 2.0 - p.canal_ap_mm[v] - p.lamina_thickness_mm  # lamina's back
        sp_len = _spinous_length_mm(v)
        depth = 0.85 * sp_len
        disc = next((an.discs[d] for d in p.discs if d.startswith(f"{v}-") and d in an.discs),
                    None)
        hd = disc.height_at(0.0) if disc is not None else 8.0
        if p.multifidus_width_mm > 0.0:
            w = p.multifidus_width_mm
            for sgn in (-1.0, 1.0):
                out.append(SuperEllipsoid(
                    Structure.paraspinal_muscle, 0, T.MUSCLE,
                    b.to_anat(sgn * (3.0 + w / 2.0), back + 3.0 - depth / 2.0, -hd / 2.0),
                    b.axes, (w / 2.0, depth / 2.0, b.height_mm / 2.0 + hd / 2.0 + 2.0), 4.0,
                    name="multifidus"))
        if p.interspinous_half_width_mm > 0.0 and disc is not None:
            fatty = p.interspinous_fatty.get(disc.name, False)
            out.append(SuperEllipsoid(
                Structure.background, 0, T.SUBCUT_FAT if fatty else T.LIGAMENT,
                b.to_anat(0.0, back + 2.0 - (sp_len - 6.0) / 2.0, -b.height_mm / 2.0 - hd / 2.0),
                b.axes, (p.interspinous_half_width_mm, (sp_len - 6.0) / 2.0,
                         0.5 * b.height_mm + hd / 2.0), 4.0, name="interspinous"))
    return out


def _vessels(an: Anatomy) -> list[Shape]:
    """Aorta and IVC anterior to the bodies, common iliac vessels below the bifurcation."""
    p = an.params
    verts = list(p.vertebrae)
    ra = p.aorta_radius_mm
    rv = ra * 0.95
    bif = p.bifurcation_vertebra
    out: list[Shape] = []
    art, ven = [], []
    top = an.bodies[verts[0]]
    art.append(top.to_anat(-10.0, top.depth_mm / 2.0 + 3.0 + ra, top.height_mm / 2.0 + 80.0))
    ven.append(top.to_anat(14.0, top.depth_mm / 2.0 + 2.0 + rv, top.height_mm / 2.0 + 80.0))
    for v in verts[: verts.index(bif) + 1]:
        b = an.bodies[v]
        art.append(b.to_anat(-10.0, b.depth_mm / 2.0 + 3.0 + ra, 0.0))
        ven.append(b.to_anat(14.0, b.depth_mm / 2.0 + 2.0 + rv, 0.0))
    b = an.bodies[bif]
    fork_a = b.to_anat(-6.0, b.depth_mm / 2.0 + 3.0 + ra, -0.35 * b.height_mm)
    art.append(fork_a)
    low = an.bodies[verts[-1]]
    fork_v = low.to_anat(6.0, low.depth_mm / 2.0 + 2.0 + rv, 0.0)
    ven.append(fork_v)
    for pts, r, tis in ((art, ra, T.ARTERY), (ven, rv, T.VEIN)):
        for q0, q1 in zip(pts[:-1], pts[1:], strict=False):
            out.append(Capsule(Structure.vessel, 0, tis, q0, q1, r, r, "vessel"))
    s1 = an.sacrum[0]
    s3 = an.sacrum[2]
    for sgn in (-1.0, 1.0):
        for start, r, tis, off in (
            (fork_a, 0.6 * ra, T.ARTERY, 0.0),
            (fork_v, 0.6 * rv, T.VEIN, -6.0),
        ):
            q1 = s1.to_anat(sgn * (s1.width_mm / 2.0 + 8.0), s1.depth_mm / 2.0 + 14.0 + off, 0.0)
            q2 = s3.to_anat(sgn * (s1.width_mm / 2.0 + 45.0), s3.depth_mm / 2.0 + 45.0 + off, 0.0)
            out.append(Capsule(Structure.vessel, 0, tis, start, q1, r, r, "iliac"))
            out.append(Capsule(Structure.vessel, 0, tis, q1, q2, r, 0.9 * r, "iliac"))
    return out


def _organs(an: Anatomy) -> list[Shape]:
    """Liver (right) and spleen (left) at the thoracolumbar junction (tissue only, label 0)."""
    top = an.bodies[an.params.vertebrae[0]]
    S = Structure
    liver = SuperEllipsoid(
        S.background,
        0,
        T.LIVER,
        top.to_anat(85.0, top.depth_mm / 2.0 + 45.0, 10.0),
        top.axes,
        [75.0, 70.0, 80.0],
        2.0,
        name="liver",
    )
    spleen = SuperEllipsoid(
        S.background,
        0,
        T.SPLEEN,
        top.to_anat(-85.0, 0.0, 30.0),
        top.axes @ _rot_u(-30.0),
        [30.0, 55.0, 50.0],
        2.0,
        name="spleen",
    )
    return [liver, spleen]


def _pelvis_and_ribs(an: Anatomy) -> list[Shape]:
    """Posterior ilium and iliac wing per side, and the 12th (and 11th) ribs (label 0).

    Bone-like structures that are *not* spine teach a segmenter what not to call vertebra.
    """
    p = an.params
    S = Structure
    out: list[Shape] = []
    s1, s2 = an.sacrum[0], an.sacrum[1]
    ala = _ALA_HALF[0] * p.s1_width_mm / 50.0
    low = an.bodies[p.vertebrae[-1]]
    for sgn in (-1.0, 1.0):
        # posterior ilium / sacroiliac part: a thick plate lateral to the ala, tilted
        c = s2.to_anat(sgn * (ala + 6.0), -0.6 * s2.depth_mm - 4.0, 10.0)
        out.append(
            SuperEllipsoid(
                S.background,
                0,
                T.OTHER_CORTEX,
                c,
                s1.axes @ _rot_u(sgn * 25.0),
                [9.0, 26.0, 32.0],
                2.5,
                core_tissue=T.OTHER_MARROW,
                shell_mm=1.5,
                name="ilium",
            )
        )
        # iliac wing: a thin plate flaring laterally and anteriorly up to the L5 level
        c = low.to_anat(sgn * (ala + 38.0), 5.0, -0.6 * low.height_mm - 10.0)
        out.append(
            SuperEllipsoid(
                S.background,
                0,
                T.OTHER_CORTEX,
                c,
                low.axes @ _rot_u(sgn * 40.0),
                [6.0, 48.0, 38.0],
                2.5,
                core_tissue=T.OTHER_MARROW,
                shell_mm=1.5,
                name="iliac_wing",
            )
        )
    for v in p.vertebrae:
        if not v.startswith("T"):
            continue
        b = an.bodies[v]
        C = p.canal_ap_mm[v]
        xp = p.interpedicular_mm[v] / 2.0 + p.pedicle_width_mm[v] / 2.0
        r = 4.5 if v == "T12" else 5.0
        for sgn in (-1.0, 1.0):
            pts = [
                b.to_anat(sgn * (xp + 8.0), -b.depth_mm / 2.0 - 0.6 * C, 0.1 * b.height_mm),
                b.to_anat(sgn * (xp + 45.0), -b.depth_mm / 2.0 - 0.6 * C - 12.0, -15.0),
                b.to_anat(sgn * (xp + 90.0), -b.depth_mm / 2.0 + 5.0, -45.0),
            ]
            for q0, q1 in zip(pts[:-1], pts[1:], strict=False):
                out.append(
                    Capsule(
                        S.background,
                        0,
                        T.OTHER_CORTEX,
                        q0,
                        q1,
                        r,
                        r * 0.85,
                        name="rib",
                        core_tissue=T.OTHER_MARROW,
                        shell_mm=1.2,
                    )
                )
    return out
