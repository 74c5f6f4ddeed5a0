// kbroker console: login, ACLs, SCRAM users and pending delayed records. Loaded before app.js,
// whose helpers (h, api, show, say, guarded, table, shownBytes, fmtTime) these pages use when they
// run; every value from the broker goes into text nodes, as in app.js.
"use strict";

class LoginNeeded extends Error {}

// -- login (when the broker has SASL users) ----------------------------------------------------

async function showWho() {
  const who = document.getElementById("who");
  const s = await api("GET", "session");
  who.replaceChildren();
  if (s.user) {
    append(who, [h("span", { id: "who-principal" }, s.principal), " ",
      h("button", { type: "button", class: "secondary", id: "logout", onclick: () => guarded(async () => {
        await api("POST", "logout", {});
        await showWho();
        route();
      }) }, "Log out")]);
  }
  return s;
}

async function pageLogin(message) {
  const s = await api("GET", "session");
  const user = h("input", { id: "login-user", autocomplete: "username", required: true });
  const password = h("input", { id: "login-password", type: "password", autocomplete: "current-password", required: true });
  const mechanism = h("select", { id: "login-mechanism" }, s.mechanisms.map((m) => h("option", { value: m }, m)));
  const form = h("form", { id: "login-form", onsubmit: (ev) => { ev.preventDefault(); guarded(async () => {
    await api("POST", "login", { username: user.value, password: password.value, mechanism: mechanism.value });
    clearNotice();
    await showWho();
    route();
  }); } },
  h("label", {}, "User ", user), h("label", {}, "Password ", password), h("label", {}, "Mechanism ", mechanism),
  h("button", { type: "submit", id: "login-submit" }, "Log in"));
  show(h("h1", {}, "Log in"),
    h("p", { class: "muted" }, message || "The broker has SASL users: log in with the same credentials as a Kafka client. What you see and may change is what the broker's ACLs allow your principal."),
    form);
}

// -- ACLs and users --------------------------------------------------------------------------

const ACL_COLUMNS = ["resource_type", "resource_name", "pattern_type", "principal", "host", "operation", "permission"];

function choice(id, values, selected) {
  return h("select", { id }, values.map((v) => h("option", { value: v, selected: v === selected }, v)));
}

async function pageAcls() {
  const data = await api("GET", "acls");
  const f = {
    resource_type: choice("acl-resource-type", ["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"], "TOPIC"),
    resource_name: h("input", { id: "acl-resource-name", placeholder: "name (kafka-cluster for CLUSTER)" }),
    pattern_type: choice("acl-pattern-type", ["LITERAL", "PREFIXED"], "LITERAL"),
    principal: h("input", { id: "acl-principal", placeholder: "User:alice" }),
    host: h("input", { id: "acl-host", value: "*", size: 12 }),
    operation: choice("acl-operation", ["ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
      "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "CREATE_TOKENS", "DESCRIBE_TOKENS", "TWO_PHASE_COMMIT"], "READ"),
    permission: choice("acl-permission", ["ALLOW", "DENY"], "ALLOW"),
  };
  const form = h("form", { id: "acl-form", onsubmit: (ev) => { ev.preventDefault(); guarded(async () => {
    const body = Object.fromEntries(Object.entries(f).map(([k, el]) => [k, el.value]));
    await api("POST", "acls", body);
    say(`Created: ${body.permission} ${body.principal} ${body.operation} on ${body.resource_type} ${body.resource_name}`);
    route();
  }); } },
  ...Object.entries(f).map(([k, el]) => h("label", {}, k.replace("_", " ") + " ", el)),
  h("button", { type: "submit", id: "acl-submit" }, "Create ACL"));
  const rows = data.acls.map((a) => h("tr", { class: "acl-row" }, ACL_COLUMNS.map((k) => h("td", {}, a[k])),
    h("td", { class: "row-actions" }, h("button", { type: "button", class: "danger", onclick: () => guarded(async () => {
      if (!confirm(`Delete this ACL of ${a.principal}?`)) return;
      await api("POST", "acls/delete", a);
      say(`Deleted the ACL of ${a.principal} on ${a.resource_type} ${a.resource_name}`);
      route();
    }) }, "Delete"))));
  show(h("h1", {}, "ACLs"), form,
    rows.length ? table(["Resource type", "Name", "Pattern", "Principal", "Host", "Operation", "Permission", ""], rows, { id: "acls-table" })
      : h("p", { class: "muted", id: "acls-empty" }, "No ACLs."));
}

async function pageUsers() {
  const data = await api("GET", "users");
  const user = h("input", { id: "user-name", placeholder: "user name" });
  const password = h("input", { id: "user-password", type: "password", autocomplete: "new-password" });
  const mechanism = choice("user-mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"], "SCRAM-SHA-256");
  const iterations = h("input", { id: "user-iterations", type: "number", value: 4096, min: 4096, max: 16384 });
  const form = h("form", { id: "user-form", onsubmit: (ev) => { ev.preventDefault(); guarded(async () => {
    await api("POST", "users", { user: user.value, password: password.value, mechanism: mechanism.value, iterations: Number(iterations.value) });
    say(`Saved the ${mechanism.value} credential of ${user.value}`);
    route();
  }); } },
  h("label", {}, "User ", user), h("label", {}, "Password ", password), h("label", {}, "Mechanism ", mechanism),
  h("label", {}, "Iterations ", iterations), h("button", { type: "submit", id: "user-submit" }, "Add / update SCRAM user"));
  const rows = data.users.flatMap((u) => u.mechanisms.map((m) => h("tr", { class: "user-row", "data-user": u.user },
    h("td", {}, u.user), h("td", {}, m.mechanism), h("td", { class: "num" }, m.iterations),
    h("td", { class: "row-actions" }, h("button", { type: "button", class: "danger", onclick: () => guarded(async () => {
      if (!confirm(`Delete the ${m.mechanism} credential of ${u.user}?`)) return;
      await api("POST", "users/delete", { user: u.user, mechanism: m.mechanism });
      say(`Deleted the ${m.mechanism} credential of ${u.user}`);
      route();
    }) }, "Delete")))));
  show(h("h1", {}, "SCRAM users"), form,
    rows.length ? table(["User", "Mechanism", "Iterations", ""], rows, { id: "users-table" })
      : h("p", { class: "muted", id: "users-empty" }, "No SCRAM users."),
    h("p", { class: "muted" }, "PLAIN users come from the listener's sasl.jaas.config and are not listed here."));
}

// -- delayed records -------------------------------------------------------------------------

async function pageDelayed() {
  const d = await api("GET", "delayed");
  const rows = d.pending.map((r) => h("tr", { class: "delayed-row" },
    h("td", {}, fmtTime(r.due)), h("td", {}, r.topic), h("td", { class: "num" }, r.partition),
    h("td", {}, shownBytes(r.key)), h("td", {}, shownBytes(r.value)),
    h("td", {}, r.internal_partition + " @ " + r.internal_offset)));
  show(h("h1", {}, "Pending delayed records"),
    h("p", { class: "muted" }, `Records produced with kbroker-deliver-after-ms / kbroker-deliver-at, read from ${d.topic}: `
      + `${d.pending.length} pending` + (d.truncated ? " (the first ones: more were not read)" : "") + "."),
    rows.length ? table(["Due", "Topic", "Partition", "Key", "Value", "Stored at"], rows, { id: "delayed-table" })
      : h("p", { class: "muted", id: "delayed-empty" }, "No pending delayed records."));
}
