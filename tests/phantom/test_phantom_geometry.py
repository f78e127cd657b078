"""The phantom's label maps agree with its own exact truth (volumes, sections, levels).

Expected values come from closed forms computed here from the parameters or from the
rendered maps' physics (partial-volume bounds), never from the phantom's output itself.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from spinemetrics.labels import level_id
from spinemetrics.phantom import make_phantom, random_params
from spinemetrics.phantom.truth import plane_sample

# Partial-volume bound: counting voxel centres inside a convex slab of extents (H, D, W)
# along its axes (u, a, x) errs by at most about one voxel extent along each axis, relative
# error ≲ Σ ext_i / L_i (ext_i = extent of a voxel along that axis); we allow 0.35 of that
# worst case plus 1 %.
CASES = [
    ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
    ((1.0, 1.0, 1.0), (15.0, -10.0, 8.0)),
    ((4.0, 0.5, 0.5), (0.0, 0.0, 0.0)),
    ((4.0, 0.5, 0.5), (0.0, 12.0, 0.0)),
    ((2.0, 2.0, 2.0), (-10.0, 0.0, 15.0)),
]


def _pv_tol(ph, geom, height):
    R = ph.anat_to_world[:3, :3]
    sp = np.asarray(ph.seg.spacing)
    # seg is RAS here (default orientation): array axes = world axes
    ext = [float(sp @ np.abs(R @ e)) for e in (geom.u, geom.a, np.array([1.0, 0.0, 0.0]))]
    return 0.01 + 0.35 * (ext[0] / height + ext[1] / geom.depth_mm + ext[2] / geom.width_mm)


def _rim_volume(r_ap, r_lr, drop, half_wedge_deg, n=800):
    """Volume under the documented rim profile, by a 2D midpoint rule on the unit disc."""
    g = (np.arange(n) + 0.5) / n * 2 - 1
    U, V = np.meshgrid(g, g, indexing="ij")
    rho = np.hypot(U, V)
    t = np.clip((rho - 0.88) / 0.12, 0, 1)
    prof = np.where(rho <= 1, 1 - np.sqrt(1 - t * t), 0.0)
    return prof.sum() * (2 / n) ** 2 * r_ap * r_lr * drop / np.cos(np.radians(half_wedge_deg))


def _counts(ph):
    seg, lev = ph.seg.array, ph.levels.array
    return np.bincount(lev[(seg == 1) | (seg == 4)].ravel(), minlength=256)


@pytest.mark.parametrize(("spacing", "rotation"), CASES)
def test_voxel_volumes_match_analytic_volumes(spacing, rotation):
    p = random_params(seed=11)
    ph = make_phantom(p, spacing=spacing, rotation_deg=rotation, with_image=False)
    cnt = _counts(ph)
    vv = ph.seg.voxel_volume_mm3
    an = ph.anatomy
    for v in p.vertebrae:
        hm = 0.5 * (p.body_height_anterior_mm[v] + p.body_height_posterior_mm[v])
        d_, w_ = p.body_depth_mm[v], p.body_width_mm[v]
        wedge = np.degrees(
            2
            * np.arctan((p.body_height_anterior_mm[v] - p.body_height_posterior_mm[v]) / (1.6 * d_))
        )
        # elliptic slab minus the two rounded rims (independent 2D quadrature)
        expected = np.pi / 4 * d_ * w_ * hm - 2 * _rim_volume(
            d_ / 2, w_ / 2, p.endplate_rim_mm, wedge / 2
        )
        tol = _pv_tol(ph, an.bodies[v], hm)
        assert cnt[level_id(v)] * vv == pytest.approx(expected, rel=tol), v
        # the 2D quadrature of the rim is accurate to ~1e-6
        assert ph.truth_value(v, "vertebral_volume_mm3") == pytest.approx(expected, rel=1e-5)
    for d in p.discs:
        got = cnt[level_id(d)] * vv
        tol = _pv_tol(ph, an.discs[d], ph.truth_value(d, "disc_height_middle_mm"))
        assert got == pytest.approx(ph.truth_value(d, "disc_volume_mm3"), rel=tol), d


def test_heights_and_angles_follow_the_parameters():
    p = random_params(seed=3)
    ph = make_phantom(p, with_image=False, spacing=(2.0, 2.0, 2.0))
    for v in p.vertebrae:
        ha, hp = p.body_height_anterior_mm[v], p.body_height_posterior_mm[v]
        assert ph.truth_value(v, "vertebral_height_anterior_mm") == pytest.approx(ha)
        assert ph.truth_value(v, "vertebral_height_posterior_mm") == pytest.approx(hp)
        assert ph.truth_value(v, "vertebral_height_middle_mm") == pytest.approx((ha + hp) / 2)
        assert ph.truth_value(v, "vertebral_wedge_index") == pytest.approx(ha / hp)
    for d in p.discs:
        ha, hp = p.disc_height_anterior_mm[d], p.disc_height_posterior_mm[d]
        dd = p.disc_depth_mm[d]
        wedge = np.degrees(2 * np.arctan((ha - hp) / (1.6 * dd)))
        t_ha = ph.truth_value(d, "disc_height_anterior_mm")
        t_hm = ph.truth_value(d, "disc_height_middle_mm")
        t_hp = ph.truth_value(d, "disc_height_posterior_mm")
        assert ph.truth_value(d, "disc_wedge_angle_deg") == pytest.approx(wedge)
        # planar endplates: height is linear across the depth, slope 2·tan(w/2)
        assert t_ha - t_hp == pytest.approx(1.6 * dd * np.tan(np.radians(wedge) / 2))
        assert t_hm == pytest.approx((t_ha + t_hp) / 2)
        assert ph.truth_value(d, "disc_height_index") == pytest.approx((t_ha + t_hp) / dd)
        # the disc centre sits mid-way between the endplate centres, which are offset along
        # the wedge: the middle height differs from the nominal one only to second order
        if p.slip_percent[d] == 0:
            half = np.radians(wedge) / 2
            assert abs(t_hm - (ha + hp) / 2) <= (ha + hp) * np.tan(half) ** 2 + 1e-9

    # lordosis = sum of the disc and body wedges between L1 and S1 (angles add in the plane)
    def wedge_of(ha, hp, depth):
        return np.degrees(2 * np.arctan((ha - hp) / (1.6 * depth)))

    total = sum(
        wedge_of(p.disc_height_anterior_mm[d], p.disc_height_posterior_mm[d], p.disc_depth_mm[d])
        for d in p.discs
        if not d.startswith("T")
    ) + sum(
        wedge_of(p.body_height_anterior_mm[v], p.body_height_posterior_mm[v], p.body_depth_mm[v])
        for v in p.vertebrae
        if v.startswith("L")
    )
    assert ph.truth_value("L1-S1", "lumbar_lordosis_deg") == pytest.approx(total)
    seg_sum = sum(
        ph.truth_value(d, "segmental_angle_deg") for d in p.discs if not d.startswith("T")
    )
    # segmental angles telescope: Σ (disc wedge + upper body wedge) over L1-L2…L5-S1 = LL
    assert seg_sum == pytest.approx(total)


def test_slip_truth_equals_parameter_and_shifts_the_body():
    p = random_params(seed=4)
    d = "L4-L5"
    p.slip_percent[d] = 12.0
    ph = make_phantom(p, with_image=False, spacing=(2.0, 2.0, 2.0))
    assert ph.truth_value(d, "slip_percent") == pytest.approx(12.0, abs=1e-9)
    an = ph.anatomy
    disc = an.discs[d]
    # independent check: displacement of the endplate centres along the lower endplate
    e1 = disc.inferior.ap
    disp = float((disc.superior.point - disc.inferior.point) @ e1)
    depth = p.body_depth_mm["L5"] / np.cos(np.radians(an.bodies["L5"].wedge_deg / 2))
    assert 100 * disp / depth == pytest.approx(12.0, abs=1e-9)
    # the slipped upper body is anterior to the lower one by ≈ 12 % of the depth
    shift = float((an.bodies["L4"].centre - an.bodies["L5"].centre) @ e1)
    assert shift > 0.08 * depth


def _mask_on_plane(img, mask, origin, e1, e2, half, step):
    """Linear interpolation of a binary mask on a world plane (threshold 0.5)."""
    p = np.arange(-half, half + step / 2, step)
    P, Q = np.meshgrid(p, p, indexing="ij")
    pts = origin + P[..., None] * e1 + Q[..., None] * e2
    ijk = img.world_to_index(pts.reshape(-1, 3)).T
    vals = ndimage.map_coordinates(mask.astype(np.float32), ijk, order=1, mode="constant")
    return vals.reshape(P.shape) >= 0.5


@pytest.mark.parametrize(
    ("spacing", "rotation", "tol"),
    [
        ((0.5, 0.5, 0.5), (0.0, 0.0, 0.0), 0.04),
        ((1.0, 1.0, 1.0), (10.0, 8.0, -6.0), 0.08),
    ],
)
def test_dural_sac_area_on_perpendicular_plane(spacing, rotation, tol):
    p = random_params(seed=21)
    p.stenosis["L3-L4"] = 0.5
    fov = (50.0, 100.0, 170.0) if spacing[0] < 1 else None
    ph = make_phantom(p, spacing=spacing, rotation_deg=rotation, with_image=False, fov_mm=fov)
    an = ph.anatomy
    sac = np.isin(ph.seg.array, (5, 6))
    R = ph.anat_to_world[:3, :3]
    for d in ("L3-L4", "L2-L3"):
        s0 = an.s_level[d]
        _, nrm = an.canal.frame(s0)
        origin = ph.to_world(an.canal.point(s0))
        m = _mask_on_plane(ph.seg, sac, origin, R @ np.array([1.0, 0, 0]), R @ nrm, 15.0, 0.1)
        area = m.sum() * 0.01
        assert area == pytest.approx(ph.truth_value(d, "dural_sac_area_mm2"), rel=tol), d
    # the stenosis halves the area relative to the un-stenosed base profile
    ra, rl = an.base_radii(an.s_level["L3-L4"])
    assert ph.truth_value("L3-L4", "dural_sac_area_mm2") == pytest.approx(
        0.5 * np.pi * float(ra) * float(rl), rel=1e-6
    )


def test_canal_sections_sampled_exactly_match_closed_forms():
    """Dense analytic sampling (0.05 mm) of the sac and LF reproduces the closed forms."""
    p = random_params(seed=8)
    ph = make_phantom(p, with_image=False, spacing=(3.0, 3.0, 3.0))
    an = ph.anatomy
    for d in ("L2-L3", "L4-L5"):
        s0 = an.s_level[d]
        _, nrm = an.canal.frame(s0)
        _, _, seg, _ = plane_sample(
            an, an.canal.point(s0), np.array([1.0, 0, 0]), nrm, (-25, 25), (-25, 25), 0.05
        )
        area = np.isin(seg, (5, 6)).sum() * 0.05**2
        assert area == pytest.approx(ph.truth_value(d, "dural_sac_area_mm2"), rel=0.005)
        pa = np.arange(-25, 25 + 0.025, 0.05)
        for side, sgn in (("R", 1.0), ("L", -1.0)):
            lf = (seg == 9) & ((sgn * pa)[:, None] > 0)
            thick = 2 * ndimage.distance_transform_edt(lf).max() * 0.05
            truth = ph.truth_value(d, "ligamentum_flavum_thickness_mm", side)
            assert thick == pytest.approx(truth, abs=0.12), (d, side)


def test_level_map_ids_and_cranio_caudal_order():
    p = random_params(seed=5)
    ph = make_phantom(p, spacing=(2.0, 2.0, 2.0), with_image=False)
    lev = ph.levels.array
    ids = set(np.unique(lev).tolist()) - {0}
    assert ids == {19, 20, 21, 22, 23, 24, 26, 119, 120, 121, 122, 123, 124}
    # centroids (world z) strictly decreasing from T12 through the discs to the sacrum
    order = [19, 119, 20, 120, 21, 121, 22, 122, 23, 123, 24, 124]
    zs = []
    for i in order:
        ijk = np.argwhere(lev == i).mean(axis=0)
        zs.append(ph.levels.index_to_world(ijk)[2])
    assert np.all(np.diff(zs) < 0)
    # vertebral bodies are label 1, discs 4, sacrum 3 — never mixed up
    seg = ph.seg.array
    assert set(np.unique(seg[lev == 124]).tolist()) == {4}
    assert set(np.unique(seg[lev == 26]).tolist()) == {3}
    assert set(np.unique(seg[(lev >= 19) & (lev <= 24)]).tolist()) == {1, 2}
    assert set(np.unique(seg).tolist()) == set(range(12))


@pytest.mark.parametrize(
    ("count", "expected_ids"),
    [
        (6, {19, 20, 21, 22, 23, 24, 25, 26, 119, 120, 121, 122, 123, 124, 125}),
        (4, {19, 20, 21, 22, 23, 26, 119, 120, 121, 122, 123}),
    ],
)
def test_transitional_counts(count, expected_ids):
    p = random_params(seed=2, lumbar_count=count)
    ph = make_phantom(p, spacing=(3.0, 3.0, 3.0), with_image=False)
    assert set(np.unique(ph.levels.array).tolist()) - {0} == expected_ids
    last = f"L{count}-S1"
    assert last in set(ph.analytic_truth.level)
    assert ph.truth_value(last, "disc_volume_mm3") > 0


def test_sacral_slope_follows_sagittal_rotation_only():
    p = random_params(seed=6)
    a = make_phantom(p, spacing=(3.0, 3.0, 3.0), with_image=False)
    b = make_phantom(p, spacing=(3.0, 3.0, 3.0), rotation_deg=(12.0, 0.0, 0.0), with_image=False)
    assert a.truth_value("S1", "sacral_slope_deg") == pytest.approx(p.sacral_slope_deg)
    # rotating the anatomy about +x (right) by 12° tilts the plate normal posteriorly by 12°
    assert b.truth_value("S1", "sacral_slope_deg") == pytest.approx(p.sacral_slope_deg - 12.0)
    ta = a.analytic_truth.set_index(["level", "side", "measure"]).value
    tb = b.analytic_truth.set_index(["level", "side", "measure"]).value
    other = [k for k in ta.index if k[2] != "sacral_slope_deg"]
    np.testing.assert_allclose(ta[other].to_numpy(), tb[other].to_numpy(), rtol=1e-12)


def test_left_right_truth_follows_the_asymmetry_parameters():
    """Side-specific truths move with their own side's parameters (catches L/R swaps)."""
    p = random_params(seed=9)
    d = "L3-L4"
    # make the right side clearly different: bigger muscles, higher upper pedicle, wider gap
    for m in ("psoas", "erector", "ql"):
        p.side_scale[f"{m}:R"], p.side_scale[f"{m}:L"] = 1.1, 0.9
    p.pedicle_shift_mm["L3:R"], p.pedicle_shift_mm["L3:L"] = 1.5, -1.5
    p.facet_gap_mm[f"{d}:R"], p.facet_gap_mm[f"{d}:L"] = 10.0, 6.5
    ph = make_phantom(p, spacing=(4.0, 4.0, 4.0), with_image=False)

    from spinemetrics.phantom.truth import foramen, muscle_areas

    fora = {side: foramen(ph.anatomy, d, side) for side in ("L", "R")}
    mus = muscle_areas(ph.anatomy, d)
    names = {"foraminal_height_mm": "height", "foraminal_width_mm": "width"}

    def tv(measure, side):  # the truth table's own functions, for one disc only (fast)
        return mus[side] if measure.startswith("paraspinal") else fora[side][names[measure]]

    # muscle cross-sections scale with the square of the size factor (minus bone overlap)
    ratio = tv("paraspinal_muscle_area_mm2", "R") / tv("paraspinal_muscle_area_mm2", "L")
    assert 1.25 < ratio < (1.1 / 0.9) ** 2 + 0.05
    # the upper pedicle rises 3 mm more on the right: taller foramen there
    assert tv("foraminal_height_mm", "R") - tv("foraminal_height_mm", "L") == pytest.approx(
        3.0, abs=1.0
    )
    # the foraminal width at disc level follows the facet gap (disc wall ↔ articular process)
    assert tv("foraminal_width_mm", "R") == pytest.approx(10.0, abs=2.5)
    assert tv("foraminal_width_mm", "L") == pytest.approx(6.5, abs=2.5)
    assert tv("foraminal_width_mm", "R") > tv("foraminal_width_mm", "L") + 2.0
    # in world coordinates the right side is +x: the right psoas voxels lie at x > 0
    seg = ph.seg.array
    xs = ph.seg.index_to_world(np.argwhere(seg == 10))[:, 0]
    assert (xs > 0).sum() > (xs < 0).sum()


