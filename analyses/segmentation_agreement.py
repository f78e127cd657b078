"""Worked example (c): do two segmentations of the same scan give the same measurements?

Research question: how much do the morphometric measures change when the label map changes
from a reference (expert-corrected) segmentation to an automatic prediction? This is the
measurement-level agreement that matters for a study, beyond voxel overlap (Dice).

Data: the real lumbar label maps of ``panoptica_lumbar_labels`` (sagittal T2 geometry,
0.59 × 0.59 × 3.3 mm; SPINEPS-style subregion + instance maps; reference and prediction;
Apache-2.0, from BrainLesion/panoptica) in the shared sample data folder
(``$SPINEMETRICS_SHARED_DATA`` or ``../shared/data``).

Method: both maps are converted to the contract labels (``spinemetrics.convert``, which also
undoes the cord/canal swap of the reference and renames the vertebrae from the sacrum), then
measured (``spinemetrics.geometry.measure``). Per measure, over the levels measured in both:
Bland–Altman bias (mean of prediction − reference), SD of the differences, 95 % limits of
agreement (bias ± 1.96 SD; Bland & Altman, Lancet 1986), mean absolute difference and the
mean absolute percentage difference. Dice per structure and per vertebral level gives the
overlap context. With one scan, "n" is the number of levels: the limits describe this scan's
level-to-level spread, not a population.

Outputs (``reports/segmentation_agreement/``): paired_values.csv, bland_altman.csv, dice.csv,
bland_altman.html, summary.md.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from _common import SHARED_DATA, md_table, parse_args, save_figure, save_table, write_summary
from plotly.subplots import make_subplots

from spinemetrics.convert import convert_labels
from spinemetrics.geometry import measure
from spinemetrics.labels import Structure, level_name

PLOTTED = [
    "disc_height_middle_mm", "disc_height_anterior_mm", "disc_height_posterior_mm",
    "vertebral_height_middle_mm", "vertebral_depth_mm", "dural_sac_area_mm2",
]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / s) if s else float("nan")


def _load(folder, which: str):
    res = convert_labels(folder / "semantic" / f"{which}.nii.gz", "spineps",
                         instance=folder / "matched_instance" / f"{which}.nii.gz")
    return res.seg, res.levels, res.warnings


def _mean_abs_pct(d: np.ndarray, mean: np.ndarray) -> float:
    """Mean |difference| / |mean| in %, over pairs whose mean is not 0 (a percentage of 0 is
    undefined, e.g. for Genant grade 0 in both maps); NaN when there are none."""
    ok = mean != 0
    return float(np.mean(np.abs(d[ok]) / np.abs(mean[ok])) * 100.0) if ok.any() else float("nan")


def bland_altman(paired: pd.DataFrame) -> pd.DataFrame:
    """Per measure: n, bias, SD of differences, limits of agreement, MAD, MAPE (%)."""
    rows = []
    for (m, unit), g in paired.groupby(["measure", "unit"], sort=True):
        d = (g.pred - g.ref).to_numpy()
        mean = ((g.pred + g.ref) / 2.0).to_numpy()
        n = len(d)
        sd = float(np.std(d, ddof=1)) if n > 1 else float("nan")
        bias = float(np.mean(d))
        rows.append({"measure": m, "unit": unit, "n": n, "mean_value": float(np.mean(mean)),
                     "bias": bias, "sd_diff": sd, "loa_low": bias - 1.96 * sd,
                     "loa_high": bias + 1.96 * sd, "mean_abs_diff": float(np.mean(np.abs(d))),
                     "mean_abs_pct_diff": _mean_abs_pct(d, mean)})
    return pd.DataFrame(rows)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], "segmentation_agreement")
    folder = SHARED_DATA / "panoptica_lumbar_labels"
    if not folder.is_dir():
        sys.exit(f"error: sample data not found at {folder}; set SPINEMETRICS_SHARED_DATA")
    ref_seg, ref_lev, ref_warn = _load(folder, "ref")
    pred_seg, pred_lev, pred_warn = _load(folder, "pred")
    ref = measure(ref_seg, ref_lev, subject="panoptica", scan="ref")
    pred = measure(pred_seg, pred_lev, subject="panoptica", scan="pred")

    key = ["level", "side", "measure", "unit"]
    paired = ref[key + ["value", "qc"]].merge(pred[key + ["value", "qc"]], on=key,
                                              suffixes=("_ref", "_pred"))
    paired = paired.rename(columns={"value_ref": "ref", "value_pred": "pred"})
    n_all = len(paired)
    paired = paired[np.isfinite(paired.ref) & np.isfinite(paired.pred)].reset_index(drop=True)
    ba = bland_altman(paired)

    dice_rows = []
    for s in Structure:
        if s == Structure.background:
            continue
        a, b = ref_seg.array == s, pred_seg.array == s
        if a.any() or b.any():
            dice_rows.append({"kind": "structure", "name": s.name, "dice": _dice(a, b),
                              "ref_voxels": int(a.sum()), "pred_voxels": int(b.sum())})
    for lid in sorted(set(np.unique(ref_lev.array)) - {0}):
        a, b = ref_lev.array == lid, pred_lev.array == lid
        dice_rows.append({"kind": "level", "name": level_name(int(lid)), "dice": _dice(a, b),
                          "ref_voxels": int(a.sum()), "pred_voxels": int(b.sum())})
    dice = pd.DataFrame(dice_rows)

    out = args.out
    save_table(paired, out / "paired_values.csv")
    save_table(ba, out / "bland_altman.csv")
    save_table(dice, out / "dice.csv")
    save_figure(_ba_figure(paired), out / "bland_altman.html")

    key_rows = ba[ba.measure.isin(PLOTTED)]
    notes = "\n".join(f"- {w}" for w in dict.fromkeys(ref_warn + pred_warn))
    sections = [
        ("Question", "How much do the measures move when the segmentation changes from the "
         "reference to an automatic prediction of the same scan?"),
        ("Data", "panoptica_lumbar_labels (real sagittal T2 label maps, 0.59 × 0.59 × 3.3 mm), "
         f"reference vs prediction; {len(paired)} of {n_all} (level, side, measure) values "
         "measurable in both.\n\nConversion notes:\n" + notes),
        ("Overlap (Dice)", md_table(dice[dice.kind == "structure"][["name", "dice",
                                                                     "ref_voxels",
                                                                     "pred_voxels"]])),
        ("Bland–Altman, key measures (prediction − reference)", md_table(key_rows[[
            "measure", "unit", "n", "mean_value", "bias", "loa_low", "loa_high",
            "mean_abs_pct_diff"]])),
        ("All measures", md_table(ba[["measure", "unit", "n", "bias", "sd_diff",
                                      "mean_abs_diff", "mean_abs_pct_diff"]])),
        ("Reading", "High Dice (≥ 0.9) does not guarantee agreement of every measure: thin "
         "structures and small distances (posterior disc height, canal and foraminal sizes, "
         "ligamentum flavum thickness) move by a larger percentage than volumes. Use the "
         "limits of agreement to size the measurement error in a power calculation. Percentage "
         "differences are not meaningful for values near zero (slip, wedge and segmental "
         "angles): read their absolute differences instead."),
        ("Files", "paired_values.csv, bland_altman.csv, dice.csv, bland_altman.html"),
    ]
    write_summary(out / "summary.md", "Measurement agreement between two segmentations",
                  sections, args)
    print(out / "summary.md")


def _ba_figure(paired: pd.DataFrame) -> go.Figure:
    cols = 3
    rows = (len(PLOTTED) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=PLOTTED)
    for i, m in enumerate(PLOTTED):
        g = paired[paired.measure == m]
        r, c = i // cols + 1, i % cols + 1
        if g.empty:
            continue
        mean, diff = (g.ref + g.pred) / 2.0, g.pred - g.ref
        fig.add_trace(go.Scatter(x=mean, y=diff, mode="markers+text", text=g.level,
                                 textposition="top center", showlegend=False,
                                 marker={"size": 8, "color": "#0072B2"}), row=r, col=c)
        bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        for y, dash in ((bias, "solid"), (bias - 1.96 * sd, "dash"), (bias + 1.96 * sd, "dash")):
            fig.add_hline(y=y, line_dash=dash, line_color="#D55E00", row=r, col=c)
        fig.update_xaxes(title=f"mean ({g.unit.iloc[0]})", row=r, col=c)
        fig.update_yaxes(title="pred − ref", row=r, col=c)
    fig.update_layout(title="Bland–Altman: prediction − reference per level (bias and 95 % "
                      "limits of agreement)", height=420 * rows, width=1200)
    return fig


if __name__ == "__main__":
    main()
