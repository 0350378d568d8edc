/* tierdesk admin: small enhancements over server-rendered pages (they work without it, except charts).
 * - forms and buttons with data-confirm ask first;
 * - the mapping editor gets line numbers, the error line marked, "go to line", Ctrl+Enter to check;
 * - <script type="application/json" class="chart-data"> blocks become uPlot charts (the tables on
 *   each page carry the same numbers).
 */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message = (submitter && submitter.dataset.confirm) || event.target.dataset.confirm;
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  // -- the mapping editor ------------------------------------------------------------------------
  var text = document.getElementById("mapping-text");
  var gutter = document.getElementById("gutter");
  var errorLine = text ? parseInt(text.dataset.errorLine || "0", 10) : 0;

  function renderGutter() {
    if (!text || !gutter) return;
    var count = text.value.split("\n").length;
    var fragment = document.createDocumentFragment();
    for (var n = 1; n <= count; n++) {
      if (n === errorLine) {
        var mark = document.createElement("span");
        mark.className = "error-line";
        mark.textContent = String(n);
        fragment.appendChild(mark);
        fragment.appendChild(document.createTextNode("\n"));
      } else {
        fragment.appendChild(document.createTextNode(n + "\n"));
      }
    }
    gutter.textContent = "";
    gutter.appendChild(fragment);
    gutter.scrollTop = text.scrollTop;
  }

  function goToLine(line) {
    if (!text || !line) return;
    var lines = text.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    var end = start + (lines[line - 1] || "").length;
    text.focus();
    text.setSelectionRange(start, end);
    var lineHeight = parseFloat(window.getComputedStyle(text).lineHeight) || 18;
    text.scrollTop = Math.max(0, (line - 6) * lineHeight);
    if (gutter) gutter.scrollTop = text.scrollTop;
  }

  if (text) {
    renderGutter();
    text.addEventListener("input", renderGutter);
    text.addEventListener("scroll", function () {
      if (gutter) gutter.scrollTop = text.scrollTop;
    });
    text.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
        event.preventDefault();
        var check = document.getElementById("check-button");
        if (check) check.click();
      }
    });
    if (errorLine) goToLine(errorLine);
  }
  document.querySelectorAll("[data-goto-line]").forEach(function (button) {
    button.addEventListener("click", function () {
      goToLine(parseInt(button.dataset.gotoLine, 10));
    });
  });

  // -- charts --------------------------------------------------------------------------------------
  if (typeof uPlot === "undefined") return;
  var palette = ["#1f5fbf", "#e07b00", "#2e9e5b", "#b3261e", "#7b4fc9", "#008b8b", "#a35d00", "#5b6575"];
  var plots = [];

  function barsChart(spec, width) {
    var n = spec.categories.length;
    var xs = spec.categories.map(function (_, i) { return i; });
    var many = spec.series.length > 1;
    return {
      opts: {
        width: width,
        height: 240,
        scales: {
          x: { time: false, range: function () { return [-0.5, Math.max(0.5, n - 0.5)]; } },
          y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.12 : 1]; } }
        },
        axes: [
          {
            splits: function () { return xs; },
            values: function (u, splits) {
              return splits.map(function (v) { return spec.categories[v] === undefined ? "" : spec.categories[v]; });
            },
            grid: { show: false }
          },
          { label: spec.unit, size: 56 }
        ],
        series: [{ label: "" }].concat(spec.series.map(function (s, i) {
          return {
            label: s.label,
            stroke: palette[i % palette.length],
            fill: palette[i % palette.length] + "cc",
            width: 1,
            points: { show: false },
            paths: uPlot.paths.bars({ size: [many ? 0.38 : 0.6, 90], align: many ? (i === 0 ? -1 : 1) : 0 })
          };
        })),
        cursor: { drag: { x: false, y: false }, points: { show: false } },
        legend: { live: false }
      },
      data: [xs].concat(spec.series.map(function (s) { return s.values; }))
    };
  }

  function linesChart(spec, width) {
    return {
      opts: {
        width: width,
        height: 280,
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
        axes: [{}, { label: spec.unit, size: 56 }],
        series: [{ label: "day" }].concat(spec.series.map(function (s, i) {
          return { label: s.label, stroke: palette[i % palette.length], width: 2, points: { show: spec.x.length < 40 } };
        }))
      },
      data: [spec.x].concat(spec.series.map(function (s) { return s.values; }))
    };
  }

  document.querySelectorAll("script.chart-data").forEach(function (node) {
    var target = document.getElementById(node.dataset.target);
    if (!target) return;
    var spec = JSON.parse(node.textContent);
    var width = Math.max(280, target.clientWidth || 600);
    var built = spec.type === "bars" ? barsChart(spec, width) : linesChart(spec, width);
    plots.push({ plot: new uPlot(built.opts, built.data, target), target: target, height: built.opts.height });
  });

  var resizing = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizing);
    resizing = window.setTimeout(function () {
      plots.forEach(function (p) {
        p.plot.setSize({ width: Math.max(280, p.target.clientWidth), height: p.height });
      });
    }, 150);
  });
})();