def test_non_spine_bone_and_organs_are_background():
    p = random_params(seed=12)
    ph = make_phantom(p, spacing=(3.0, 3.0, 3.0), with_image=False)
    from spinemetrics.phantom import tissues as T

    tis, seg = ph.tissue.array, ph.seg.array
    for t in (T.OTHER_CORTEX, T.OTHER_MARROW, T.LIVER, T.SPLEEN, T.KIDNEY, T.SUBCUT_FAT):
        assert (tis == t).any(), T.NAMES[t]
        assert set(np.unique(seg[tis == t]).tolist()) == {0}, T.NAMES[t]


def test_tissue_only_details_leave_the_label_maps_unchanged():
    """Modic bands, haemangiomas and cauda equina strands change tissue, never labels."""
    from spinemetrics.phantom import tissues as T

    p = random_params(seed=13)
    p.modic_mm = {"L4-L5": 6.0, "L5-S1": 4.0}
    p.hemangioma = {"L2": (0.8, -0.8, 0.8, 0.3), "L3": (-1.0, 1.0, -1.0, 0.3)}
    with_lesions = make_phantom(p, spacing=(2.0, 1.5, 1.5), with_image=False)
    p.modic_mm, p.hemangioma = {}, {}
    plain = make_phantom(p, spacing=(2.0, 1.5, 1.5), with_image=False)
    np.testing.assert_array_equal(with_lesions.seg.array, plain.seg.array)
    np.testing.assert_array_equal(with_lesions.levels.array, plain.levels.array)
    tis, lev = with_lesions.tissue.array, with_lesions.levels.array
    assert set(np.unique(lev[tis == T.MODIC]).tolist()) == {23, 24, 26}
    assert set(np.unique(lev[tis == T.HEMANGIOMA]).tolist()) == {21, 22}
    assert set(np.unique(with_lesions.seg.array[tis == T.CAUDA]).tolist()) == {5}


