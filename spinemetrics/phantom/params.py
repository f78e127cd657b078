"""Parameters of the anatomical phantom and their random draw within physiological ranges.

Every number that shapes the phantom lives in :class:`PhantomParams`; the geometry in
:mod:`spinemetrics.phantom.model` is a deterministic function of it, and the truth table is
computed from it analytically. Ranges and their sources are listed in ``docs/phantom.md``
(MEASURES.md tags in brackets there).

Level keys: vertebrae by name (``"L4"``), discs by ``"UPPER-LOWER"`` (``"L4-L5"``,
``"L5-S1"``), per-side values by ``"L4-L5:L"`` / ``"L4-L5:R"`` (patient left / right).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spinemetrics.errors import InputError

__all__ = ["PhantomParams", "random_params", "spine_levels"]

_TOPS = ("T11", "T12", "L1")


def spine_levels(lumbar_count: int = 5, top: str = "T12") -> tuple[list[str], list[str]]:
    """Mobile vertebrae (cranio-caudal, without S1) and disc names for a phantom.

    Parameters
    ----------
    lumbar_count : int
        4, 5 or 6 lumbar vertebrae (6 → ``L6`` with level id 25).
    top : str
        Most cranial vertebra: ``"T11"``, ``"T12"`` or ``"L1"``.

    Returns
    -------
    vertebrae, discs : list of str
        E.g. ``["T12", "L1", …, "L5"]`` and ``["T12-L1", …, "L5-S1"]``.
    """
    if lumbar_count not in (4, 5, 6):
        raise InputError(
            f"lumbar_count must be 4, 5 or 6, got {lumbar_count}; use 5 for a typical spine"
        )
    if top not in _TOPS:
        raise InputError(f"top must be one of {_TOPS}, got {top!r}; use 'T12' for a lumbar scan")
    thoracic = {"T11": ["T11", "T12"], "T12": ["T12"], "L1": []}[top]
    verts = thoracic + [f"L{i}" for i in range(1, lumbar_count + 1)]
    below = verts[1:] + ["S1"]
    discs = [f"{a}-{b}" for a, b in zip(verts, below, strict=False)]
    return verts, discs


@dataclass
class PhantomParams:
    """All parameters of one phantom (lengths mm, angles deg, areas mm²).

    Per-vertebra dictionaries are keyed by vertebra name, per-disc ones by disc name and
    per-side ones by ``"DISC:L"`` / ``"DISC:R"``. Heights are the truth heights at 10 % /
    90 % of depth (anterior / posterior); wedge angles follow from them exactly (see
    :mod:`spinemetrics.phantom.model`).
    """

    seed: int
    subject: str
    vertebrae: tuple[str, ...]
    discs: tuple[str, ...]
    # vertebral bodies
    body_height_anterior_mm: dict[str, float]
    body_height_posterior_mm: dict[str, float]
    body_depth_mm: dict[str, float]
    body_width_mm: dict[str, float]
    # discs
    disc_height_anterior_mm: dict[str, float]
    disc_height_posterior_mm: dict[str, float]
    disc_depth_mm: dict[str, float]
    disc_width_mm: dict[str, float]
    disc_degenerated: dict[str, bool]
    slip_percent: dict[str, float]
    # sacrum and alignment
    sacral_slope_deg: float
    s1_height_mm: float
    s1_depth_mm: float
    s1_width_mm: float
    sacral_kyphosis_deg: float
    # canal
    canal_ap_mm: dict[str, float]
    interpedicular_mm: dict[str, float]
    pedicle_width_mm: dict[str, float]
    pedicle_height_mm: dict[str, float]
    lamina_thickness_mm: float
    sac_area_mm2: dict[str, float]  # un-stenosed area at each vertebra and disc (and "S1")
    sac_lr_ap_ratio: float
    stenosis: dict[str, float]  # fractional area reduction at a disc (0 = none)
    anterior_epidural_mm: float
    lf_thickness_mm: dict[str, float]
    cord_ap_mm: float
    conus_fraction: float  # conus tip between T12-L1 (0) and L1-L2 (1) disc mid-planes
    # soft tissue
    psoas_scale: float
    erector_scale: float
    subcutaneous_fat_mm: float
    body_half_width_mm: float
    posterior_depth_mm: float  # skin behind the canal centreline
    anterior_depth_mm: float  # skin in front of the canal centreline
    aorta_radius_mm: float
    bifurcation_vertebra: str
    #: left/right asymmetry: muscle size factors ("psoas:L", "erector:R", "ql:L", …) and
    #: SI shifts of the pedicle centres ("L4:L", mm, cranial +); missing keys = 1.0 / 0.0
    side_scale: dict[str, float] = field(default_factory=dict)
    pedicle_shift_mm: dict[str, float] = field(default_factory=dict)
    #: target AP gap between the lateral disc wall and the superior articular process of the
    #: lower vertebra ("L4-L5:L"); the foraminal width truth is sampled, not this number
    facet_gap_mm: dict[str, float] = field(default_factory=dict)
    #: rounded rim of the vertebral endplates: drop (mm) at the rim, starting at 88 % of
    #: the radius (0 = sharp edges); the space goes to the adjacent disc
    endplate_rim_mm: float = 0.0
    #: Modic band thickness (mm) in both bodies next to a disc (tissue only; 0 = none)
    modic_mm: dict[str, float] = field(default_factory=dict)
    #: haemangioma per vertebra: (x, a, u) position as fractions of the semi-axes / 2 and a
    #: radius as a fraction (≤ 0.3) of the smallest body half-dimension (tissue only)
    hemangioma: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    #: fat sheath (mm) around each exiting root in its foramen ("L4-L5:L"); missing keys use
    #: the model's defaults (2.0 mm, 0.8 mm at degenerate discs); 0 = obliterated foramen
    perineural_fat_mm: dict[str, float] = field(default_factory=dict)
    #: anterior / posterior longitudinal ligament thickness (mm; 0 = not drawn): dark bands
    #: on the anterior surface of bodies and discs and on their posterior (canal) surface
    all_thickness_mm: float = 0.0
    pll_thickness_mm: float = 0.0
    pll_width_mm: float = 0.0
    #: thickness (mm) of the dark cortical shell of vertebral bodies and the sacrum's
    #: segments (tissue only; the label geometry does not depend on it)
    cortex_mm: float = 1.2
    #: half-width (mm, left-right) of the interspinous ligament between adjacent spinous
    #: processes (label 0; 0 = not drawn, generic soft tissue there instead); per disc
    #: ``interspinous_fatty`` marks a fatty one (fat tissue instead of ligament)
    interspinous_half_width_mm: float = 0.0
    interspinous_fatty: dict[str, bool] = field(default_factory=dict)
    #: medial-lateral width (mm) of multifidus in the laminar gutter, from the spinous
    #: process out (label 10, joins the erector spinae; 0 = not drawn)
    multifidus_width_mm: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def lumbar_count(self) -> int:
        return sum(1 for v in self.vertebrae if v.startswith("L"))


def _draw(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    return float(np.clip(rng.normal(mean, sd), lo, hi))


def random_params(seed: int = 0, lumbar_count: int = 5, top: str = "T12") -> PhantomParams:
    """Draw a phantom's parameters within physiological ranges (deterministic per seed).

    Parameters
    ----------
    seed : int
        Seed of :func:`numpy.random.default_rng`; equal seeds give equal parameters.
    lumbar_count : int
        4, 5 or 6 lumbar vertebrae.
    top : str
        Most cranial vertebra (``"T11"``, ``"T12"``, ``"L1"``).

    Returns
    -------
    PhantomParams

    Notes
    -----
    Ranges (MEASURES.md): body heights 21–30 mm, depths 27–39 mm, widths 37–52 mm (§2.3);
    disc mid heights 6–14 mm increasing caudally (§1.2, E9), degenerate discs 3.5–7 mm;
    disc wedges follow the segmental lordosis pattern of E8 scaled to a recumbent lumbar
    lordosis of roughly 25–70° (§5, R52); supine sacral slope = lordosis − (6–20°), clipped
    to 18–50° (§5, R53/R54: LL rises with SS); slip 4–15 %
    (sometimes, at L3–S1; rarely retrolisthesis); dural sac area 60–220 mm² with focal
    stenosis at L2–L5 discs sometimes (§3.3); ligamentum flavum 2–6 mm (§7, R44–R46).
    """
    rng = np.random.default_rng(seed)
    verts, discs = spine_levels(lumbar_count, top)
    n = len(verts)
    # position from the sacrum: 0 = vertebra just above S1
    pos = {v: n - 1 - i for i, v in enumerate(verts)}

    body_ha, body_hp, depth, width = {}, {}, {}, {}
    body_wedge = {"T11": -4.0, "T12": -3.0, "L1": -2.0, "L2": -1.0, "L3": 0.0, "L4": 1.0}
    for v in verts:
        k = pos[v]  # 0 = lowest lumbar
        hm = _draw(rng, 27.0 - 0.7 * k, 1.0, 21.5, 30.0)
        d = _draw(rng, 36.0 - 1.4 * k, 1.3, 27.0, 39.0)
        w = _draw(rng, 49.0 - 2.0 * k, 1.8, 37.0, 52.0)
        wedge = body_wedge.get(v, 3.0) if k > 0 else 3.5
        wedge = wedge + rng.normal(0.0, 1.2)
        dh = 0.8 * d * np.tan(np.radians(wedge) / 2.0)
        body_ha[v], body_hp[v] = hm + dh, hm - dh
        depth[v], width[v] = d, w

    lordosis_scale = float(rng.uniform(0.8, 1.7))
    base_wedge = [11.0, 9.0, 7.0, 5.0, 3.0, 1.0, 0.0, 0.0]  # from L5-S1 upward (E8, recumbent)
    base_height = [10.5, 11.0, 10.0, 9.0, 8.0, 6.8, 6.2, 6.0]
    d_ha, d_hp, d_depth, d_width, degen, slip = {}, {}, {}, {}, {}, {}
    for j, dn in enumerate(discs):
        up, lo = dn.split("-")
        k = n - 1 - j  # 0 = lowest disc
        dd = (depth[up] + (depth[lo] if lo in depth else depth[up])) / 2.0 + 0.5
        dw = (width[up] + (width[lo] if lo in width else width[up])) / 2.0 + 0.5
        hm = _draw(rng, base_height[min(k, 7)], 1.1, 6.0, 14.0)
        wedge = max(0.0, base_wedge[min(k, 7)] * lordosis_scale + rng.normal(0.0, 1.5))
        p_degen = 0.25 if k <= 1 else 0.1
        is_degen = bool(rng.random() < p_degen)
        if is_degen:
            hm = float(rng.uniform(3.8, 6.5))
            wedge *= 0.6
        dh = 0.8 * dd * np.tan(np.radians(wedge) / 2.0)
        dh = min(dh, hm - 2.5)  # keep the posterior height ≥ 2.5 mm
        d_ha[dn], d_hp[dn] = hm + dh, hm - dh
        d_depth[dn], d_width[dn], degen[dn] = dd, dw, is_degen
        slip[dn] = 0.0
    if rng.random() < 0.3:
        candidates = [d for d in discs if d.split("-")[0] in ("L3", "L4", "L5", "L6")]
        dn = candidates[int(rng.integers(len(candidates)))]
        slip[dn] = (
            float(rng.uniform(4.0, 15.0)) if rng.random() < 0.8 else float(-rng.uniform(3, 8))
        )

    # supine sacral slope follows the lordosis (LL ≈ SS + 10–20°; MEASURES.md §5, R53/R54)
    def _w(ha: float, hp: float, d: float) -> float:
        return float(np.degrees(2.0 * np.arctan((ha - hp) / (1.6 * d))))

    lordosis = sum(_w(d_ha[d], d_hp[d], d_depth[d]) for d in discs if not d.startswith("T"))
    lordosis += sum(_w(body_ha[v], body_hp[v], depth[v]) for v in verts if v.startswith("L"))
    sacral_slope = float(np.clip(lordosis - rng.uniform(6.0, 20.0), 18.0, 50.0))

    canal, ipd, pw, ph, sac, lf, sten = {}, {}, {}, {}, {}, {}, {}
    base_area = float(rng.uniform(115.0, 200.0))
    ratio = float(rng.uniform(1.15, 1.45))
    ant_gap = float(rng.uniform(0.8, 1.8))
    for v in verts:
        k = pos[v]
        a = base_area * (0.92 if k == 0 else 1.0) * rng.uniform(0.93, 1.07)
        sac[v] = a
        rap = np.sqrt(a / (np.pi * ratio))
        canal[v] = ant_gap + 2.0 * rap + float(rng.uniform(2.0, 5.0))
        ipd[v] = _draw(rng, 27.0 - 0.9 * k, 1.5, 19.0, 32.0)
        pw[v] = _draw(rng, 14.0 - 1.2 * k, 1.0, 7.0, 17.0)
        ph[v] = _draw(rng, 15.0, 1.0, 12.0, 18.0)
    sac["S1"] = base_area * 0.72
    for dn in discs:
        up = dn.split("-")[0]
        lo = dn.split("-")[1]
        sac[dn] = 0.5 * (sac[up] + sac.get(lo, sac[up]))
        sten[dn] = 0.0
        k = n - 1 - discs.index(dn)
        for side in ("L", "R"):
            t = _draw(rng, 3.4 if k <= 3 else 2.5, 0.4, 2.0, 6.0)
            if degen[dn]:
                t = min(6.0, t + float(rng.uniform(0.5, 1.8)))
            lf[f"{dn}:{side}"] = t
    if rng.random() < 0.35:
        candidates = [d for d in discs if d.split("-")[0] in ("L2", "L3", "L4")]
        for dn in rng.choice(
            candidates, size=min(len(candidates), int(rng.integers(1, 3))), replace=False
        ):
            sten[str(dn)] = float(rng.uniform(0.3, 0.6))

    # mild left/right asymmetry (drawn last so that the parameters above do not depend on it)
    side_scale = {
        f"{m}:{s}": float(rng.uniform(0.9, 1.1))
        for m in ("psoas", "erector", "ql")
        for s in ("L", "R")
    }
    ped_shift = {f"{v}:{s}": float(rng.uniform(-1.5, 1.5)) for v in verts for s in ("L", "R")}
    rim = float(rng.uniform(1.0, 2.5))
    modic = {d: float(rng.uniform(3.0, 8.0)) for d in discs if degen[d] and rng.random() < 0.5}
    hemangioma = {
        v: (
            float(rng.uniform(-1, 1)),
            float(rng.uniform(-1, 1)),
            float(rng.uniform(-1, 1)),
            float(rng.uniform(0.12, 0.3)),
        )
        for v in verts
        if rng.random() < 0.12
    }
    facet_gap = {
        f"{d}:{s}": float(rng.uniform(6.5, 10.5)) - (1.5 if degen[d] else 0.0)
        for d in discs
        for s in ("L", "R")
    }

    params = PhantomParams(
        seed=int(seed),
        subject=f"phantom{seed:04d}",
        vertebrae=tuple(verts),
        discs=tuple(discs),
        body_height_anterior_mm=body_ha,
        body_height_posterior_mm=body_hp,
        body_depth_mm=depth,
        body_width_mm=width,
        disc_height_anterior_mm=d_ha,
        disc_height_posterior_mm=d_hp,
        disc_depth_mm=d_depth,
        disc_width_mm=d_width,
        disc_degenerated=degen,
        slip_percent=slip,
        sacral_slope_deg=sacral_slope,
        s1_height_mm=_draw(rng, 28.0, 1.5, 24.0, 32.0),
        s1_depth_mm=depth[verts[-1]] * float(rng.uniform(0.92, 1.0)),
        s1_width_mm=width[verts[-1]] * float(rng.uniform(0.95, 1.05)),
        sacral_kyphosis_deg=float(rng.uniform(45.0, 75.0)),
        canal_ap_mm=canal,
        interpedicular_mm=ipd,
        pedicle_width_mm=pw,
        pedicle_height_mm=ph,
        lamina_thickness_mm=float(rng.uniform(5.0, 7.5)),
        sac_area_mm2=sac,
        sac_lr_ap_ratio=ratio,
        stenosis=sten,
        anterior_epidural_mm=ant_gap,
        lf_thickness_mm=lf,
        cord_ap_mm=float(rng.uniform(6.0, 8.0)),
        conus_fraction=float(rng.uniform(0.1, 0.9)),
        psoas_scale=float(rng.uniform(0.75, 1.25)),
        erector_scale=float(rng.uniform(0.8, 1.2)),
        subcutaneous_fat_mm=float(rng.uniform(8.0, 35.0)),
        body_half_width_mm=float(rng.uniform(135.0, 180.0)),
        posterior_depth_mm=float(rng.uniform(70.0, 95.0)),
        anterior_depth_mm=float(rng.uniform(150.0, 220.0)),
        aorta_radius_mm=float(rng.uniform(8.0, 11.0)),
        bifurcation_vertebra="L4" if "L4" in verts else verts[-1],
        side_scale=side_scale,
        pedicle_shift_mm=ped_shift,
        facet_gap_mm=facet_gap,
        endplate_rim_mm=rim,
        modic_mm=modic,
        hemangioma=hemangioma,
    )
    # Drawn after everything else, so that every parameter above is what it was before
    # these were added (cached phantoms and published test sets keep their geometry).
    # Foramina: fat around most roots, obliterated (0 mm) around some, more often at
    # degenerate discs (Lee 2010 grades 2-3, MEASURES.md R10).
    params.perineural_fat_mm = {
        f"{d}:{s}": (0.0 if rng.random() < (0.4 if degen[d] else 0.1)
                     else float(rng.uniform(0.3, 1.2) if degen[d] else rng.uniform(1.0, 3.0)))
        for d in discs
        for s in ("L", "R")
    }
    # Longitudinal ligaments: ALL 1-2.5 mm, PLL 0.6-1.5 mm thick and 8-16 mm wide; both
    # dark on every sequence, like the cortex they lie on.
    params.all_thickness_mm = float(rng.uniform(1.0, 2.5))
    params.pll_thickness_mm = float(rng.uniform(0.6, 1.5))
    params.pll_width_mm = float(rng.uniform(8.0, 16.0))
    # Cortical shell of the bodies: the bone itself is thin (≈ 0.2-0.5 mm; Silva 1994,
    # Ritzel 1997), the dark line MRI shows is wider (chemical shift, partial volume), so
    # its width varies rather than being 1.2 mm in every phantom. (Tested in session 9 as
    # a cause of the one-voxel-too-large bodies on the real cervical scan: a fine-tune on
    # these phantoms did not shrink them; docs/model.md, "v1.9 candidate".)
    params.cortex_mm = float(rng.uniform(0.5, 1.2))
    # Posterior mid-line: real scans show interspinous ligament (dark on every sequence,
    # often fatty with age) between the spinous processes, and multifidus filling the
    # laminar gutter on each side; the phantom had generic soft tissue there, as bright
    # as the ligamentum flavum on STIR (docs/model.md, session 10).
    params.interspinous_half_width_mm = float(rng.uniform(2.0, 4.0))
    params.interspinous_fatty = {d: bool(rng.random() < (0.5 if degen[d] else 0.2))
                                 for d in discs}
    params.multifidus_width_mm = float(rng.uniform(12.0, 22.0))
    return params
