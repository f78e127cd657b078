"""Subject report content: findings, tables, escaping, self-containment, real label maps."""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
import pytest

from spinemetrics.image import Image
from spinemetrics.labels import Structure
from spinemetrics.report import subject_report

from .conftest import XSS, subject_table

PROV = {"spinemetrics_version": "0.1.0", "model": "unit-test", "input_sha256": "ab" * 32,
        "created_utc": "2026-01-01T00:00:00Z"}


def _html_outside_plotly(text: str) -> str:
    # Drop the embedded plotly.js bundle (it names URLs in strings it never fetches here).
    start = text.index("<script>", text.index("</style>"))
    end = text.index("</script>", start)
    return text[:start] + text[end:]


@pytest.fixture(scope="module")
def report_html(phantom, tmp_path_factory):
    image, seg, lev, _ = phantom
    out = tmp_path_factory.mktemp("subj") / "r.html"
    t0 = time.perf_counter()
    subject_report(image, seg, lev, subject_table(), out, provenance=PROV,
                   warnings=["levels uncertain: <b>check</b>"])
    elapsed = time.perf_counter() - t0
    return out.read_text("utf-8"), out.stat().st_size, elapsed


def test_report_is_small_fast_and_self_contained(report_html):
    text, size, elapsed = report_html
    assert size < 6_000_000
    assert elapsed < 10.0  # ~1 s on one core; generous for a shared CI machine
    rest = _html_outside_plotly(text)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", rest)
    assert "cdn.plot.ly" not in rest and "MathJax" not in rest
    assert "default-src 'none'" in text  # CSP forbids network fetches


def test_report_lists_the_known_findings(report_html):
    text, _, _ = report_html
    findings = text[text.index('id="findings"'):text.index('id="images-section"')]
    assert "L4-L5" in findings and "severe" in findings and "68.0 mm²" in findings
    assert "L3-L4" in findings and "moderate" in findings and "90.0 mm²" in findings
    assert "L1-L2</b>" not in findings  # 160 mm²: no finding


