/* Subject report interactions: structure check boxes and overlay opacity.
   Overlay traces carry meta.structure; toggling restyles them in every image figure. */
(function () {
  "use strict";
  var FIGS = ["sagittal", "axial"];
  function overlayIndices(gd, structure) {
    var out = [];
    (gd.data || []).forEach(function (t, i) {
      if (t.meta && t.meta.role === "overlay" && (structure === null || t.meta.structure === structure)) {
        out.push(i);
      }
    });
    return out;
  }
  function eachFig(fn) {
    FIGS.forEach(function (id) {
      var gd = document.getElementById(id);
      if (gd && gd.data) { fn(gd); }
    });
  }
  function setStructure(name, on) {
    eachFig(function (gd) {
      var idx = overlayIndices(gd, name);
      if (idx.length) { Plotly.restyle(gd, { visible: on }, idx); }
    });
  }
  var boxes = document.querySelectorAll("#structure-toggles input[type=checkbox]");
  boxes.forEach(function (box) {
    box.addEventListener("change", function () {
      setStructure(box.getAttribute("data-structure"), box.checked);
    });
  });
  function setAll(on) {
    boxes.forEach(function (box) { box.checked = on; });
    eachFig(function (gd) {
      var idx = overlayIndices(gd, null);
      if (idx.length) { Plotly.restyle(gd, { visible: on }, idx); }
    });
  }
  var all = document.getElementById("tog-all");
  var none = document.getElementById("tog-none");
  if (all) { all.addEventListener("click", function () { setAll(true); }); }
  if (none) { none.addEventListener("click", function () { setAll(false); }); }
  var op = document.getElementById("overlay-opacity");
  if (op) {
    op.addEventListener("input", function () {
      var v = parseFloat(op.value);
      eachFig(function (gd) {
        var idx = overlayIndices(gd, null);
        if (idx.length) { Plotly.restyle(gd, { opacity: v }, idx); }
      });
    });
  }
})();
