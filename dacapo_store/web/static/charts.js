// Interactive curves with plotly.js (served by the dashboard itself). Data comes from the page's
// JSON twin under /api/v1/, named by the chart's data-src attribute: no inline scripts.
//
// Nothing here may reach past this server: the modebar holds only the buttons listed below (no
// "Share chart", no Chart Studio, no plotly logo), and every registry string that goes into a
// chart is escaped first, since plotly renders a subset of HTML in names, titles and hover text.
"use strict";

const MAX_TRACES = 12; // lines a chart shows at first; its legend holds the rest
const BUTTONS = ["toImage", "zoom2d", "pan2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "resetScale2d"];
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const DASHES = ["solid", "dot", "dash", "longdash", "dashdot", "longdashdot"];
const config = {
  displaylogo: false,
  responsive: true,
  showSendToCloud: false,
  showEditInChartStudio: false,
  showLink: false,
  modeBarButtons: [BUTTONS],
  toImageButtonOptions: { format: "png", filename: "dacapo-store-chart" },
};

// Registry text as plotly text: its markup is shown as characters, never rendered.
function esc(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

const cache = new Map();
function load(url, fresh) {
  if (fresh || !cache.has(url)) {
    // "no-cache": the browser asks again with the ETag it has; a 304 costs no body
    cache.set(url, fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-cache" }).then((r) => {
      if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
      return r.json();
    }));
  }
  return cache.get(url);
}

const dark = window.matchMedia("(prefers-color-scheme: dark)");
function theme() {
  const css = getComputedStyle(document.documentElement);
  const fg = css.getPropertyValue("--fg").trim() || "#1d2330";
  const grid = css.getPropertyValue("--line").trim() || "#e3e6eb";
  return {
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: fg },
    "xaxis.gridcolor": grid,
    "yaxis.gridcolor": grid,
  };
}

// The legend sits under the plot, in the figure's own coordinates, so that it never covers the
// axis title whatever its length; a long one scrolls.
function layout(yTitle, legendRows) {
  const t = theme();
  const legend = 20 * Math.min(legendRows, 8) + 8;
  return {
    height: 230 + legend,
    margin: { l: 55, r: 10, t: 10, b: 40 + legend },
    xaxis: { zeroline: false, gridcolor: t["xaxis.gridcolor"] }, // iterations: the figure's caption says so
    yaxis: { title: { text: esc(yTitle) }, zeroline: false, gridcolor: t["yaxis.gridcolor"] },
    hovermode: "closest",
    showlegend: true,
    legend: { orientation: "h", yref: "container", y: 0, yanchor: "bottom", x: 0, font: { size: 11 } },
    paper_bgcolor: t.paper_bgcolor,
    plot_bgcolor: t.plot_bgcolor,
    font: t.font,
    uirevision: "keep", // a live update keeps the user's zoom and legend choices
  };
}

// One line per series; the best checkpoint is drawn on it as a larger star. `label` is short (the
// legend), `full` the whole names (hover).
function curveTrace(label, full, iterations, values, bestIteration, color, dash) {
  const symbols = iterations.map((it) => (it === bestIteration ? "star" : "circle"));
  const sizes = iterations.map((it) => (it === bestIteration ? 14 : 6));
  return {
    type: "scatter", mode: "lines+markers", name: esc(label), meta: esc(full), x: iterations, y: values,
    marker: { symbol: symbols, size: sizes, color }, line: { color, dash }, connectgaps: false,
    hovertemplate: "%{meta}<br>iteration %{x}<br>value %{y}<extra></extra>",
  };
}

