// pg_hatchet dashboard: live refresh over server-sent events. The server says "changed" (at most once a second);
// the page re-fetches itself and swaps every element marked data-live (by id). No framework, no other origin.
(function () {
  "use strict";
  var busy = false, again = false;
  function stamp(text) {
    var s = document.getElementById("live-status");
    if (s) { s.textContent = text; }
  }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) { return; }
        var doc = new DOMParser().parseFromString(text, "text/html");
        var parts = document.querySelectorAll("[data-live]");
        for (var i = 0; i < parts.length; i++) {
          var fresh = doc.getElementById(parts[i].id);
          if (fresh) { parts[i].replaceWith(document.importNode(fresh, true)); }
        }
        document.body.setAttribute("data-refreshed", String(Date.now()));
        var gen = doc.body && doc.body.getAttribute("data-generation");
        if (gen) { document.body.setAttribute("data-generation", gen); }
        stamp("live · updated " + new Date().toLocaleTimeString());
      })
      .catch(function () { stamp("live · update failed"); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }
  // One feed per open page, closed when the page goes away: a browser gives a host only a few connections, and a
  // feed left open by a page in the back-forward cache would hold one.
  var source = null;
  function open() {
    if (source || !window.EventSource || !document.querySelector("[data-live]")) { return; }
    // The generation the page was rendered at: the server answers "changed" at once if anything changed since.
    var since = document.body.getAttribute("data-generation") || "0";
    source = new EventSource("/live?since=" + encodeURIComponent(since));
    source.addEventListener("open", function () { stamp("live"); });
    source.addEventListener("changed", refresh);
    source.addEventListener("error", function () { stamp("live · reconnecting"); });
  }
  function close() {
    if (source) { source.close(); source = null; }
  }
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", function (e) {
    open();
    if (e.persisted) { refresh(); }
  });
  open();
  // Forms marked data-confirm ask first.
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  });
})();
