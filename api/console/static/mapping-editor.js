// The mapping editor: rules as rows (add, reorder, edit, delete), paths picked from the
// sample payload's tree, a live preview through POST /api/v1/mappings/preview with each
// rule's error on its row, and Save through POST /api/v1/mappings[/{id}/versions].
"use strict";

(() => {
  const root = document.getElementById("mapping-editor");
  if (!root) return;
  const KINDS = ["source", "coalesce", "const", "template", "concat", "map_array"];
  const rowsBody = document.getElementById("rule-rows");
  const sample = document.getElementById("sample");
  const tree = document.getElementById("sample-tree");
  const output = document.getElementById("preview-output");
  const previewState = document.getElementById("preview-state");
  const editorError = document.getElementById("editor-error");
  let lastFocused = null;

  const doc = JSON.parse(document.getElementById("rules-doc").textContent || "[]");
  const spec = Array.isArray(doc) ? { rules: doc } : (doc.rules || { rules: [] });
  let rules = (spec.rules || []).map((rule) => ({ ...rule }));

  // ---- a rule <-> a row ----------------------------------------------------------------
  function kindOf(rule) { return KINDS.find((k) => k in rule) || "source"; }

  function valueText(kind, value) {
    if (value === undefined) return "";
    if (kind === "source" || kind === "template") return String(value);
    if (kind === "coalesce" && Array.isArray(value)) return value.join(", ");
    return JSON.stringify(value);
  }

  function parseValue(kind, text) {
    if (kind === "source" || kind === "template") return text;
    if (kind === "coalesce") return text.split(",").map((p) => p.trim()).filter(Boolean);
    if (kind === "const") { try { return JSON.parse(text); } catch { return text; } }
    return JSON.parse(text || "{}");
  }

  function optionsOf(rule) {
    const rest = {};
    for (const [key, value] of Object.entries(rule)) if (key !== "target" && !KINDS.includes(key)) rest[key] = value;
    return Object.keys(rest).length ? JSON.stringify(rest) : "";
  }

  function cell(content) { const td = document.createElement("td"); if (content) td.append(content); return td; }

  function input(value, label, cls) {
    const field = document.createElement("input");
    field.value = value; field.setAttribute("value", value);
    field.setAttribute("aria-label", label); field.className = cls;
    field.spellcheck = false;
    return field;
  }


  function render() {
    rowsBody.replaceChildren();
    rules.forEach((rule, index) => {
      const row = document.createElement("tr");
      row.dataset.index = String(index);
      const kind = kindOf(rule);
      const select = document.createElement("select");
      select.setAttribute("aria-label", `rule ${index + 1} value from`);
      select.className = "rule-kind";
      for (const k of KINDS) { const o = new Option(k, k, false, k === kind); select.add(o); }
      const target = input(rule.target || "", `rule ${index + 1} target`, "rule-target");
      const value = input(valueText(kind, rule[kind]), `rule ${index + 1} value`, "rule-value");
      const options = input(optionsOf(rule), `rule ${index + 1} options (JSON)`, "rule-options");
      options.placeholder = '{"transforms": ["trim"]}';
      const error = document.createElement("div"); error.className = "rule-error";
      const valueCell = cell(value); valueCell.append(error);
      const ops = cell();
      ops.className = "ops";
      ops.append(
        Console.opButton("↑", `move rule ${index + 1} up`, () => move(index, -1)),
        Console.opButton("↓", `move rule ${index + 1} down`, () => move(index, 1)),
        Console.opButton("✕", `delete rule ${index + 1}`, () => { rules.splice(index, 1); render(); changed(); }),
      );
      const idx = cell(document.createTextNode(String(index + 1))); idx.className = "idx";
      row.append(idx, cell(target), cell(select), valueCell, cell(options), ops);
      for (const field of [target, select, value, options]) {
        field.addEventListener("input", () => { readRow(row); changed(); });
        field.addEventListener("focus", () => { lastFocused = value; });
      }
      rowsBody.append(row);
    });
  }

  function readRow(row) {
    const index = Number(row.dataset.index);
    const kind = row.querySelector(".rule-kind").value;
    const rule = { target: row.querySelector(".rule-target").value };
    const error = row.querySelector(".rule-error");
    error.textContent = "";
    try {
      rule[kind] = parseValue(kind, row.querySelector(".rule-value").value);
      const extra = row.querySelector(".rule-options").value.trim();
      Object.assign(rule, extra ? JSON.parse(extra) : {});
    } catch (e) {
      error.textContent = `not JSON: ${e.message}`;
      rules[index] = { ...rule, __invalid: true };
      return;
    }
    rules[index] = rule;
  }

  function move(index, by) {
    const to = index + by;
    if (to < 0 || to >= rules.length) return;
    [rules[index], rules[to]] = [rules[to], rules[index]];
    render(); changed();
    rowsBody.querySelectorAll("tr")[to]?.querySelector(by < 0 ? "button" : "button + button")?.focus();
  }

  document.getElementById("add-rule").addEventListener("click", () => {
    rules.push({ target: "", source: "" });
    render();
    rowsBody.lastElementChild?.querySelector(".rule-target").focus();
  });

  // ---- the sample's tree -----------------------------------------------------------------
  function pathOf(parent, key) {
    if (typeof key === "number") return `${parent}[${key}]`;
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return parent ? `${parent}.${key}` : key;
    return `${parent}["${key.replace(/"/g, '\\"')}"]`;
  }

  function branch(value, path, depth) {
    const list = document.createElement("ul");
    const entries = Array.isArray(value) ? value.slice(0, 20).map((v, i) => [i, v]) : Object.entries(value);
    for (const [key, child] of entries) {
      const item = document.createElement("li");
      const here = pathOf(path, key);
      const pick = document.createElement("button");
      pick.type = "button"; pick.textContent = String(key); pick.title = here; pick.dataset.path = here;
      pick.addEventListener("click", () => usePath(here));
      item.append(pick);
      if (child !== null && typeof child === "object") {
        if (depth < 6) item.append(branch(child, here, depth + 1));
      } else {
        const shown = document.createElement("span");
        shown.className = "v"; shown.textContent = ` ${JSON.stringify(child).slice(0, 60)}`;
        item.append(shown);
      }
      list.append(item);
    }
    return list;
  }

  function sampleValue() {
    const text = sample.value.trim();
    if (!text) return undefined;
    return JSON.parse(text);
  }

  function drawTree() {
    tree.replaceChildren();
    try {
      const value = sampleValue();
      if (value !== undefined && typeof value === "object" && value !== null) tree.append(branch(value, "", 0));
    } catch (e) {
      tree.textContent = `The sample is not JSON: ${e.message}`;
    }
  }

  function usePath(path) {
    const field = lastFocused && document.body.contains(lastFocused) ? lastFocused : rowsBody.querySelector("tr:last-child .rule-value");
    if (!field) return;
    const row = field.closest("tr");
    const kind = row.querySelector(".rule-kind").value;
    field.value = kind === "template" ? `${field.value}{${path}}` : kind === "coalesce" && field.value ? `${field.value}, ${path}` : path;
    const target = row.querySelector(".rule-target");
    if (!target.value) target.value = path.split(/[.[\]"]+/).filter(Boolean).pop() || path;
    readRow(row); changed(); field.focus();
  }

  // ---- live preview ----------------------------------------------------------------------
  let timer = null, sequence = 0;
  function changed() { clearTimeout(timer); timer = setTimeout(preview, 250); document.getElementById("editor-state").textContent = "unsaved changes"; }

  function showErrors(errors) {
    rowsBody.querySelectorAll("tr").forEach((row) => { row.classList.remove("has-error"); });
    for (const error of errors) {
      const top = Number.parseInt(String(error.rule || "").split(".")[0], 10);
      const row = rowsBody.querySelectorAll("tr")[top - 1];
      if (!row) continue;
      row.classList.add("has-error");
      const box = row.querySelector(".rule-error");
      box.textContent = box.textContent ? `${box.textContent}\n${error.message}` : error.message;
    }
  }

  function clean() { return rules.map(({ __invalid, ...rule }) => rule); }

  async function preview() {
    const mine = ++sequence;
    rowsBody.querySelectorAll(".rule-error").forEach((box) => { if (!box.textContent.startsWith("not JSON")) box.textContent = ""; });
    if (rules.some((r) => r.__invalid)) { previewState.textContent = "fix the rows marked 'not JSON'"; return; }
    let payload;
    try { payload = sampleValue(); } catch { previewState.textContent = "the sample is not JSON"; return; }
    if (payload === undefined) { previewState.textContent = "paste a sample payload to preview"; return; }
    previewState.textContent = "…";
    const result = await Console.api("POST", "/api/v1/mappings/preview", { rules: clean(), payload });
    if (mine !== sequence) return;
    const errors = (result.data && result.data.errors) || [];
    showErrors(errors);
    if (result.ok && result.data.output !== null) {
      output.textContent = JSON.stringify(result.data.output, null, 2);
      previewState.textContent = "every rule applied";
      output.dataset.ok = "yes";
    } else {
      output.textContent = errors.length ? errors.map((e) => e.message).join("\n") : Console.reason(result);
      previewState.textContent = `${errors.length || 1} problem${errors.length === 1 ? "" : "s"}`;
      output.dataset.ok = "";
    }
  }

  sample.addEventListener("input", () => { drawTree(); changed(); });

  // ---- save ------------------------------------------------------------------------------
  const save = document.getElementById("save-mapping");
  if (save) save.addEventListener("click", async () => {
    editorError.textContent = "";
    if (rules.some((r) => r.__invalid)) { editorError.textContent = "Fix the rows marked 'not JSON' first."; return; }
    const id = root.dataset.mappingId;
    const body = { rules: { ...spec, rules: clean() } };
    let url = `/api/v1/mappings/${id}/versions`;
    if (!id) { url = "/api/v1/mappings"; body.name = document.getElementById("mapping-name").value.trim(); }
    save.disabled = true;
    try {
      const result = await Console.api("POST", url, body);
      if (!result.ok) { editorError.textContent = Console.reason(result); showErrors(result.data?.errors || []); return; }
      const mappingId = result.data.mapping_id || result.data.id;
      const version = result.data.version?.version || result.data.version;
      Console.toast(`Saved version ${version}.`, "ok");
      const back = root.dataset.backTo ? `&sample_dead_letter=${root.dataset.backTo}` : "";
      location.href = `/services/api-integration/mappings/${mappingId}?version=${version}&saved=1${back}`;
    } finally { save.disabled = false; }
  });

  render();
  drawTree();
  preview();
})();