// Past MAX_TRACES, the rest start hidden ("legendonly": one click on the legend shows one) and a
// button under the chart shows or hides them all.
function capped(el, traces) {
  traces.forEach((t, i) => { if (i >= MAX_TRACES) t.visible = "legendonly"; });
  let button = el.parentElement.querySelector("button.more");
  if (traces.length > MAX_TRACES && !button) {
    button = document.createElement("button");
    button.type = "button";
    button.className = "more";
    el.after(button);
    button.dataset.all = "false";
    button.textContent = `Show all ${traces.length} lines`;
    button.addEventListener("click", () => {
      const all = button.dataset.all !== "true";
      const visible = el.data.map((_, i) => (all || i < MAX_TRACES ? true : "legendonly"));
      window.Plotly.restyle(el, { visible });
      button.dataset.all = String(all);
      button.textContent = all ? `Show the first ${MAX_TRACES} lines` : `Show all ${el.data.length} lines`;
    });
  }
  return traces;
}

const draw = {
  "run-metric": (el, data) => {
    const chosen = new Set(data.picker.chosen);
    const info = data.picker.criteria;
    const labels = data.labels.datasets;
    const datasets = Object.keys(labels);
    const channels = [...new Set(data.curves.map((c) => (info[c.criterion] || {}).channel || ""))].sort();
    const curves = data.curves
      .filter((c) => chosen.has(c.criterion) && info[c.criterion].metric === el.dataset.metric)
      .sort((a, b) => (a.criterion < b.criterion ? -1 : a.criterion > b.criterion ? 1 : a.dataset < b.dataset ? -1 : 1));
    const mixed = curves.some((c) => info[c.criterion].channel !== null);
    const traces = curves.map((c) => {
      const channel = info[c.criterion].channel;
      // a line is named by what tells it apart here: its channel (or criterion), its dataset
      const who = channel !== null ? channel : mixed || datasets.length < 2 ? c.criterion : null;
      const label = [who, datasets.length > 1 ? labels[c.dataset] : null].filter((x) => x !== null).join(" · ");
      return curveTrace(label, `${c.criterion} on ${c.dataset}`, c.iterations, c.values, c.best ? c.best.iteration : null,
        COLORS[channels.indexOf(channel || "") % COLORS.length], DASHES[datasets.indexOf(c.dataset) % DASHES.length]);
    });
    return [capped(el, traces), layout(el.dataset.metric, Math.ceil(traces.length / 2))];
  },
  "run-loss": (el, data) => {
    const t = data.training;
    return [[curveTrace("training loss", "training loss", t.iterations, t.loss, null, COLORS[0], "solid")], layout("loss", 1)];
  },
  compare: (el, data) => {
    const curve = data.curves.find((c) => c.criterion === el.dataset.criterion);
    const runs = data.runs;
    const labels = data.labels;
    const datasets = Object.keys(labels.datasets);
    const series = (curve ? curve.series : []).slice().sort((a, b) =>
      runs.indexOf(a.run) - runs.indexOf(b.run) || (a.dataset < b.dataset ? -1 : 1));
    const traces = series.map((s) => curveTrace(`${labels.runs[s.run]} · ${labels.datasets[s.dataset]}`,
      `${s.run} on ${s.dataset}`, s.iterations, s.values, null,
      COLORS[runs.indexOf(s.run) % COLORS.length], DASHES[datasets.indexOf(s.dataset) % DASHES.length]));
    return [capped(el, traces), layout(el.dataset.criterion, traces.length)];
  },
};

function render(el, fresh) {
  return load(el.dataset.src, fresh)
    .then((data) => {
      const [traces, lay] = draw[el.dataset.chart](el, data);
      return window.Plotly.react(el, traces, lay, config);
    })
    .then(() => { el.dataset.ready = "true"; })
    .catch((error) => {
      el.textContent = `The chart could not be drawn: ${error.message}`;
      el.dataset.ready = "error";
    });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-chart]")) render(el, false);
});
// live.js: the registry changed; charts read their data again (a 304 when theirs did not change)
document.addEventListener("dacapo:changed", () => {
  const fresh = new Set();
  for (const el of document.querySelectorAll("[data-chart]")) {
    render(el, !fresh.has(el.dataset.src));
    fresh.add(el.dataset.src);
  }
});
dark.addEventListener("change", () => {
  const t = theme();
  for (const el of document.querySelectorAll("[data-chart][data-ready=true]")) window.Plotly.relayout(el, t);
});