def _root_shell_fat(params):
    """Share of fat (label 0) in a 1.5 mm shell around the roots outside canal and bone,
    and in a shell 2-4 mm farther out."""
    from spinemetrics.phantom import tissues as T

    ph = make_phantom(params, spacing=(1.0, 1.0, 1.0), with_image=False)
    seg, tis = np.asarray(ph.seg.array), np.asarray(ph.tissue.array)
    root = seg == 7
    canal = ndimage.binary_dilation(np.isin(seg, (5, 6, 8)), iterations=3)
    bony = np.isin(seg, (1, 2, 3, 4))  # bone and disc bound the foramen and win over fat
    around = ndimage.binary_dilation(root, iterations=1) & ~root & ~canal & ~bony
    fat = (tis == T.SUBCUT_FAT) & (seg == 0)
    far = ndimage.binary_dilation(root, iterations=5) & ~canal & ~bony
    far &= ~ndimage.binary_dilation(root, iterations=3)
    assert (seg[(tis == T.EPIDURAL_FAT)] == 8).all()  # epidural fat keeps its label
    assert around.sum() > 500
    return float(fat[around].mean()), float(fat[far].mean())


def test_exiting_roots_lie_in_perineural_fat():
    """With a 2 mm sheath on every root, the tissue around the roots outside the canal is
    mostly fat (label 0), and the sheath does not reach much farther; with the sheath set
    to 0 (obliterated foramina) it is not fat."""
    base = random_params(4)
    keys = list(base.perineural_fat_mm)
    assert len(keys) == 2 * len(base.discs)
    with_fat = replace(base, perineural_fat_mm=dict.fromkeys(keys, 2.0))
    near, far = _root_shell_fat(with_fat)
    assert near > 0.8, near
    assert far < near - 0.3, (near, far)
    no_fat = replace(base, perineural_fat_mm=dict.fromkeys(keys, 0.0))
    near0, _ = _root_shell_fat(no_fat)
    assert near0 < 0.2, near0


