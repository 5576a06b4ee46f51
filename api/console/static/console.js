// The console's few lines of script: every action is a call to the JSON API (/api/v1/...)
// with the session cookie and its CSRF token; live parts of a page are re-fetched fragments;
// charts are uPlot. No build step, no framework.
"use strict";

const Console = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function api(method, url, body, headers = {}) {
    const init = { method, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf(), Accept: "application/json", ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    return { ok: response.ok, status: response.status, data };
  }

  function reason(result) {
    const d = result.data;
    if (d && typeof d === "object") {
      if (Array.isArray(d.errors) && d.errors.length) return d.errors.map((e) => e.message || JSON.stringify(e)).join("\n");
      if (typeof d.detail === "string") return d.detail;
      if (Array.isArray(d.detail)) return d.detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("\n");
    }
    return `${result.status} ${typeof d === "string" ? d.slice(0, 300) : ""}`;
  }

  function toast(message, kind = "") {
    const box = document.getElementById("toast");
    const item = document.createElement("div");
    item.className = kind;
    item.textContent = message;
    box.appendChild(item);
    setTimeout(() => item.remove(), kind === "bad" ? 9000 : 4500);
  }

  function confirmDialog(message, confirmLabel = "Confirm") {
    const dialog = document.getElementById("confirm");
    dialog.querySelector("[data-message]").textContent = message;
    dialog.querySelector("[data-yes]").textContent = confirmLabel;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
      dialog.showModal();
      dialog.querySelector("[data-yes]").focus();
    });
  }

  // A small button of a row's operations (move, delete), named for screen readers.
  function opButton(text, label, handler) {
    const button = document.createElement("button");
    button.type = "button"; button.className = "small"; button.textContent = text;
    button.setAttribute("aria-label", label); button.addEventListener("click", handler);
    return button;
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(data?.[key] ?? ""));
  }

  // A message for people from an answer: {key} as text (an object as "k v, k v", not as
  // "[object Object]"), never URL-encoded; fill() is for URLs.
  function shown(value) {
    if (value === null || value === undefined) return "";
    if (typeof value !== "object") return String(value);
    const text = Array.isArray(value) ? value.map(shown).join(", ")
      : Object.entries(value).map(([k, v]) => `${k} ${typeof v === "object" && v !== null ? JSON.stringify(v) : v}`).join(", ");
    return text.length > 160 ? `${text.slice(0, 159)}…` : text;
  }

  function say(template, data) {
    return template.replace(/\{(\w+)\}/g, (_, key) => shown(data?.[key]));
  }

  // ---- buttons: data-method + data-url (+ data-body, data-confirm, data-dry-run) ----------
  async function act(button) {
    const method = button.dataset.method, url = button.dataset.url;
    let body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    if (button.dataset.reasonFrom) {
      const reasonText = document.querySelector(button.dataset.reasonFrom)?.value.trim();
      body = { ...(body || {}), ...(reasonText ? { reason: reasonText } : {}) };
    }
    const headers = {};
    if (button.dataset.idempotent !== undefined) headers["Idempotency-Key"] = crypto.randomUUID();
    button.disabled = true;
    try {
      if (button.dataset.dryRun !== undefined) {
        const dry = await api(method, url, { ...body, dry_run: true });
        if (!dry.ok) { toast(reason(dry), "bad"); return; }
        const matched = dry.data.matched ?? 0;
        if (!matched) { toast("Nothing matches: nothing to do."); return; }
        const noun = button.dataset.noun || "records";
        if (!(await confirmDialog(`${matched} ${noun} match. ${button.dataset.confirm || "Go ahead?"}`, button.textContent.trim()))) return;
        body = { ...body, dry_run: false };
      } else if (button.dataset.confirm && !(await confirmDialog(button.dataset.confirm, button.textContent.trim()))) {
        return;
      }
      const result = await api(method, url, body, headers);
      if (!result.ok) { toast(reason(result), "bad"); return; }
      toast(say(button.dataset.done || "Done.", result.data), "ok");
      if (button.dataset.then) { location.href = fill(button.dataset.then, result.data); return; }
      refreshAll();
    } catch (error) {
      toast(String(error), "bad");
    } finally {
      button.disabled = false;
    }
  }

  // ---- forms: data-api="METHOD /api/v1/..." turned into JSON ------------------------------
  function formBody(form) {
    const body = {};
    for (const field of form.querySelectorAll("[name]")) {
      if (field.disabled || field.dataset.skip !== undefined) continue;
      const type = field.dataset.type || "text";
      let value = field.type === "checkbox" ? field.checked : field.value;
      if (type !== "bool" && value === "" && field.dataset.keepEmpty === undefined) continue;
      if (type === "int") value = Number.parseInt(value, 10);
      else if (type === "json") value = JSON.parse(value);
      else if (type === "int-or-text") value = /^\d+$/.test(value) ? Number.parseInt(value, 10) : value;
      body[field.name] = value;
    }
    return body;
  }

  async function submit(form) {
    const [method, url] = form.dataset.api.split(" ");
    const errors = form.querySelector(".form-error");
    const button = form.querySelector("[type=submit]");
    if (errors) errors.textContent = "";
    let body;
    try { body = formBody(form); } catch (error) { if (errors) errors.textContent = `Not JSON: ${error.message}`; return; }
    if (button) button.disabled = true;
    try {
      const result = await api(method, fill(url, body), body);
      if (!result.ok) { if (errors) errors.textContent = reason(result); else toast(reason(result), "bad"); return; }
      toast(say(form.dataset.done || "Saved.", result.data), "ok");
      if (form.dataset.then) location.href = fill(form.dataset.then, result.data);
      else refreshAll();
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---- live fragments: data-live="<part>" data-every="<seconds>" -----------------------
  async function refresh(element) {
    const url = new URL(element.dataset.src || location.href, location.href);
    url.searchParams.set("part", element.dataset.live);
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (response.status === 401) { location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`; return; }
    if (!response.ok) return;
    const html = await response.text();
    if (element.contains(document.activeElement) && document.activeElement.matches("input, select, textarea")) return;
    element.innerHTML = html;
    element.dataset.refreshedAt = new Date().toISOString();
    drawCharts(element);
  }

  function refreshAll() {
    document.querySelectorAll("[data-live]").forEach((element) => refresh(element).catch(() => {}));
  }

  function startLive() {
    document.querySelectorAll("[data-live]").forEach((element) => {
      const every = Number(element.dataset.every || 5) * 1000;
      setInterval(() => { if (!document.hidden) refresh(element).catch(() => {}); }, every);
    });
  }

  // ---- charts: <div data-chart><script type="application/json">{x, series}</script></div> --
  const palette = ["#2456d3", "#1d7f45", "#b42318", "#9a5b00", "#7a3fc2", "#0e7490", "#be185d", "#4d7c0f"];

  // A y tick in the chart's unit: percent, seconds as ms/s/min/h/d (as the pages' tables), counts.
  function tick(spec, n) {
    if (n === null) return "";
    if (n === 0) return "0";
    if (spec.percent) return `${n}%`;
    if (spec.unit !== "s") return n.toLocaleString();
    const a = Math.abs(n), short = (v) => (v < 10 ? v.toFixed(1).replace(/\.0$/, "") : v.toFixed(0));
    if (a < 1) return `${Math.round(n * 1000)} ms`;
    if (a < 60) return `${short(n)} s`;
    if (a < 3600) return `${short(n / 60)} min`;
    if (a < 86400) return `${short(n / 3600)} h`;
    return `${short(n / 86400)} d`;
  }

  // Ticks of a seconds axis at whole human steps (5 min, 1 h, 6 h…), not at 5.6 h.
  const SECOND_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
  function secondSplits(u, axis, min, max) {
    const step = SECOND_STEPS.find((s) => max / s <= 5) || SECOND_STEPS[SECOND_STEPS.length - 1];
    const out = [];
    for (let v = 0; v <= max + step / 1e6; v += step) out.push(v);
    return out;
  }

  function drawCharts(root = document) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach((box) => {
      const spec = JSON.parse(box.querySelector("script[type='application/json']").textContent);
      box.querySelectorAll(".uplot").forEach((old) => old.remove());
      if (!spec.x.length) return;
      const width = Math.max(260, box.clientWidth || 600);
      const bars = spec.kind === "bars" ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined;
      const ink = getComputedStyle(document.body).color;
      const step = spec.x.length > 1 ? spec.x[1] - spec.x[0] : 3600;
      const options = {
        width, height: 240,
        scales: {
          x: { time: true, range: (u, min, max) => [min - step / 2, max + step / 2] },
          y: spec.percent ? { range: [0, 100] } : { range: (u, min, max) => [0, Math.max(spec.unit === "s" ? 0.01 : 1, max) * 1.1] },
        },
        axes: [{ stroke: ink },
               { stroke: ink, size: 76, values: (u, v) => v.map((n) => tick(spec, n)),
                 ...(spec.unit === "s" ? { splits: secondSplits } : {}) }],
        series: [{}, ...spec.series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 2,
          fill: bars ? palette[i % palette.length] + "55" : undefined, paths: bars,
          points: { show: !bars }, spanGaps: false, value: (u, v) => (v == null ? "—" : tick(spec, v)) }))],
      };
      new uPlot(options, [spec.x, ...spec.series.map((s) => s.values)], box);
    });
  }

  // ---- keyboard: g h / g i / g p / g d, "/" to the first filter, "?" for help -----------
  let pendingG = false;
  function keys(event) {
    if (event.target.matches("input, select, textarea") || event.metaKey || event.ctrlKey || event.altKey) return;
    if (event.key === "/") {
      const field = document.querySelector("form.filters input, form.filters select");
      if (field) { event.preventDefault(); field.focus(); }
      return;
    }
    if (event.key === "?") { document.getElementById("keys")?.showModal(); return; }
    if (pendingG) {
      pendingG = false;
      const target = { h: "/", i: "/services/api-integration", p: "/services/payment-gateway", d: "/dead-letters" }[event.key];
      if (target) location.href = target;
      return;
    }
    if (event.key === "g") { pendingG = true; setTimeout(() => { pendingG = false; }, 1200); }
  }

  function start() {
    document.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-method]");
      if (button) { event.preventDefault(); act(button); }
    });
    document.addEventListener("submit", (event) => {
      const form = event.target.closest("form[data-api]");
      if (form) { event.preventDefault(); submit(form); }
    });
    document.addEventListener("keydown", keys);
    drawCharts();
    startLive();
  }

  return { api, reason, toast, confirmDialog, opButton, refreshAll, drawCharts, start };
})();

document.addEventListener("DOMContentLoaded", Console.start);
