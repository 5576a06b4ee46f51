// The CRM mapping builder: field pairs as rows (add, reorder, edit, delete), each with its
// conflict policy and, per direction, a type coercion, a picklist value map and a default; a
// live preview of both sample records through POST /api/v1/crm/mappings/preview with each
// rule's error on its row; Create through POST /api/v1/crm/mappings. Saved mappings preview
// on live records through POST /api/v1/crm/mappings/{id}/preview (changes nothing).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const DIRECTIONS = { to_hubspot: ["hubspot", "HubSpot"], to_salesforce: ["salesforce", "Salesforce"] };

  // ---- saved mappings: a preview on live records (any role that reads) ------------------
  function outputTable(table, values, errors) {
    const body = document.createElement("tbody");
    for (const [field, value] of Object.entries(values || {})) {
      const row = body.insertRow();
      const name = row.insertCell(); name.innerHTML = "<code></code>"; name.firstChild.textContent = field;
      row.insertCell().textContent = value === null ? "—" : typeof value === "string" ? value : JSON.stringify(value);
    }
    for (const error of errors || []) {
      const row = body.insertRow(); row.className = "has-error";
      const cell = row.insertCell(); cell.colSpan = 2; cell.textContent = error.message;
    }
    if (!body.rows.length) body.insertRow().insertCell().textContent = "—";
    table.replaceChildren(body);
  }

  document.querySelectorAll("[data-live-preview]").forEach((button) => {
    button.addEventListener("click", async () => {
      const id = button.dataset.livePreview;
      const box = document.querySelector(`[data-live-preview-of="${id}"]`);
      button.disabled = true;
      box.textContent = "reading one record of each side…";
      try {
        const result = await Console.api("POST", `/api/v1/crm/mappings/${id}/preview`);
        if (!result.ok) { box.textContent = Console.reason(result); return; }
        box.replaceChildren();
        box.className = "crm-live-preview grid two";
        for (const [direction, [, label]] of Object.entries(DIRECTIONS)) {
          const source = direction === "to_hubspot" ? "salesforce" : "hubspot";
          const heading = document.createElement("h4");
          heading.textContent = result.data[source] ? `${source === "salesforce" ? "Salesforce" : "HubSpot"} record → on ${label}` : `no ${source} record to read`;
          const wrap = document.createElement("div"); wrap.className = "table-wrap";
          const table = document.createElement("table"); table.className = "crm-out"; table.dataset.preview = direction;
          wrap.append(table);
          outputTable(table, result.data[direction], result.data.errors.filter((e) => e.direction === direction));
          const half = document.createElement("div");
          half.append(heading, wrap);
          box.append(half);
        }
      } finally { button.disabled = false; }
    });
  });

  const root = $("crm-builder");
  if (!root) return;
  const doc = JSON.parse($("crm-builder-doc").textContent);
  const rowsBody = $("crm-rows");
  const errorBox = $("crm-error");
  let rows = [];

  // ---- a field pair <-> a row's texts ------------------------------------------------------
  const blankWay = () => ({ type: "", map: "", fallback: "" });
  const blank = () => ({ salesforce: "", hubspot: "", policy: "last_writer_wins", to_hubspot: blankWay(), to_salesforce: blankWay() });

  function literal(text) {
    // A default as typed: JSON when it reads as a number, true/false/null, a quoted string…; else the text.
    try { return JSON.parse(text); } catch { return text; }
  }

  function parseMap(text) {
    const table = {};
    for (const entry of text.split(/[;\n]/)) {
      if (!entry.trim()) continue;
      const at = entry.indexOf("=");
      if (at < 1) throw new Error(`"${entry.trim()}" is not value=mapped`);
      table[entry.slice(0, at).trim()] = entry.slice(at + 1).trim();
    }
    return table;
  }

  function mapText(table) { return Object.entries(table || {}).map(([k, v]) => `${k}=${v}`).join("; "); }

  function fromPair(pair) {
    const row = { ...blank(), salesforce: pair.salesforce, hubspot: pair.hubspot, policy: pair.policy || "last_writer_wins" };
    for (const [direction, [target]] of Object.entries(DIRECTIONS)) {
      const way = blankWay();
      for (const step of pair[direction] || []) {
        const op = typeof step === "string" ? step : step.op;
        if (op === "lookup") way.map = mapText(step.table);
        else way.type = op;
      }
      const fallback = pair[`${target}_default`];
      way.fallback = fallback === undefined || fallback === null ? "" : typeof fallback === "string" ? fallback : JSON.stringify(fallback);
      row[direction] = way;
    }
    return row;
  }

  function toPair(row) {
    const pair = { salesforce: row.salesforce.trim(), hubspot: row.hubspot.trim(), policy: row.policy };
    for (const [direction, [target]] of Object.entries(DIRECTIONS)) {
      const way = row[direction], steps = [];
      // The value map reads the source's picklist value; the type is what the target stores.
      if (way.map.trim()) steps.push({ op: "lookup", table: parseMap(way.map) });
      if (way.type) steps.push(way.type);
      if (steps.length) pair[direction] = steps;
      if (way.fallback.trim()) pair[`${target}_default`] = literal(way.fallback.trim());
    }
    return pair;
  }

  function spec() {
    return {
      salesforce_object: $("crm-sf-object").value.trim(),
      hubspot_object: $("crm-hs-object").value,
      match: { salesforce: $("crm-match-sf").value.trim(), hubspot: $("crm-match-hs").value.trim() },
      fields: rows.map(toPair),
      directions: $("crm-directions").value,
      source_side: $("crm-source-side").value,
      delete_policy: $("crm-delete-policy").value,
    };
  }

  // ---- rows ----------------------------------------------------------------------------------
  function control(tag, value, label, cls, options) {
    const field = document.createElement(tag);
    if (options) for (const [v, text] of options) field.add(new Option(text, v, false, v === value));
    field.value = value; field.className = cls; field.spellcheck = false;
    field.setAttribute("aria-label", label);
    return field;
  }


  function cell(row, label, ...content) {
    const td = row.insertCell(); td.dataset.label = label; td.append(...content); return td;
  }

  function render(focus) {
    rowsBody.replaceChildren();
    const allowed = $("crm-directions").value;
    rows.forEach((data, index) => {
      const n = index + 1;
      const row = rowsBody.insertRow();
      row.dataset.index = String(index);
      const bind = (field, set) => field.addEventListener("input", () => { set(field.value); changed(); });
      const idx = cell(row, "#", String(n)); idx.className = "idx";
      const sf = control("input", data.salesforce, `row ${n} Salesforce field`, "crm-sf");
      sf.placeholder = "FirstName"; bind(sf, (v) => { data.salesforce = v; });
      const hs = control("input", data.hubspot, `row ${n} HubSpot field`, "crm-hs");
      hs.placeholder = "firstname"; bind(hs, (v) => { data.hubspot = v; });
      const policy = control("select", data.policy, `row ${n} conflict policy`, "crm-policy",
        doc.policies.map((p) => [p, p.replaceAll("_", " ")]));
      bind(policy, (v) => { data.policy = v; });
      cell(row, "Salesforce field", sf); cell(row, "HubSpot field", hs); cell(row, "conflict policy", policy);
      for (const [direction, [, label]] of Object.entries(DIRECTIONS)) {
        const way = data[direction];
        const type = control("select", way.type, `row ${n} type toward ${label}`, "crm-type",
          [["", "as is"], ...doc.types.map((t) => [t, t])]);
        bind(type, (v) => { way.type = v; });
        const map = control("input", way.map, `row ${n} value map toward ${label}`, "crm-map");
        map.placeholder = "value map"; bind(map, (v) => { way.map = v; });
        const fallback = control("input", way.fallback, `row ${n} default toward ${label}`, "crm-default");
        fallback.placeholder = "default"; bind(fallback, (v) => { way.fallback = v; });
        const error = document.createElement("div"); error.className = "rule-error";
        const stack = document.createElement("div"); stack.className = "stack";
        stack.append(type, map, fallback, error);
        const td = cell(row, `→ ${label}`, stack);
        td.className = "way"; td.dataset.direction = direction;
        if (allowed !== "both" && allowed !== direction) td.classList.add("off");
      }
      const ops = cell(row, "",
        Console.opButton("↑", `move row ${n} up`, () => move(index, -1)),
        Console.opButton("↓", `move row ${n} down`, () => move(index, 1)),
        Console.opButton("✕", `delete row ${n}`, () => remove(index)));
      ops.className = "ops";
      row.addEventListener("keydown", (event) => {
        if (!event.altKey || !["ArrowUp", "ArrowDown"].includes(event.key)) return;
        event.preventDefault();
        const at = [...row.querySelectorAll("input, select, button")].indexOf(document.activeElement);
        move(index, event.key === "ArrowUp" ? -1 : 1, at);
      });
    });
    $("crm-count").textContent = `${rows.length} field${rows.length === 1 ? "" : "s"}`;
    if (focus) focus();
  }

  function focusIn(index, at) {
    return () => {
      const row = rowsBody.rows[index];
      if (!row) { $("crm-add-row").focus(); return; }
      const controls = row.querySelectorAll("input, select, button");
      (controls[at] || controls[0]).focus();
    };
  }

  function move(index, by, at) {
    const to = index + by;
    if (to < 0 || to >= rows.length) return;
    [rows[index], rows[to]] = [rows[to], rows[index]];
    const buttons = rowsBody.rows[index].querySelectorAll("input, select, button");
    const keep = at ?? [...buttons].indexOf(document.activeElement);
    render(focusIn(to, keep < 0 ? 0 : keep));
    changed();
  }

  function remove(index) {
    rows.splice(index, 1);
    render(focusIn(Math.min(index, rows.length - 1), 0));
    changed();
  }

  $("crm-add-row").addEventListener("click", () => {
    rows.push(blank());
    render(focusIn(rows.length - 1, 0));
    changed();
  });

  $("crm-template").addEventListener("click", () => {
    const template = doc.template;
    $("crm-sf-object").value = template.salesforce_object;
    $("crm-hs-object").value = template.hubspot_object;
    $("crm-match-sf").value = template.match.salesforce;
    $("crm-match-hs").value = template.match.hubspot;
    $("crm-directions").value = template.directions;
    rows = template.fields.map(fromPair);
    render(focusIn(0, 0));
    changed();
  });

  for (const id of ["crm-sf-object", "crm-hs-object", "crm-match-sf", "crm-match-hs", "crm-source-side", "crm-delete-policy", "crm-sample-sf", "crm-sample-hs"]) {
    $(id).addEventListener("input", changed);
  }
  $("crm-directions").addEventListener("input", () => { render(); changed(); });

  // ---- preview ---------------------------------------------------------------------------------
  let timer = null, sequence = 0;
  function changed() {
    clearTimeout(timer);
    timer = setTimeout(preview, 250);
    $("crm-state").textContent = rows.length ? "not saved yet" : "";
  }

  function sampleOf(id) {
    const text = $(id).value.trim();
    return text ? JSON.parse(text) : null;
  }

  function clearErrors() {
    rowsBody.querySelectorAll("tr").forEach((row) => row.classList.remove("has-error"));
    rowsBody.querySelectorAll(".rule-error").forEach((box) => { box.textContent = ""; });
  }

  function markRow(index, direction, message) {
    const row = rowsBody.rows[index];
    if (!row) return false;
    row.classList.add("has-error");
    const box = row.querySelector(direction ? `td[data-direction="${direction}"] .rule-error` : ".rule-error");
    box.textContent = box.textContent ? `${box.textContent}\n${message}` : message;
    return true;
  }

  function markProblems(text) {
    // "spec: rule 3 (jobtitle): …" or "spec: fields.2.hubspot: …": the row it names, if any.
    let placed = false;
    for (const line of String(text).split("\n")) {
      const rule = /rule (\d+)/.exec(line), field = /fields\.(\d+)/.exec(line);
      if (rule) placed = markRow(Number(rule[1]) - 1, null, line) || placed;
      else if (field) placed = markRow(Number(field[1]), null, line) || placed;
    }
    return placed;
  }

  function state(direction, text) { root.querySelector(`[data-preview-state="${direction}"]`).textContent = text; }

  async function preview() {
    const mine = ++sequence;
    clearErrors();
    errorBox.textContent = "";
    if (!rows.length) { for (const d of Object.keys(DIRECTIONS)) state(d, "add a field to preview"); return; }
    let body;
    try {
      body = { spec: spec(), salesforce: sampleOf("crm-sample-sf"), hubspot: sampleOf("crm-sample-hs") };
    } catch (error) { errorBox.textContent = `Not valid: ${error.message}`; return; }
    const result = await Console.api("POST", "/api/v1/crm/mappings/preview", body);
    if (mine !== sequence) return;
    if (!result.ok) {
      const reason = Console.reason(result);
      if (!markProblems(reason)) errorBox.textContent = reason;
      else errorBox.textContent = "The rows marked in red need a fix.";
      for (const d of Object.keys(DIRECTIONS)) state(d, "");
      return;
    }
    for (const direction of Object.keys(DIRECTIONS)) {
      const errors = result.data.errors.filter((e) => e.direction === direction);
      for (const error of errors) markRow(error.index - 1, direction, error.message);
      outputTable(root.querySelector(`table[data-preview="${direction}"]`), result.data[direction], errors);
      const source = direction === "to_hubspot" ? body.salesforce : body.hubspot;
      state(direction, !source ? "no sample" : errors.length ? `${errors.length} rule error${errors.length === 1 ? "" : "s"}` : "every rule applied");
    }
  }

  // ---- save ------------------------------------------------------------------------------------
  $("crm-save").addEventListener("click", async () => {
    errorBox.textContent = "";
    let body;
    try {
      body = {
        name: $("crm-name").value.trim(),
        salesforce_platform_id: Number.parseInt($("crm-sf-platform").value, 10),
        hubspot_platform_id: Number.parseInt($("crm-hs-platform").value, 10),
        spec: spec(),
      };
    } catch (error) { errorBox.textContent = `Not valid: ${error.message}`; return; }
    if (!body.name) { errorBox.textContent = "Give the mapping a name."; $("crm-name").focus(); return; }
    if (!rows.length) { errorBox.textContent = "Add at least one field."; $("crm-add-row").focus(); return; }
    const save = $("crm-save");
    save.disabled = true;
    try {
      const result = await Console.api("POST", "/api/v1/crm/mappings", body);
      if (!result.ok) {
        const reason = Console.reason(result);
        errorBox.textContent = reason;
        markProblems(reason);
        return;
      }
      Console.toast(`Mapping ${result.data.name} created; its feeds start within seconds.`, "ok");
      $("crm-state").textContent = `saved as mapping ${result.data.id}`;
      setTimeout(() => { location.href = `${location.pathname}#m-${result.data.id}`; location.reload(); }, 900);
    } finally { save.disabled = false; }
  });

  render();
  preview();
})();
