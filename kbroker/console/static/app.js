// kbroker console: a single page, hash-routed. Every value from the broker goes into the page as
// a text node (h() below never parses markup), so record contents, topic names, headers and
// group ids cannot inject script. Changes are POSTs with a JSON body and the X-Kbroker-Console
// header (the server's CSRF check).
"use strict";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
let pageToken = 0; // bumped on every navigation: loops of a page left behind stop
let chartTimer = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

function show(...children) {
  main.replaceChildren();
  append(main, children);
}

let keepNotice = false; // a notice said just before a navigation outlives it once

function say(text, kind) {
  keepNotice = true;
  notice.replaceChildren(h("p", { class: kind || "ok", id: "notice-text" }, text));
}

function clearNotice() { notice.replaceChildren(); }

class ApiError extends Error {
  constructor(status, data) {
    super(data && data.error ? data.error : "HTTP " + status);
    this.status = status;
    this.field = data && data.field;
  }
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (method === "POST") {
    opts.headers["Content-Type"] = "application/json";
    opts.headers["X-Kbroker-Console"] = "1";
    opts.body = JSON.stringify(body || {});
  }
  const resp = await fetch("/api/" + path, opts);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (resp.status === 401 && data && data.login) throw new LoginNeeded(data.error);
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

const enc = encodeURIComponent;

function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function fmtTime(ms) {
  if (ms === null || ms === undefined || ms < 0) return "";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function link(href, text, attrs) { return h("a", Object.assign({ href }, attrs || {}), text); }

function table(headers, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: /^(Partition|Offset|Lag|Size|Messages|Partitions|Committed|End offset|Start offset|RF)$/.test(x) ? "num" : null }, x)))),
    h("tbody", {}, rows));
}

function card(label, value, id) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value", id }, value));
}

async function guarded(fn) {
  try {
    await fn();
  } catch (e) {
    if (e instanceof LoginNeeded) { await pageLogin(e.message); return; }
    say(e.message, "error");
  }
}

// -- overview --------------------------------------------------------------------------------

async function pageOverview() {
  const o = await api("GET", "overview");
  const chartBox = h("div", { id: "throughput" });
  show(
    h("h1", {}, "Overview"),
    h("div", { class: "cards" },
      card("Cluster", o.cluster_id, "cluster-id"),
      card("Controller", o.controller_id ?? "unknown", "controller-id"),
      card("This broker", "node " + o.node_id),
      card("kbroker version", o.version, "version"),
      card("Brokers", o.brokers.length, "broker-count"),
      card("Topics", o.topics, "topic-count"),
      card("Partitions", o.partitions),
      card("Offline partitions", o.offline_partitions),
      card("Under-replicated", o.under_replicated_partitions)),
    h("h2", {}, "Throughput (this broker)"),
    chartBox,
    h("h2", {}, "Brokers"),
    table(["Id", "Host", "Port", "Rack", "Role"], o.brokers.map((b) => h("tr", {},
      h("td", {}, b.id), h("td", {}, b.host), h("td", {}, b.port), h("td", {}, b.rack || ""),
      h("td", {}, b.id === o.controller_id ? "controller" : "")))),
    h("h2", {}, "Controller quorum"),
    o.quorum.error ? h("p", { class: "muted", id: "quorum-error" }, o.quorum.error)
      : [h("p", { class: "muted" }, `leader ${o.quorum.leader_id}, epoch ${o.quorum.leader_epoch}, metadata high watermark ${o.quorum.high_watermark}`),
        table(["Node", "Role", "Log end offset", "Lag", "Last caught up"], o.quorum.replicas.map((r) => h("tr", {},
          h("td", {}, r.id), h("td", {}, r.role), h("td", { class: "num" }, r.log_end_offset), h("td", { class: "num" }, r.lag),
          h("td", {}, fmtTime(r.last_caught_up_ms)))), { id: "quorum-table" })],
    h("h2", {}, "Finalized features"),
    table(["Feature", "Level"], Object.entries(o.features).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)))));
  const token = pageToken;
  const draw = async () => {
    if (token !== pageToken) return;
    try { drawChart(chartBox, await api("GET", "throughput")); } catch (e) { say(e.message, "error"); }
  };
  await draw();
  chartTimer = setInterval(draw, 5000);
}