def test_perineural_fat_varies_per_root_and_is_thinner_at_degenerate_discs():
    """Drawn per root: some foramina without fat, more of them (and thinner sheaths) at
    degenerate discs; the draw leaves every earlier parameter unchanged."""
    fat_n, fat_d = [], []
    for seed in range(40):
        p = random_params(seed)
        for key, f in p.perineural_fat_mm.items():
            (fat_d if p.disc_degenerated[key.split(":")[0]] else fat_n).append(f)
    fat_n, fat_d = np.array(fat_n), np.array(fat_d)
    assert 0.03 < (fat_n == 0).mean() < 0.2
    assert 0.25 < (fat_d == 0).mean() < 0.6
    assert np.median(fat_n[fat_n > 0]) > 1.5 > np.median(fat_d[fat_d > 0])


def test_longitudinal_ligaments_line_the_front_and_back_of_the_column():
    """ALL in front of bodies and discs (dark tissue, label 0), PLL behind them in the
    canal; both as thick as drawn and absent when their thickness is 0."""
    from spinemetrics.phantom import tissues as T

    p = random_params(6)
    ph = make_phantom(p, spacing=(1.0, 1.0, 1.0), with_image=False)
    seg, tis = np.asarray(ph.seg.array), np.asarray(ph.tissue.array)
    lig = tis == T.LIGAMENT
    assert (seg[lig] == 0).all()
    x = seg.shape[0] // 2
    col = np.isin(seg[x], (1, 4))  # bodies and discs on the mid-sagittal slice
    anterior, posterior = [], []
    for z in range(seg.shape[2]):
        ys = np.nonzero(col[:, z])[0]
        if len(ys) < 20:
            continue
        front = lig[x, ys.max() + 1: ys.max() + 6, z]  # y grows anteriorly (RAS)
        back = lig[x, max(ys.min() - 5, 0): ys.min(), z]
        anterior.append(front.sum())
        posterior.append(back.sum())
    anterior, posterior = np.array(anterior), np.array(posterior)
    assert len(anterior) > 100
    # voxel counts along the AP line: thickness / cos(tilt), on a 1 mm grid
    assert abs(np.median(anterior) - p.all_thickness_mm) <= 1.0, np.median(anterior)
    assert abs(np.median(posterior) - p.pll_thickness_mm) <= 1.0, np.median(posterior)
    assert (anterior > 0).mean() > 0.9
    assert (posterior > 0).mean() > 0.8  # the sac, painted later, may cover a little
    none = make_phantom(replace(p, all_thickness_mm=0.0, pll_thickness_mm=0.0,
                                interspinous_half_width_mm=0.0),
                        spacing=(1.0, 1.0, 1.0), with_image=False)
    assert not (np.asarray(none.tissue.array) == T.LIGAMENT).any()
    # the ligaments take no voxel from bone, disc, sac or cord
    for lab in (1, 2, 3, 4, 5, 6):
        assert ((np.asarray(none.seg.array) == lab) == (seg == lab)).all(), lab


