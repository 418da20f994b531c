// Interactive curves with plotly.js (served by the dashboard itself). Data comes from the page's
// JSON twin under /api/v1/, named by the chart's data-src attribute: no inline scripts.
"use strict";

const cache = new Map();
function load(url) {
  if (!cache.has(url)) {
    cache.set(url, fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then((r) => {
      if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
      return r.json();
    }));
  }
  return cache.get(url);
}

const layout = (yTitle) => ({
  margin: { l: 60, r: 20, t: 10, b: 45 },
  xaxis: { title: { text: "iteration" }, zeroline: false },
  yaxis: { title: { text: yTitle }, zeroline: false },
  hovermode: "closest",
  showlegend: true,
  legend: { orientation: "h", y: -0.2 },
});
const config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"] };

// One trace per curve; the best checkpoint is drawn on the curve as a larger star.
function curveTrace(name, iterations, values, bestIteration) {
  const symbols = iterations.map((it) => (it === bestIteration ? "star" : "circle"));
  const sizes = iterations.map((it) => (it === bestIteration ? 16 : 6));
  return {
    type: "scatter", mode: "lines+markers", name, x: iterations, y: values,
    marker: { symbol: symbols, size: sizes }, connectgaps: false,
    hovertemplate: `${name.replace(/%/g, "%%")}<br>iteration %{x}<br>value %{y}<extra></extra>`,
  };
}

const draw = {
  "run-scores": (el, data) => {
    const traces = data.curves.map((c) =>
      curveTrace(`${c.criterion} / ${c.dataset}`, c.iterations, c.values, c.best ? c.best.iteration : null));
    return Plotly.newPlot(el, traces, layout("score"), config);
  },
  "run-loss": (el, data) => {
    const t = data.training;
    return Plotly.newPlot(el, [curveTrace("training loss", t.iterations, t.loss, null)], layout("loss"), config);
  },
  compare: (el, data) => {
    const curve = data.curves.find((c) => c.criterion === el.dataset.criterion);
    const traces = (curve ? curve.series : []).map((s) =>
      curveTrace(`${s.run} / ${s.dataset}`, s.iterations, s.values, null));
    return Plotly.newPlot(el, traces, layout(el.dataset.criterion), config);
  },
};

document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-chart]")) {
    const kind = el.dataset.chart;
    load(el.dataset.src)
      .then((data) => draw[kind](el, data))
      .then(() => { el.dataset.ready = "true"; })
      .catch((error) => {
        el.textContent = `The chart could not be drawn: ${error.message}`;
        el.dataset.ready = "error";
      });
  }
});
