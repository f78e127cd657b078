"""Small analytic spine for geometry tests (independent of spinemetrics.phantom).

Straight spine along anatomical +z: sacrum block, five lumbar bodies (elliptic cylinders
with flat endplates), discs in between, an elliptic dural-sac tube behind the bodies and a
posterior arch (lamina slab) behind the sac. Every measure of interest has a closed form,
given in :data:`TRUTH`-style dicts returned by :func:`analytic_spine`.
"""

from __future__ import annotations

import numpy as np

from spinemetrics.image import Image

BODY_H = 26.0
DISC_H = 10.0
DEPTH = 34.0
WIDTH = 44.0
SAC_AP = 12.0  # full axes of the dural-sac ellipse
SAC_LR = 16.0
WALL_GAP = 2.0  # posterior body wall → sac
LAMINA_GAP = 3.0  # sac → lamina
N_LUMBAR = 5


def _rotation(deg: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = np.radians(deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def analytic_spine(spacing=(1.0, 1.0, 1.0), rotation_deg=(0.0, 0.0, 0.0), n_lumbar=N_LUMBAR,
                   sacrum=True, offset=(0.3, -0.2, 0.1)):
    """Render the analytic spine; returns ``(seg, levels, truth)``."""
    rot = _rotation(rotation_deg)
    spacing = np.asarray(spacing, float)
    z_top = 10 + n_lumbar * (BODY_H + DISC_H) + 5
    half = np.array([60.0, 60.0, 0.0])
    lo_world = np.array([-60.0, -60.0, -40.0])
    hi_world = np.array([60.0, 60.0, z_top])
    # Bounding box of the rotated anatomy.
    corners = np.array([[x, y, z] for x in (lo_world[0], hi_world[0])
                        for y in (lo_world[1], hi_world[1]) for z in (lo_world[2], hi_world[2])])
    wc = corners @ rot.T
    lo, hi = wc.min(axis=0), wc.max(axis=0)
    del half
    shape = np.ceil((hi - lo) / spacing).astype(int) + 1
    affine = np.eye(4)
    affine[:3, :3] = np.diag(spacing)
    affine[:3, 3] = lo + np.asarray(offset)
    ii, jj, kk = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    world = np.stack([ii, jj, kk], -1).reshape(-1, 3) * spacing + affine[:3, 3]
    anat = world @ rot  # inverse rotation (rot orthonormal)
    x, y, z = anat[:, 0], anat[:, 1], anat[:, 2]
    seg = np.zeros(len(x), np.uint8)
    lev = np.zeros(len(x), np.uint16)
    ell = (x / (WIDTH / 2)) ** 2 + (y / (DEPTH / 2)) ** 2 <= 1
    # sacrum: block below z = 0
    if sacrum:
        m = ell & (z < 0) & (z > -35)
        seg[m], lev[m] = 3, 26
    ids = [24 - i for i in range(n_lumbar)]
    z0 = 0.0
    truth = {}
    for _i, vid in enumerate(ids):
        dz0 = z0 + DISC_H
        m = ell & (z >= z0) & (z < dz0)
        seg[m], lev[m] = 4, 100 + vid
        bz0, bz1 = dz0, dz0 + BODY_H
        m = ell & (z >= bz0) & (z < bz1)
        seg[m], lev[m] = 1, vid
        # posterior arch: lamina slab behind the sac over the body's height
        sac_y_c = -DEPTH / 2 - WALL_GAP - SAC_AP / 2
        lam_y0 = sac_y_c - SAC_AP / 2 - LAMINA_GAP
        m = (np.abs(x) < 14) & (y <= lam_y0) & (y > lam_y0 - 8) & (z >= bz0 + 2) & (z < bz1 - 2)
        seg[m], lev[m] = 2, vid
        # pedicles joining body and lamina
        for sx in (-1, 1):
            m = (np.abs(x - sx * 12) < 3) & (y < -DEPTH / 2 + 2) & (y > lam_y0 - 1) & (
                z >= bz0 + 4) & (z < bz0 + 16)
            m &= seg == 0
            seg[m], lev[m] = 2, vid
        z0 = bz1
    sac_y_c = -DEPTH / 2 - WALL_GAP - SAC_AP / 2
    m = ((x / (SAC_LR / 2)) ** 2 + ((y - sac_y_c) / (SAC_AP / 2)) ** 2 <= 1) & (z > -20) & (
        z < z0 + 3) & (seg == 0)
    seg[m] = 5
    shape = tuple(int(s) for s in shape)
    seg_img = Image(seg.reshape(shape), affine)
    lev_img = Image(lev.reshape(shape), affine)
    truth = {
        "vertebral_height_anterior_mm": BODY_H,
        "vertebral_height_middle_mm": BODY_H,
        "vertebral_height_posterior_mm": BODY_H,
        "vertebral_depth_mm": DEPTH,
        "vertebral_wedge_index": 1.0,
        "vertebral_volume_mm3": np.pi * DEPTH * WIDTH / 4 * BODY_H,
        "disc_height_anterior_mm": DISC_H,
        "disc_height_middle_mm": DISC_H,
        "disc_height_posterior_mm": DISC_H,
        "disc_depth_mm": DEPTH,
        "disc_height_index": 2 * DISC_H / DEPTH,
        "disc_wedge_angle_deg": 0.0,
        "disc_volume_mm3": np.pi * DEPTH * WIDTH / 4 * DISC_H,
        "segmental_angle_deg": 0.0,
        "slip_percent": 0.0,
        "lumbar_lordosis_deg": 0.0,
        "dural_sac_area_mm2": np.pi * SAC_AP * SAC_LR / 4,
        "dural_sac_ap_mm": SAC_AP,
        "canal_ap_mm": WALL_GAP + SAC_AP + LAMINA_GAP,
    }
    return seg_img, lev_img, truth


def flip_image(img: Image, axis: int) -> Image:
    """The same scan stored with array axis ``axis`` reversed (world positions unchanged)."""
    n = img.shape[axis]
    f = np.eye(4)
    f[axis, axis] = -1.0
    f[axis, 3] = n - 1
    return Image(np.flip(img.array, axis=axis).copy(), img.affine @ f)


def transpose_image(img: Image, order=(2, 0, 1)) -> Image:
    """The same scan stored with its array axes permuted (world positions unchanged)."""
    p = np.zeros((4, 4))
    for new, old in enumerate(order):
        p[old, new] = 1.0
    p[3, 3] = 1.0
    return Image(np.transpose(img.array, order).copy(), img.affine @ p)
