// eslhook console: plain JavaScript over the documented REST API.
// Every value from the API is rendered as text (textContent / Text nodes), never as
// markup; the page's CSP forbids inline script and style. The token lives in
// sessionStorage only (never a cookie or the page URL).
"use strict";

const TOKEN_KEY = "eslhook.token";
const GREGORIAN_UNIX_OFFSET = 62167219200;
const LIVE_ROWS = 200;
const FORM_FIELDS = ["name", "uri", "hook", "http_verb", "format", "retries", "enabled"];

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  account: null,
  hooks: [],          // full views, in listing order
  editing: null,      // hook id being edited, or null for a new one
  selected: null,     // hook whose deliveries are shown
  source: null,       // the live EventSource
  pendingRefresh: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.map((c) => (c instanceof Node ? c : String(c ?? ""))));
  return node;
}

function button(label, onclick, extra) {
  return el("button", Object.assign({ type: "button", onclick }, extra || {}), label);
}

function say(text) { $("status").textContent = text; }

function utc(gregorian) {
  if (typeof gregorian !== "number") return "";
  const date = new Date((gregorian - GREGORIAN_UNIX_OFFSET) * 1000);
  return date.toISOString().replace("T", " ").slice(0, 19);
}

function toGregorian(ms) { return Math.floor(ms / 1000) + GREGORIAN_UNIX_OFFSET; }

class ApiFailure extends Error {
  constructor(status, message, data) { super(message); this.status = status; this.data = data; }
}

async function api(method, path, body) {
  const init = { method, headers: { "X-Auth-Token": state.token }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify({ data: body });
  }
  const resp = await fetch(path, init);
  let json = null;
  try { json = await resp.json(); } catch (e) { json = null; }
  if (!resp.ok) {
    const data = json && json.data;
    const detail = data && typeof data.message === "string" ? data.message : "";
    throw new ApiFailure(resp.status, [json && json.message, detail].filter(Boolean).join(": ")
      || resp.statusText, data);
  }
  return json;
}

const accountPath = (rest) => "/v2/accounts/" + encodeURIComponent(state.account) + rest;
const hookPath = (id, rest) => accountPath("/webhooks/" + encodeURIComponent(id) + (rest || ""));

// -- sign in ----------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  let accounts;
  try {
    accounts = (await api("GET", "/v2/accounts")).data;
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    say("Sign in failed: " + err.message);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  const names = new Map(accounts.map((a) => [a.id, a.name]));
  const picker = $("account");
  picker.replaceChildren(...accounts.map((a) => el("option", { value: a.id },
    (a.name || a.id) + (a.parent_id ? " (in " + (names.get(a.parent_id) || a.parent_id) + ")" : ""))));
  $("signin-form").hidden = true;
  $("session").hidden = false;
  $("main").hidden = false;
  await loadHookTypes();
  say("Signed in: " + accounts.length + " account(s)");
  if (accounts.length) await chooseAccount(accounts[0].id);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  if (state.source) state.source.close();
  window.location.reload();
}

async function chooseAccount(id) {
  state.account = id;
  $("account").value = id;
  closeEditor();
  closeDeliveries();
  $("live-table").tBodies[0].replaceChildren();
  await loadHooks();
  connectLive();
}

async function loadHookTypes() {
  const types = (await api("GET", "/v2/webhooks")).data;
  $("f-hook").replaceChildren(el("option", { value: "all" }, "all"),
    ...types.map((t) => el("option", { value: t.id }, t.id + " (" + t.name + ")")));
}

// -- hooks ------------------------------------------------------------------

async function loadHooks() {
  let listing;
  try {
    listing = (await api("GET", accountPath("/webhooks?paginate=false"))).data;
  } catch (err) { say("Could not list hooks: " + err.message); return; }
  const views = await Promise.all(listing.map(async (summary) => {
    const [full, last] = await Promise.all([
      api("GET", hookPath(summary.id)).then((r) => r.data, () => summary),
      api("GET", hookPath(summary.id, "/attempts?page_size=1")).then((r) => r.data[0], () => null),
    ]);
    return Object.assign({}, full, { last });
  }));
  state.hooks = views;
  renderHooks();
}

function events(hook) { return Array.isArray(hook.hook) ? hook.hook.join(", ") : hook.hook; }

function stateCell(hook) {
  const cell = el("td", { class: hook.enabled ? "state-enabled" : "state-disabled" },
    hook.enabled ? "enabled" : "disabled");
  if (!hook.enabled && hook.disable_reason) {
    cell.append(el("span", { class: "reason" }, hook.disable_reason));
  }
  return cell;
}