def test_cortical_shell_of_the_bodies_is_as_thick_as_drawn():
    """The bodies' dark cortex (tissue only) is ``cortex_mm`` thick: twice the thickness,
    about twice the cortex voxels; the labels do not change. Drawn per phantom."""
    from spinemetrics.phantom import tissues as T

    p = random_params(7)
    drawn = np.array([random_params(s).cortex_mm for s in range(30)])
    assert drawn.min() >= 0.5 and drawn.max() <= 1.2 and drawn.std() > 0.1
    found = {}
    for t in (0.5, 1.2):
        ph = make_phantom(replace(p, cortex_mm=t), spacing=(2.0, 0.5, 0.5), with_image=False,
                          fov_mm=(40.0, 110.0, 150.0))
        seg, tis = np.asarray(ph.seg.array), np.asarray(ph.tissue.array)
        body = seg == 1
        depth = ndimage.distance_transform_edt(body, sampling=ph.seg.spacing)
        cortex = body & (tis == T.CORTEX)
        marrow = body & ~cortex
        assert cortex.sum() > 1000
        # depth from the body's surface, on a 0.5 mm in-plane grid (half-voxel tolerance)
        assert np.percentile(depth[cortex], 95) <= t + 0.55, (t, np.percentile(depth[cortex], 95))
        assert depth[marrow].min() >= t - 0.55, (t, depth[marrow].min())
        found[t] = (seg, int(cortex.sum()))
    np.testing.assert_array_equal(found[0.5][0], found[1.2][0])
    ratio = found[1.2][1] / found[0.5][1]
    assert 1.2 / 0.5 * 0.8 < ratio < 1.2 / 0.5 * 1.2, ratio


