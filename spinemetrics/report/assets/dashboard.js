/* spinemetrics cohort dashboard: draws pre-aggregated data (SM_DATA) with plotly.js.
   Every count in SM_DATA is split by sex x age group, so the filters only *sum* counts here:
   no subject-level data is needed in the browser (except a small random sample of points). */
(function () {
  "use strict";
  var D = SM_DATA;
  var el = function (id) { return document.getElementById(id); };
  var CFG = SM_CONFIG;
  var SEV_SCALE = [[0, "#fff7ec"], [0.25, "#fdd49e"], [0.5, "#fc8d59"], [0.75, "#d7301f"], [1, "#7f0000"]];

  function escText(s) {
    // Plotly renders a few HTML-like tags in labels; escape so ids stay literal text.
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }
  function state() {
    return {
      measure: el("f-measure").value,
      sex: el("f-sex").value,
      age: el("f-age").value,
      finding: el("f-finding") ? el("f-finding").value : null,
      level: el("f-level").value,
      highlight: el("f-highlight").value.trim()
    };
  }
  function selected(st) {
    var sexes = [], ages = [];
    for (var s = 0; s < D.sexes.length; s++) { if (st.sex === "all" || D.sexes[s] === st.sex) { sexes.push(s); } }
    for (var a = 0; a < D.age_groups.length; a++) { if (st.age === "all" || D.age_groups[a] === st.age) { ages.push(a); } }
    return { sexes: sexes, ages: ages };
  }
  function sumGroups(arr, sel) {
    // arr[sex][age] -> number, or arr[sex][age][bins] -> array
    var out = null;
    sel.sexes.forEach(function (s) {
      sel.ages.forEach(function (a) {
        var v = arr[s][a];
        if (Array.isArray(v)) {
          if (out === null) { out = v.map(function () { return 0; }); }
          for (var i = 0; i < v.length; i++) { out[i] += v[i]; }
        } else {
          out = (out === null ? 0 : out) + v;
        }
      });
    });
    return out === null ? 0 : out;
  }
  function histQuantile(edges, counts, q) {
    var n = counts.reduce(function (x, y) { return x + y; }, 0);
    if (n === 0) { return null; }
    var target = q * n, acc = 0;
    for (var i = 0; i < counts.length; i++) {
      if (acc + counts[i] >= target && counts[i] > 0) {
        var f = (target - acc) / counts[i];
        return edges[i] + f * (edges[i + 1] - edges[i]);
      }
      acc += counts[i];
    }
    return edges[edges.length - 1];
  }
  function measureInfo(name) {
    for (var i = 0; i < D.measures.length; i++) { if (D.measures[i].name === name) { return D.measures[i]; } }
    return { name: name, title: name, unit: "" };
  }
  function emptyFig(div, msg) {
    Plotly.react(div, [], {
      xaxis: { visible: false }, yaxis: { visible: false }, height: 260,
      annotations: [{ text: escText(msg), showarrow: false, x: 0.5, y: 0.5, xref: "paper", yref: "paper",
        font: { size: 14, color: "#666" } }],
      margin: { l: 20, r: 20, t: 20, b: 20 }
    }, CFG);
  }
  var baseLayout = function (title, extra) {
    var lay = { title: { text: title, font: { size: 15 }, x: 0, xanchor: "left" },
      margin: { l: 70, r: 20, t: 46, b: 50 }, height: 380, paper_bgcolor: "#fff",
      plot_bgcolor: "#fff", font: { size: 12 } };
    for (var k in extra) { if (Object.prototype.hasOwnProperty.call(extra, k)) { lay[k] = extra[k]; } }
    return lay;
  };

  /* ---------------------------------------------------------------- distributions */
  function renderDist(st, sel) {
    var h = D.hist[st.measure];
    var info = measureInfo(st.measure);
    if (!h) {
      emptyFig("dist", D.meta.n_rows ? "No values for this measure" :
        "No measurement table given: distributions need the cohort table (--table)");
      emptyFig("dist-hist", ""); return;
    }
    var x = [], q1 = [], med = [], q3 = [], lo = [], hi = [], mean = [], ns = [], lines = [];
    h.levels.forEach(function (lv, i) {
      var c = sumGroups(h.counts[i], sel);
      var n = c.reduce(function (a, b) { return a + b; }, 0);
      if (!n) { return; }
      var s = sumGroups(h.sum[i], sel);
      x.push(escText(lv)); ns.push(n);
      lo.push(histQuantile(h.edges, c, 0.05)); q1.push(histQuantile(h.edges, c, 0.25));
      med.push(histQuantile(h.edges, c, 0.5)); q3.push(histQuantile(h.edges, c, 0.75));
      hi.push(histQuantile(h.edges, c, 0.95)); mean.push(s / n);
      var centres = [], dens = [];
      for (var b = 0; b < c.length; b++) {
        centres.push((h.edges[b] + h.edges[b + 1]) / 2); dens.push(100 * c[b] / n);
      }
      lines.push({ type: "scatter", mode: "lines", line: { shape: "spline", width: 2 }, x: centres, y: dens,
        name: escText(lv), hovertemplate: escText(lv) + ": %{y:.1f} % at %{x:.3g}<extra></extra>" });
    });
    if (!x.length) { emptyFig("dist", "No subject in the selected group"); emptyFig("dist-hist", ""); return; }
    var unit = info.unit ? " (" + info.unit + ")" : "";
    Plotly.react("dist", [{
      type: "box", x: x, q1: q1, median: med, q3: q3, lowerfence: lo, upperfence: hi, mean: mean,
      name: info.title, marker: { color: "#0b5fa5" }, fillcolor: "rgba(11,95,165,0.25)",
      hoverinfo: "y", boxpoints: false
    }], baseLayout(escText(info.title) + " by level — box 25th–75th, whiskers 5th–95th centile",
      { yaxis: { title: { text: escText(info.title + unit) }, zeroline: false },
        xaxis: { type: "category", title: { text: "level" } },
        annotations: x.map(function (lv, i) {
          return { x: lv, y: 1.0, yref: "paper", yanchor: "bottom", text: "n=" + ns[i], showarrow: false,
            font: { size: 10, color: "#666" } };
        }) }), CFG);
    Plotly.react("dist-hist", lines, baseLayout("Distribution per level (% of subjects per bin)",
      { xaxis: { title: { text: escText(info.title + unit) } }, yaxis: { title: { text: "% of subjects" } },
        legend: { orientation: "h", y: -0.2 } }), CFG);
  }

  /* ---------------------------------------------------------------- correlations */
  function renderCorr(st) {
    var c = D.corr && D.corr[st.measure];
    if (!c) { emptyFig("corr", "No correlation table for this measure (run spinemetrics stats)"); return; }
    var side = Object.keys(c)[0];
    var m = c[side];
    // Blank diagonal (rho = 1 by definition) so the colours show the between-level values.
    var z = m.rho.map(function (row, i) {
      return row.map(function (r, j) { return i === j ? null : r; });
    });
    var text = m.rho.map(function (row, i) {
      return row.map(function (r, j) {
        if (r === null || i === j) { return ""; }
        var q = m.q[i][j];
        return r.toFixed(2) + (q !== null && q < 0.05 && i !== j ? "*" : "");
      });
    });
    Plotly.react("corr", [{
      type: "heatmap", z: z, x: m.levels.map(escText), y: m.levels.map(escText), zmin: -1, zmax: 1,
      colorscale: "RdBu",
      reversescale: true, text: text, texttemplate: "%{text}", hovertemplate:
        "%{y} vs %{x}: rho %{z:.2f}<extra></extra>", colorbar: { title: { text: "rho" } }
    }], baseLayout("Spearman correlation between levels" + (side ? " (side " + escText(side) + ")" : "") +
      " — * q < 0.05", { yaxis: { autorange: "reversed", type: "category" }, xaxis: { type: "category" },
        height: 400 }), CFG);
  }

  /* ---------------------------------------------------------------- neighbour odds */
  function orCI(n11, n10, n01, n00) {
    var a = n11, b = n10, c = n01, d = n00;
    if (a + b === 0 || c + d === 0 || a + c === 0 || b + d === 0) { return null; }
    if (Math.min(a, b, c, d) === 0) { a += 0.5; b += 0.5; c += 0.5; d += 0.5; }
    var lor = Math.log(a * d / (b * c)), se = Math.sqrt(1 / a + 1 / b + 1 / c + 1 / d);
    return [Math.exp(lor), Math.exp(lor - 1.96 * se), Math.exp(lor + 1.96 * se)];
  }
  function renderOdds(st, sel) {
    var f = D.findings[st.finding];
    if (!f || !f.pairs.length) { emptyFig("odds", "No neighbouring levels assessed for this finding"); return; }
    var y = [], x = [], lo = [], hi = [], txt = [];
    f.pairs.forEach(function (p) {
      var n11 = sumGroups(p.n11, sel), n10 = sumGroups(p.n10, sel);
      var n01 = sumGroups(p.n01, sel), n00 = sumGroups(p.n00, sel);
      var r = orCI(n11, n10, n01, n00);
      if (!r) { return; }
      y.push(escText(p.a) + " | " + escText(p.b)); x.push(r[0]); lo.push(r[0] - r[1]); hi.push(r[2] - r[0]);
      txt.push("OR " + r[0].toFixed(2) + " (95% CI " + r[1].toFixed(2) + "–" + r[2].toFixed(2) + ")<br>" +
        "both " + n11 + ", upper only " + n10 + ", lower only " + n01 + ", neither " + n00);
    });
    if (!x.length) { emptyFig("odds", "Too few cases in the selected group to estimate odds ratios"); return; }
    Plotly.react("odds", [{
      type: "scatter", mode: "markers", x: x, y: y, marker: { size: 10, color: "#d7301f", symbol: "square" },
      error_x: { type: "data", symmetric: false, array: hi, arrayminus: lo, color: "#444" },
      hovertext: txt, hoverinfo: "text", name: "odds ratio"
    }], baseLayout("Odds of " + escText(f.label.toLowerCase()) + " at a level given it at the next level",
      { xaxis: { type: "log", title: { text: "odds ratio (log scale), Woolf 95% CI" } },
        yaxis: { type: "category", autorange: "reversed" },
        shapes: [{ type: "line", x0: 1, x1: 1, y0: 0, y1: 1, yref: "paper", line: { dash: "dot", color: "#888" } }],
        margin: { l: 120, r: 20, t: 46, b: 50 } }), CFG);
  }

  /* ---------------------------------------------------------------- models */
  function renderForest(st) {
    var rows = (D.models || []).filter(function (r) {
      return r.measure === st.measure && !/intercept/i.test(r.term);
    });
    if (!rows.length) { emptyFig("forest", "No model rows for this measure (run spinemetrics stats)"); return; }
    var methods = [];
    rows.forEach(function (r) { if (methods.indexOf(r.method) < 0) { methods.push(r.method); } });
    var colors = ["#0b5fa5", "#d7301f", "#4daf4a", "#984ea3"];
    var traces = methods.map(function (m, k) {
      var rs = rows.filter(function (r) { return r.method === m; });
      return {
        type: "scatter", mode: "markers", name: escText(m), marker: { size: 9, color: colors[k % colors.length] },
        x: rs.map(function (r) { return r.estimate; }),
        y: rs.map(function (r) { return escText(r.term + (r.side ? " [" + r.side + "]" : "")); }),
        error_x: { type: "data", symmetric: false,
          array: rs.map(function (r) { return r.ci_high - r.estimate; }),
          arrayminus: rs.map(function (r) { return r.estimate - r.ci_low; }) },
        hovertext: rs.map(function (r) {
          return escText(r.term) + ": " + r.estimate.toPrecision(3) + " (" + r.ci_low.toPrecision(3) + " to " +
            r.ci_high.toPrecision(3) + "), q = " + (r.q_value === null ? "—" : r.q_value.toPrecision(2)) +
            "<br>" + escText(r.method) + ", " + r.n_subjects + " subjects, " + r.n_obs + " observations";
        }), hoverinfo: "text"
      };
    });
    var info = measureInfo(st.measure);
    Plotly.react("forest", traces, baseLayout("Model coefficients for " + escText(info.title) +
      " (95% CI; whole cohort)", { xaxis: { title: { text: "estimate" + (info.unit ? " (" + escText(info.unit) + ")" : "") },
        zeroline: true }, yaxis: { type: "category", autorange: "reversed", automargin: true },
      legend: { orientation: "h", y: -0.2 }, height: Math.max(300, 60 + 28 * rows.length) }), CFG);
  }

  /* ---------------------------------------------------------------- centiles */
  function interp(xs, ys, x) {
    var pts = [];
    for (var i = 0; i < xs.length; i++) { if (ys[i] !== null) { pts.push([xs[i], ys[i]]); } }
    if (!pts.length) { return null; }
    if (x <= pts[0][0]) { return pts[0][1]; }
    for (var k = 1; k < pts.length; k++) {
      if (x <= pts[k][0]) {
        var f = (x - pts[k - 1][0]) / (pts[k][0] - pts[k - 1][0]);
        return pts[k - 1][1] + f * (pts[k][1] - pts[k - 1][1]);
      }
    }
    return pts[pts.length - 1][1];
  }
  function renderCentile(st) {
    var c = D.centiles[st.measure];
    var info = measureInfo(st.measure);
    var key = st.sex === "F" || st.sex === "M" ? st.sex : "all";
    if (!c || !c[key] || !c[key][st.level]) {
      emptyFig("centile", "No centile curve for this measure and level (needs ages and ≥ 20 subjects per bin)");
      return;
    }
    var curves = c[key][st.level];
    var styles = { 3: "dash", 10: "dot", 25: "solid", 50: "solid", 75: "solid", 90: "dot", 97: "dash" };
    var traces = c.centiles.map(function (q, i) {
      return { type: "scatter", mode: "lines", x: c.age_mid, y: curves[i], name: "P" + q,
        line: { color: q === 50 ? "#0b5fa5" : "#7a8ca3", width: q === 50 ? 3 : 1.3, dash: styles[q] || "solid" },
        hovertemplate: "P" + q + " at %{x:.0f} y: %{y:.3g}<extra></extra>" };
    });
    var s = D.sample, vals = (s.values[st.measure] || {})[st.level];
    if (vals) {
      var p3 = curves[c.centiles.indexOf(3)], p97 = curves[c.centiles.indexOf(97)];
      var inX = [], inY = [], inT = [], outX = [], outY = [], outT = [], hiX = [], hiY = [], hiT = [];
      for (var k = 0; k < s.subject.length; k++) {
        if (vals[k] === null || s.age[k] === null) { continue; }
        if (st.sex !== "all" && s.sex[k] !== st.sex) { continue; }
        if (st.age !== "all" && ageGroupOf(s.age[k]) !== st.age) { continue; }
        var lo = interp(c.age_mid, p3, s.age[k]), hi = interp(c.age_mid, p97, s.age[k]);
        var label = escText(s.subject[k]) + "<br>age " + s.age[k].toFixed(0) + ", " + s.sex[k] + ": " + vals[k];
        if (st.highlight && s.subject[k] === st.highlight) {
          hiX.push(s.age[k]); hiY.push(vals[k]); hiT.push(label);
        } else if ((lo !== null && vals[k] < lo) || (hi !== null && vals[k] > hi)) {
          outX.push(s.age[k]); outY.push(vals[k]); outT.push(label);
        } else {
          inX.push(s.age[k]); inY.push(vals[k]); inT.push(label);
        }
      }
      traces.push({ type: "scatter", mode: "markers", x: inX, y: inY, hovertext: inT, hoverinfo: "text",
        name: "sampled subjects", marker: { size: 5, color: "rgba(60,60,60,0.35)" } });
      traces.push({ type: "scatter", mode: "markers", x: outX, y: outY, hovertext: outT, hoverinfo: "text",
        name: "outside P3–P97", marker: { size: 7, color: "#d7301f", symbol: "diamond" } });
      traces.push({ type: "scatter", mode: "markers", x: hiX, y: hiY, hovertext: hiT, hoverinfo: "text",
        name: "highlighted subject", marker: { size: 16, color: "#ffbf00", symbol: "star",
          line: { color: "#000", width: 1 } } });
    }
    var unit = info.unit ? " (" + info.unit + ")" : "";
    Plotly.react("centile", traces, baseLayout("Centile curves by age: " + escText(info.title) + " at " +
      escText(st.level) + " (" + (key === "all" ? "both sexes" : key === "F" ? "women" : "men") + ")",
      { xaxis: { title: { text: "age (years)" } }, yaxis: { title: { text: escText(info.title + unit) } },
        height: 430, legend: { orientation: "h", y: -0.18 } }), CFG);
    var found = el("highlight-status");
    if (found) {
      found.textContent = !st.highlight ? "" : (hiX.length ? "shown as a star" :
        "not in the plotted sample or filters");
    }
  }
  function ageGroupOf(age) {
    var edges = [40, 50, 60, 70, 80];
    var i = 0;
    while (i < edges.length && age >= edges[i]) { i++; }
    return D.age_groups[i];
  }

  /* ---------------------------------------------------------------- prevalence */
  function renderPrev(st) {
    var f = D.findings[st.finding];
    if (!f) { emptyFig("prev", "Finding not assessable in this cohort"); return; }
    var sexSel = { sexes: [], ages: [] };
    for (var s = 0; s < D.sexes.length; s++) { if (st.sex === "all" || D.sexes[s] === st.sex) { sexSel.sexes.push(s); } }
    var ages = [], agesIdx = [];
    for (var a = 0; a < D.age_groups.length; a++) {
      var tot = 0;
      f.tot.forEach(function (lv) { sexSel.sexes.forEach(function (si) { tot += lv[si][a]; }); });
      if (tot > 0) { ages.push(D.age_groups[a]); agesIdx.push(a); }
    }
    ages.push("all ages"); agesIdx.push(-1);
    var z = [], text = [];
    f.levels.forEach(function (lv, i) {
      var row = [], trow = [];
      agesIdx.forEach(function (ai) {
        var sel = { sexes: sexSel.sexes, ages: ai < 0 ? agesIdx.filter(function (v) { return v >= 0; }) : [ai] };
        var k = sumGroups(f.pos[i], sel), n = sumGroups(f.tot[i], sel);
        row.push(n ? 100 * k / n : null);
        trow.push(n ? (100 * k / n).toFixed(1) + "%<br>" + k + "/" + n : "");
      });
      z.push(row); text.push(trow);
    });
    Plotly.react("prev", [{
      type: "heatmap", z: z, x: ages, y: f.levels.map(escText), text: text, texttemplate: "%{text}", colorscale: SEV_SCALE,
      zmin: 0, hovertemplate: "%{y}, %{x}: %{z:.1f} %<extra></extra>", colorbar: { title: { text: "%" } }
    }], baseLayout("Prevalence of " + escText(f.label.toLowerCase()) + " by level and age group",
      { yaxis: { autorange: "reversed", type: "category" }, xaxis: { type: "category", title: { text: "age group" } },
        height: 420 }), CFG);
    el("finding-def").textContent = f.definition + " — " + f.source;
  }

  function renderKpi(st, sel) {
    var n = 0;
    sel.sexes.forEach(function (s) { sel.ages.forEach(function (a) { n += D.meta.group_n[s][a]; }); });
    el("kpi-selected").textContent = n.toLocaleString("en");
  }

  function levelOptions(st) {
    var sel = el("f-level");
    var h = D.hist[st.measure];
    var want = h ? h.levels : [];
    var cur = sel.value;
    if (sel.getAttribute("data-measure") !== st.measure) {
      while (sel.firstChild) { sel.removeChild(sel.firstChild); }
      want.forEach(function (lv) {
        var o = document.createElement("option"); o.value = lv; o.textContent = lv; sel.appendChild(o);
      });
      sel.setAttribute("data-measure", st.measure);
      if (want.indexOf(cur) >= 0) { sel.value = cur; } else if (want.indexOf("L4-L5") >= 0) { sel.value = "L4-L5"; }
    }
  }

  function renderAll() {
    var st = state();
    levelOptions(st);
    st = state();
    var sel = selected(st);
    renderKpi(st, sel);
    renderDist(st, sel);
    renderCorr(st);
    renderForest(st);
    renderCentile(st);
    if (st.finding) {
      renderOdds(st, sel); renderPrev(st);
    } else {
      var why = D.meta.n_rows ? "No finding rule applies to the measures of this cohort" :
        "No measurement table given: findings need the cohort table (--table)";
      emptyFig("prev", why); emptyFig("odds", "");
    }
    document.body.setAttribute("data-rendered", String(Date.now()));
  }
  ["f-measure", "f-sex", "f-age", "f-finding", "f-level"].forEach(function (id) {
    var e = el(id); if (e) { e.addEventListener("change", renderAll); }
  });
  el("f-highlight").addEventListener("input", function () { renderCentile(state()); });
  renderAll();
})();