function lastCell(last) {
  if (!last) return el("td", {}, "none yet");
  const code = last.response_code == null ? last.reason : String(last.response_code);
  return el("td", { class: "result-" + last.result }, last.result + " " + code,
    el("span", { class: "reason" }, utc(last.timestamp)));
}

function hookRow(hook) {
  const actions = el("td", { class: "actions" },
    button("Deliveries", () => openDeliveries(hook.id), { "aria-label": "Deliveries of " + hook.name }),
    button("Edit", () => openEditor(hook), { "aria-label": "Edit " + hook.name }),
    hook.enabled
      ? button("Disable", () => setEnabled(hook, false), { "aria-label": "Disable " + hook.name })
      : button(hook.disable_reason ? "Re-enable" : "Enable", () => setEnabled(hook, true),
        { "aria-label": (hook.disable_reason ? "Re-enable " : "Enable ") + hook.name }),
    button("Delete", (event) => deleteHook(hook, event.currentTarget),
      { "aria-label": "Delete " + hook.name }));
  return el("tr", { "data-hook-id": hook.id },
    el("td", {}, hook.name), el("td", {}, events(hook)), el("td", { class: "uri" }, hook.uri),
    el("td", {}, (hook.http_verb || "") + " / " + (hook.format || "")),
    stateCell(hook), lastCell(hook.last), actions);
}

function renderHooks() {
  const body = $("hooks-table").tBodies[0];
  body.replaceChildren(...state.hooks.map(hookRow));
  if (!state.hooks.length) {
    body.append(el("tr", {}, el("td", { colspan: "7" }, "No hooks in this account yet.")));
  }
}

async function setEnabled(hook, enabled) {
  try {
    await api("PATCH", hookPath(hook.id), { enabled });
    say((enabled ? "Enabled " : "Disabled ") + hook.name);
  } catch (err) { say("Could not change " + hook.name + ": " + err.message); }
  await loadHooks();
}

async function deleteHook(hook, target) {
  if (target.dataset.confirm !== "yes") {   // a second press confirms: no modal dialog
    target.dataset.confirm = "yes";
    target.textContent = "Confirm delete";
    return;
  }
  try {
    await api("DELETE", hookPath(hook.id));
    say("Deleted " + hook.name);
    if (state.selected === hook.id) closeDeliveries();
  } catch (err) { say("Could not delete " + hook.name + ": " + err.message); }
  await loadHooks();
}

async function reenableAll() {
  try {
    await api("PATCH", accountPath("/webhooks"), { "re-enable": true });
    say("Auto-disabled hooks re-enabled");
  } catch (err) { say("Could not re-enable: " + err.message); }
  await loadHooks();
}

// -- the hook form ----------------------------------------------------------

function clearErrors() {
  for (const name of FORM_FIELDS) {
    $("f-" + name + "-error").textContent = "";
    $("f-" + name).removeAttribute("aria-invalid");
  }
  $("form-error").textContent = "";
}

function setHookSelect(value) {
  const select = $("f-hook");
  select.querySelectorAll("option[data-multi]").forEach((o) => o.remove());
  if (Array.isArray(value)) {
    select.append(el("option", { value: JSON.stringify(value), "data-multi": "yes" }, value.join(", ")));
    select.value = JSON.stringify(value);
  } else {
    select.value = value || "channel_create";
  }
}

function openEditor(hook) {
  state.editing = hook ? hook.id : null;
  clearErrors();
  $("editor-heading").textContent = hook ? "Edit hook: " + hook.name : "New hook";
  $("f-name").value = hook ? hook.name : "";
  $("f-uri").value = hook ? hook.uri : "";
  setHookSelect(hook ? hook.hook : "channel_create");
  $("f-http_verb").value = hook ? hook.http_verb : "post";
  $("f-format").value = hook ? hook.format : "json";
  $("f-retries").value = hook ? hook.retries : 2;
  $("f-enabled").checked = hook ? hook.enabled : true;
  $("hook-editor").hidden = false;
  $("f-name").focus();
}

function closeEditor() {
  $("hook-editor").hidden = true;
  state.editing = null;
}

function formData() {
  const option = $("f-hook").selectedOptions[0];
  const retries = $("f-retries").value;
  return {
    name: $("f-name").value, uri: $("f-uri").value,
    hook: option && option.dataset.multi ? JSON.parse(option.value) : $("f-hook").value,
    http_verb: $("f-http_verb").value, format: $("f-format").value,
    retries: retries === "" ? retries : Number(retries), enabled: $("f-enabled").checked,
  };
}

function fieldMessages(checks) {
  if (!checks || typeof checks !== "object") return String(checks);
  return Object.entries(checks).map(([check, detail]) =>
    (detail && typeof detail.message === "string") ? detail.message : check).join("; ");
}

