"""Shape primitives of the phantom, evaluated on arbitrary points in the anatomical frame.

Every shape answers ``inside(x, y, z) -> bool array`` for coordinate arrays of any (equal or
broadcastable) shape, and carries an anatomical bounding box so that rendering only
evaluates it on the voxels that can be inside. ``x, y, z`` are anatomical millimetres
(x → patient right, y → anterior, z → superior, spine in the plane x = 0).

A shape may also answer ``core(x, y, z)``: the part that gets a different *tissue* (sub-label
for image synthesis only: cancellous marrow inside the cortical shell, nucleus inside the
annulus). ``core`` never changes the semantic label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray


@dataclass
class Shape:
    """Base class: semantic label, level id, tissue id(s) and an anatomical bounding box."""

    label: int
    level: int
    tissue: int
    lo: np.ndarray = field(repr=False)
    hi: np.ndarray = field(repr=False)
    core_tissue: int | None = None
    name: str = ""
    #: optional capsules ``(p0, p1, r)`` whose union covers the shape: rendering evaluates
    #: ``inside`` only on points within them (a cheap pre-filter for long curved shapes)
    pieces: list | None = field(default=None, repr=False)
    #: tissue-only shapes (label 0) may be rendered on a coarse grid
    coarse: bool = False

    def inside(self, x: Array, y: Array, z: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def core(self, x: Array, y: Array, z: Array) -> Array | None:
        return None


def _frame_coords(x: Array, y: Array, z: Array, centre: np.ndarray, axes: np.ndarray):
    """Local coordinates of points in the frame with origin ``centre`` and column ``axes``."""
    # Python floats keep float32 inputs in float32 (NumPy 2 promotion rules)
    c = [float(v) for v in centre]
    A = [[float(v) for v in row] for row in axes]
    dx, dy, dz = x - c[0], y - c[1], z - c[2]
    q0 = dx * A[0][0] + dy * A[1][0] + dz * A[2][0]
    q1 = dx * A[0][1] + dy * A[1][1] + dz * A[2][1]
    q2 = dx * A[0][2] + dy * A[1][2] + dz * A[2][2]
    return q0, q1, q2


class EllipticSlab(Shape):
    """Elliptic cylinder clipped by two planes (vertebral body, disc, sacral segment).

    The cylinder axis passes through ``centre`` along ``u``; its cross-section ⟂ ``u`` is an
    ellipse with semi-axes ``r_ap`` along ``a`` (anterior) and ``r_lr`` along x. Points are
    inside when inside the ellipse, on the positive side of the lower plane and the negative
    side of the upper plane (planes given by a point and a cranially pointing unit normal).
    """

    def __init__(
        self,
        label,
        level,
        tissue,
        centre,
        u,
        a,
        r_ap,
        r_lr,
        lower,
        upper,
        core_tissue=None,
        shell_mm=0.0,
        core_scale=None,
        name="",
        fillet=(0.0, 0.0),
        notches=(),
    ):
        self.fillet = (float(fillet[0]), float(fillet[1]))  # rim drop (mm) lower / upper end
        self.notches = list(notches)  # [(EllipticSlab, "lower" | "upper")] added to this shape
        self.centre = np.asarray(centre, float)
        self.axes = np.column_stack([[1.0, 0.0, 0.0], a, u])
        self.r_ap, self.r_lr = float(r_ap), float(r_lr)
        self.lower = (np.asarray(lower[0], float), np.asarray(lower[1], float))
        self.upper = (np.asarray(upper[0], float), np.asarray(upper[1], float))
        self.shell_mm = shell_mm
        self.core_scale = core_scale  # (ap, lr, height) fractions for a nucleus-like core
        # bounding box: oriented box (x: r_lr, a: r_ap, u: half the largest height) → AABB
        lo_s = abs(float((self.lower[0] - self.centre) @ u))
        hi_s = abs(float((self.upper[0] - self.centre) @ u))
        tilt = max(
            np.sqrt(max(1.0 - float(self.lower[1] @ u) ** 2, 0.0)),
            np.sqrt(max(1.0 - float(self.upper[1] @ u) ** 2, 0.0)),
        )
        half = np.array([r_lr, r_ap, max(lo_s, hi_s) + r_ap * tilt / max(1 - tilt, 0.5)]) + 1.0
        ext = np.abs(self.axes) @ half
        super().__init__(
            label, level, tissue, self.centre - ext, self.centre + ext, core_tissue, name
        )

    def _plane_side(self, x, y, z, plane):
        p, n = plane
        k = float(p @ n)
        return x * float(n[0]) + y * float(n[1]) + z * float(n[2]) - k

    def _rho2(self, x, y, z):
        q0, q1, _ = _frame_coords(x, y, z, self.centre, self.axes)
        a, b = q0 * (1.0 / self.r_lr), q1 * (1.0 / self.r_ap)
        return a * a + b * b

    def inside(self, x, y, z):
        rho2 = self._rho2(x, y, z)
        m = rho2 <= 1.0
        lo = self._plane_side(x, y, z, self.lower)
        up = -self._plane_side(x, y, z, self.upper)
        if self.fillet[0] > 0 or self.fillet[1] > 0:
            f = rim_profile(np.sqrt(np.minimum(rho2, 1.0)))
            m &= (lo >= self.fillet[0] * f) & (up >= self.fillet[1] * f)
        else:
            m &= (lo >= 0.0) & (up >= 0.0)
        for body, end in self.notches:
            m |= body.notch(x, y, z, end)
        return m

    def notch(self, x, y, z, end: str):
        """Points removed from this slab by the rounded rim at ``end`` (they go to the disc)."""
        depth = self.fillet[0] if end == "lower" else self.fillet[1]
        if depth <= 0:
            return np.zeros(np.shape(x), bool)
        rho2 = self._rho2(x, y, z)
        d = (
            self._plane_side(x, y, z, self.lower)
            if end == "lower"
            else -self._plane_side(x, y, z, self.upper)
        )
        f = depth * rim_profile(np.sqrt(np.minimum(rho2, 1.0)))
        return (rho2 <= 1.0) & (d >= 0.0) & (d < f)

    def core(self, x, y, z):
        q0, q1, q2 = _frame_coords(x, y, z, self.centre, self.axes)
        if self.core_scale is not None:
            fa, fl, fh = self.core_scale
            lo = self._plane_side(x, y, z, self.lower)
            up = -self._plane_side(x, y, z, self.upper)
            h = lo + up
            rel = (lo - up) / np.maximum(h, 1e-6)  # −1 lower plane … +1 upper plane
            return (
                (q0 / (fl * self.r_lr)) ** 2
                + ((q1 + 0.08 * self.r_ap) / (fa * self.r_ap)) ** 2
                + (rel / fh) ** 2
            ) <= 1.0
        if self.shell_mm <= 0:
            return None
        s = self.shell_mm
        m = (q0 / (self.r_lr - s)) ** 2 + (q1 / (self.r_ap - s)) ** 2 <= 1.0
        lo = self._plane_side(x, y, z, self.lower)
        up = -self._plane_side(x, y, z, self.upper)
        if self.fillet[0] > 0 or self.fillet[1] > 0:
            f = rim_profile(np.sqrt(np.minimum(self._rho2(x, y, z), 1.0)))
            m &= (lo >= s + self.fillet[0] * f) & (up >= s + self.fillet[1] * f)
        else:
            m &= (lo >= s) & (up >= s)
        return m


#: normalised radius where the rounded rim of a vertebral endplate starts
RIM_START = 0.88


def rim_profile(rho: Array) -> Array:
    """Rim drop profile (0 inside ``RIM_START``, quarter circle to 1 at the rim, ρ = 1)."""
    t = np.clip((rho - RIM_START) / (1.0 - RIM_START), 0.0, 1.0)
    return 1.0 - np.sqrt(1.0 - t * t)


def rim_volume(r_ap: float, r_lr: float, depth: float, wedge_half_deg: float) -> float:
    """Exact volume (mm³) removed by a rounded rim of ``depth`` at one endplate of a slab.

    The drop ``depth·rim_profile(ρ)`` is measured along the plane normal, i.e.
    ``/cos(w/2)`` along the slab axis, so the volume is
    ``2π·r_ap·r_lr·depth·∫ rim_profile(ρ)·ρ dρ / cos(w/2)``.
    """
    from scipy.integrate import quad

    integral, _ = quad(
        lambda r: float(rim_profile(np.asarray(r))) * r, RIM_START, 1.0, epsabs=1e-12, epsrel=1e-12
    )
    return 2.0 * np.pi * r_ap * r_lr * depth * integral / np.cos(np.radians(wedge_half_deg))


def _pow(v: Array, p: float) -> Array:
    """``|v| ** p`` with cheap special cases (pow() is slow on large arrays)."""
    v2 = v * v
    if p == 2.0:
        return v2
    if p == 2.5:
        return v2 * np.sqrt(np.abs(v))
    if p == 3.0:
        return v2 * np.abs(v)
    if p == 4.0:
        return v2 * v2
    if p == 6.0:
        return v2 * v2 * v2
    return np.abs(v) ** p


class SuperEllipsoid(Shape):
    """``Σ |q_i / h_i|^p ≤ 1`` in a local frame (processes, laminae, ala, organs)."""

    def __init__(
        self,
        label,
        level,
        tissue,
        centre,
        axes,
        half,
        power=2.0,
        core_tissue=None,
        shell_mm=0.0,
        name="",
    ):
        self.centre = np.asarray(centre, float)
        self.axes = np.asarray(axes, float)
        self.half = np.asarray(half, float)
        self.power = float(power)
        self.shell_mm = shell_mm
        ext = np.abs(self.axes) @ self.half + 0.5
        super().__init__(
            label, level, tissue, self.centre - ext, self.centre + ext, core_tissue, name
        )

    def _value(self, x, y, z, shrink=0.0):
        q = _frame_coords(x, y, z, self.centre, self.axes)
        h = np.maximum(self.half - shrink, 0.3)
        return sum(_pow(qi * (1.0 / float(hi)), self.power) for qi, hi in zip(q, h, strict=False))

    def inside(self, x, y, z):
        return self._value(x, y, z) <= 1.0

    def core(self, x, y, z):
        if self.shell_mm <= 0:
            return None
        return self._value(x, y, z, self.shell_mm) <= 1.0


class Capsule(Shape):
    """Tapered capsule: points within ``r(t)`` of segment ``p0→p1`` (linear radius)."""

    def __init__(
        self, label, level, tissue, p0, p1, r0, r1, name="", core_tissue=None, shell_mm=0.0
    ):
        self.p0, self.p1 = np.asarray(p0, float), np.asarray(p1, float)
        self.r0, self.r1 = float(r0), float(r1)
        self.shell_mm = float(shell_mm)
        r = max(r0, r1) + 0.5
        lo = np.minimum(self.p0, self.p1) - r
        hi = np.maximum(self.p0, self.p1) + r
        super().__init__(label, level, tissue, lo, hi, core_tissue, name)

    def inside(self, x, y, z):
        return self._within(x, y, z, 0.0)

    def core(self, x, y, z):
        if self.shell_mm <= 0:
            return None
        return self._within(x, y, z, self.shell_mm)

    def _within(self, x, y, z, shrink):
        d = [float(v) for v in self.p1 - self.p0]
        p0 = [float(v) for v in self.p0]
        L2 = d[0] ** 2 + d[1] ** 2 + d[2] ** 2
        dx, dy, dz = x - p0[0], y - p0[1], z - p0[2]
        t = np.clip((dx * d[0] + dy * d[1] + dz * d[2]) * (1.0 / L2), 0.0, 1.0)
        dx = dx - t * d[0]
        dy = dy - t * d[1]
        dz = dz - t * d[2]
        r = self.r0 + t * (self.r1 - self.r0) - shrink
        return dx * dx + dy * dy + dz * dz <= r * r


class FuncShape(Shape):
    """Shape given by a function ``f(x, y, z) -> bool`` (canal tube, muscles, outline)."""

    def __init__(
        self,
        label,
        level,
        tissue,
        lo,
        hi,
        func: Callable,
        name="",
        core: Callable | None = None,
        core_tissue=None,
        pieces=None,
        coarse=False,
    ):
        self.func = func
        self._core = core
        super().__init__(
            label,
            level,
            tissue,
            np.asarray(lo, float),
            np.asarray(hi, float),
            core_tissue,
            name,
            pieces,
            coarse,
        )

    def inside(self, x, y, z):
        return self.func(x, y, z)

    def core(self, x, y, z):
        return None if self._core is None else self._core(x, y, z)