function drawChart(box, t) {
  const W = 900, H = 220, L = 70, B = 24, T = 10;
  const pts = t.points;
  const cur = t.current || { bytes_in: 0, bytes_out: 0, messages_in: 0 };
  const legend = h("div", { class: "legend" },
    h("span", { class: "in" }, "■ bytes in/s: ", h("b", { id: "rate-in" }, fmtBytes(Math.round(cur.bytes_in)))),
    h("span", { class: "out" }, "■ bytes out/s: ", h("b", { id: "rate-out" }, fmtBytes(Math.round(cur.bytes_out)))),
    h("span", {}, "messages in/s: ", h("b", {}, cur.messages_in.toFixed(1))),
    h("span", { class: "muted" }, "samples every " + t.interval_s + " s, last " + Math.round(pts.length * t.interval_s / 60) + " min"));
  const s = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  const max = Math.max(1, ...pts.map((p) => Math.max(p.bytes_in, p.bytes_out)));
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - B - T) * (1 - i / 4);
    s.appendChild(svg("line", { class: "grid", x1: L, x2: W - 5, y1: y, y2: y }));
    const label = svg("text", { x: 4, y: y + 4 });
    label.textContent = fmtBytes(Math.round(max * i / 4)) + "/s";
    s.appendChild(label);
  }
  if (pts.length) {
    const t0 = pts[0].t, t1 = pts[pts.length - 1].t;
    const x = (p) => L + (W - 5 - L) * (t1 === t0 ? 1 : (p.t - t0) / (t1 - t0));
    const y = (v) => T + (H - B - T) * (1 - v / max);
    for (const [key, cls] of [["bytes_in", "line-in"], ["bytes_out", "line-out"]]) {
      s.appendChild(svg("polyline", { class: cls, points: pts.map((p) => `${x(p).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ") }));
    }
    const first = svg("text", { x: L, y: H - 6 });
    first.textContent = new Date(t0 * 1000).toLocaleTimeString();
    const last = svg("text", { x: W - 70, y: H - 6 });
    last.textContent = new Date(t1 * 1000).toLocaleTimeString();
    s.append(first, last);
  } else {
    const wait = svg("text", { x: L + 10, y: H / 2 });
    wait.textContent = "collecting samples…";
    s.appendChild(wait);
  }
  box.replaceChildren(legend, s);
}

// -- topics ----------------------------------------------------------------------------------

function parseConfigLines(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (!t || t.startsWith("#")) continue;
    const i = t.indexOf("=");
    if (i <= 0) throw new Error("config line " + JSON.stringify(t) + " is not name=value");
    out[t.slice(0, i).trim()] = t.slice(i + 1).trim();
  }
  return out;
}

async function pageTopics() {
  const data = await api("GET", "topics");
  const name = h("input", { id: "create-topic-name", placeholder: "topic name", required: true });
  const parts = h("input", { id: "create-topic-partitions", type: "number", min: 1, value: 1 });
  const rf = h("input", { id: "create-topic-rf", type: "number", min: -1, value: -1, title: "-1: the broker's default.replication.factor" });
  const configs = h("textarea", { id: "create-topic-configs", placeholder: "optional configs, one name=value a line" });
  const form = h("form", { id: "create-topic", onsubmit: (ev) => { ev.preventDefault(); guarded(async () => {
    const r = await api("POST", "topics", { name: name.value, partitions: Number(parts.value), replication_factor: Number(rf.value), configs: parseConfigLines(configs.value) });
    say(`Created topic ${r.name} (${r.partitions} partitions)`);
    location.hash = "#/topic/" + enc(r.name);
  }); } },
  h("b", {}, "Create a topic "), h("label", {}, "Name ", name), h("label", {}, "Partitions ", parts),
  h("label", {}, "Replication factor ", rf), configs, h("button", { type: "submit", id: "create-topic-submit" }, "Create"));
  const rows = data.topics.map((t) => h("tr", { "data-topic": t.name },
    h("td", {}, link("#/topic/" + enc(t.name), t.name, { class: "topic-link" }), t.internal ? h("span", { class: "kind" }, "internal") : null),
    h("td", { class: "num" }, t.partitions), h("td", { class: "num" }, t.replication_factor),
    h("td", { class: "num" }, t.under_replicated), h("td", { class: "num" }, t.messages), h("td", { class: "num" }, fmtBytes(t.size)),
    h("td", { class: "row-actions" },
      link("#/messages/" + enc(t.name), "browse"), " ", link("#/produce/" + enc(t.name), "produce"), " ",
      t.internal ? null : h("button", { class: "danger", onclick: () => deleteTopic(t.name) }, "Delete"))));
  show(h("h1", {}, "Topics"), form,
    table(["Name", "Partitions", "RF", "Under-replicated", "Messages", "Size", ""], rows, { id: "topics-table" }));
}

async function deleteTopic(name) {
  if (!confirm(`Delete topic ${name} and all its records?`)) return;
  await guarded(async () => {
    await api("POST", "topics/" + enc(name) + "/delete", {});
    say(`Deleted topic ${name}`);
    if (location.hash === "#/topics") route(); else location.hash = "#/topics";
  });
}

async function pageTopic(name) {
  const t = await api("GET", "topics/" + enc(name));
  const parts = t.partitions.map((p) => h("tr", {},
    h("td", { class: "num" }, p.partition), h("td", {}, p.leader < 0 ? "none" : p.leader), h("td", {}, p.replicas.join(", ")),
    h("td", {}, p.isr.join(", ")), h("td", { class: "num" }, p.start_offset ?? "–"), h("td", { class: "num" }, p.end_offset ?? "–"),
    h("td", { class: "num" }, p.end_offset === null || p.start_offset === null ? "–" : p.end_offset - p.start_offset),
    h("td", { class: "num" }, fmtBytes(p.size))));
  const configs = (t.configs || []).map((c) => {
    const input = h("input", { value: c.value === null ? "" : c.value, "data-config": c.name, disabled: c.read_only || c.sensitive, size: 24 });
    return h("tr", { "data-config-row": c.name },
      h("td", { title: c.doc || "" }, c.name), h("td", {}, input), h("td", { class: "muted" }, c.source),
      h("td", { class: "row-actions" }, c.read_only ? "read-only" : [
        h("button", { class: "secondary", "data-save": c.name, onclick: () => guarded(async () => {
          await api("POST", `topics/${enc(name)}/configs`, { set: { [c.name]: input.value } });
          say(`Set ${c.name}=${input.value} on ${name}`); route();
        }) }, "Save"),
        c.source === "DYNAMIC_TOPIC_CONFIG" ? h("button", { class: "secondary", onclick: () => guarded(async () => {
          await api("POST", `topics/${enc(name)}/configs`, { delete: [c.name] });
          say(`Reset ${c.name} on ${name} to its default`); route();
        }) }, "Reset") : null]));
  });
  show(h("h1", {}, "Topic ", h("span", { id: "topic-name" }, t.name)),
    h("p", {}, h("span", { class: "muted" }, "id " + t.topic_id + "  "),
      link("#/messages/" + enc(name), "Browse messages"), " · ", link("#/produce/" + enc(name), "Produce"), " · ",
      t.internal ? null : h("button", { class: "danger", id: "delete-topic", onclick: () => deleteTopic(name) }, "Delete topic")),
    h("h2", {}, "Partitions"),
    table(["Partition", "Leader", "Replicas", "ISR", "Start offset", "End offset", "Messages", "Size"], parts, { id: "partitions-table" }),
    h("h2", {}, "Configs"),
    t.configs_error ? h("p", { class: "muted", id: "configs-error" }, "Configs not shown: " + t.configs_error)
      : table(["Name", "Value", "Source", ""], configs, { id: "configs-table" }));
}

// -- messages --------------------------------------------------------------------------------

function shownBytes(b) {
  if (b.kind === "null") return h("span", { class: "muted" }, "null");
  const kind = h("span", { class: "kind" }, b.kind + (b.truncated ? `, first 64 KiB of ${fmtBytes(b.size)}` : ""));
  if (b.kind === "json") return h("div", {}, h("pre", { class: "json" }, b.pretty), kind);
  if (b.kind === "binary") return h("div", {}, h("pre", { class: "hex" }, b.text), h("pre", { class: "escaped muted" }, b.escaped), kind);
  return h("div", {}, h("pre", { class: "text" }, b.text), kind);
}

function recordRow(r) {
  return h("tr", { class: "record-row", "data-partition": r.partition, "data-offset": r.offset },
    h("td", { class: "num" }, r.partition), h("td", { class: "num" }, r.offset), h("td", {}, fmtTime(r.timestamp)),
    h("td", { class: "record-key" }, shownBytes(r.key)), h("td", { class: "record-value" }, shownBytes(r.value)),
    h("td", { class: "record-headers" }, r.headers.map((x) => h("div", {}, h("b", {}, x.key), ": ", x.value.kind === "null" ? "null" : x.value.text))));
}

async function topicNames() {
  return (await api("GET", "topics")).topics.map((t) => t.name);
}

function hashQuery() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q);
}

async function pageMessages(topic) {
  const names = await topicNames();
  if (!topic && names.length) topic = names.find((n) => !n.startsWith("__")) || names[0];
  const topicSel = h("select", { id: "browse-topic", onchange: () => { location.hash = "#/messages/" + enc(topicSel.value); } },
    names.map((n) => h("option", { value: n, selected: n === topic }, n)));
  if (!topic) { show(h("h1", {}, "Messages"), h("p", {}, "No topics yet: ", link("#/topics", "create one"), ".")); return; }
  const detail = await api("GET", "topics/" + enc(topic));
  const q = hashQuery();
  const partSel = h("select", { id: "browse-partition" }, h("option", { value: "all" }, "all"),
    detail.partitions.map((p) => h("option", { value: p.partition, selected: q.get("partition") === String(p.partition) }, p.partition)));
  const mode = h("select", { id: "browse-mode" }, h("option", { value: "newest" }, "newest"),
    h("option", { value: "offset" }, "from offset"), h("option", { value: "timestamp" }, "from timestamp"));
  const offset = h("input", { id: "browse-offset", type: "number", min: 0, placeholder: "offset", size: 10 });
  const ts = h("input", { id: "browse-timestamp", type: "datetime-local", step: 1 });
  const limit = h("input", { id: "browse-limit", type: "number", min: 1, max: 500, value: 50, size: 5 });
  const filter = h("input", { id: "browse-filter", placeholder: "text in key, value or headers" });
  const live = h("input", { id: "browse-live", type: "checkbox" });
  const status = h("span", { class: "muted", id: "browse-status" });
  const body = h("tbody", { id: "records" });
  let positions = null;
  const token = pageToken;
  const load = () => guarded(async () => {
    const p = new URLSearchParams({ partition: partSel.value, limit: limit.value, filter: filter.value });
    if (mode.value === "offset") p.set("offset", offset.value);
    if (mode.value === "timestamp") {
      const ms = new Date(ts.value).getTime();
      if (Number.isNaN(ms)) throw new Error("choose a timestamp");
      p.set("timestamp", String(ms));
    }
    const r = await api("GET", `topics/${enc(topic)}/messages?${p}`);
    body.replaceChildren(...r.records.map(recordRow));
    positions = r.positions;
    status.textContent = `${r.records.length} records (${r.scanned} scanned)` +
      (r.unavailable.length ? `; partitions without a leader, not read: ${r.unavailable.join(", ")}` : "");
  });
  const tailLoop = async () => {
    while (live.checked && token === pageToken) {
      if (!positions) { await load(); continue; }
      const pos = Object.entries(positions).map(([k, v]) => `${k}:${v}`).join(",");
      try {
        const r = await api("GET", `topics/${enc(topic)}/tail?${new URLSearchParams({ positions: pos, wait_ms: 1000, filter: filter.value })}`);
        positions = r.positions;
        for (const rec of r.records.slice().reverse()) body.insertBefore(recordRow(rec), body.firstChild);
        while (body.children.length > 500) body.removeChild(body.lastChild);
        status.textContent = `live: ${body.children.length} records shown`;
      } catch (e) {
        say(e.message, "error");
        live.checked = false;
      }
    }
  };
  live.addEventListener("change", () => { if (live.checked) tailLoop(); });
  show(h("h1", {}, "Messages"),
    h("form", { id: "browse-form", onsubmit: (ev) => { ev.preventDefault(); load(); } },
      h("label", {}, "Topic ", topicSel), h("label", {}, "Partition ", partSel), h("label", {}, "Show ", mode),
      h("label", {}, "Offset ", offset), h("label", {}, "Timestamp ", ts), h("label", {}, "Limit ", limit),
      h("label", {}, "Filter ", filter), h("button", { type: "submit", id: "browse-load" }, "Load"), " ",
      h("label", {}, live, " live tail"), " ", link("#/produce/" + enc(topic), "produce to " + topic), " ", status),
    table(["Partition", "Offset", "Timestamp", "Key", "Value", "Headers"], [], { id: "records-table" }));
  main.querySelector("#records-table tbody").replaceWith(body);
  await load();
}

// -- produce ---------------------------------------------------------------------------------

async function pageProduce(topic) {
  const names = await topicNames();
  if (!topic && names.length) topic = names.find((n) => !n.startsWith("__")) || names[0];
  if (!topic) { show(h("h1", {}, "Produce"), h("p", {}, "No topics yet: ", link("#/topics", "create one"), ".")); return; }
  const detail = await api("GET", "topics/" + enc(topic));
  const topicSel = h("select", { id: "produce-topic", onchange: () => { location.hash = "#/produce/" + enc(topicSel.value); } },
    names.map((n) => h("option", { value: n, selected: n === topic }, n)));
  const partSel = h("select", { id: "produce-partition" }, h("option", { value: "auto" }, "by key (Kafka's default partitioner)"),
    detail.partitions.map((p) => h("option", { value: p.partition }, p.partition)));
  const key = h("input", { id: "produce-key", placeholder: "key (empty: null)", size: 30 });
  const value = h("textarea", { id: "produce-value", placeholder: "value (text or JSON)" });
  const headers = h("div", { id: "produce-headers" });
  const addHeader = () => headers.appendChild(h("div", { class: "header-row" },
    h("input", { class: "header-key", placeholder: "header key" }), h("input", { class: "header-value", placeholder: "header value" })));
  const form = h("form", { id: "produce-form", onsubmit: (ev) => { ev.preventDefault(); guarded(async () => {
    const hs = [...headers.querySelectorAll(".header-row")].map((row) => ({ key: row.querySelector(".header-key").value, value: row.querySelector(".header-value").value }))
      .filter((x) => x.key !== "" || x.value !== "");
    const r = await api("POST", `topics/${enc(topic)}/produce`, { partition: partSel.value, key: key.value === "" ? null : key.value, value: value.value, headers: hs });
    say(`Produced to ${r.topic} partition ${r.partition} at offset ${r.offset}`);
  }); } },
  h("label", {}, "Topic ", topicSel), h("label", {}, "Partition ", partSel), h("br"),
  h("label", {}, "Key ", key), value, h("p", {}, "Headers ", h("button", { type: "button", class: "secondary", id: "produce-add-header", onclick: addHeader }, "+ header")), headers,
  h("button", { type: "submit", id: "produce-submit" }, "Produce"), " ", link("#/messages/" + enc(topic), "browse " + topic));
  show(h("h1", {}, "Produce a message"), form);
}

// -- groups ----------------------------------------------------------------------------------

async function pageGroups() {
  const data = await api("GET", "groups");
  show(h("h1", {}, "Consumer groups"),
    data.groups.length ? table(["Group", "Type", "Protocol type", "State", "Coordinator"], data.groups.map((g) => h("tr", { "data-group": g.group_id },
      h("td", {}, link("#/group/" + enc(g.group_id), g.group_id, { class: "group-link" })), h("td", {}, g.type),
      h("td", {}, g.protocol_type), h("td", {}, g.state), h("td", {}, g.coordinator))), { id: "groups-table" })
      : h("p", { class: "muted" }, "No groups."));
}

async function pageGroup(group) {
  const g = await api("GET", "groups/" + enc(group));
  const members = g.members.map((m) => h("tr", {}, h("td", {}, m.member_id), h("td", {}, m.instance_id || ""),
    h("td", {}, m.client_id), h("td", {}, m.client_host),
    h("td", {}, m.assignment.map((a) => h("div", {}, a.topic + ": " + a.partitions.join(", "))))));
  const offsets = g.offsets.map((o) => h("tr", { class: "offset-row", "data-topic": o.topic, "data-partition": o.partition },
    h("td", {}, o.topic), h("td", { class: "num" }, o.partition), h("td", { class: "num committed" }, o.committed === null ? "–" : o.committed),
    h("td", { class: "num" }, o.end_offset === null ? "–" : o.end_offset), h("td", { class: "num lag" }, o.lag === null ? "–" : o.lag),
    h("td", {}, o.member || "")));
  const topics = [...new Set(g.offsets.map((o) => o.topic))];
  const names = await topicNames();
  const topicSel = h("select", { id: "reset-topic" }, h("option", { value: "" }, "all committed topics"),
    names.map((n) => h("option", { value: n, selected: topics.length === 1 && topics[0] === n }, n)));
  const to = h("select", { id: "reset-to" }, ["earliest", "latest", "offset", "timestamp"].map((x) => h("option", { value: x }, x)));
  const off = h("input", { id: "reset-offset", type: "number", min: 0, placeholder: "offset", size: 10 });
  const ts = h("input", { id: "reset-timestamp", type: "datetime-local", step: 1 });
  const inactive = g.state === "Empty" || g.state === "Dead";
  const form = h("form", { id: "reset-form", onsubmit: (ev) => { ev.preventDefault(); guarded(async () => {
    const body = { to: to.value, topic: topicSel.value || null };
    if (to.value === "offset") body.offset = off.value === "" ? null : Number(off.value);
    if (to.value === "timestamp") body.timestamp = new Date(ts.value).getTime();
    const r = await api("POST", `groups/${enc(group)}/reset-offsets`, body);
    say(`Reset ${r.offsets.length} partition offsets of ${group}`);
    route();
  }); } },
  h("b", {}, "Reset offsets "), h("label", {}, "Topic ", topicSel), h("label", {}, "To ", to), h("label", {}, "Offset ", off),
  h("label", {}, "Timestamp ", ts), h("button", { type: "submit", id: "reset-submit" }, "Reset"),
  inactive ? null : h("p", { class: "muted" }, `The group is ${g.state}: Kafka resets offsets only while a group is inactive (Empty); stop its consumers first.`));
  show(h("h1", {}, "Group ", h("span", { id: "group-id" }, g.group_id)),
    h("div", { class: "cards" }, card("State", g.state, "group-state"), card("Type", g.type), card("Protocol type", g.protocol_type || "–"),
      card("Protocol", g.protocol || "–"), card("Coordinator", g.coordinator), card("Total lag", g.total_lag, "group-total-lag")),
    h("h2", {}, "Members"), members.length ? table(["Member", "Instance", "Client", "Host", "Assignment"], members) : h("p", { class: "muted" }, "No members."),
    h("h2", {}, "Offsets and lag"), table(["Topic", "Partition", "Committed", "End offset", "Lag", "Member"], offsets, { id: "offsets-table" }),
    form);
}

// -- transactions ----------------------------------------------------------------------------

async function pageTransactions() {
  const [tx, pr] = await Promise.all([api("GET", "transactions"), api("GET", "producers")]);
  show(h("h1", {}, "Transactions and producers"),
    h("h2", {}, "Transactional ids"),
    tx.transactions.length ? table(["Transactional id", "State", "Producer id", "Epoch", "Timeout ms", "Started", "Partitions", "Coordinator"],
      tx.transactions.map((t) => h("tr", {}, h("td", {}, t.transactional_id), h("td", {}, t.state || t.error), h("td", {}, t.producer_id ?? ""),
        h("td", {}, t.producer_epoch ?? ""), h("td", {}, t.timeout_ms ?? ""), h("td", {}, fmtTime(t.start_time_ms)),
        h("td", {}, (t.partitions || []).map((p) => h("div", {}, p.topic + ": " + p.partitions.join(", ")))), h("td", {}, t.coordinator))),
      { id: "transactions-table" }) : h("p", { class: "muted" }, "No transactional ids."),
    h("h2", {}, "Active producers (idempotent and transactional)"),
    pr.producers.length ? table(["Topic", "Partition", "Producer id", "Epoch", "Last sequence", "Last write", "Open txn from offset"],
      pr.producers.map((p) => h("tr", {}, h("td", {}, p.topic), h("td", { class: "num" }, p.partition), h("td", {}, p.producer_id),
        h("td", {}, p.producer_epoch), h("td", {}, p.last_sequence), h("td", {}, fmtTime(p.last_timestamp)),
        h("td", {}, p.txn_start_offset < 0 ? "–" : p.txn_start_offset))), { id: "producers-table" })
      : h("p", { class: "muted" }, "No active producers."));
}

// -- routing ---------------------------------------------------------------------------------

const routes = [
  [/^#\/overview$/, pageOverview, "overview"],
  [/^#\/topics$/, pageTopics, "topics"],
  [/^#\/topic\/([^?]+)$/, pageTopic, "topics"],
  [/^#\/messages(?:\/([^?]*))?(?:\?.*)?$/, pageMessages, "messages"],
  [/^#\/produce(?:\/([^?]*))?$/, pageProduce, "produce"],
  [/^#\/groups$/, pageGroups, "groups"],
  [/^#\/group\/([^?]+)$/, pageGroup, "groups"],
  [/^#\/transactions$/, pageTransactions, "transactions"],
  [/^#\/delayed$/, pageDelayed, "delayed"],
  [/^#\/acls$/, pageAcls, "acls"],
  [/^#\/users$/, pageUsers, "users"],
];

async function route() {
  pageToken++;
  setTimeout(() => { keepNotice = false; }, 0);
  if (chartTimer) { clearInterval(chartTimer); chartTimer = null; }
  const hash = location.hash || "#/overview";
  for (const [re, fn, nav] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.page === nav);
    main.setAttribute("data-page", nav);
    main.setAttribute("aria-busy", "true");
    try {
      await fn(m[1] === undefined || m[1] === "" ? undefined : decodeURIComponent(m[1]));
    } catch (e) {
      if (e instanceof LoginNeeded) { await pageLogin(); return; }
      show(h("h1", {}, "Error"), h("p", { class: "error", id: "page-error" }, e.message));
    } finally {
      main.setAttribute("aria-busy", "false");
    }
    return;
  }
  location.hash = "#/overview";
}

window.addEventListener("hashchange", () => {
  if (!keepNotice) clearNotice();
  keepNotice = false;
  route();
});
showWho().catch(() => {}).finally(route);
