// Stepwise annotator workspace: autosave with versions, time on step, keyboard-first labelling.
// No inline scripts anywhere (strict CSP): all behaviour of the queue, step and verdict pages is here.
(function () {
  "use strict";
  var DEBOUNCE_MS = 400;
  var MIN_TIME_MS = 500;
  var VERDICTS = ["valid", "invalid", "unsure"];

  // Back / forward reload the page from the server: a cached snapshot would show stale labels.
  if (window.htmx) {
    htmx.config.historyCacheSize = 0;
    htmx.config.refreshOnHistoryMiss = true;
    // Settling copies "style" by default: a style attribute set from script breaks the strict CSP.
    htmx.config.attributesToSettle = ["class", "width", "height"];
  }

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function ws() { return document.getElementById("workspace"); }
  function page() { var w = ws(); return w ? w.dataset.page : (document.getElementById("start-next-form") ? "queue" : ""); }
  function isOpen() { var w = ws(); return !!w && w.dataset.open === "1"; }
  function form() { return document.getElementById("labels-form") || document.getElementById("verdict-form"); }
  function version() { var v = document.getElementById("label-version"); return v ? v.value : "0"; }
  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"] || ""; } catch (e) { return ""; }
  }
  function textual(el) {
    if (!el || !el.tagName) return false;
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && !/^(radio|checkbox|button|submit|reset|hidden)$/.test(el.type);
  }
  function dialogOpen() { return $$("dialog").some(function (d) { return d.open; }); }
  // Typing in a field, not in one left behind by a dialog that has just closed (its focus moves back a moment
  // later: a shortcut pressed at once after Esc must not go into the picker's filter).
  function typing(el) { return textual(el) && !(el.closest && el.closest("dialog:not([open])")); }

  // ---- time on the step (only while the tab is visible) --------------------------------------------
  var clock = { acc: 0, since: null };
  function clockStart() { clock.acc = 0; clock.since = document.visibilityState === "visible" ? performance.now() : null; }
  function elapsed() { return Math.round(clock.acc + (clock.since !== null ? performance.now() - clock.since : 0)); }
  function takeElapsed() {
    var ms = elapsed();
    clock.acc = 0;
    if (clock.since !== null) clock.since = performance.now();
    return ms;
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      if (clock.since === null) clock.since = performance.now();
    } else if (clock.since !== null) {
      clock.acc += performance.now() - clock.since;
      clock.since = null;
    }
  });

  // ---- autosave -----------------------------------------------------------------------------------
  var save = { dirty: {}, timer: null, inflight: null, stopped: false };

  function setState(state, text) {
    var el = document.getElementById("save-state");
    if (!el) return;
    el.dataset.state = state;
    el.className = "save-state ss-" + state;
    el.textContent = text;
  }

  function payload(groups, ms) {
    var fd = new FormData();
    var f = form();
    groups.forEach(function (group) {
      fd.append("field", group);
      if (!f) return;
      $$("[data-group='" + group + "']", f).forEach(function (input) {
        if ((input.type === "radio" || input.type === "checkbox") && !input.checked) return;
        fd.append(input.name, input.value);
      });
    });
    fd.append("base_version", version());
    fd.append("elapsed_ms", String(ms));
    return fd;
  }

  function markDirty(group) {
    if (save.stopped || !isOpen()) return;
    save.dirty[group] = true;
    setState("pending", "saving…");
    clearTimeout(save.timer);
    save.timer = setTimeout(flush, DEBOUNCE_MS);
  }

  // Send the changed field groups (and the time spent) now; resolves once the server has answered.
  function flush(opts) {
    clearTimeout(save.timer);
    save.timer = null;
    if (save.inflight) return save.inflight.then(function () { return flush(opts); });
    var w = ws();
    var groups = Object.keys(save.dirty);
    var withTime = !!(opts && opts.time) && elapsed() >= MIN_TIME_MS;
    if (!w || !w.dataset.saveUrl || save.stopped || !isOpen() || (!groups.length && !withTime)) return Promise.resolve();
    save.dirty = {};
    var ms = takeElapsed();
    if (groups.length) setState("saving", "saving…");
    var url = w.dataset.saveUrl;
    save.inflight = htmx.ajax("POST", url, {
      source: "#save-state", target: "#save-state", swap: "outerHTML", values: payload(groups, ms)
    }).then(afterSave(groups, ms), function () {
      groups.forEach(function (g) { save.dirty[g] = true; });
      clock.acc += ms;
      setState("error", "⚠ not saved: the server did not answer — retrying on your next change");
    }).then(function () { save.inflight = null; });
    return save.inflight;
  }

  function afterSave(groups, ms) {
    return function () {
      var el = document.getElementById("save-state");
      var state = el ? el.dataset.state : "";
      if (state === "saved") { countDone(); return; }
      clock.acc += ms; // not recorded: keep it for the next save
      if (state === "conflict" || state === "lease") save.stopped = true;
    };
  }

  // Closing the tab, reloading or leaving by a link. Unsaved fields go out at once by beacon (CSRF token in
  // the body); the page that loads next re-reads the step if it was rendered before the beacon landed.
  // Time alone is kept in localStorage and sent with the step's next save: a beacon would raise the
  // label's version under a page being reloaded.
  var BEACON_KEY = "stepwise:beacon";
  var TIME_KEY = "stepwise:time";
  function stash(key, value) { try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode */ } }
  function unstash(key) {
    try { var v = JSON.parse(localStorage.getItem(key) || "null"); localStorage.removeItem(key); return v; } catch (e) { return null; }
  }
  window.addEventListener("pagehide", function () {
    var w = ws();
    if (!w || !w.dataset.saveUrl || save.stopped || !isOpen()) return;
    var groups = Object.keys(save.dirty);
    var ms = elapsed();
    if (!groups.length) {
      if (ms >= MIN_TIME_MS) stash(TIME_KEY, { url: w.dataset.saveUrl, ms: ms, at: Date.now() });
      return;
    }
    var fd = payload(groups, ms);
    fd.append("csrfmiddlewaretoken", csrf());
    fd.append("beacon", "1");
    if (navigator.sendBeacon && navigator.sendBeacon(w.dataset.saveUrl, fd)) {
      stash(BEACON_KEY, { url: w.dataset.saveUrl, version: parseInt(version(), 10) + 1, at: Date.now() });
      save.dirty = {};
    }
  });

  function recover(w) {
    var time = unstash(TIME_KEY);
    if (time && time.url === w.dataset.saveUrl && Date.now() - time.at < 3600000) clock.acc += time.ms;
    var sent = unstash(BEACON_KEY);
    if (!sent || sent.url !== w.dataset.saveUrl || Date.now() - sent.at > 10000) return;
    var tries = 0;
    (function check() {
      if (parseInt(version(), 10) >= sent.version || tries++ > 4) return;
      setTimeout(function () {
        htmx.ajax("GET", window.location.pathname, { target: "#workspace", swap: "outerHTML" }).then(check);
      }, 150 * tries);
    })();
  }

  // 409 (conflict, lease lost) and 422 (invalid) carry the save state and field errors: swap them in.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 409 || status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Leaving the step (outline, j / k) or accepting a suggestion: first send what is pending.
  document.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail.elt;
    var owner = elt && elt.closest ? elt.closest("[hx-target]") : null;  // outline links inherit it
    if (!owner || owner.getAttribute("hx-target") !== "#workspace") return;
    event.preventDefault();
    flush({ time: event.detail.verb === "get" }).then(function () { event.detail.issueRequest(true); });
  });

  // A suggestion is accepted on top of the label's current version.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-versioned")) event.detail.parameters.base_version = version();
  });

  // The outline stays on the page while step fragments replace #workspace: the step on screen is marked here
  // (its own line comes with the fragment, out of band, with its current status).
  function markCurrent() {
    var w = ws();
    if (!w || w.dataset.page !== "step") return null;
    var here = document.getElementById("outline-" + w.dataset.stepIndex);
    $$("#outline li.current").forEach(function (li) {
      if (li === here) return;
      li.classList.remove("current");
      var a = $("a", li);
      if (a) a.removeAttribute("aria-current");
    });
    if (here) {
      here.classList.add("current");
      var link = $("a", here);
      if (link) link.setAttribute("aria-current", "step");
    }
    return here;
  }

  // Outline lines: one delegated listener instead of htmx boosting each of a long run's hundreds of links at
  // page load. The request is htmx's all the same (its confirm, the flush before leaving, the pushed URL);
  // a click with a modifier key opens the link as the browser would.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("#outline a[href]");
    if (!link || !window.htmx || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    var url = new URL(link.getAttribute("href"), window.location.href).pathname;
    htmx.ajax("GET", url, { source: link, target: "#workspace", swap: "outerHTML", push: url });
  });

  // After a save: the step's new status (u untouched, d draft, c complete) on its outline line.
  document.addEventListener("stepwise:status", function (event) {
    var d = event.detail || {};
    var li = document.getElementById("outline-" + d.index);
    if (!li || !/^[udc]$/.test(d.status)) return;
    ["u", "d", "c"].forEach(function (letter) { li.classList.toggle(letter, letter === d.status); });
    var a = $("a", li);
    if (a) {
      if (d.status === "d" && d.missing) a.setAttribute("title", "missing: " + d.missing);
      else a.removeAttribute("title");
    }
    countDone();
  });

  var shown = null;
  function onWorkspace() {
    var w = ws();
    if (w === shown) return;
    shown = w;
    save.dirty = {};
    save.stopped = false;
    clearTimeout(save.timer);
    clockStart();
    if (w) recover(w);
    var current = markCurrent();
    // Scrolling reads the layout: at the next frame, which lays the page out anyway, not now (a forced layout
    // of the whole page here would hold back the first paint of the step).
    requestAnimationFrame(function () {
      if (current && current.isConnected) current.scrollIntoView({ block: "nearest" });
      var step = $(".ws-step");
      if (step && step.scrollTop) step.scrollTop = 0;
    });
    countDone();
  }
  // At the swap itself, not at the settle that follows: a key pressed in between must not be reset away.
  document.addEventListener("htmx:afterSwap", function () { onWorkspace(); markCurrent(); countDone(); });
  document.addEventListener("htmx:afterSettle", onWorkspace);

  function countDone() {
    var done = document.getElementById("steps-done");
    if (done && $("#outline")) done.textContent = $$("#outline li.c").length + " complete";
  }

  // ---- field changes ---------------------------------------------------------------------------------
  function inForm(el) { var f = el && el.form; return !!f && (f.id === "labels-form" || f.id === "verdict-form"); }

  function onChange(input) {
    var group = input.dataset.group;
    if (group === "failure_modes" && input.checked) {
      $$("input[data-group='failure_modes']", form()).forEach(function (other) {
        if (other !== input && (input.value === "none" || other.value === "none")) other.checked = false;
      });
    }
    var row = input.closest(".argrow");
    if (row && group === "argument_verdicts") {
      row.dataset.verdict = input.value;
      row.classList.toggle("has-fix", input.value === "invalid" || !!$(".fix", row).value);
    }
    var axis = input.closest("[data-axis]");
    if (axis && input.type === "radio") axis.dataset.score = input.value;
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!inForm(input) || !input.dataset.group) return;
    onChange(input);
    markDirty(input.dataset.group);
  });
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (inForm(input) && input.dataset.group && textual(input) && input.tagName !== "SELECT") markDirty(input.dataset.group);
  });

  function choose(input) {
    if (!input || input.disabled) return;
    if (input.type === "checkbox") input.checked = !input.checked;
    else input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function nextFocus(selector, from) {
    var all = $$(selector);
    var i = all.indexOf(from);
    var open = all.slice(i + 1).concat(all.slice(0, i + 1)).filter(function (el) {
      return el !== from && !(el.dataset.verdict || el.dataset.score);
    });
    var target = open[0] || from;
    if (target) target.focus();
  }

  // ---- keyboard ----------------------------------------------------------------------------------------
  var pending = "";
  var digits = "";
  var pendingTimer = null;

  function hint(text) {
    var el = document.getElementById("key-hint");
    if (!el) {
      el = document.createElement("div");
      el.id = "key-hint";
      el.setAttribute("role", "status");
      document.body.appendChild(el);
    }
    el.textContent = text;
    el.hidden = !text;
  }
  function clearPending() { pending = ""; digits = ""; clearTimeout(pendingTimer); hint(""); }
  function startPending(key, text) {
    clearPending();
    pending = key;
    hint(text);
    pendingTimer = setTimeout(function () { if (pending === "g" && digits) jump(); else clearPending(); }, 1500);
  }

  function go(selector) {
    var link = $(selector);
    if (!link) return false;
    link.click();
    return true;
  }
  function navigateTo(li) {
    var a = li && $("a", li);
    if (a) a.click();
  }
  function jump() {
    var n = parseInt(digits, 10);
    clearPending();
    if (!n) return;
    navigateTo(document.getElementById("outline-" + (n - 1)));
  }
  function nextIncomplete() {
    var items = $$("#outline li");
    var i = items.findIndex(function (li) { return li.classList.contains("current"); });
    var order = items.slice(i + 1).concat(items.slice(0, i + 1));
    var target = order.find(function (li) { return !li.classList.contains("c"); });
    if (target && !target.classList.contains("current")) navigateTo(target);
    else if (!target) toVerdict();
  }
  // The form's own submit(): a control named or with the id "submit" shadows form.submit.
  function submitForm(f) { HTMLFormElement.prototype.submit.call(f); }
  function toVerdict() {
    var w = ws();
    if (!w) return;
    if (w.dataset.page === "verdict") {
      var submit = document.getElementById("submit-form");
      flush().then(function () { if (submit) submitForm(submit); });
      return;
    }
    flush({ time: true }).then(function () { window.location.href = w.dataset.verdictUrl; });
  }

  function argumentVerdict(n) {
    var rows = $$(".argrow");
    if (!rows.length) return;
    var row = document.activeElement && document.activeElement.closest && document.activeElement.closest(".argrow");
    row = row || rows.find(function (r) { return !r.dataset.verdict; }) || rows[0];
    choose($("input[value='" + VERDICTS[n - 1] + "']", row));
    nextFocus(".argrow", row);
  }
  function score(n) {
    var axes = $$("[data-axis]");
    if (!axes.length) return;
    var axis = document.activeElement && document.activeElement.closest && document.activeElement.closest("[data-axis]");
    axis = axis || axes.find(function (a) { return !a.dataset.score; }) || axes[0];
    choose($("input[type=radio][value='" + n + "']", axis));
    nextFocus("[data-axis]", axis);
  }
  function radio(name, value) { choose($("#workspace input[name='" + name + "'][value='" + value + "']")); }

  function toggleObservation() {
    var details = $$("#observation details");
    if (!details.length) return;
    var expand = details.some(function (d) { return !d.open; });
    details.forEach(function (d) { d.open = expand; });
  }
  function accept() {
    var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("[data-finding]");
    var button = (focused && $("[data-accept]", focused)) || $("#evidence [data-accept]");
    if (button) button.click();
  }
  function help() { var d = document.getElementById("shortcuts"); if (d && !d.open) d.showModal(); }

  document.addEventListener("keydown", function (event) {
    var kind = page();
    if (!kind) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      if (kind !== "queue") { event.preventDefault(); toVerdict(); }
      return;
    }
    if (dialogOpen()) return; // dialogs handle their own keys (Esc closes them)
    var target = event.target;
    if (typing(target)) {
      if (event.key === "Escape") {
        target.blur();
        var holder = target.closest("[tabindex]");
        if (holder) holder.focus();
        event.preventDefault();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var key = event.key;
    if (kind === "queue") {
      if (key === "Enter" && (target === document.body || !target.closest("a, button, form"))) {
        event.preventDefault();
        document.getElementById("start-next-form").requestSubmit();
      }
      return;
    }
    if (key === "Escape") { clearPending(); return; }
    if (pending) {
      var handled = true;
      if (pending === "g" && /^[0-9]$/.test(key)) { digits += key; hint("go to step " + digits + "…"); handled = true; }
      else if (pending === "g" && key === "Enter") jump();
      else if (pending === "r" && /^[1-5]$/.test(key)) { clearPending(); score(parseInt(key, 10)); }
      else if (pending === "t" && (key === "1" || key === "2")) { clearPending(); radio("tool_verdict", key === "1" ? "right" : "wrong"); }
      else if (pending === "s" && /^[1-3]$/.test(key)) { clearPending(); radio("env_feedback", ["success", "partial", "failure"][parseInt(key, 10) - 1]); }
      else { clearPending(); handled = false; }
      if (handled) { event.preventDefault(); return; }
    }
    var done = true;
    switch (key) {
      case "j": if (kind === "step") { if (!go("[data-nav=next]")) toVerdict(); } break;
      case "k": if (kind === "step") go("[data-nav=prev]"); else if (ws().dataset.lastStepUrl) window.location.href = ws().dataset.lastStepUrl; break;
      case "n": if (kind === "step") nextIncomplete(); break;
      case "g": if (kind === "step") startPending("g", "go to step …"); break;
      case "1": case "2": case "3": if (kind === "step") argumentVerdict(parseInt(key, 10)); else done = false; break;
      case "r": startPending("r", "score 1–5 …"); break;
      case "t": if (kind === "step") startPending("t", "tool: 1 right · 2 wrong"); break;
      case "s": if (kind === "step") startPending("s", "environment: 1 success · 2 partial · 3 failure"); break;
      case "-": radio("process_reward", "-1"); break;
      case "0": radio("process_reward", "0"); break;
      case "+": case "=": radio("process_reward", "1"); break;
      case "f": openPicker(); break;
      case "c": { var c = document.getElementById("comment"); if (c) { c.focus(); c.setSelectionRange(c.value.length, c.value.length); } } break;
      case "e": toggleObservation(); break;
      case "a": accept(); break;
      case "?": help(); break;
      default: done = false;
    }
    if (done) event.preventDefault();
  });

  // ---- failure-mode picker (a dialog: type to filter, arrows, Enter toggles, Esc closes) --------------
  function pickerItems() { return $$("#fm-list li"); }
  function modeBox(mode) { return $("#failure-modes input[data-mode='" + mode + "']"); }
  function syncPicker() {
    pickerItems().forEach(function (li) {
      var box = modeBox(li.dataset.mode);
      var on = !!(box && box.checked);
      li.setAttribute("aria-selected", on ? "true" : "false");
      $(".mark", li).textContent = on ? "✓" : "";
    });
  }
  function highlight(li) {
    pickerItems().forEach(function (other) { other.classList.toggle("hl", other === li); });
    if (li) li.scrollIntoView({ block: "nearest" });
  }
  function visibleItems() { return pickerItems().filter(function (li) { return !li.hidden; }); }
  function filterPicker() {
    var q = document.getElementById("fm-filter").value.trim().toLowerCase();
    pickerItems().forEach(function (li) { li.hidden = !!q && li.textContent.toLowerCase().indexOf(q) < 0; });
    highlight(visibleItems()[0] || null);
  }
  function openPicker() {
    var dialog = document.getElementById("fm-picker");
    if (!dialog || !document.getElementById("failure-modes") || !isOpen()) return;
    document.getElementById("fm-filter").value = "";
    syncPicker();
    filterPicker();
    dialog.showModal();
    document.getElementById("fm-filter").focus();
  }
  function toggleMode(li) {
    if (!li) return;
    choose(modeBox(li.dataset.mode));
    syncPicker();
  }
  document.addEventListener("keydown", function (event) {
    if (event.target.id !== "fm-filter") return;
    var items = visibleItems();
    var i = items.findIndex(function (li) { return li.classList.contains("hl"); });
    if (event.key === "ArrowDown") { highlight(items[Math.min(items.length - 1, i + 1)]); event.preventDefault(); }
    else if (event.key === "ArrowUp") { highlight(items[Math.max(0, i - 1)]); event.preventDefault(); }
    else if (event.key === "Enter") { toggleMode(items[i]); event.preventDefault(); }
  });
  document.addEventListener("input", function (event) { if (event.target.id === "fm-filter") filterPicker(); });
  document.addEventListener("click", function (event) {
    var li = event.target.closest && event.target.closest("#fm-list li");
    if (li) { highlight(li); toggleMode(li); }
  });

  // ---- clicks: help button, JSON paths, submit after the last save --------------------------------------
  document.addEventListener("click", function (event) {
    var t = event.target;
    if (!t.closest) return;
    if (t.closest("[data-action=help]")) { help(); return; }
    var key = t.closest(".jk[data-path]");
    if (key && navigator.clipboard) {
      event.preventDefault(); // do not fold the node: the click copies its path
      navigator.clipboard.writeText(key.dataset.path).then(function () { hint("copied " + key.dataset.path); setTimeout(function () { hint(""); }, 1200); });
    }
  });
  document.addEventListener("submit", function (event) {
    var f = event.target;
    if (f.id === "submit-form" && (save.inflight || Object.keys(save.dirty).length)) {
      event.preventDefault();
      flush().then(function () { submitForm(f); });
    }
  });

  document.addEventListener("DOMContentLoaded", onWorkspace);
  if (document.readyState !== "loading") onWorkspace();
})();
