# ruff: noqa: E501  (Markdown table rows in the template)
"""Write docs/measures.md: every geometry measure with unit, definition, citation and its
validation figure (MAE against the phantom truth from benchmarks/validate_geometry.py CSVs).

Usage::

    python docs/gen_measures_reference.py [VALIDATION_CSV ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from spinemetrics.atomic import atomic_write_text
from spinemetrics.geometry import MEASURE_INFO
from spinemetrics.geometry.measure import FAMILIES

HEADER = """# Geometry measures

Every value of the contract §5 long table (`spinemetrics measure`, `spinemetrics.geometry.measure`),
with its unit, definition, literature tag (MEASURES.md section and reference ids; [V] verified,
[S] secondary, [C] code, [D] design decision) and how well it reproduces the phantom's exact
truth (`benchmarks/validate_geometry.py`, details in [validation.md](validation.md)).

## Conventions shared by every measure

* **World millimetres.** Masks are read on points in world space (rays, oblique planes) by
  trilinear interpolation of the 0/1 mask (boundary at 0.5; bone, disc and sac masks are
  pre-filtered with a 0.6-voxel Gaussian along the fine axes to remove the voxel staircase).
  Nothing is measured along array axes, so oblique and anisotropic (0.5 × 0.5 × 4 mm) scans
  give the numbers of straight isotropic ones (MEASURES.md §0).
* **Local frames** (`geometry/model.py`). Vertebra: origin = body centroid; SI = bisector of
  the two fitted endplate planes (starting from the line joining the neighbouring body
  centroids); AP = body → dural sac, reversed; LR = AP × SI. Disc: origin = disc centroid;
  SI = bisector of the bounding endplates re-fitted from inside the disc; AP from the upper
  vertebra. Endplate planes are least-squares fits (one outlier-rejection round) to the
  sub-voxel exits of ~90 rays cast along ±SI over the section (a 13 × 9 grid within 85 % of
  its elliptic outline, clear of the rounded rim). A nearly grid-flat endplate (a voxel
  staircase with at most two steps over the endplate, where least squares follows the
  steps: up to 3° off at 1 mm) is fitted instead as the centre of the set of planes
  consistent with the staircase (every point within half a voxel; a digital plane). What
  remains is the information limit of a binary map: about ±1/(2·depth) rad (≤ 1–2° at 1 mm).
