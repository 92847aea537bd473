"use strict";
// The report's behaviour: renders the data embedded in #report-data. Every value from the Landscape goes
// into the page as text (el() makes text nodes), never as markup: row data can hold anything.
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const PAGE = 50;
  const runId = data.run.run_id;
  let page = 0;

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const json = (v) => JSON.stringify(v, null, 2);
  const inline = (v) => (v === undefined ? "" : JSON.stringify(v));
  const plain = (v) => (typeof v === "string" ? v : inline(v));
  const when = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "-");
  const secs = (s) => (s < 1 ? (s * 1000).toFixed(1) + " ms" : s.toFixed(2) + " s");
  const num = (n) => Number(n).toLocaleString("en");
  const badge = (text) => el("span", { class: "badge " + text }, text);
  const hash = (h) => (h ? el("span", { class: "hash", title: h }, h.slice(0, 12)) : el("span", { class: "hash" }, "-"));
  const rowLink = (id) => el("a", { href: "#row=" + id }, "row " + id);
  function table(headers, rows) {
    return el("table", {}, headers ? el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))) : null,
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => (c instanceof Node && ["TD", "TH"].includes(c.tagName) ? c : el("td", {}, c)))))));
  }
  const valueCell = (text, cls) => el("td", { class: "value " + (cls || "") }, text);

  // ------------------------------------------------------------ the run

  function renderRun() {
    const r = data.run;
    const outcomes = Object.entries(data.outcomes).map(([k, v]) => [badge(k), " " + num(v) + "  "]);
    const facts = [
      ["run", r.run_id], ["status", badge(r.status)], ["started", when(r.started_at)], ["ended", when(r.ended_at)],
      ["attempts", r.attempt], ["rows read", num(r.rows) + " (" + num(data.quarantined) + " quarantined)"],
      ["outcomes", outcomes.length ? outcomes : "none"], ["external calls", num(data.calls) + " (" + num(data.failed_calls.total) + " failed)"],
      ["settings", (r.settings_path || "-") + "  sha256 " + r.settings_hash], ["elspeth", r.elspeth_version],
    ];
    if (r.error) facts.push(["error", r.error]);
    document.getElementById("run-facts").append(table(null, facts.map(([k, v]) => [el("th", {}, k), v])));
  }

  function renderTiming() {
    const rows = [];
    for (const n of data.nodes) {
      for (const t of n.timing) {
        rows.push([n.node_id, n.plugin, t.operation, num(t.states), secs(t.seconds),
          t.states ? secs(t.seconds / t.states) : "-", t.failed ? badge("failed") : "", t.failed ? num(t.failed) : "0", t.max_attempt]);
      }
    }
    document.getElementById("timing-table").append(
      table(["node", "plugin", "operation", "states", "total time", "mean", "", "failed", "most attempts"], rows));
  }

  function renderArtifacts() {
    const rows = data.artifacts.map((a) => [a.node_id, a.uri, num(a.row_count), num(a.size) + " bytes", el("span", { class: "hash" }, a.content_hash)]);
    document.getElementById("artifact-table").append(
      el("p", { class: "note" }, "The latest of " + num(data.flushes) + " flushes per sink: each describes everything the sink stored."),
      table(["sink", "uri", "rows", "size", "sha256"], rows));
  }

  function renderFailedCalls() {
    const box = document.getElementById("failed-call-table");
    const fc = data.failed_calls;
    if (!fc.total) { box.append(el("p", {}, "No call failed.")); return; }
    box.append(el("p", { class: "note" }, num(fc.total) + " failed calls" + (fc.total > fc.shown.length ? ", the first " + fc.shown.length + " shown" : "") + "."),
      table(["row", "node", "state", "call", "type", "provider", "latency", "error"], fc.shown.map((c) => [
        c.row_id === null ? "-" : rowLink(c.row_id), c.node_id, "#" + c.state_id, c.call_index, c.call_type, c.provider,
        c.latency_ms === null ? "-" : Math.round(c.latency_ms) + " ms", valueCell(plain(c.error))])));
  }

  function renderSettings() {
    document.getElementById("settings-json").textContent = json(data.settings);
  }

  // ------------------------------------------------------------ the row list

  const outcomeFilter = document.getElementById("outcome-filter");
  const sinkFilter = document.getElementById("sink-filter");
  const search = document.getElementById("search");

  function fillFilters() {
    const outcomes = new Set(), sinks = new Set();
    for (const [, os, ss] of data.index) { os.forEach((o) => outcomes.add(o)); ss.forEach((s) => sinks.add(s)); }
    for (const n of data.nodes) if (n.kind === "sink") sinks.add(n.node_id);
    [...outcomes].sort().forEach((o) => outcomeFilter.append(el("option", { value: o }, o)));
    [...sinks].sort().forEach((s) => sinkFilter.append(el("option", { value: s }, s)));
  }

  function matching() {
    const q = search.value.trim().toLowerCase();
    const asNumber = /^\d+$/.test(q) ? Number(q) : null;
    return data.index.filter(([id, os, ss, line]) =>
      (!outcomeFilter.value || os.includes(outcomeFilter.value)) &&
      (!sinkFilter.value || ss.includes(sinkFilter.value)) &&
      (!q || id === asNumber || line.toLowerCase().includes(q)));
  }

  function renderRows() {
    const rows = matching();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    page = Math.min(page, pages - 1);
    const body = document.querySelector("#row-list tbody");
    body.replaceChildren(...rows.slice(page * PAGE, page * PAGE + PAGE).map(([id, os, ss, line]) =>
      el("tr", {}, el("td", {}, rowLink(id), data.details[id] ? "" : " (not in full here)"),
        el("td", {}, os.map(badge)), el("td", {}, ss.join(", ")), valueCell(line))));
    document.getElementById("page-info").textContent = "page " + (page + 1) + " of " + pages + " (" + num(rows.length) + " rows match)";
    document.getElementById("prev").disabled = page === 0;
    document.getElementById("next").disabled = page >= pages - 1;
  }

  function rowsNote() {
    const r = data.rows;
    let text = "This run read " + num(r.total) + " rows. The report shows " + num(r.detailed) + " in full: " + r.why + ".";
    if (r.total > data.index.length) {
      text += " The list below holds the first " + num(r.index_limit) + " rows and those shown in full; search and filters look only there.";
    }
    if (r.total > r.detailed) {
      text += " For any other row: elspeth explain " + runId + " --row N, or a report of chosen rows: elspeth report " + runId + " --rows 0-99,512 -o rows.html.";
    }
    document.getElementById("rows-note").textContent = text;
  }

  // ------------------------------------------------------------ one row

  const nodeById = Object.fromEntries(data.nodes.map((n) => [n.node_id, n]));

  function ending(o) {
    const at = o.node_id;
    const sink = o.sink_node_id ? " to " + o.sink_node_id : "";
    const reason = o.reason === null ? "" : ": " + (o.reason && o.reason.reason !== undefined ? plain(o.reason.reason) : plain(o.reason));
    if (o.outcome === "completed") return "completed: reached the end of the pipeline and was written" + sink;
    if (o.outcome === "routed") return "routed" + sink + ", decided at " + at + reason;
    if (o.outcome === "consumed") return "consumed by batch " + o.batch_id + " at " + at;
    return o.outcome + " at " + at + sink + reason;
  }

  function renderDetail(rowId) {
    const box = document.getElementById("row-detail");
    box.hidden = false;
    const d = data.details[rowId];
    if (!d) {
      box.replaceChildren(el("h2", {}, "Row " + rowId),
        el("p", {}, "Row " + rowId + " is not in this report in full (" + data.rows.why + "). See it with: elspeth explain " + runId + " --row " + rowId +
          ", or write a report of it: elspeth report " + runId + " --rows " + rowId + " -o row-" + rowId + ".html"));
      return;
    }
    const parts = [el("h2", {}, "Row " + rowId)];
    const bad = d.outcomes.some((o) => ["failed", "quarantined"].includes(o.outcome));
    parts.push(el("div", { class: "why" + (bad ? " bad" : ""), id: "row-why" },
      d.outcomes.length ? d.outcomes.map((o, i) => [i ? el("br") : null, "Token " + o.token_id + " " + ending(o) + "."])
        : "No outcome yet: the run has unfinished work for this row (elspeth resume finishes it)."));
    for (const o of d.outcomes) {
      const decider = nodeById[o.node_id];
      if (decider && decider.kind !== "sink" && Object.keys(decider.config || {}).length) {
        parts.push(el("p", { class: "note" }, o.node_id + " (" + decider.plugin + ") was configured with: " + inline(decider.config)));
      }
    }
    parts.push(renderPath(d));
    parts.push(el("h3", {}, "Source row"), renderPayload(d));
    parts.push(el("h3", {}, "Steps, in order"));
    for (const s of d.states) parts.push(renderStep(s, d.values[s.state_id]));
    if (d.batches.length) {
      parts.push(el("h3", {}, "Batches it joined"), table(["batch", "node", "status", "trigger", "flush state", "its tokens"],
        d.batches.map((b) => [b.batch_id, b.node_id, badge(b.status), b.trigger || "-", b.flush_state_id === null ? "-" : "#" + b.flush_state_id,
          b.row_tokens.length + " of " + b.members])));
    }
    parts.push(el("h3", {}, "Outcome and artifact"), table(["token", "outcome", "decided at", "sink", "artifact", "sha256", "size", "reason"],
      d.outcomes.map((o) => [o.token_id, badge(o.outcome), o.node_id, o.sink_node_id || "-", o.artifact ? o.artifact.uri : "-",
        o.artifact ? el("span", { class: "hash" }, o.artifact.content_hash) : "-", o.artifact ? num(o.artifact.size) + " bytes" : "-",
        o.reason === null ? "-" : valueCell(plain(o.reason))])));
    box.replaceChildren(...parts);
  }

  function renderPath(d) {
    const hops = [];
    const source = data.nodes.find((n) => n.kind === "source");
    if (source) hops.push(source.node_id);
    for (const s of d.states) {
      if (s.operation !== "process" && s.operation !== "flush") continue;
      if (s.operation === "flush" && nodeById[s.node_id] && nodeById[s.node_id].kind === "sink") continue;
      const v = d.values[s.state_id];
      const mark = s.status !== "completed" ? " (" + s.status + ")" : v && v.changes.length ? " (" + v.changes.map((c) => (c.change === "added" ? "+" : c.change === "removed" ? "-" : "~") + c.field).join(" ") + ")" : "";
      hops.push(s.node_id + (s.attempt > 1 ? " attempt " + s.attempt : "") + mark);
    }
    for (const o of d.outcomes) if (o.sink_node_id) hops.push(o.sink_node_id);
    return el("div", { class: "path", id: "row-path" }, hops.map((h, i) => [i ? " → " : "", el("span", { class: "hop" }, h)]));
  }

  function renderPayload(d) {
    const rows = d.payload && typeof d.payload === "object" && !Array.isArray(d.payload)
      ? Object.entries(d.payload).map(([k, v]) => [k, valueCell(plain(v))]) : [["", valueCell(plain(d.payload))]];
    const box = el("div", {}, table(["field", "value"], rows), el("p", { class: "note" }, "sha256 ", hash(d.payload_hash)));
    if (d.quarantined) box.append(el("p", { class: "why bad" }, "Quarantined: " + plain(d.quarantine_reason)));
    return box;
  }

  function renderStep(s, v) {
    const took = s.ended_at ? secs(s.ended_at - s.started_at) : "still open";
    const head = el("div", { class: "step-head" }, "#" + s.state_id + " " + s.node_id + " · " + s.operation,
      s.token_id === null ? "" : " · token " + s.token_id, " · attempt " + s.attempt + " · ", badge(s.status), " · " + took);
    const card = el("div", { class: "step " + s.status, "data-state": s.state_id }, head,
      el("div", {}, "in ", hash(s.input_hash), "  out ", hash(s.output_hash)));
    if (v) card.append(renderValues(v));
    if (s.error !== null) card.append(el("div", {}, "error: "), el("pre", {}, json(s.error)));
    for (const c of s.calls) card.append(renderCall(c));
    return card;
  }

  function renderValues(v) {
    if (v.note === "changed") {
      return el("table", { class: "diff" }, el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "before"), el("th", {}, "after"))),
        el("tbody", {}, v.changes.map((c) => el("tr", { class: c.change },
          el("td", {}, (c.field || "(whole value)") + " (" + c.change + ")"),
          valueCell(c.change === "added" ? "" : inline(c.before), "before"),
          valueCell(c.change === "removed" ? "" : inline(c.after), "after")))));
    }
    const notes = { unchanged: "values unchanged", failed: "no output: this attempt failed" };
    return el("p", { class: "note" }, notes[v.note] || "values: " + v.note + " (the hashes above still stand)");
  }

  function renderCall(c) {
    const box = el("div", { class: "call" }, el("div", {}, "call " + c.call_index + ": " + c.call_type + " " + c.provider + " ", badge(c.status),
      c.latency_ms === null ? "" : " " + Math.round(c.latency_ms) + " ms"));
    const messages = c.request && c.request.body && Array.isArray(c.request.body.messages) ? c.request.body.messages : null;
    if (messages) {
      box.append(el("div", {}, "prompt:"));
      for (const m of messages) box.append(el("div", { class: "message-role" }, m.role), el("pre", { class: "prompt" }, plain(m.content)));
    }
    const choice = c.response && Array.isArray(c.response.choices) && c.response.choices[0] && c.response.choices[0].message;
    if (choice) box.append(el("div", {}, "answer:"), el("pre", { class: "answer" }, plain(choice.content)));
    box.append(body("request", c.request, c.request_preview, c.request_hash, !messages));
    box.append(body("response", c.response, c.response_preview, c.response_hash, !choice));
    if (c.error !== null) box.append(el("div", {}, "error:"), el("pre", { class: "call-error" }, json(c.error)));
    return box;
  }

  function body(name, value, preview, digest, open) {
    if (value === null || value === undefined) {
      if (!preview && !digest) return "";
      return el("div", {}, name + " ", hash(digest), " " + (preview || "none recorded"));
    }
    return el("details", { open: open ? "" : null }, el("summary", {}, "full " + name + " (sha256 ", hash(digest), ")"), el("pre", {}, json(value)));
  }

  // ------------------------------------------------------------ navigation

  // The fragment opens a row and sets the filters, so a link can point at them: #row=12, #sink=sink:billing,
  // #outcome=failed, #q=T-1004 (combinable with &).
  function route() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.has("q")) search.value = params.get("q");
    for (const [name, select] of [["outcome", outcomeFilter], ["sink", sinkFilter]]) {
      if (params.has(name)) select.value = params.get(name);
    }
    page = 0;
    renderRows();
    const row = params.get("row");
    if (row !== null && /^\d+$/.test(row)) renderDetail(Number(row));
  }

  function start() {
    renderRun(); renderTiming(); renderArtifacts(); renderFailedCalls(); renderSettings();
    fillFilters(); rowsNote();
    for (const input of [search, outcomeFilter, sinkFilter]) input.addEventListener("input", () => { page = 0; renderRows(); });
    document.getElementById("prev").addEventListener("click", () => { page -= 1; renderRows(); });
    document.getElementById("next").addEventListener("click", () => { page += 1; renderRows(); });
    for (const node of document.querySelectorAll("svg [data-sink]")) {
      node.addEventListener("click", () => { sinkFilter.value = node.getAttribute("data-sink"); page = 0; renderRows(); document.getElementById("rows").scrollIntoView(); });
    }
    // A link followed inside the page brings its row into view; a page opened at #row=N has it on top already.
    window.addEventListener("hashchange", () => { route(); document.getElementById("row-detail").scrollIntoView(); });
    route();
  }
  start();
})();
