// Draws every chart of the page: a <div data-figure="ID"> is drawn from the JSON figure in
// <script type="application/json" id="ID"> (built by orchestration/web/charts.py, numbers as
// exact decimal strings) with the plotly.js this server serves itself.
(function () {
  "use strict";
  function draw() {
    document.querySelectorAll("[data-figure]").forEach(function (target) {
      var source = document.getElementById(target.getAttribute("data-figure"));
      if (!source || typeof Plotly === "undefined") { return; }
      var figure = JSON.parse(source.textContent);
      Plotly.newPlot(target, figure.data, figure.layout, figure.config || {});
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
