"""Simulated cohorts with known truth, for testing and benchmarking the statistics.

Generative model (MEASURES.md §9.3 design note [D]): every subject *i* has a latent
degeneration score ``d[i, k]`` at the five lumbar positions k = 0..4 (L1-L2 … L5-S1 for discs,
L1 … L5 for vertebrae), standard normal with AR(1) correlation ``phi**|k - k'|`` across
positions. A measure *m* at position *k* is

    y = mean[m, k] + age_slope[m, k] * (age - 55) + sex_effect[m] * male
        + sd[m, k] * (loading[m] * d[i, k] + sqrt(1 - loading[m]**2) * e[i, k, side])

with ``e`` independent standard normal noise (per measure, level and side) and
``age ~ N(55, 12²)``, ``sex`` Bernoulli(½). Because age is Gaussian and ``y`` is linear,
``y | sex`` is exactly Gaussian, so truth values (Pearson/Spearman correlations between
levels, prevalences below a threshold, regression coefficients) are known in closed form
(Spearman of a bivariate normal: ``6/π · asin(r/2)``, Pearson 1896 / Kendall).

Level means, SDs, age slopes and sex effects are tuned to literature values where
MEASURES.md has them (ids in ``MEASURE_SPECS[...]["source"]``); other numbers are design
choices [D]. This is a *simulation*, not a normative reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats as _st

__all__ = [
    "DISC_LEVELS",
    "VERTEBRA_LEVELS",
    "MEASURE_SPECS",
    "CohortTruth",
    "simulate_cohort",
    "AGE_MEAN",
    "AGE_SD",
]

DISC_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
VERTEBRA_LEVELS = ("L1", "L2", "L3", "L4", "L5")
AGE_MEAN = 55.0
AGE_SD = 12.0


def _spec(kind, unit, mean, sd, age=0.0, sex=0.0, loading=0.0, sided=False, source="[D]"):
    mean = np.broadcast_to(np.asarray(mean, float), (5,)).copy()
    sd = np.broadcast_to(np.asarray(sd, float), (5,)).copy()
    age = np.broadcast_to(np.asarray(age, float), (5,)).copy()
    return {
        "kind": kind,
        "unit": unit,
        "mean": mean,
        "sd": sd,
        "age_slope": age,
        "sex_effect": float(sex),
        "loading": float(loading),
        "sided": sided,
        "source": source,
    }


# E4 (Nakashima 2021, R32): dural-sac area in the 70s relative to the 20s per level; the slope
# per year is (ratio - 1) / 50 of the level mean [D derived]. L5-S1: no age effect.
_DSCSA_MEAN = np.array([165.0, 155.0, 145.0, 135.0, 150.0])
_DSCSA_AGE = _DSCSA_MEAN * (np.array([0.860, 0.846, 0.803, 0.799, 1.0]) - 1.0) / 50.0

#: Per-measure simulation parameters (5 values = the five positions cranial → caudal).
MEASURE_SPECS: dict[str, dict] = {
    # Disc heights: overall 8.8 ± 1.4 mm, Hurxthal 9.1 ± 1.3 mm, men +0.5 mm (Spahn 2024, R35).
    "disc_height_anterior_mm": _spec(
        "disc", "mm", [9.5, 10.5, 11.5, 12.0, 11.5], 1.5, -0.03, 0.5, -0.7, source="R35"
    ),
    "disc_height_middle_mm": _spec(
        "disc", "mm", [8.5, 9.0, 9.5, 9.5, 9.0], 1.3, -0.03, 0.5, -0.7, source="R35"
    ),
    "disc_height_posterior_mm": _spec(
        "disc", "mm", [5.5, 6.0, 6.5, 6.5, 5.5], 1.2, -0.02, 0.4, -0.6, source="R35"
    ),
    "disc_height_index": _spec(
        "disc",
        "1",
        [0.45, 0.48, 0.50, 0.50, 0.46],
        0.06,
        -0.001,
        0.0,
        -0.6,
        source="[U] per-level DHI norms are a gap (§1.2)",
    ),
    "disc_depth_mm": _spec("disc", "mm", [36, 37, 38, 38, 37], 3.0, 0.03, 2.5, 0.2),
    "disc_wedge_angle_deg": _spec("disc", "deg", [3, 5, 7, 10, 14], 3.5, -0.02, 0.0, -0.3),
    "disc_volume_mm3": _spec(
        "disc", "mm3", [11000, 12500, 14000, 15000, 13500], 2500, -20.0, 1500, -0.6
    ),
    # Vertebral bodies: height 20-30 mm, AP depth 30-35 mm (spinebase [S], R69); posterior
    # height falls slightly with age (Gallagher 1988, R69).
    "vertebral_height_anterior_mm": _spec(
        "vertebra", "mm", [25, 26, 26.5, 26.5, 26], 1.8, -0.01, 1.2, -0.1, source="R69"
    ),
    "vertebral_height_middle_mm": _spec(
        "vertebra", "mm", [23.5, 24, 24.5, 24.5, 24], 1.8, -0.02, 1.2, -0.1, source="R69"
    ),
    "vertebral_height_posterior_mm": _spec(
        "vertebra", "mm", [26, 26.5, 27, 26.5, 25], 1.8, -0.02, 1.2, -0.1, source="R69"
    ),
    "vertebral_depth_mm": _spec(
        "vertebra", "mm", [30, 31, 32, 33, 33], 2.2, 0.02, 3.0, 0.1, source="R69"
    ),
    "vertebral_wedge_index": _spec(
        "vertebra", "1", [0.95, 0.97, 0.98, 1.0, 1.05], 0.05, -0.0008, 0.0, -0.2
    ),
    "vertebral_volume_mm3": _spec(
        "vertebra", "mm3", [28000, 30000, 32000, 33000, 32000], 4000, 0.0, 5000, 0.0
    ),
    # Canal: DSCSA controls L4-5 151.7 ± 53.6 mm² (R34), age decline by level (R32, E4),
    # men slightly smaller (Iwahashi 2016, R21: 114.4 vs 118.6 mm²).
    "dural_sac_area_mm2": _spec(
        "disc", "mm2", _DSCSA_MEAN, 40.0, _DSCSA_AGE, -4.0, -0.6, source="R34, R32, R21"
    ),
    "dural_sac_ap_mm": _spec("disc", "mm", [14, 13.5, 13, 12.5, 13], 2.5, -0.03, 0.0, -0.5),
    # Bony canal AP at L4-L5: mean 14.2, SD 2.87 mm gives P(<12) = 22.5 % and P(<10) = 7.3 %,
    # the Framingham relative/absolute stenosis prevalences (Kalichman 2009, R22, E5).
    "canal_ap_mm": _spec(
        "disc", "mm", [15.5, 15.0, 14.5, 14.2, 14.5], 2.87, 0.0, 0.0, -0.4, source="R22"
    ),
    # Foramen: critical height ≤ 15 mm (R12); FW decreases L1→S1, FH maximal L2-L4 (R70).
    "foraminal_height_mm": _spec(
        "disc", "mm", [20, 21, 21, 19.5, 18], 2.2, -0.03, 0.8, -0.5, sided=True, source="R12, R70"
    ),
    "foraminal_width_mm": _spec(
        "disc", "mm", [9, 8.5, 8, 7.5, 7], 1.5, -0.01, 0.3, -0.4, sided=True, source="R70"
    ),
    "foraminal_area_mm2": _spec(
        "disc", "mm2", [110, 120, 115, 100, 85], 22, -0.3, 8.0, -0.5, sided=True, source="R70"
    ),
    # Segmental lordosis by level (Sci Rep 2022, R51, E8).
    "segmental_angle_deg": _spec(
        "disc",
        "deg",
        [1.2, 5.9, 9.1, 12.7, 21.6],
        [3.6, 4.1, 4.2, 5.1, 7.7],
        0.0,
        0.0,
        -0.2,
        source="R51",
    ),
    "slip_percent": _spec(
        "disc", "%", [0.0, 0.0, 0.5, 1.5, 1.0], [2, 2, 2.5, 3.5, 3], 0.04, -0.5, 0.3
    ),
    # LF thickness by level (Khasawneh 2023, R44); r(age) = 0.55 (Yoshiiwa 2016, R46).
    "ligamentum_flavum_thickness_mm": _spec(
        "disc",
        "mm",
        [3.0, 3.19, 3.38, 3.71, 3.64],
        0.6,
        0.02,
        0.0,
        0.5,
        sided=True,
        source="R44, R46",
    ),
    "paraspinal_muscle_area_mm2": _spec(
        "disc", "mm2", [1500, 2000, 2500, 2800, 2600], 400, -10.0, 600, 0.0, sided=True
    ),
    "epidural_fat_area_mm2": _spec("disc", "mm2", [40, 45, 50, 60, 90], 20, 0.2, 5.0, 0.0),
}

#: Single-level measures: (level, unit, mean, sd, age slope, sex effect, source).
SINGLE_LEVEL_SPECS = {
    # Recumbent LL 36.8 ± 13.2° (627 volunteers, R52).
    "lumbar_lordosis_deg": ("L1-S1", "deg", 36.8, 13.2, -0.05, -3.0, "R52"),
    "sacral_slope_deg": ("S1", "deg", 36.0, 8.0, 0.0, 0.0, "R53 (standing; supine [D])"),
}


def _levels(kind: str) -> tuple[str, ...]:
    return DISC_LEVELS if kind == "disc" else VERTEBRA_LEVELS


@dataclass
class CohortTruth:
    """Known truth of a simulated cohort.

    Attributes
    ----------
    phi : float
        AR(1) correlation of the latent degeneration between adjacent positions.
    specs : dict
        The per-measure parameters used (a copy of :data:`MEASURE_SPECS`, possibly edited).
    measures : list of str
        Measures present in the table.
    """

    phi: float
    specs: dict
    measures: list[str]
    single: dict = field(default_factory=dict)

    def levels(self, measure: str) -> tuple[str, ...]:
        """Levels at which ``measure`` is simulated (cranial → caudal)."""
        if measure in self.single:
            return (self.single[measure][0],)
        return _levels(self.specs[measure]["kind"])

    def covariance(self, measure: str, sex: str | None = None) -> np.ndarray:
        """5×5 covariance of the measure across levels (same side), given sex if named."""
        s = self.specs[measure]
        k = np.arange(5)
        latent = self.phi ** np.abs(k[:, None] - k[None, :])
        load = s["loading"]
        noise = np.eye(5) * (1.0 - load**2)
        cov = np.outer(s["sd"], s["sd"]) * (load**2 * latent + noise)
        cov = cov + AGE_SD**2 * np.outer(s["age_slope"], s["age_slope"])
        if sex is None:
            cov = cov + 0.25 * s["sex_effect"] ** 2
        return cov

    def pearson(self, measure: str) -> np.ndarray:
        """True Pearson correlation matrix across levels (marginal over age and sex)."""
        c = self.covariance(measure)
        d = np.sqrt(np.diag(c))
        return c / np.outer(d, d)

    @cached_property
    def _spearman_cache(self) -> dict:
        return {}

    def spearman(self, measure: str) -> np.ndarray:
        """True Spearman correlation matrix across levels.

        Exact (``6/π asin(r/2)``) when the measure has no sex effect (then the levels are
        jointly Gaussian); otherwise the population value of the two-component Gaussian
        mixture by a seeded Monte Carlo of 400 000 draws (error < 0.002).
        """
        if measure in self._spearman_cache:
            return self._spearman_cache[measure]
        s = self.specs[measure]
        if s["sex_effect"] == 0.0:
            out = 6.0 / np.pi * np.arcsin(self.pearson(measure) / 2.0)
        else:
            rng = np.random.default_rng(12345)
            n = 400_000
            cov = self.covariance(measure, sex="given")
            y = rng.multivariate_normal(np.zeros(5), cov, size=n, method="cholesky")
            y += s["sex_effect"] * rng.integers(0, 2, size=n)[:, None]
            out = _st.spearmanr(y).statistic
        np.fill_diagonal(out, 1.0)
        self._spearman_cache[measure] = out
        return out

    def prevalence(self, measure: str, threshold: float, below: bool = True) -> np.ndarray:
        """True prevalence of ``value < threshold`` (or ``>`` if not ``below``) per level."""
        s = self.specs[measure]
        cov = self.covariance(measure, sex="given")
        sd = np.sqrt(np.diag(cov))
        p = np.zeros(5)
        for male in (0, 1):
            mu = s["mean"] + s["sex_effect"] * male
            p += 0.5 * _st.norm.cdf((threshold - mu) / sd)
        return p if below else 1.0 - p

    def coefficients(self, measure: str) -> dict[str, float]:
        """True coefficients of ``measure ~ C(level) + age + sex`` (treatment coding).

        Exact for measures whose age slope is common to all levels (then the model is
        correctly specified); with level-varying slopes ``age`` is their mean.
        """
        s = self.specs[measure]
        slope = float(np.mean(s["age_slope"]))
        levels = self.levels(measure)
        out = {"Intercept": float(s["mean"][0] - slope * AGE_MEAN)}
        for j, lev in enumerate(levels[1:], start=1):
            out[f"level[{lev}]"] = float(s["mean"][j] - s["mean"][0])
        out["age"] = slope
        out["sex[M]"] = float(s["sex_effect"])
        return out


def simulate_cohort(
    n_subjects: int,
    seed: int = 0,
    *,
    measures: list[str] | tuple[str, ...] | None = None,
    phi: float = 0.6,
    missing_rate: float = 0.0,
    sides: tuple[str, ...] = ("L", "R"),
    overrides: dict[str, dict] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, CohortTruth]:
    """Simulate a cohort's long measurement table (contract §5) with known truth.

    Parameters
    ----------
    n_subjects : int
        Number of subjects (one scan each).
    seed : int
        Seed of the random generator; same seed, same cohort.
    measures : sequence of str, optional
        Measure names (keys of :data:`MEASURE_SPECS` or :data:`SINGLE_LEVEL_SPECS`); default
        all of them.
    phi : float
        AR(1) correlation of latent degeneration between adjacent levels (0 ≤ phi < 1).
    missing_rate : float
        Fraction of values set to NaN completely at random (qc stays ``"ok"``).
    sides : tuple of str
        Sides simulated for sided (foraminal, LF, muscle) measures.
    overrides : dict, optional
        ``{measure: {param: value}}`` to change ``mean``, ``sd``, ``age_slope``,
        ``sex_effect`` or ``loading`` of a measure (e.g. ``{"x": {"sex_effect": 0}}``).

    Returns
    -------
    table : pandas.DataFrame
        Columns subject, scan, level, side, measure, value, unit, qc.
    covariates : pandas.DataFrame
        One row per subject: subject, age (years), sex (``"F"``/``"M"``), bmi (kg/m², no
        simulated effect).
    truth : CohortTruth
        Parameters and closed-form truth (correlations, prevalences, coefficients).
    """
    if not 0.0 <= phi < 1.0:
        raise ValueError("phi must lie in [0, 1)")
    names = list(measures) if measures is not None else [*MEASURE_SPECS, *SINGLE_LEVEL_SPECS]
    specs = {k: {**v} for k, v in MEASURE_SPECS.items()}
    for m, ov in (overrides or {}).items():
        for key, val in ov.items():
            if key in ("mean", "sd", "age_slope"):
                val = np.broadcast_to(np.asarray(val, float), (5,)).copy()
            specs[m][key] = val
    unknown = [m for m in names if m not in specs and m not in SINGLE_LEVEL_SPECS]
    if unknown:
        raise ValueError(f"unknown simulated measure(s): {unknown}")

    rng = np.random.default_rng(seed)
    n = int(n_subjects)
    subjects = np.array([f"sub-{i:06d}" for i in range(n)], dtype=object)
    scans = np.array([f"sub-{i:06d}_ses-01" for i in range(n)], dtype=object)
    age = rng.normal(AGE_MEAN, AGE_SD, n)
    male = rng.integers(0, 2, n)
    bmi = rng.normal(27.0, 4.0, n)
    # AR(1) latent degeneration across the five positions.
    d = np.empty((n, 5))
    d[:, 0] = rng.standard_normal(n)
    for k in range(1, 5):
        d[:, k] = phi * d[:, k - 1] + np.sqrt(1 - phi**2) * rng.standard_normal(n)

    frames = []
    for m in names:
        if m in SINGLE_LEVEL_SPECS:
            level, unit, mean, sd, slope, sex_eff, _ = SINGLE_LEVEL_SPECS[m]
            vals = mean + slope * (age - AGE_MEAN) + sex_eff * male + sd * rng.standard_normal(n)
            frames.append(_frame(subjects, scans, np.full(n, level, object), "", m, vals, unit))
            continue
        s = specs[m]
        levels = np.array(_levels(s["kind"]), dtype=object)
        for side in sides if s["sided"] else ("",):
            e = rng.standard_normal((n, 5))
            load = s["loading"]
            vals = (
                s["mean"][None, :]
                + s["age_slope"][None, :] * (age - AGE_MEAN)[:, None]
                + s["sex_effect"] * male[:, None]
                + s["sd"][None, :] * (load * d + np.sqrt(1.0 - load**2) * e)
            )
            frames.append(
                _frame(
                    np.repeat(subjects, 5),
                    np.repeat(scans, 5),
                    np.tile(levels, n),
                    side,
                    m,
                    vals.ravel(),
                    s["unit"],
                )
            )
    table = pd.concat(frames, ignore_index=True)
    if missing_rate > 0:
        drop = rng.random(len(table)) < missing_rate
        table.loc[drop, "value"] = np.nan
    covariates = pd.DataFrame(
        {
            "subject": subjects,
            "age": age,
            "sex": np.where(male == 1, "M", "F"),
            "bmi": np.round(bmi, 1),
        }
    )
    single = {m: SINGLE_LEVEL_SPECS[m] for m in names if m in SINGLE_LEVEL_SPECS}
    truth = CohortTruth(phi=phi, specs=specs, measures=names, single=single)
    return table, covariates, truth


def _frame(subjects, scans, levels, side, measure, values, unit) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame(
        {
            "subject": subjects,
            "scan": scans,
            "level": levels,
            "side": np.full(n, side, dtype=object),
            "measure": np.full(n, measure, dtype=object),
            "value": np.asarray(values, dtype=float),
            "unit": np.full(n, unit, dtype=object),
            "qc": np.full(n, "ok", dtype=object),
        }
    )