* **Thick slices** (largest spacing > 1.5 × the finest): foramina and epidural fat, whose
  bounding walls cross the slices, are read from local shape-based fields (signed distance,
  cubic B-splines; Raya & Udupa 1990) instead of the linear blend, which is nearest-slice
  along the thick axis. Sample decisions that fall exactly on a tie (a score of exactly 0.5,
  a point exactly on the image's outer half-voxel edge — common on grid-aligned planes) count
  as inside, so float noise in an affine (1e-7 mm) cannot flip a value or a qc.
* **Heights** are taken along the local SI axis at 10 / 50 / 90 % of the depth from the
  anterior edge, as the trimmed mean of 25 parallel rays on a 2 × 3 mm patch.
* **Canal centreline**: 2-mm dural-sac section centroids along the spine, Gaussian-smoothed
  (σ = 3 mm) and interpolated by a cubic spline. "At a disc / vertebra" = where the disc's
  (body's) mid-plane crosses the centreline; sections are ⟂ the centreline tangent.
* **Angles** are differences of sagittal tilts of endplate normals projected on the
  mid-sagittal plane; positive = lordotic (anterior opening).
* **Sides**: `R` = patient right (+LR), `L` = left.

## qc values

| qc | meaning |
|---|---|
| `ok` | measured, nothing to report |
| `partial_fov` | cut by the field of view: a level cut across the spine (or laterally into its mid-sagittal region) has its disc, vertebra and canal values NaN; on other rows, the part the measure looked at reached the edge (values that depend on the cut part are NaN) |
| `partial_fov_lr` | the structure is cut only on the left/right faces and a ±5 mm slab around its mid-sagittal plane is in view (narrow sagittal slabs): mid-sagittal values are kept, left/right-dependent ones are NaN (see "Field of view" below) |
| `level_uncertain` | no sacrum in view: names assume the lowest body is L5 |
| `lstv_suspected` / `lstv` | 4 or 6 lumbar vertebrae (derived heuristic: transverse-process reach, body size when the processes are cut or on > 2-mm left/right slices / given L6) — names kept sacrum-anchored |
| `size_outlier` | body < 50 % of its neighbours' volume (fragment or mis-segmentation) |
| `merged_split` | bodies merged by the CNN were split (vertebra), or a disc came in several comparable components (each ≥ 20 % of the largest; smaller slivers are not counted) |
| `not_segmented` | the structure the measure needs is absent from the label map |
| `no_canal` | no canal centreline crossing at this level (dural sac missing) |
| `no_ligamentum_flavum` | disc-level canal AP / foramen need the ligamentum flavum label |
| `foramen_open` / `foramen_not_found` | the foraminal plane missed a pedicle (or nothing closes the foramen behind the disc) / only a sliver between labels |
| `pedicle_grazed` | the upper and lower pedicles lie so far apart left-right that the foraminal plane between them grazes one: foramen NaN |
| `unstable_section` | the vertebral heights 3 mm left or right of the mid-sagittal plane differ from it by more than max(3 mm, 15 %) (a segmentation notch, not a deformity spanning the endplate): heights kept with the flag; height reduction and Genant grade NaN |
| `low_confidence` | thin structure or foramen measured across > 2-mm slices (MEASURES.md §0b) |
| `endplate_fit_failed` / `endplate_from_disc_mask` | endplate plane could not be fitted / a neighbouring bone is missing, the disc surface was used |
| `missing_neighbour` / `missing_endplate` | an angle or slip needs a vertebra or endplate that is not in view |
| `ap_from_scanner` | no canal or arch to orient AP: scanner AP used |
| `not_measurable` | NaN for another reason |

## Field of view

A level (body, disc, sacrum) touching an image face within 1.5 mm is cut
(`spinemetrics.levels.fov_cut`, used both by the level qc and by the measure families, so a
row's value and its qc always agree). The faces are told apart by the array axis: world RAS
coordinates are patient coordinates, so the axes within 45° of world x are the left/right
ones, oblique grids included.

* Cut on any other face (top or bottom of the stack, anterior/posterior), or on a left/right
  face with the mid-sagittal plane less than 5 mm from that face: **`partial_fov`, the
  level's disc, vertebra and canal values NaN** (contract §3/§5: cut levels are not measured).
* Cut **only** on left/right faces, with a ±5 mm slab around the level's mid-sagittal plane
  in view (mid-sagittal plane = the dural sac's left-right centre at that level, else that of
  the posterior elements): **`partial_fov_lr`**. Frames are then centred on that plane (the
  centroid of what is in view is biased toward the less-cut side) and endplates are fitted
  over the part of the section in view. Per measure, from its definition (MEASURES.md):

| kept (qc `partial_fov_lr`) — defined in the mid-sagittal plane | NaN (qc `partial_fov`) — need the left/right extent |
|---|---|
| disc and vertebral heights (10/50/90 %), depths, Farfan index, wedge index, disc wedge angle; the derived Dabbs height, vertebral-height disc index, biconcavity/crush indices and Genant reduction/grade | `disc_volume_mm3`, `vertebral_volume_mm3` |
| `segmental_angle_deg`, `lumbar_lordosis_deg`, `sacral_slope_deg`, `slip_percent`, `slip_mm` | foraminal height/width/area (the pedicles, hence the foraminal plane, are cut or nearly so) |
| `canal_ap_mm`, `dural_sac_ap_mm`; `dural_sac_area_mm2` when the sac section itself is not cut (else NaN, `partial_fov`) | `paraspinal_muscle_area_mm2` on a side whose muscle reaches the edge |
| `ligamentum_flavum_thickness_mm`, `epidural_fat_area_mm2` (canal section; NaN when that section is cut) | |

Checked on phantoms cropped to a 34-mm slab (`tests/geometry/test_fov.py`): kept values equal
the uncropped ones within 0.3 mm (heights, depths, canal), 2 % (sac area) and 1.5° / 1.5 pp
(angles, slip; median 0.1°), and an oblique one stays within the validation targets of its
truth (MAE ≤ 0.5 mm, 1.5°, 2 pp); a slab whose edge passes within 5 mm of the mid-plane, or a cut
through the top body, gives `partial_fov` NaN. The shipped 38-mm-wide demo T2 scan goes from
50 to 110 finite values of 208 (the rest: foramina, volumes, the two bodies cut at the top
and bottom of the stack, and CNN gaps).
"""


def main(argv: list[str]) -> int:
    mae = None
    if argv:
        df = pd.concat([pd.read_csv(f, keep_default_na=False, na_values=[""]) for f in argv])
        df["unit"] = df["measure"].map(lambda m: MEASURE_INFO[m].unit if m in MEASURE_INFO else "")
        err = df["value_m"] - df["value_t"]
        rel = df["unit"].isin(["mm2", "mm3"])
        err[rel] = 100 * err[rel] / df.loc[rel, "value_t"].abs()
        df["abs"] = err.abs()
        mae = df.groupby(["measure", "spacing"])["abs"].mean().unstack()
        n_seeds = df["seed"].nunique()
    lines = [HEADER]
    titles = {"disc": "Disc", "vertebra": "Vertebral body", "canal": "Central canal",
              "foramen": "Neural foramen", "alignment": "Alignment",
              "soft_tissue": "Soft tissue"}
    for fam, mod in FAMILIES.items():
        lines.append(f"## {titles[fam]} (`spinemetrics/geometry/{fam}.py`)\n")
        doc = (mod.__doc__ or "").strip().split("\n\n", 1)
        if len(doc) > 1:
            lines.append(doc[1].strip() + "\n")
        hdr = "| measure | level | unit | definition | source |"
        sep = "|---|---|---|---|---|"
        if mae is not None:
            hdr += " MAE 1 mm iso | MAE 0.5×0.5×4 mm |"
            sep += "---|---|"
        lines += [hdr, sep]
        for name, info in mod.MEASURES.items():
            level = info.level_kind + (", side" if info.sided else "")
            row = f"| `{name}` | {level} | {info.unit} | {info.definition} | {info.citation} |"
            if mae is not None:
                u = "%" if info.unit in ("mm2", "mm3") else info.unit
                vals = []
                for sp in ("iso_1mm", "sag_0.5x0.5x4mm"):
                    v = mae.get(sp, pd.Series(dtype=float)).get(name, np.nan)
                    # Ratios (unit "1") need three decimals: 0.004 is not "0.00".
                    txt = f"{v:.3f}" if u == "1" else f"{v:.2f} {u}"
                    vals.append("–" if not np.isfinite(v) else txt)
                row += f" {vals[0]} | {vals[1]} |"
            lines.append(row)
        lines.append("")
    if mae is not None:
        lines.append(f"Validation: {n_seeds} random phantoms × 2 spacings, random oblique "
                     "rotations ≤ 20° per axis; MAE of measured − truth (areas/volumes in % of "
                     "truth). `–`: no truth for that measure (e.g. `slip_mm`, disc-level canal "
                     "AP).\n")
    out = Path(__file__).with_name("measures.md")
    atomic_write_text(out, "\n".join(lines))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
