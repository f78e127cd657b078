"""Slip on a sacral plate with a rounded posterior corner (issue #4, real-map L5-S1 slip).

The analytic spine's L5 sits exactly on S1 (slip 0 %). Bevelling the posterior 6 mm of the
sacral plate by up to 4 mm (the rounded corner of a domed plate, as on the panoptica SPINEPS
map) changes neither the plate's AP extent nor its centre, so slip must stay 0; an extent
read on a straight chord 2 mm under the fitted plane loses the corner and reads ≈ −5 %.
"""

from __future__ import annotations

import numpy as np
from analytic import DEPTH, analytic_spine

from spinemetrics.geometry import measure


def test_rounded_sacral_corner_keeps_zero_slip():
    seg, lev, truth = analytic_spine((1.0, 1.0, 1.0))
    s, lv = np.asarray(seg.array).copy(), np.asarray(lev.array).copy()
    idx = np.indices(s.shape).reshape(3, -1).T
    world = idx @ seg.affine[:3, :3].T + seg.affine[:3, 3]
    y, z = world[:, 1].reshape(s.shape), world[:, 2].reshape(s.shape)  # spine straight along z
    back = -DEPTH / 2  # posterior wall (the canal lies at −y)
    drop = 4.0 * np.clip(1.0 - (y - back) / 6.0, 0.0, 1.0)  # 4 mm at the wall → 0 at 6 mm
    corner = (s == 3) & (z > -drop)
    assert corner.sum() > 100
    s[corner], lv[corner] = 4, 124  # the disc fills the corner, as in real anatomy
    t = measure(seg.with_array(s), lev.with_array(lv), families=("alignment", "disc"))
    v = t.set_index(["level", "measure"]).value
    assert truth["slip_percent"] == 0.0
    assert abs(v[("L5-S1", "slip_percent")]) < 1.0
    assert abs(v[("L4-L5", "slip_percent")]) < 1.0  # flat plates: unchanged
    assert abs(v[("L5-S1", "segmental_angle_deg")]) < 1.0  # the plate fit ignores the corner
