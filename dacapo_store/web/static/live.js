// Live pages: every few seconds (data-live-every on <body>, in ms) an open page asks the server
// whether it changed, naming the version it shows (If-None-Match: its ETag). Unchanged: a 304
// without a body, nothing to do. Changed: the page's [data-live] parts are replaced in place
// (ticked boxes kept) and the charts read their data again. A hidden tab does not ask.
"use strict";
(() => {
  const every = Number(document.body.dataset.liveEvery || 0);
  const parts = () => document.querySelectorAll("[data-live]");
  if (!every || parts().length === 0) return;
  const meta = document.querySelector('meta[name="dacapo-etag"]');
  let etag = meta ? meta.content : null;
  let busy = false;

  async function check() {
    if (busy || document.hidden || !etag) return;
    busy = true;
    try {
      const response = await fetch(location.href, {
        headers: { Accept: "text/html", "If-None-Match": etag },
        cache: "no-store",
        credentials: "same-origin",
      });
      if (response.status !== 200) return; // 304: unchanged; anything else: ask again later
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.querySelector('meta[name="dacapo-etag"]');
      etag = response.headers.get("ETag") || (fresh ? fresh.content : etag);
      const ticked = new Set([...document.querySelectorAll("input[type=checkbox][name=runs]:checked")].map((i) => i.value));
      for (const old of parts()) {
        const found = old.id ? doc.getElementById(old.id) : null;
        if (found) old.replaceWith(document.importNode(found, true));
      }
      for (const box of document.querySelectorAll("input[type=checkbox][name=runs]")) box.checked = ticked.has(box.value);
      document.title = doc.title;
      document.dispatchEvent(new CustomEvent("dacapo:changed"));
    } catch (error) {
      // the server is away for a moment: ask again later
    } finally {
      busy = false;
    }
  }

  setInterval(check, every);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) check(); });
})();
