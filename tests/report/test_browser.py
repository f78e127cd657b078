"""Reports in headless Chromium: offline, error-free, rendered, interactive, XSS-safe."""

from __future__ import annotations

import pytest

from spinemetrics.report import cohort_dashboard, subject_report

from .conftest import CHROMIUM, XSS, fake_stats, subject_table
from .test_dashboard import make_cohort

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium (apt-get install "
    "chromium; .ci/run installs it)")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PROV = {"spinemetrics_version": "0.1.0", "created_utc": "2026-01-01T00:00:00Z"}
IMG_XSS = "<img src=x onerror=alert(2)>.nii.gz"  # a hostile input file name


class Session:
    """A page that records console errors, page errors, dialogs and every request."""

    def __init__(self, browser, path):
        self.errors, self.requests, self.dialogs = [], [], []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        # Parsing 5 MB of inline plotly.js can take many seconds on a busy shared CPU.
        self.page.set_default_timeout(120_000)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.route("**/*", self._route)
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_function("document.querySelectorAll('.main-svg').length > 0")
        self.page.wait_for_timeout(300)
        self.url = path.resolve().as_uri()

    def _route(self, route):
        self.requests.append(route.request.url)
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    def external_requests(self):
        return [u for u in self.requests if u != self.url]

    def figure_ids(self):
        return self.page.evaluate(
            "Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => d.id)")

    def n_traces_drawn(self, div_id):
        """Data traces actually drawn in the SVG (images, heatmaps, points, boxes, lines)."""
        return self.page.evaluate(
            """id => { const d = document.getElementById(id);
                 return d.querySelectorAll('g.trace, g.imagelayer image, g.hm image').length; }""",
            div_id)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def subject_page(browser, subject_html):
    # One page per report for the whole module: loading 5 MB of plotly.js takes seconds on a
    # busy 2-core machine. Tests that change state restore it.
    s = Session(browser, subject_html)
    yield s


@pytest.fixture(scope="module")
def dashboard_page(browser, dashboard_html):
    s = Session(browser, dashboard_html)
    yield s


@pytest.fixture(scope="module")
def subject_html(phantom, tmp_path_factory):
    image, seg, lev, _ = phantom
    out = tmp_path_factory.mktemp("b") / f"{XSS.replace('/', '_')}.html"
    prov = {**PROV, "input_name": IMG_XSS}
    return subject_report(image, seg, lev, subject_table(subject=XSS), out, provenance=prov,
                          warnings=[XSS])


@pytest.fixture(scope="module")
def dashboard_html(tmp_path_factory):
    tab, cov = make_cohort(800, seed=11)
    tab.loc[tab["subject"] == "s0003", "subject"] = XSS
    cov.loc[cov["subject"] == "s0003", "subject"] = XSS
    corr, models = fake_stats(tab)
    out = tmp_path_factory.mktemp("d") / "dashboard.html"
    return cohort_dashboard({"correlations": corr, "models": models}, out, table=tab,
                            covariates=cov, sample_cap=800)


def test_subject_report_loads_offline_and_renders(subject_page):
    s = subject_page
    assert s.errors == []
    assert s.external_requests() == []
    ids = s.figure_ids()
    assert set(ids) == {"spine-diagram", "sagittal", "axial"}
    for fid in ids:
        assert s.n_traces_drawn(fid) > 0, fid
    # The pictures are really painted: SVG <image> elements with PNG data.
    n_img = s.page.evaluate("document.querySelectorAll('#sagittal image').length")
    assert n_img >= 2


def test_subject_report_xss_is_inert_text(subject_page):
    s = subject_page
    assert s.dialogs == []
    assert s.page.inner_text("#subject-id") == XSS
    assert XSS in s.page.inner_text("#qc")
    assert IMG_XSS in s.page.inner_text("#provenance")
    assert s.page.evaluate("document.querySelectorAll('#provenance img').length") == 0
    assert s.page.evaluate("document.querySelectorAll('body script').length") <= 6


def test_structure_toggles_hide_and_show_overlays(subject_page):
    s = subject_page
    count = "document.querySelectorAll('#sagittal image').length"
    visible = """name => document.getElementById('sagittal').data
        .filter(t => t.meta && t.meta.structure === name).map(t => t.visible !== false)"""
    before = s.page.evaluate(count)
    assert s.page.evaluate(visible, "vertebral_body") == [True]
    s.page.uncheck("input[data-structure=vertebral_body]")
    s.page.wait_for_function(f"n => {count} === n", arg=before - 1)
    assert s.page.evaluate(visible, "vertebral_body") == [False]
    # The same structure also disappears from every axial disc view.
    axial = s.page.evaluate("""() => document.getElementById('axial').data
        .filter(t => t.meta && t.meta.structure === 'intervertebral_disc')
        .map(t => t.visible !== false)""")
    assert axial and all(axial)
    s.page.click("#tog-none")
    s.page.wait_for_function(f"() => {count} === 1")  # only the MRI left
    s.page.click("#tog-all")
    s.page.wait_for_function(f"n => {count} === n", arg=before)
    assert s.page.evaluate(visible, "vertebral_body") == [True]
    assert s.errors == []