function showErrors(err) {
  const data = err.data && typeof err.data === "object" ? err.data : {};
  const general = [];
  let first = null;
  for (const [key, checks] of Object.entries(data)) {
    const field = key.split(".")[0];
    if (FORM_FIELDS.includes(field)) {
      const box = $("f-" + field + "-error");
      box.textContent = (box.textContent ? box.textContent + "; " : "") + fieldMessages(checks);
      $("f-" + field).setAttribute("aria-invalid", "true");
      first = first || $("f-" + field);
    } else if (key !== "message") {
      general.push(key + ": " + fieldMessages(checks));
    }
  }
  if (!first || general.length) $("form-error").textContent = [err.message, ...general].join(" ");
  (first || $("f-name")).focus();
}

async function saveHook(event) {
  event.preventDefault();
  clearErrors();
  const data = formData();
  try {
    const reply = state.editing
      ? await api("PATCH", hookPath(state.editing), data)
      : await api("PUT", accountPath("/webhooks"), data);
    say((state.editing ? "Saved " : "Created ") + reply.data.name);
    closeEditor();
    await loadHooks();
  } catch (err) { showErrors(err); }
}

// -- deliveries -------------------------------------------------------------

function selectedHook() { return state.hooks.find((h) => h.id === state.selected); }

async function openDeliveries(id) {
  state.selected = id;
  const hook = selectedHook();
  $("deliveries-heading").textContent = "Deliveries: " + (hook ? hook.name : id);
  const now = Date.now();
  $("replay-since").value = localInput(now - 3600 * 1000);
  $("replay-until").value = localInput(now + 60 * 1000);
  $("deliveries").hidden = false;
  await loadDeliveries();
  $("refresh-deliveries").focus();
}

function closeDeliveries() {
  state.selected = null;
  $("deliveries").hidden = true;
}

function localInput(ms) {
  const date = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return date.toISOString().slice(0, 19);
}

async function loadDeliveries() {
  if (!state.selected) return;
  const id = state.selected;
  const result = $("result-filter").value;
  const since = toGregorian(Date.now() - 3600 * 1000);
  try {
    const [page, hour] = await Promise.all([
      api("GET", hookPath(id, "/attempts?page_size=100" + (result ? "&result=" + result : ""))),
      api("GET", hookPath(id, "/attempts?paginate=false&created_from=" + since)),
    ]);
    if (state.selected !== id) return;
    renderAttempts(page.data);
    drawChart(hour.data);
  } catch (err) { say("Could not read the attempt log: " + err.message); }
}

// an attempt's duration_ms as shown; attempts logged before it was recorded have none
function milliseconds(duration) {
  return duration == null ? "" : duration.toFixed(1);
}

function attemptRow(attempt) {
  const status = attempt.response_code == null ? attempt.reason : String(attempt.response_code);
  return el("tr", { "data-attempt-id": String(attempt.id) },
    el("td", {}, utc(attempt.timestamp)), el("td", {}, attempt.hook_event),
    el("td", { class: "callid" }, attempt.call_id), el("td", {}, attempt.trigger),
    el("td", { class: "result-" + attempt.result }, attempt.result), el("td", {}, status),
    el("td", { class: "number" }, milliseconds(attempt.duration_ms)),
    el("td", {}, String(attempt.retries_left)),
    el("td", { class: "actions" }, button("Resend", () => resend(attempt),
      { "aria-label": "Resend attempt " + attempt.id })));
}