def test_measurement_table_is_ordered_and_flagged(report_html):
    text, _, _ = report_html
    disc_table = text[text.index('data-kind="disc"'):]
    disc_table = disc_table[:disc_table.index("</table>")]
    heads = re.findall(r'<th scope="col">([^<]+)</th>', disc_table)
    assert heads == ["Measure", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    row = re.search(r"Dural sac area.*?</tr>", disc_table, re.S).group(0)
    cells = re.findall(r"<td([^>]*)>([^<]*)</td>", row)
    assert [c[1] for c in cells] == ["160.0", "150.0", "90.0", "68.0", "140.0"]
    assert 'sev1' in cells[2][0] and 'sev2' in cells[3][0] and 'sev' not in cells[0][0]
    vert = text[text.index('data-kind="vertebra"'):]
    assert "partial_fov" in vert[:vert.index("</table>")]  # qc reason on the S1 value


def test_warnings_and_provenance_are_escaped(report_html):
    text, _, _ = report_html
    assert "levels uncertain: &lt;b&gt;check&lt;/b&gt;" in text
    assert "unit-test" in text and "ab" * 32 in text


def test_xss_subject_id_is_text(phantom, tmp_path):
    image, seg, lev, _ = phantom
    tab = subject_table(subject=XSS)
    out = subject_report(image, seg, lev, tab, tmp_path / "x.html", provenance={"note": XSS})
    text = out.read_text("utf-8")
    assert XSS not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_zscores_section(phantom, tmp_path):
    image, seg, lev, _ = phantom
    z = pd.DataFrame({"level": ["L4-L5", "L3-L4", "L2-L3"], "measure": "dural_sac_area_mm2",
                      "side": "", "value": [68.0, 90.0, 150.0], "unit": "mm2",
                      "z": [-2.5, -1.0, np.nan], "norm_flag": ["low", "normal", "no_norm"]})
    out = subject_report(image, seg, lev, subject_table(), tmp_path / "z.html", provenance=PROV,
                         zscores=z)
    norms = out.read_text("utf-8")
    norms = norms[norms.index('id="norms"'):norms.index('id="qc"')]
    assert "1 of 2 value(s) outside the normal range" in norms
    flagged = norms[norms.index("zscores flagged"):norms.index("<details>")]
    assert "L4-L5" in flagged and "L3-L4" not in flagged
    assert "-2.50" in norms and "below normal range" in norms
    assert "L2-L3" not in norms  # no reference cell → not listed


def test_seg_on_another_grid_and_orientation(phantom, tmp_path):
    """Labels need not share the image grid: an LPS-flipped copy gives the same report."""
    image, seg, lev, _ = phantom
    arr = seg.array[::-1, ::-1, :]
    lev_arr = lev.array[::-1, ::-1, :]
    shape = np.array(seg.shape) - 1
    aff = seg.affine @ np.array([[-1, 0, 0, shape[0]], [0, -1, 0, shape[1]], [0, 0, 1, 0],
                                 [0, 0, 0, 1.0]])
    seg_lps, lev_lps = Image(arr, aff), Image(lev_arr, aff)
    assert seg_lps.orientation == ("L", "P", "S")
    a = subject_report(image, seg, lev, subject_table(), tmp_path / "a.html", provenance=PROV)
    b = subject_report(image, seg_lps, lev_lps, subject_table(), tmp_path / "b.html",
                       provenance=PROV)
    strip = re.compile(r'"source":"data:image/png;base64,[^"]*"')
    pics_a, pics_b = strip.findall(a.read_text()), strip.findall(b.read_text())
    assert len(pics_a) > 20
    assert pics_a == pics_b  # same world-space pictures, pixel for pixel


def test_real_label_maps(shared_data, tmp_path):
    """SPINEPS label maps of a real lumbar scan (PIR, 3.3 mm sagittal) → report with 7 discs."""
    from spinemetrics.io import read_labels

    root = shared_data / "panoptica_lumbar_labels"
    sem = read_labels(root / "semantic" / "ref.nii.gz")
    inst = read_labels(root / "matched_instance" / "ref.nii.gz")
    s = sem.array
    out = np.zeros(s.shape, np.uint8)
    out[s == 49] = Structure.vertebral_body
    out[s == 62] = Structure.vertebral_body
    out[(s >= 41) & (s <= 48)] = Structure.posterior_elements
    out[s == 26] = Structure.sacrum
    out[s == 100] = Structure.intervertebral_disc
    out[s == 60] = Structure.thecal_sac  # ids 60/61 are swapped in this file (SOURCE.md)
    out[s == 61] = Structure.spinal_cord
    seg = sem.with_array(out)
    i = inst.array.astype(np.int32)
    lev = np.zeros(i.shape, np.int32)
    verts = (i >= 2) & (i <= 8)
    lev[verts] = i[verts] + 16  # instance 2..8 → T11..L5 (18..24), inferred in SOURCE.md
    discs = (i >= 102) & (i <= 108)
    lev[discs] = i[discs] + 16  # 102..108 → 118..124 (T11-T12 … L5-S1)
    lev[i == 26] = 26
    levels = inst.with_array(lev)
    rng = np.random.default_rng(0)
    grey = {0: 80, 1: 300, 2: 280, 3: 300, 4: 700, 5: 1000, 6: 500}
    img_arr = np.vectorize(grey.get)(out).astype(np.float32) + rng.normal(0, 20, out.shape)
    image = seg.with_array(img_arr.astype(np.float32))
    tab = subject_table()
    html = subject_report(image, seg, levels, tab, tmp_path / "real.html", provenance=PROV)
    text = html.read_text("utf-8")
    for name in ("T11-T12", "T12-L1", "L1-L2", "L4-L5", "L5-S1"):
        assert f"{name}" in text
    assert text.count('"role":"mri"') == 1 + 7  # sagittal + 7 disc views


def test_without_level_map_discs_are_numbered(phantom, tmp_path):
    image, seg, _, _ = phantom
    tab = subject_table().drop(columns=["subject"])
    out = subject_report(image, seg, None, tab, tmp_path / "sub-x_report.html", provenance=PROV)
    text = out.read_text("utf-8")
    assert "disc 1" in text and "disc 5" in text and "disc 6" not in text
    assert '<b id="subject-id">sub-x_report</b>' in text  # id from the file name


def test_empty_segmentation_still_reports(phantom, tmp_path):
    image, seg, _, _ = phantom
    empty = seg.with_array(np.zeros(seg.shape, np.uint8))
    out = subject_report(image, empty, None, subject_table(), tmp_path / "e.html",
                         provenance=PROV, warnings=["segmentation is empty"])
    text = out.read_text("utf-8")
    assert "No disc found in the segmentation" in text
    assert text.count('"role":"overlay"') == 0 and text.count('"role":"mri"') == 1


def test_bad_table_is_a_one_line_input_error(phantom, tmp_path):
    from spinemetrics.errors import InputError

    image, seg, lev, _ = phantom
    with pytest.raises(InputError, match="lacks column"):
        subject_report(image, seg, lev, pd.DataFrame({"level": ["L4"]}), tmp_path / "b.html",
                       provenance=PROV)


def test_patient_identifiers_in_provenance_are_dropped(phantom, tmp_path):
    image, seg, lev, _ = phantom
    prov = {**PROV, "PatientName": "DOE^JANE", "patient_birth_date": "19500101",
            "AccessionNumber": "A123", "input_name": "scan.nii.gz"}
    text = subject_report(image, seg, lev, subject_table(), tmp_path / "p.html",
                          provenance=prov).read_text("utf-8")
    for secret in ("DOE^JANE", "19500101", "A123"):
        assert secret not in text
    assert "scan.nii.gz" in text


def test_export_static_rejects_unknown_format(tmp_path):
    from spinemetrics.errors import InputError
    from spinemetrics.report import export_static

    with pytest.raises(InputError, match="cannot export"):
        export_static({"data": []}, tmp_path / "fig.bmp")


def test_empty_table_says_so(phantom, tmp_path):
    image, seg, lev, _ = phantom
    empty = subject_table().iloc[0:0]
    text = subject_report(image, seg, lev, empty, tmp_path / "e.html",
                          provenance=PROV).read_text("utf-8")
    assert "No value could be checked against a finding threshold" in text
    assert "The measurement table is empty." in text
    assert 'id="spine-diagram"' not in text
