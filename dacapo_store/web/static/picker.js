// The criterion picker (macros.html): a metric's or a channel's box ticks its whole row or
// column, and the choice goes into the URL compactly (metric=dice for a whole row). Without
// JavaScript the form still works: it sends one criterion= per ticked box.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-picker]")) {
    const boxes = [...form.querySelectorAll("input[name=criterion]")];
    const toggles = [...form.querySelectorAll("input[data-toggle]")];
    const group = (t) => boxes.filter((b) => b.dataset[t.dataset.toggle] === t.value);
    const sync = () => {
      for (const t of toggles) {
        const g = group(t);
        t.checked = g.length > 0 && g.every((b) => b.checked);
        t.indeterminate = !t.checked && g.some((b) => b.checked);
      }
    };
    for (const t of toggles) {
      t.addEventListener("change", () => {
        for (const b of group(t)) b.checked = t.checked;
        sync();
      });
    }
    for (const b of boxes) b.addEventListener("change", sync);
    sync();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const params = new URLSearchParams();
      for (const hidden of form.querySelectorAll("input[type=hidden]")) params.append(hidden.name, hidden.value);
      const rows = new Map();
      for (const b of boxes) {
        if (!rows.has(b.dataset.metric)) rows.set(b.dataset.metric, []);
        rows.get(b.dataset.metric).push(b);
      }
      for (const [metric, row] of rows) {
        if (row.length > 1 && row.every((b) => b.checked)) params.append("metric", metric);
        else for (const b of row) if (b.checked) params.append("criterion", b.value);
      }
      const query = params.toString();
      location.assign(location.pathname + (query ? `?${query}` : ""));
    });
  }
});
