"""Pre-aggregation of a cohort table for the dashboard (size independent of cohort size).

Everything the dashboard draws is reduced here to counts that can be *summed* over the
filter groups in the browser (sex × age group): histograms, finding counts and neighbouring-
level 2×2 tables. Centile curves are computed per 5-year age bin and sex. Only a capped random
sample of subjects is kept as points. A 100k-subject table (≈ 10⁷ rows) aggregates in seconds
and gives well under 10 MB of JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spinemetrics.errors import InputError
from spinemetrics.findings import FINDING_RULES, FindingRule, severity
from spinemetrics.labels import lumbar_order
from spinemetrics.report.tables import UNIT_TEXT, measure_title, split_levels

__all__ = ["AGE_EDGES", "AGE_LABELS", "SEXES", "aggregate_cohort", "CENTILES", "normalise_sex"]

AGE_EDGES = (0.0, 40.0, 50.0, 60.0, 70.0, 80.0, math.inf)
AGE_LABELS = ("<40", "40–49", "50–59", "60–69", "70–79", "≥80", "unknown")
SEXES = ("F", "M", "unknown")
CENTILES = (3, 10, 25, 50, 75, 90, 97)
N_BINS = 40
CENTILE_AGE_STEP = 5.0


@dataclass
class _Prepared:
    values: np.ndarray  # float64
    measure: pd.Categorical
    level: pd.Categorical
    side: np.ndarray  # int16 codes, -1 = unsided
    subj_code: np.ndarray  # int
    subjects: np.ndarray  # subject ids by code
    sex_of_subject: np.ndarray  # int8 codes into SEXES
    age_of_subject: np.ndarray  # float (nan unknown)
    agegrp_of_subject: np.ndarray  # int8 codes into AGE_LABELS


def normalise_sex(values: pd.Series) -> np.ndarray:
    """Map free-text sex codes to 0 = F, 1 = M, 2 = unknown."""
    text = values.astype(str).str.strip().str.lower()
    out = np.full(len(text), 2, np.int8)
    out[text.isin(["f", "female", "w", "woman", "women", "2"]).to_numpy()] = 0
    out[text.isin(["m", "male", "man", "men", "1"]).to_numpy()] = 1
    return out


def _age_group(age: np.ndarray) -> np.ndarray:
    grp = np.searchsorted(np.asarray(AGE_EDGES[1:-1]), age, side="right").astype(np.int8)
    grp[~np.isfinite(age)] = len(AGE_LABELS) - 1
    return grp


def _prepare(table: pd.DataFrame, covariates: pd.DataFrame | None) -> _Prepared:
    for col in ("subject", "level", "measure", "value"):
        if col not in table.columns:
            raise InputError(f"cohort table lacks column {col!r}; use the long format of "
                             "contract §5 (subject, level, measure, value, …)")
    subj = pd.Categorical(table["subject"].astype(str) if table["subject"].dtype != "category"
                          else table["subject"])
    subjects = np.asarray(subj.categories.astype(str))
    n_subj = len(subjects)
    sex = np.full(n_subj, 2, np.int8)
    age = np.full(n_subj, np.nan)
    if covariates is not None and len(covariates):
        if "subject" not in covariates.columns:
            raise InputError("covariates need a 'subject' column (one row per subject)")
        cov = covariates.drop_duplicates("subject").set_index(
            covariates.drop_duplicates("subject")["subject"].astype(str))
        idx = cov.index.get_indexer(subjects)
        ok = idx >= 0
        if "sex" in cov.columns:
            s = normalise_sex(cov["sex"])
            sex[ok] = s[idx[ok]]
        if "age" in cov.columns:
            a = pd.to_numeric(cov["age"], errors="coerce").to_numpy(dtype=float)
            age[ok] = a[idx[ok]]
    # Sides as small-int codes; -1 = no side (""/NaN). Cheap on categorical columns.
    if "side" in table.columns:
        side_cat = pd.Categorical(table["side"])
        blank = [i for i, c in enumerate(side_cat.categories) if str(c).strip() == ""]
        side = np.asarray(side_cat.codes, dtype=np.int16)
        for b in blank:
            side[side == b] = -1
    else:
        side = np.full(len(table), -1, np.int16)
    return _Prepared(
        values=pd.to_numeric(table["value"], errors="coerce").to_numpy(dtype=float),
        measure=pd.Categorical(table["measure"]),
        level=pd.Categorical(table["level"]),
        side=side,
        subj_code=np.asarray(subj.codes, dtype=np.int64),
        subjects=subjects,
        sex_of_subject=sex,
        age_of_subject=age,
        agegrp_of_subject=_age_group(age),
    )


def _round_sig(x: np.ndarray, digits: int = 4) -> list:
    """Round to ``digits`` significant digits (vectorised); NaN/inf → None (JSON null)."""
    a = np.asarray(x, float).ravel()
    out = np.full(a.shape, np.nan)
    ok = np.isfinite(a) & (a != 0)
    mag = np.floor(np.log10(np.abs(a[ok])))
    scale = 10.0 ** (digits - 1 - mag)
    out[ok] = np.round(a[ok] * scale) / scale
    out[a == 0] = 0.0
    return [None if v != v else v for v in out.tolist()]


def _histograms(p: _Prepared, m_code: int, rows: np.ndarray, levels: list[str],
                level_codes: np.ndarray) -> dict:
    vals = p.values[rows]
    lvl = level_codes[rows]
    keep = np.isfinite(vals) & (lvl >= 0)
    vals, lvl, subj = vals[keep], lvl[keep], p.subj_code[rows][keep]
    if vals.size == 0:
        return {}
    lo, hi = np.quantile(vals, [0.001, 0.999])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, N_BINS + 1)
    b = np.clip(np.searchsorted(edges, vals, side="right") - 1, 0, N_BINS - 1)
    sx = p.sex_of_subject[subj]
    ag = p.agegrp_of_subject[subj]
    nl, ns, na = len(levels), len(SEXES), len(AGE_LABELS)
    key = ((lvl * ns + sx) * na + ag) * N_BINS + b
    counts = np.bincount(key, minlength=nl * ns * na * N_BINS).reshape(nl, ns, na, N_BINS)
    gkey = (lvl * ns + sx) * na + ag
    sums = np.bincount(gkey, weights=vals, minlength=nl * ns * na).reshape(nl, ns, na)
    sq = np.bincount(gkey, weights=vals * vals, minlength=nl * ns * na).reshape(nl, ns, na)
    used = [i for i in range(nl) if counts[i].any()]  # only levels where it is measured
    return {
        "levels": [levels[i] for i in used],
        "edges": _round_sig(edges, 5),
        "counts": counts[used].tolist(),
        "sum": [_round_sig(sums[i], 8) for i in used],
        "sumsq": [_round_sig(sq[i], 8) for i in used],
    }


def _centiles(p: _Prepared, rows: np.ndarray, level_codes: np.ndarray,
              levels: list[str]) -> dict:
    """Empirical centiles per level × sex (F, M, all) × 5-year age bin (bins with n ≥ 20)."""
    nl = len(levels)
    vals = p.values[rows]
    lvl = level_codes[rows]
    subj = p.subj_code[rows]
    age = p.age_of_subject[subj]
    keep = np.isfinite(vals) & np.isfinite(age) & (lvl >= 0)
    if not keep.any():
        return {}
    vals, lvl, age, sx = vals[keep], lvl[keep], age[keep], p.sex_of_subject[subj[keep]]
    a0 = math.floor(np.nanmin(age) / CENTILE_AGE_STEP) * CENTILE_AGE_STEP
    abin = ((age - a0) // CENTILE_AGE_STEP).astype(np.int64)
    nb = int(abin.max()) + 1
    out: dict = {"age_mid": [a0 + (i + 0.5) * CENTILE_AGE_STEP for i in range(nb)],
                 "centiles": list(CENTILES)}
    # One float sort per measure, then stable radix sorts on small-int group keys (much
    # cheaper than a lexsort per sex on 10^7 rows).
    order_v = np.argsort(vals, kind="stable")
    v_sorted = vals[order_v]
    key_all = (lvl * nb + abin)[order_v]
    key_sex = key_all * 3 + sx[order_v]
    for s_code, s_name in ((0, "F"), (1, "M"), (-1, "all")):
        n_groups = nl * nb
        key = key_all if s_code < 0 else key_sex
        dtype = np.int16 if key.max() < 2**15 else np.int64
        o = np.argsort(key.astype(dtype), kind="stable")
        v, group = v_sorted[o], key[o]
        ids = np.arange(n_groups) if s_code < 0 else np.arange(n_groups) * 3 + s_code
        starts = np.searchsorted(group, ids, side="left")
        ends = np.searchsorted(group, ids, side="right")
        res = np.full((nl, len(CENTILES), nb), np.nan)
        for g in range(n_groups):
            n = ends[g] - starts[g]
            if n < 20:
                continue
            seg = v[starts[g]:ends[g]]
            pos = np.asarray(CENTILES) / 100.0 * (n - 1)
            lo = np.floor(pos).astype(int)
            frac = pos - lo
            hi = np.minimum(lo + 1, n - 1)
            res[g // nb, :, g % nb] = seg[lo] * (1 - frac) + seg[hi] * frac
        out[s_name] = {levels[i]: [_round_sig(res[i, c]) for c in range(len(CENTILES))]
                       for i in range(nl) if np.isfinite(res[i]).any()}
    return out


def _rule_severity(p: _Prepared, rule: FindingRule, rows: np.ndarray) -> np.ndarray:
    vals = p.values[rows]
    if rule.relative:
        # Same reference as spinemetrics.findings: median of the subject's levels (same side),
        # only with ≥ 3 measured levels.
        frame = pd.DataFrame({"s": p.subj_code[rows], "side": p.side[rows], "v": vals})
        grp = frame.groupby(["s", "side"], sort=False)["v"]
        med = grp.transform("median").where(grp.transform("count") >= 3).to_numpy()
        vals = vals / med
    return severity(vals, rule)


def _findings(p: _Prepared, m_rows: dict[str, np.ndarray], levels: list[str],
              level_codes: np.ndarray, n_subj: int) -> dict:
    """Counts per finding: [level][sex][age] → (positive, assessed) and neighbour 2×2 tables."""
    out = {}
    nl, ns, na = len(levels), len(SEXES), len(AGE_LABELS)
    pos_index = {lv: i for i, lv in enumerate(levels)}
    for rule in FINDING_RULES:
        rows = m_rows.get(rule.measure)
        if rows is None or rows.size == 0:
            continue
        sev = _rule_severity(p, rule, rows)
        lvl = level_codes[rows]
        for min_sev, name in ((1, rule.name), (2, rule.name + "_severe")):
            if min_sev == 2 and not np.isfinite(rule.severe):
                continue
            ok = (sev >= 0) & (lvl >= 0)
            # Subject × level matrix, any side: max over sides (-1 = not assessed).
            mat = np.full((n_subj, nl), -1, np.int8)
            np.maximum.at(mat, (p.subj_code[rows][ok], lvl[ok]),
                          (sev[ok] >= min_sev).astype(np.int8))
            sx, ag = p.sex_of_subject, p.agegrp_of_subject
            gk = sx.astype(np.int64) * na + ag
            assessed = mat >= 0
            positive = mat == 1
            n_tot = np.stack([np.bincount(gk[assessed[:, j]], minlength=ns * na)
                              for j in range(nl)]).reshape(nl, ns, na)
            n_pos = np.stack([np.bincount(gk[positive[:, j]], minlength=ns * na)
                              for j in range(nl)]).reshape(nl, ns, na)
            used = [i for i in range(nl) if n_tot[i].sum() > 0]
            if not used:
                continue
            pairs = []
            used_levels = [levels[i] for i in used]
            ordered = split_levels(used_levels)
            for kind in ("disc", "vertebra"):
                seq = ordered[kind]
                for a, b in zip(seq[:-1], seq[1:], strict=False):
                    if not _adjacent(a, b, kind):
                        continue
                    ia, ib = pos_index[a], pos_index[b]
                    both = assessed[:, ia] & assessed[:, ib]
                    xa, xb = positive[:, ia], positive[:, ib]
                    cells = []
                    for cell in (xa & xb, xa & ~xb, ~xa & xb, ~xa & ~xb):
                        cells.append(np.bincount(gk[both & cell], minlength=ns * na)
                                     .reshape(ns, na).tolist())
                    pairs.append({"a": a, "b": b, "n11": cells[0], "n10": cells[1],
                                  "n01": cells[2], "n00": cells[3]})
            label = rule.label + (" — severe" if min_sev == 2 else "")
            out[name] = {
                "label": label,
                "definition": rule.describe() if min_sev == 1 else
                _severe_text(rule),
                "source": rule.source,
                "levels": used_levels,
                "pos": [n_pos[i].tolist() for i in used],
                "tot": [n_tot[i].tolist() for i in used],
                "pairs": pairs,
            }
    return out


def _severe_text(rule: FindingRule) -> str:
    op = {"below": "<", "above": ">"}[rule.direction] + ("=" if rule.inclusive else "")
    what = f"{rule.measure} / median of other levels" if rule.relative else rule.measure
    return f"{what} {op} {rule.severe:g}"


def _adjacent(a: str, b: str, kind: str) -> bool:
    from spinemetrics.labels import VERTEBRA_IDS, vertebra_id

    def pos(name: str) -> int:
        return VERTEBRA_IDS.index(vertebra_id(name.split("-")[0]))

    gap = pos(b) - pos(a)
    skipped = VERTEBRA_IDS[pos(a) + 1: pos(b)]
    return gap >= 1 and all(v in (28, 25) for v in skipped)


def _sample(p: _Prepared, measures: list[str], levels: list[str], level_codes: np.ndarray,
            m_rows: dict[str, np.ndarray], cap: int, seed: int) -> dict:
    n_subj = len(p.subjects)
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(n_subj, size=min(cap, n_subj), replace=False))
    where = np.full(n_subj, -1, np.int64)
    where[take] = np.arange(take.size)
    values: dict = {}
    for m in measures:
        rows = m_rows[m]
        k = where[p.subj_code[rows]]
        sel = k >= 0
        lv = level_codes[rows][sel]
        mat_sum = np.zeros((take.size, len(levels)))
        mat_n = np.zeros((take.size, len(levels)))
        v = p.values[rows][sel]
        ok = np.isfinite(v) & (lv >= 0)
        np.add.at(mat_sum, (k[sel][ok], lv[ok]), v[ok])
        np.add.at(mat_n, (k[sel][ok], lv[ok]), 1)
        with np.errstate(invalid="ignore"):
            mean = mat_sum / mat_n  # mean of sides for sided measures
        values[m] = {levels[j]: _round_sig(mean[:, j])
                     for j in range(len(levels)) if mat_n[:, j].any()}
    return {
        "subject": [str(s) for s in p.subjects[take]],
        "age": _round_sig(p.age_of_subject[take], 3),
        "sex": [SEXES[int(s)] for s in p.sex_of_subject[take]],
        "values": values,
    }


def aggregate_cohort(
    table: pd.DataFrame,
    covariates: pd.DataFrame | None = None,
    *,
    sample_cap: int = 400,
    seed: int = 0,
) -> dict:
    """Reduce a long cohort table to the summable aggregates drawn by the dashboard.

    Parameters
    ----------
    table : pandas.DataFrame
        Long measurement table (contract §5) of many subjects.
    covariates : pandas.DataFrame, optional
        One row per subject with ``subject`` and optionally ``age`` (years) and ``sex``.
    sample_cap : int
        At most this many randomly chosen subjects are kept as individual points.
    seed : int
        Seed of the subject sample.

    Returns
    -------
    dict
        JSON-ready aggregates: ``meta``, ``levels``, ``measures``, ``hist``, ``centiles``,
        ``findings``, ``sample``.
    """
    p = _prepare(table, covariates)
    all_levels = [str(v) for v in p.level.categories]
    groups = split_levels(all_levels)
    levels = lumbar_order(groups["vertebra"] + groups["disc"]) + groups["spine"]
    remap = np.array([levels.index(str(c)) for c in p.level.categories], dtype=np.int64)
    level_codes = np.where(p.level.codes >= 0, remap[p.level.codes], -1)
    units = {}
    if "unit" in table.columns:
        first = table.drop_duplicates("measure")[["measure", "unit"]]
        units = dict(zip(first["measure"].astype(str), first["unit"].astype(str), strict=False))
    m_codes = np.asarray(p.measure.codes)
    order = np.argsort(m_codes, kind="stable")
    bounds = np.searchsorted(m_codes[order], np.arange(len(p.measure.categories) + 1))
    m_rows = {str(m): order[bounds[i]:bounds[i + 1]] for i, m in enumerate(p.measure.categories)}
    measures = sorted(m_rows, key=lambda m: (list(_measure_rank()).index(m)
                                             if m in _measure_rank() else 999, m))
    hist, cent, minfo = {}, {}, []
    for i, m in enumerate(measures):
        rows = m_rows[m]
        h = _histograms(p, i, rows, levels, level_codes)
        if not h:
            continue
        hist[m] = h
        cent[m] = _centiles(p, rows, level_codes, levels)
        sided = bool(np.any(p.side[rows] >= 0))
        unit = units.get(m, "")
        minfo.append({"name": m, "title": measure_title(m) + (" (both sides)" if sided else ""),
                      "unit": UNIT_TEXT.get(unit, unit)})
    findings = _findings(p, m_rows, levels, level_codes, len(p.subjects))
    sample = _sample(p, [mi["name"] for mi in minfo], levels, level_codes, m_rows,
                     sample_cap, seed)
    has_cov = covariates is not None and len(covariates) > 0
    return {
        "meta": {
            "n_subjects": int(len(p.subjects)),
            "n_rows": int(len(table)),
            "n_scans": int(table["scan"].nunique()) if "scan" in table.columns else None,
            "n_female": int((p.sex_of_subject == 0).sum()),
            "n_male": int((p.sex_of_subject == 1).sum()),
            "age_median": float(np.nanmedian(p.age_of_subject))
            if np.isfinite(p.age_of_subject).any() else None,
            "has_covariates": bool(has_cov),
            "sample_cap": int(sample_cap),
            # Subjects per sex × age group, so filters can show the n they select.
            "group_n": np.bincount(
                p.sex_of_subject.astype(np.int64) * len(AGE_LABELS) + p.agegrp_of_subject,
                minlength=len(SEXES) * len(AGE_LABELS),
            ).reshape(len(SEXES), len(AGE_LABELS)).tolist(),
        },
        "levels": levels,
        "sexes": list(SEXES),
        "age_groups": list(AGE_LABELS),
        "measures": minfo,
        "hist": hist,
        "centiles": cent,
        "findings": findings,
        "sample": sample,
    }


def _measure_rank() -> dict[str, int]:
    from spinemetrics.report.tables import MEASURE_NAMES

    return {m: i for i, m in enumerate(MEASURE_NAMES)}
