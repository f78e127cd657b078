"""Sub-voxel sampling on thick slices, tie robustness, the foramen width and the endplate fit.

Known answers are analytic shapes voxelised here (label = shape test at the voxel centre),
never values copied from the code's output.
"""

from __future__ import annotations

import numpy as np
import pytest

from spinemetrics.geometry.foramen import ForamenSection, foramen_width
from spinemetrics.geometry.frame import fit_plane
from spinemetrics.geometry.model import SpineModel
from spinemetrics.geometry.sampling import MaskField, local_sdf_field

SAG = np.diag([4.0, 0.5, 0.5, 1.0])  # 4-mm sagittal slices along world x


def _grid(shape, affine):
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def _crossing_along_y(field: MaskField, x: float, z: float, y0: float, y1: float) -> float:
    """y of the 0.5 crossing of ``field`` on the line (x, ·, z), from inside (y0) outward."""
    y = np.arange(y0, y1, 0.005)
    pts = np.stack([np.full_like(y, x), y, np.full_like(y, z)], axis=-1)
    v = field.inside(pts)
    j = int(np.argmax(v < 0.5))
    return float(y[j - 1] + (v[j - 1] - 0.5) / (v[j - 1] - v[j]) * 0.005)


@pytest.mark.parametrize("x", [5.1, 6.0, 7.3, 9.9])
def test_tilted_wall_between_thick_slices(x):
    """A wall crossing 4-mm slices at 32° (on every slice it falls on a half-voxel, so the
    in-plane voxels add no error): the shape-based field puts it where it is between slices;
    a linear blend of the binary mask puts it at the nearer slice's wall."""
    shape = (8, 80, 20)
    w = _grid(shape, SAG)
    slope = 0.625  # 2.5 mm (5 in-plane voxels) per slice
    mask = w[..., 1] < 10.25 + slope * w[..., 0]
    truth = 10.25 + slope * x
    sdf = MaskField(mask, SAG, mode="sdf", order=3)
    lin = MaskField(mask, SAG, mode="linear")
    err_sdf = abs(_crossing_along_y(sdf, x, 5.0, 2.0, 35.0) - truth)
    err_lin = abs(_crossing_along_y(lin, x, 5.0, 2.0, 35.0) - truth)
    assert err_sdf < 0.1
    # near the nearer slice's wall: off by about slope × distance to that slice
    assert err_lin > 0.6 * slope * abs(x - 4.0 * np.round(x / 4.0))


def test_curved_wall_cubic_beats_linear_distance():
    """A cylinder wall (R = 24 mm) cut by 4-mm slices at x ≈ 0.6–0.7 R: cubic interpolation
    of the signed distance follows the curvature; the linear blend of two slices' walls lies
    on the chord, inside the cylinder. (Within one slice of the cylinder's side the outer
    slice holds no wall to interpolate: neither follows it there.)"""
    shape = (14, 120, 8)
    aff = SAG.copy()
    aff[:3, 3] = [-26.0, -29.75, 0.0]
    w = _grid(shape, aff)
    R = 24.0
    mask = w[..., 0] ** 2 + w[..., 1] ** 2 <= R**2
    cub = MaskField(mask, aff, mode="sdf", order=3)
    lin = MaskField(mask, aff, mode="sdf", order=1)
    xs = np.array([14.0, 15.0, 16.0, 17.0])  # on a slice and in between
    truth = np.sqrt(R**2 - xs**2)
    e_cub = np.abs([_crossing_along_y(cub, x, 2.0, 0.0, 28.0) for x in xs] - truth)
    e_lin = np.abs([_crossing_along_y(lin, x, 2.0, 0.0, 28.0) for x in xs] - truth)
    assert max(e_cub) < 0.35  # the in-plane voxels alone allow ±0.25 mm
    assert np.mean(e_cub) < 0.5 * np.mean(e_lin)


def test_local_sdf_field_matches_whole_field():
    """The local crop gives the same boundary as a field built on the whole mask."""
    shape = (8, 80, 30)
    w = _grid(shape, SAG)
    labels = np.where((w[..., 1] - 20.0) ** 2 / 64.0 + (w[..., 0] - 14.0) ** 2 / 81.0 <= 1.0,
                      4, 0).astype(np.uint8)
    pts = np.stack(np.meshgrid(np.linspace(8, 20, 7), np.linspace(10, 30, 41), [7.0],
                               indexing="ij"), axis=-1)
    local = local_sdf_field(labels, SAG, (4,), pts).inside(pts)
    whole = MaskField(labels == 4, SAG, mode="sdf", order=3).inside(pts)
    assert np.array_equal(local >= 0.5, whole >= 0.5)


