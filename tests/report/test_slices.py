"""Report views: planes in world space, radiological orientation, tilt invariance."""

from __future__ import annotations

import numpy as np
import pytest

from spinemetrics.image import Image
from spinemetrics.labels import Structure
from spinemetrics.report import slices


def _rot_x(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    r = np.eye(4)
    r[1:3, 1:3] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    return r


def _rotated(img: Image, rot: np.ndarray) -> Image:
    return Image(img.array, rot @ img.affine)


def test_disc_planes_follow_the_level_map(phantom):
    image, seg, lev, centres = phantom
    planes = slices.disc_planes(lev, seg)
    assert [n for n, _ in planes] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    for name, plane in planes:
        # Disc voxels z in (c-4, c+4] at 1 mm: centroid at c + 0.5 mm.
        assert plane.origin[2] == pytest.approx(centres[name] + 0.5, abs=0.01)
        normal = np.cross(plane.u, plane.v)
        assert abs(normal[2]) > 0.999


def test_disc_planes_without_level_map_use_components(phantom):
    image, seg, lev, centres = phantom
    planes = slices.disc_planes(None, seg)
    assert [n for n, _ in planes] == [f"disc {i}" for i in range(1, 6)]
    zs = [p.origin[2] for _, p in planes]
    assert zs == sorted(zs, reverse=True)  # cranial first


def test_mid_sagittal_view_anterior_left_superior_up(phantom):
    image, seg, lev, _ = phantom
    plane = slices.mid_sagittal_plane(image, seg)
    view = slices.render_view("sag", image, seg, plane, lev)
    rows, cols = np.nonzero(view.labels == Structure.vertebral_body)
    srows, scols = np.nonzero(view.labels == Structure.thecal_sac)
    assert cols.mean() < scols.mean()  # bodies (anterior) left of the sac
    l1 = np.nonzero(view.levels == 20)[0].mean()
    s1 = np.nonzero(view.levels == 26)[0].mean()
    assert l1 < s1  # L1 above S1
    # Pixel size: body depth 10..45 mm → 36 columns of 1 mm voxels / pixel_mm
    body_cols = np.unique(cols)
    assert body_cols.size * plane.pixel_mm == pytest.approx(36, abs=2 * plane.pixel_mm)


def test_axial_view_is_radiological_and_tilt_invariant(phantom):
    image, seg, lev, _ = phantom
    arr = seg.array.copy()
    xyz = seg.index_to_world(np.argwhere(arr == 0).astype(float))
    # A "vessel" on the patient's right (x > 0), only where background.
    right = (xyz[:, 0] > 28) & (xyz[:, 0] < 38) & (xyz[:, 1] > 15) & (xyz[:, 1] < 30)
    idx = np.argwhere(arr == 0)[right]
    arr[tuple(idx.T)] = Structure.vessel
    seg2 = seg.with_array(arr)
    counts = {}
    for deg in (0.0, 25.0):
        rot = _rot_x(deg)
        img_r, seg_r, lev_r = (_rotated(x, rot) for x in (image, seg2, lev))
        planes = dict(slices.disc_planes(lev_r, seg_r))
        plane = planes["L3-L4"]
        normal = np.cross(plane.u, plane.v)
        assert abs(normal @ (rot[:3, :3] @ [0, 0, 1.0])) > 0.999
        view = slices.render_view("L3-L4", img_r, seg_r, plane)
        h, w = view.labels.shape
        vrows, vcols = np.nonzero(view.labels == Structure.vessel)
        assert vcols.mean() < w / 2  # patient's right on the viewer's left
        brows, _ = np.nonzero(view.labels == Structure.intervertebral_disc)
        srows, _ = np.nonzero(view.labels == Structure.thecal_sac)
        assert brows.mean() < srows.mean()  # anterior (disc) above the sac
        counts[deg] = (view.labels == Structure.thecal_sac).sum() * plane.pixel_mm**2
    # Sac ellipse 9 x 8 mm semi-axes: area pi*72 = 226 mm², same with a 25° tilt.
    assert counts[0.0] == pytest.approx(np.pi * 72, rel=0.12)
    assert counts[25.0] == pytest.approx(counts[0.0], rel=0.08)


def test_window_uint8_maps_percentiles():
    v = np.linspace(0, 100, 1001)
    out = slices.window_uint8(v, 0, 100)
    assert out[0] == 0 and out[-1] == 255 and out[500] in (127, 128)
    assert slices.window_uint8(np.full((3, 3), np.nan)).max() == 0


def test_overlay_is_transparent_outside_the_structure():
    lab = np.zeros((9, 9), np.uint8)
    lab[2:7, 2:7] = Structure.thecal_sac
    rgba = slices.overlay_rgba(lab, Structure.thecal_sac)
    assert rgba[0, 0, 3] == 0
    assert rgba[2, 2, 3] == 255 and rgba[4, 4, 3] == 127  # outline opaque, inside half
    assert tuple(rgba[4, 4, :3]) == (0, 114, 178)
