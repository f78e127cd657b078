"""Worked example (b): normative disc height by age, sex and level.

Research question: what is the expected (50th centile) and the normal range (2.5th–97.5th
centile) of the mid-disc height at each lumbar level, by age and sex, and how far from it is
a given patient (z-score)?

Data: a *simulated* reference cohort (``spinemetrics.stats.simulate_cohort``; disc-height
means and the male offset follow Spahn 2024 [R35 in MEASURES.md], the age decline is a design
choice). Because the generating model is known, the fitted centile curves can be compared
with the true ones, and the z-scores of an independent simulated cohort must be standard
normal (5 % outside ±1.96). Replace the simulated tables by a real reference cohort's batch
output to build real norms.

Method: ``spinemetrics.stats.norms.fit_norms`` — per level and sex, normal with mean
quadratic and log-SD linear in age (LMS with L = 1, Cole & Green 1992); ``zscores`` scores new
subjects.

Outputs (``reports/normative_disc_height/``): norms.csv (fitted cells), centiles.csv
(2.5/50/97.5th centile by level, sex and age), fit_vs_truth.csv, calibration.csv,
centile_curves.html, summary.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from _common import md_table, parse_args, save_figure, save_table, write_summary
from plotly.subplots import make_subplots
from scipy import stats as st

from spinemetrics.stats.norms import fit_norms, zscores
from spinemetrics.stats.simulate import AGE_MEAN, DISC_LEVELS, simulate_cohort

MEASURE = "disc_height_middle_mm"
AGES = np.arange(25, 86, 5, dtype=float)
Z975 = float(st.norm.ppf(0.975))


def _centiles(norms: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for c in norms.itertuples():
        t = (AGES - c.age_ref) / 10.0
        mu = c.mu_b0 + c.mu_b1 * t + c.mu_b2 * t**2
        sd = np.exp(c.logsd_c0 + c.logsd_c1 * t)
        for a, m, s in zip(AGES, mu, sd, strict=True):
            rows.append({"level": c.level, "sex": c.sex, "age": a, "p2_5": m - Z975 * s,
                         "p50": m, "p97_5": m + Z975 * s, "sd": s,
                         "extrapolated": not (c.age_min <= a <= c.age_max)})
    return pd.DataFrame(rows)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], "normative_disc_height")
    n_ref = 1500 if args.smoke else 20000
    n_new = 300 if args.smoke else 2000
    ref, ref_cov, truth = simulate_cohort(n_ref, seed=args.seed, measures=[MEASURE])
    model = fit_norms(ref, ref_cov, meta={"population": f"simulated, {n_ref} subjects"})
    norms = model.table
    cent = _centiles(norms)

    # Fitted vs true median (mean) at a few ages: the model is correct, so they must agree.
    spec = truth.specs[MEASURE]
    checks = []
    for r in cent[cent.age.isin([35.0, 55.0, 75.0])].itertuples():
        k = DISC_LEVELS.index(r.level)
        true_mu = (spec["mean"][k] + spec["age_slope"][k] * (r.age - AGE_MEAN)
                   + spec["sex_effect"] * (r.sex == "M"))
        checks.append({"level": r.level, "sex": r.sex, "age": r.age, "p50_fitted": r.p50,
                       "p50_true": true_mu, "error_mm": r.p50 - true_mu,
                       "sd_fitted": r.sd, "sd_true_given_age": _sd_given_age(truth, k)})
    fit_df = pd.DataFrame(checks)

    # Calibration on an independent cohort: z ~ N(0, 1) if the norms are right.
    new, new_cov, _ = simulate_cohort(n_new, seed=args.seed + 1, measures=[MEASURE])
    z = zscores(new, new_cov, model)
    cal = (z.groupby("level", sort=False)
           .agg(n=("z", "count"), mean_z=("z", "mean"), sd_z=("z", "std"),
                outside_95=("z", lambda v: float(np.mean(np.abs(v) > Z975))))
           .reset_index())

    out = args.out
    save_table(norms, out / "norms.csv")
    save_table(cent, out / "centiles.csv")
    save_table(fit_df, out / "fit_vs_truth.csv")
    save_table(cal, out / "calibration.csv")
    save_figure(_curves(cent, ref, ref_cov), out / "centile_curves.html")

    example = cent[(cent.age == 55.0)][["level", "sex", "p2_5", "p50", "p97_5"]]
    sections = [
        ("Question", "Expected mid-disc height and its normal range by level, age and sex; "
         "z-scores for new subjects."),
        ("Reference cohort", f"{n_ref} simulated subjects (ages ~N(55, 12²), half men). "
         "**Simulated, not clinical norms.**"),
        ("Normal range at age 55 (mm)", md_table(example)),
        ("Fitted vs true centile curves", f"Largest |error| of the fitted median over levels, "
         f"sexes and ages 35/55/75: {fit_df.error_mm.abs().max():.3f} mm; fitted SD vs true SD "
         f"(given age and sex): max |difference| "
         f"{(fit_df.sd_fitted - fit_df.sd_true_given_age).abs().max():.3f} mm."),
        ("Calibration on an independent cohort", f"{n_new} new simulated subjects scored "
         "with the fitted norms; expected mean 0, SD 1 and 5 % outside ±1.96.\n\n"
         + md_table(cal)),
        ("Files", "norms.csv, centiles.csv, fit_vs_truth.csv, calibration.csv, "
         "centile_curves.html"),
    ]
    write_summary(out / "summary.md", "Normative disc height by age, sex and level", sections,
                  args)
    print(out / "summary.md")


def _sd_given_age(truth, k: int) -> float:
    """True SD of the measure at level k given age and sex (the norms' conditional SD)."""
    # latent (loading²) + noise (1 − loading²) variances add up to sd² once age and sex are fixed
    return float(truth.specs[MEASURE]["sd"][k])


def _curves(cent: pd.DataFrame, ref: pd.DataFrame, cov: pd.DataFrame) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(DISC_LEVELS), shared_yaxes=True,
                        subplot_titles=list(DISC_LEVELS))
    pts = ref[ref.measure == MEASURE].merge(cov, on="subject")
    pts = pts.sample(min(len(pts), 2500), random_state=0)
    colours = {"F": "#CC79A7", "M": "#0072B2"}
    for col, level in enumerate(DISC_LEVELS, start=1):
        for sex, colour in colours.items():
            c = cent[(cent.level == level) & (cent.sex == sex)]
            p = pts[(pts.level == level) & (pts.sex == sex)]
            show = col == 1
            fig.add_trace(go.Scattergl(x=p.age, y=p.value, mode="markers", opacity=0.15,
                                       marker={"size": 3, "color": colour}, name=f"{sex} data",
                                       legendgroup=sex, showlegend=show), row=1, col=col)
            for q, dash in (("p2_5", "dot"), ("p50", "solid"), ("p97_5", "dot")):
                fig.add_trace(go.Scatter(x=c.age, y=c[q], mode="lines",
                                         line={"color": colour, "dash": dash},
                                         name=f"{sex} {q.replace('_', '.')[1:]}th centile",
                                         legendgroup=sex, showlegend=show), row=1, col=col)
        fig.update_xaxes(title="age (years)", row=1, col=col)
    fig.update_yaxes(title="mid-disc height (mm)", row=1, col=1)
    fig.update_layout(title="Normative mid-disc height: 2.5th, 50th, 97.5th centiles by sex "
                      "(simulated reference cohort)", height=480, width=1200)
    return fig


if __name__ == "__main__":
    main()