def test_ties_and_fov_edge_do_not_flip_with_float_noise():
    """A sample exactly half-way between an inside and an outside voxel, and one exactly on
    the image's outer half-voxel edge, keep their answer under 1e-7-mm affine noise."""
    mask = np.zeros((6, 6, 6), bool)
    mask[:3] = True  # boundary half-way between index 2 and 3 along axis 0
    aff = np.diag([4.0, 0.5, 0.5, 1.0])
    tie = np.array([[10.0, 1.0, 1.0]])  # index 2.5
    edge = np.array([[-2.0, 1.0, 1.0]])  # index −0.5: the outer edge of the first voxel
    rng = np.random.default_rng(5)
    answers = set()
    for _ in range(20):
        a = aff.copy()
        a[:3] += rng.uniform(-1e-7, 1e-7, (3, 4))
        f = MaskField(mask, a)
        answers.add((bool(f.inside(tie)[0] >= 0.5), bool(np.isnan(f.inside(edge)[0]))))
    assert answers == {(True, False)}


def _section(scores_row: np.ndarray, seed_col: int) -> ForamenSection:
    n = len(scores_row)
    scores = np.tile(scores_row[:, None], (1, 3))
    aa = np.arange(n) * 0.2 - 10.0
    region = np.zeros((n, 3), bool)
    return ForamenSection(region, aa, np.array([-0.2, 0.0, 0.2]), 1, seed_col, scores, set(),
                          np.zeros(3))


def test_foramen_width_is_the_run_from_the_disc_wall():
    """Row (posterior → anterior): free, articular process, free run, disc. The width is the
    run between the process and the disc, with both ends at their 0.5 crossings — not the
    extent of the region, which can wrap round the process tip above the row."""
    row = np.zeros(100)
    row[20:30] = 1.0  # articular process (solid)
    row[70:] = 1.0  # disc
    row[29], row[30] = 0.75, 0.25  # process front: crossing half-way, at 29.5
    row[69] = 0.4  # disc wall: crossing at 69 + (0.5 - 0.4) / (1.0 - 0.4) = 69.1667
    width = foramen_width(_section(row, seed_col=69))
    assert width == pytest.approx((69 + 0.1 / 0.6 - 29.5) * 0.2, abs=1e-9)


def test_foramen_width_open_behind_is_nan():
    row = np.zeros(60)
    row[50:] = 1.0
    assert np.isnan(foramen_width(_section(row, seed_col=49)))


class _Grid:
    """Just the affine, which is all :meth:`SpineModel.fit_endplate` reads."""

    def __init__(self, affine):
        self.affine = affine


def _staircase(tilt_deg: float, phase: float, radius: float = 14.0):
    """Sub-voxel surface points of a voxelised plane z = phase + tan(tilt)·y (1-mm voxels,
    body below): on each column the surface sits at the last inside voxel + 0.5."""
    u = np.arange(-radius, radius + 0.1, 2.0)
    yy, xx = np.meshgrid(u, u, indexing="ij")
    keep = yy**2 + xx**2 <= radius**2
    y, x = yy[keep], xx[keep]
    z = np.floor(phase + np.tan(np.radians(tilt_deg)) * y) + 0.5
    return np.stack([x, y, z], axis=1)


def _tilt(normal):
    return float(np.degrees(np.arctan2(normal[1], normal[2])))


@pytest.mark.parametrize("tilt_deg", [0.4, 1.1, 1.9])
def test_grid_flat_endplate_tilt(tilt_deg):
    """A nearly grid-flat plane on 1-mm voxels (at most two steps over 28 mm): over all
    step positions the digital-plane fit stays within the information limit of the
    staircase (half the consistent slope range, ≈ 1/(2·span) rad), where least squares
    follows the step and is off by up to 3 × the tilt or the whole tilt."""
    grid = _Grid(np.eye(4))
    up = np.array([0.0, 0.0, 1.0])
    err_new, err_lsq = [], []
    for phase in np.linspace(0.0, 1.0, 21, endpoint=False):
        pts = _staircase(tilt_deg, phase)
        err_new.append(abs(_tilt(SpineModel.fit_endplate(grid, pts, up).normal) + tilt_deg))
        err_lsq.append(abs(_tilt(fit_plane(pts, up).normal) + tilt_deg))
    limit = np.degrees(1.0 / 28.0)  # half of the widest consistent range (one central step)
    assert max(err_new) <= limit + 0.1
    assert max(err_new) <= max(err_lsq) + 1e-6
    assert np.mean(err_new) < np.mean(err_lsq)


def test_oblique_endplate_keeps_least_squares():
    """A plane tilted by 12° (many steps) is left to least squares, which is accurate."""
    grid = _Grid(np.eye(4))
    pts = _staircase(12.0, 0.3)
    plane = SpineModel.fit_endplate(grid, pts, np.array([0.0, 0.0, 1.0]))
    ref = fit_plane(pts, np.array([0.0, 0.0, 1.0]))
    assert np.allclose(plane.normal, ref.normal)