function renderAttempts(attempts) {
  const body = $("attempts-table").tBodies[0];
  body.replaceChildren(...attempts.map(attemptRow));
  if (!attempts.length) body.append(el("tr", {}, el("td", { colspan: "9" }, "No attempts.")));
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// per-minute buckets of the last hour: [successes, failures], oldest first (pure)
function perMinute(attempts, nowMs) {
  const buckets = Array.from({ length: 60 }, () => [0, 0]);
  const now = toGregorian(nowMs);
  for (const a of attempts) {
    const age = Math.floor((now - a.timestamp) / 60);
    if (age >= 0 && age < 60) buckets[59 - age][a.result === "success" ? 0 : 1] += 1;
  }
  return buckets;
}

function drawChart(attempts) {
  const chart = $("chart");
  const buckets = perMinute(attempts, Date.now());
  const top = Math.max(1, ...buckets.map(([ok, bad]) => ok + bad));
  const [left, height, width] = [20, 110, 10];
  const ok = buckets.reduce((n, b) => n + b[0], 0);
  const bad = buckets.reduce((n, b) => n + b[1], 0);
  const nodes = [svg("title", { id: "chart-title" },
    "Deliveries per minute, last hour: " + ok + " successes, " + bad + " failures"),
  svg("line", { class: "axis", x1: left, y1: height, x2: 620, y2: height }),
  svg("text", { x: 0, y: 10 }, String(top)), svg("text", { x: left, y: 125 }, "-60 min"),
  svg("text", { x: 585, y: 125 }, "now")];
  buckets.forEach(([good, failed], i) => {
    const x = left + i * width;
    const okHeight = (good / top) * (height - 10);
    const badHeight = (failed / top) * (height - 10);
    if (good) nodes.push(svg("rect", { class: "ok", x, width: width - 2, y: height - okHeight, height: okHeight }));
    if (failed) {
      nodes.push(svg("rect", { class: "bad", x, width: width - 2,
        y: height - okHeight - badHeight, height: badHeight }));
    }
  });
  chart.replaceChildren(...nodes);
}

async function resend(attempt) {
  try {
    await api("POST", hookPath(state.selected, "/attempts/" + attempt.id + "/resend"));
    say("Resend of attempt " + attempt.id + " queued");
  } catch (err) { say("Could not resend: " + err.message); }
  refreshSoon();
}

async function sendTest() {
  try {
    const reply = await api("POST", hookPath(state.selected, "/test"));
    say("Test sent: call " + reply.data.call_id);
  } catch (err) { say("Could not send a test: " + err.message); }
  refreshSoon();
}

async function replay(event) {
  event.preventDefault();
  const since = new Date($("replay-since").value);
  const until = new Date($("replay-until").value);
  try {
    const reply = await api("POST", hookPath(state.selected, "/replay"),
      { since: since.toISOString(), until: until.toISOString() });
    say("Replay queued: " + JSON.stringify(reply.data));
  } catch (err) { say("Could not replay: " + err.message); }
  refreshSoon();
}

function refreshSoon() {   // attempts land a moment after the request or the event
  clearTimeout(state.pendingRefresh);
  state.pendingRefresh = setTimeout(() => { loadHooks(); loadDeliveries(); }, 1000);
}

// -- live -------------------------------------------------------------------

function connectLive() {
  if (state.source) state.source.close();
  const url = accountPath("/events/stream") + "?auth_token=" + encodeURIComponent(state.token);
  const source = new EventSource(url);
  state.source = source;
  source.addEventListener("open", () => { $("live-state").textContent = "Live: connected"; });
  source.addEventListener("error", () => {
    $("live-state").textContent = "Live: disconnected, retrying";
  });
  source.addEventListener("channel", (message) => {
    addLiveRow(JSON.parse(message.data));
    refreshSoon();
  });
  source.addEventListener("dropped", (message) => {
    $("live-state").textContent = "Live: " + JSON.parse(message.data).dropped +
      " events dropped (this page fell behind)";
  });
  source.addEventListener("end", () => {
    source.close();
    $("live-state").textContent = "Live: eslhook is stopping";
  });
}

function party(name, number) { return [name, number].filter(Boolean).join(" "); }

function addLiveRow(call) {
  const body = $("live-table").tBodies[0];
  body.prepend(el("tr", {}, el("td", {}, utc(call.timestamp)), el("td", {}, call.hook_event),
    el("td", { class: "callid" }, call.call_id),
    el("td", {}, party(call.caller_id_name, call.caller_id_number) || call.from),
    el("td", {}, party(call.callee_id_name, call.callee_id_number) || call.to),
    el("td", {}, [call.hangup_cause, call.hangup_code].filter(Boolean).join(" "))));
  while (body.rows.length > LIVE_ROWS) body.deleteRow(-1);
}

async function loadHealth() {
  let body;
  try {
    const resp = await fetch("/healthz", { cache: "no-store" });
    body = await resp.json();
  } catch (err) { return; }
  $("switches").replaceChildren(...(body.switches || []).map((s) => el("li",
    { class: s.connected ? "up" : "down" },
    s.name + ": " + (s.connected ? "connected since " + s.since : "down (" + s.reason + ")"))));
}

// -- wiring -----------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim());
  });
  $("signout").addEventListener("click", signOut);
  $("account").addEventListener("change", (event) => chooseAccount(event.target.value));
  $("new-hook").addEventListener("click", () => openEditor(null));
  $("reenable-all").addEventListener("click", reenableAll);
  $("refresh-hooks").addEventListener("click", loadHooks);
  $("hook-form").addEventListener("submit", saveHook);
  $("cancel-edit").addEventListener("click", closeEditor);
  $("result-filter").addEventListener("change", loadDeliveries);
  $("refresh-deliveries").addEventListener("click", loadDeliveries);
  $("send-test").addEventListener("click", sendTest);
  $("close-deliveries").addEventListener("click", closeDeliveries);
  $("replay-form").addEventListener("submit", replay);
  loadHealth();
  setInterval(loadHealth, 5000);
  if (state.token) signIn(state.token);
});