def test_posterior_midline_has_interspinous_ligaments_and_multifidus():
    """Between adjacent spinous processes lies ligament (or fat) tissue of label 0, as wide
    as drawn; multifidus (label 10) lies against the laminae; neither takes a voxel from
    bone, ligamentum flavum or canal, and neither is drawn when its size is 0."""
    from spinemetrics.phantom import tissues as T

    p = random_params(7)
    ph = make_phantom(p, spacing=(1.0, 1.0, 1.0), with_image=False)
    seg, tis = np.asarray(ph.seg.array), np.asarray(ph.tissue.array)
    off = make_phantom(replace(p, interspinous_half_width_mm=0.0, multifidus_width_mm=0.0),
                       spacing=(1.0, 1.0, 1.0), with_image=False)
    seg0, tis0 = np.asarray(off.seg.array), np.asarray(off.tissue.array)
    for lab in range(1, 10):
        assert ((seg0 == lab) == (seg == lab)).all(), lab
    x0 = seg.shape[0] // 2
    new_lig = (tis == T.LIGAMENT) & (tis0 != T.LIGAMENT)
    new_fat = (tis == T.SUBCUT_FAT) & (tis0 != T.SUBCUT_FAT)
    interspinous = new_lig | new_fat
    assert (seg[interspinous] == 0).all()
    xs = np.nonzero(interspinous.any(axis=(1, 2)))[0] - x0
    # as wide as drawn and centred on the mid-line (±1 voxel of rounding at each edge)
    assert abs((xs.max() - xs.min() + 1) - 2 * p.interspinous_half_width_mm) <= 1.5
    assert abs(xs.max() + xs.min()) <= 1
    # on the mid-line, it sits behind the canal and fills most of the gaps between the
    # spinous processes: along each image row (AP) behind the laminae, voxels between two
    # posterior-element voxels are mostly ligament or fat
    mid_pe, mid_is = seg[x0] == 2, interspinous[x0]
    canal_y = np.nonzero(np.isin(seg[x0], (5, 6)).any(axis=1))[0]
    rows = [y for y in range(seg.shape[1]) if y < canal_y.min() - 8 and mid_pe[y].sum() > 10]
    between = []
    for y in rows:
        zs = np.nonzero(mid_pe[y])[0]
        gap = ~mid_pe[y, zs.min():zs.max()]
        between.append(mid_is[y, zs.min():zs.max()][gap].mean() if gap.any() else np.nan)
    assert np.nanmedian(between) > 0.6
    # multifidus: new muscle voxels, all lateral to the mid-line ligament, behind the canal
    mf = (seg == 10) & (seg0 != 10)
    assert mf.sum() > 5000
    mx = np.abs(np.nonzero(mf)[0] - x0)
    assert mx.min() >= 2 and mx.max() <= 3.0 + p.multifidus_width_mm + 1.0
    canal_back = np.full(seg.shape[2], -1)  # posterior-most canal row per axial plane
    for z in range(seg.shape[2]):
        ys = np.nonzero(np.isin(seg[x0, :, z], (5, 6)))[0]
        canal_back[z] = ys.min() if ys.size else -1
    _, my, mz = np.nonzero(mf)
    has = canal_back[mz] >= 0
    assert has.mean() > 0.8 and (my[has] < canal_back[mz[has]]).all()
    assert (seg[seg0 == 10] == 10).all()  # multifidus only adds muscle
