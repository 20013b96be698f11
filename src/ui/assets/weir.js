// weir's UI script. One EventSource on the page's stream (/v1/stream, filtered as the
// page says) turns each update into a refresh of the parts that show it: an element
// with data-live="run event" and data-src="<fragment url>" is fetched again (by htmx)
// when a matching update arrives — at most one request in flight per part, and a last
// refresh after the final update, so nothing polls and nothing is missed.
(function () {
  "use strict";
  var parts = [];
  var kinds = { "run.updated": "run", "event.received": "event", "rollout.changed": "rollout", "function.deployed": "function" };

  // Parts that arrive later (in a swapped fragment) are refreshed once as they are
  // registered, so that updates sent before they existed are not missed.
  function register(root, late) {
    var found = root.matches && root.matches("[data-live]") ? [root] : [];
    root.querySelectorAll("[data-live]").forEach(function (el) { found.push(el); });
    found.forEach(function (el) {
      if (el._weir) return;
      el._weir = { kinds: el.dataset.live.split(/\s+/), run: el.dataset.liveRun, busy: false, dirty: false, timer: null };
      parts.push(el);
      if (late) refresh(el);
    });
  }

  function refresh(el) {
    var s = el._weir;
    if (!document.body.contains(el)) return;
    if (s.busy) { s.dirty = true; return; }
    if (s.timer) return;
    s.timer = setTimeout(function () {
      s.timer = null; s.busy = true; s.dirty = false;
      var open = [], shut = [];
      el.querySelectorAll("details[id]").forEach(function (d) { (d.open ? open : shut).push(d.id); });
      htmx.ajax("GET", el.dataset.src, { target: el, swap: "innerHTML" }).then(function () {
        open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
        shut.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = false; });
      }).finally(function () {
        s.busy = false;
        document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
        if (s.dirty) refresh(el);
      });
    }, 80);
  }

  // A deploy (weir dev reloading a saved file, say) is announced on whatever page is open.
  function notice(data) {
    var n = document.getElementById("notice");
    if (!n) {
      n = document.createElement("div");
      n.id = "notice"; n.className = "notice"; n.setAttribute("role", "status");
      document.body.appendChild(n);
    }
    n.textContent = "";
    var a = document.createElement("a");
    a.href = "/functions/" + encodeURIComponent(data.function_id);
    a.textContent = data.function_id + " v" + data.version;
    n.appendChild(a);
    n.appendChild(document.createTextNode(" deployed; new runs take it unless a rollout says otherwise"));
  }

  function onUpdate(kind, data) {
    if (kind === "function" && data) notice(data);
    parts.forEach(function (el) {
      var s = el._weir;
      if (s.kinds.indexOf(kind) < 0) return;
      if (kind === "run" && s.run && data && data.run_id !== s.run) return;
      refresh(el);
    });
  }

  function connect(url) {
    var es = new EventSource(url);
    var everConnected = false;
    es.addEventListener("ready", function () {
      document.body.dataset.live = "on";
      // After a reconnect, updates may have been missed: refresh everything once.
      if (everConnected) parts.forEach(refresh);
      everConnected = true;
    });
    Object.keys(kinds).forEach(function (name) {
      es.addEventListener(name, function (m) {
        var data = null;
        try { data = JSON.parse(m.data); } catch (e) { /* keep null */ }
        onUpdate(kinds[name], data);
      });
    });
    es.addEventListener("lagged", function () { parts.forEach(refresh); });
    es.onerror = function () { document.body.dataset.live = "off"; };
  }

  function openStep() {
    var h = decodeURIComponent(location.hash || "");
    if (h.indexOf("#step-") !== 0) return;
    var d = document.getElementById(h.slice(1));
    if (d && d.tagName === "DETAILS") { d.open = true; d.scrollIntoView({ block: "start" }); }
  }

  function checkJson(text) {
    var v = JSON.parse(text);
    if (typeof v !== "object" || v === null) throw new Error("an event is a JSON object (or an array of them)");
    return v;
  }

  document.addEventListener("DOMContentLoaded", function () {
    register(document);
    var s = document.querySelector("[data-stream]");
    if (s && window.EventSource) connect(s.dataset.stream);
    openStep();
    window.addEventListener("hashchange", openStep);

    document.querySelectorAll("form[data-json-check]").forEach(function (f) {
      var ta = f.querySelector("[name='" + f.dataset.jsonCheck + "']");
      if (!ta) return;
      ta.addEventListener("input", function () {
        try { checkJson(ta.value); ta.removeAttribute("aria-invalid"); } catch (e) { ta.setAttribute("aria-invalid", "true"); }
      });
    });

    var login = document.getElementById("login-form");
    if (login) login.addEventListener("submit", function (e) {
      e.preventDefault();
      var err = document.getElementById("login-error");
      fetch("/v1/session", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ api_key: login.api_key.value })
      }).then(function (r) {
        if (r.ok) { location.assign(login.dataset.next || "/"); return; }
        return r.json().then(function (b) { err.textContent = b.error + " (" + b.code + ")"; });
      }).catch(function (x) { err.textContent = "cannot reach weir: " + x; });
    });

    document.querySelectorAll("[data-logout]").forEach(function (b) {
      b.addEventListener("click", function () {
        fetch("/v1/session", { method: "DELETE" }).finally(function () { location.assign("/login"); });
      });
    });
  });

  document.addEventListener("htmx:load", function (e) {
    if (e.detail.elt !== document.body) register(e.detail.elt, true);
  });

  // The send form's JSON is checked before it leaves the browser.
  document.addEventListener("htmx:beforeRequest", function (e) {
    var f = e.detail.elt;
    if (!f || !f.dataset || !f.dataset.jsonCheck) return;
    var ta = f.querySelector("[name='" + f.dataset.jsonCheck + "']");
    try { checkJson(ta.value); } catch (x) {
      e.preventDefault();
      ta.setAttribute("aria-invalid", "true");
      var out = document.getElementById("send-result");
      if (out) { out.innerHTML = ""; var p = document.createElement("p"); p.className = "error"; p.textContent = "Not sent: the JSON is not valid: " + x.message; out.appendChild(p); }
    }
  });
})();