def test_dashboard_loads_offline_and_renders(dashboard_page):
    s = dashboard_page
    assert s.errors == []
    assert s.external_requests() == []
    ids = s.figure_ids()
    assert set(ids) >= {"dist", "dist-hist", "corr", "prev", "odds", "forest", "centile"}
    for fid in ids:
        assert s.n_traces_drawn(fid) > 0, fid


def test_dashboard_filters_change_the_figures(dashboard_page):
    tab, cov = make_cohort(800, seed=11)
    s = dashboard_page
    assert s.page.inner_text("#kpi-selected") == "800"
    prev_all = s.page.evaluate("document.getElementById('prev').data[0].z")
    s.page.select_option("#f-sex", "F")
    s.page.wait_for_timeout(300)
    assert s.page.inner_text("#kpi-selected") == f"{(cov['sex'] == 'F').sum():,}"
    prev_f = s.page.evaluate("document.getElementById('prev').data[0].z")
    assert prev_f != prev_all
    s.page.select_option("#f-age", "60–69")
    s.page.wait_for_timeout(300)
    n = ((cov["sex"] == "F") & (cov["age"] >= 60) & (cov["age"] < 70)).sum()
    assert s.page.inner_text("#kpi-selected") == f"{n:,}"
    # Box plot medians now come from that group only: n per level equals the group size.
    ann = s.page.evaluate(
        "document.getElementById('dist').layout.annotations.map(a => a.text)")
    assert all(int(t.split("=")[1]) <= n for t in ann)
    s.page.select_option("#f-measure", "foraminal_height_mm")
    s.page.wait_for_timeout(300)
    title = s.page.evaluate("document.getElementById('dist').layout.title.text")
    assert "Foraminal height" in title
    assert s.errors == []


def test_dashboard_highlight_and_xss(dashboard_page):
    s = dashboard_page
    s.page.select_option("#f-sex", "all")
    s.page.select_option("#f-age", "all")
    s.page.select_option("#f-measure", "dural_sac_area_mm2")
    s.page.fill("#f-highlight", XSS)
    s.page.wait_for_timeout(300)
    star = s.page.evaluate(
        "document.getElementById('centile').data.find(t => t.name === 'highlighted subject')")
    assert len(star["x"]) == 1
    assert star["hovertext"][0].startswith("&lt;script&gt;")
    assert s.page.inner_text("#highlight-status") == "shown as a star"
    assert s.dialogs == []
    assert s.errors == []


def test_dashboard_finding_and_level_selectors(dashboard_page):
    s = dashboard_page
    s.page.select_option("#f-sex", "all")
    s.page.select_option("#f-age", "all")
    s.page.select_option("#f-measure", "dural_sac_area_mm2")
    s.page.select_option("#f-finding", "foraminal_narrowing")
    s.page.wait_for_timeout(300)
    title = s.page.evaluate("document.getElementById('prev').layout.title.text")
    assert "foraminal narrowing" in title
    assert "foraminal_height_mm" in s.page.inner_text("#finding-def")
    s.page.select_option("#f-level", "L1-L2")
    s.page.wait_for_timeout(300)
    title = s.page.evaluate("document.getElementById('centile').layout.title.text")
    assert "L1-L2" in title
    assert s.errors == []


def test_dashboard_from_stats_only_explains_missing_panels(browser, tmp_path):
    tab, _ = make_cohort(150, seed=2)
    corr, models = fake_stats(tab)
    out = cohort_dashboard({"correlations": corr, "models": models}, tmp_path / "s.html")
    s = Session(browser, out)
    assert s.errors == [] and s.external_requests() == []
    assert s.n_traces_drawn("corr") > 0 and s.n_traces_drawn("forest") > 0
    msg = s.page.evaluate("document.getElementById('prev').layout.annotations[0].text")
    assert "--table" in msg
    s.page.close()


def test_shared_plotly_reports_are_small_portable_and_render(browser, phantom, tmp_path):
    import shutil

    from plotly.offline import get_plotlyjs

    image, seg, lev, _ = phantom
    root = tmp_path / "batch"
    page_path = root / "scans" / "s1" / "report.html"
    page_path.parent.mkdir(parents=True)
    inline = subject_report(image, seg, lev, subject_table(), tmp_path / "inline.html",
                            provenance=PROV)
    subject_report(image, seg, lev, subject_table(), page_path, provenance=PROV,
                   plotly_js=root / "assets")
    shared_js = list((root / "assets").glob("plotly-*.min.js"))
    assert len(shared_js) == 1 and shared_js[0].read_text("utf-8") == get_plotlyjs()
    # The page carries everything except plotly.js.
    saved = inline.stat().st_size - page_path.stat().st_size
    assert abs(saved - len(get_plotlyjs().encode())) < 0.01 * saved
    # Moved as a whole, the folder still works: the page refers to plotly.js relatively.
    moved = tmp_path / "elsewhere"
    shutil.move(root, moved)
    s = Session(browser, moved / "scans" / "s1" / "report.html")
    assert s.errors == []
    assert [u for u in s.external_requests() if not u.endswith(shared_js[0].name)] == []
    assert any(u.endswith(shared_js[0].name) for u in s.requests)
    for fid in s.figure_ids():
        assert s.n_traces_drawn(fid) > 0, fid
    s.page.close()
