// The dashboard's entry point: sign-in, the live feed, routing between the four views,
// light and dark. The API key lives in sessionStorage (this tab only) and is sent in a
// header or the WebSocket's first message, never in a URL.

import { Api } from "./api.js";
import { ActionsView } from "./actions.js";
import { ChartsView } from "./charts.js";
import { Feed } from "./feed.js";
import { drawSpark, FleetView } from "./fleet.js";
import { HistoryView } from "./history.js";
import { IncidentsView } from "./incidents.js";
import { fmtAgo, fmtMs, fmtTime, h, s } from "./util.js";

const KEY_STORAGE = "selfheal.apiKey";
const THEME_STORAGE = "selfheal.theme";
const HEADER = document.querySelector('meta[name="selfheal-api-key-header"]').content || "X-API-Key";
const $ = (id) => document.getElementById(id);

let session = null;
let everStarted = false; // views bind to the page once; a second sign-in reloads it

// -- theme ------------------------------------------------------------------------------

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
}

function initialTheme() {
  const stored = localStorage.getItem(THEME_STORAGE);
  if (stored === "light" || stored === "dark") return stored;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

$("theme-toggle").addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  localStorage.setItem(THEME_STORAGE, next);
  applyTheme(next);
});

// -- sign-in ----------------------------------------------------------------------------

function showSignin(error = null) {
  $("boot").hidden = true;
  $("app").hidden = true;
  $("signin").hidden = false;
  const box = $("signin-error");
  if (error) {
    box.replaceChildren(h("span", { text: error.title }), h("small", { text: error.detail }));
    box.hidden = false;
  } else {
    box.hidden = true;
  }
  const input = $("api-key");
  input.value = "";
  input.focus();
}

function wrongKey(reason) {
  return {
    title: "This API key was not accepted.",
    detail: `${reason} Check the key (or ask for a new one) and sign in again.`,
  };
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) {
    showSignin({ title: "Enter an API key.", detail: "The agent prints one when it starts." });
    return;
  }
  $("signin-button").disabled = true;
  try {
    await start(key, { fromForm: true });
  } finally {
    $("signin-button").disabled = false;
  }
});

$("signout").addEventListener("click", () => signOut());

function signOut(error = null) {
  sessionStorage.removeItem(KEY_STORAGE);
  if (session) session.feed.close();
  session = null;
  // a fresh page leaves no state of the previous key behind
  if (error) showSignin(error);
  else location.replace(location.pathname);
}

// -- the signed-in app ------------------------------------------------------------------

async function start(key, { fromForm = false } = {}) {
  let unauthorized = false;
  const api = new Api(HEADER, key, () => {
    unauthorized = true;
  });
  let fleet;
  try {
    fleet = await getFleet(api);
  } catch (err) {
    if (unauthorized || err.status === 401) {
      sessionStorage.removeItem(KEY_STORAGE);
      showSignin(wrongKey(`The agent answered ${err.describe()}.`));
    } else {
      showSignin({ title: "The agent could not be reached.", detail: err.describe() });
    }
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  if (fromForm) $("api-key").value = "";
  if (everStarted) {
    location.reload();
    return;
  }
  everStarted = true;
  api.onUnauthorized = (err) => signOut(wrongKey(`The agent stopped accepting it (${err.describe()}).`));

  const views = {};
  views.fleet = new FleetView({ onOpen: (id) => openDrawer(api, views.fleet, id) });
  views.incidents = new IncidentsView(api, {
    onCount: (n) => {
      const badge = $("open-count");
      badge.textContent = String(n);
      badge.hidden = n === 0;
    },
    onChange: () => {},
  });
  views.actions = new ActionsView(api);
  views.charts = new ChartsView(api);
  $("signin").hidden = true;
  $("boot").hidden = true;
  $("app").hidden = false;
  route(views);
  views.fleet.load(fleet.body);

  const feed = new Feed(key, {
    onEvent: (event) => dispatch(api, views, event),
    onState: (state) => {
      const badge = $("feed-state");
      badge.dataset.state = state;
      badge.textContent = state === "live" ? "live" : state;
    },
    onTenant: (tenant) => {
      $("tenant").textContent = `tenant ${tenant}`;
    },
    onResync: () => resync(api, views),
    onUnauthorized: (err) => signOut(wrongKey(`The live feed refused it (${err.message}).`)),
  });
  session = { api, views, feed };
  window.__selfheal = session; // for the browser tests and the curious
  feed.connect();
  views.incidents.load().catch(report);
}

addEventListener("hashchange", () => {
  if (session) route(session.views);
});

/** Every page of /api/fleet as one snapshot ({status, body} like api.get). */
async function getFleet(api) {
  const first = await api.get("/api/fleet");
  const body = first.body;
  let next = body.next_cursor;
  while (next) {
    const page = (await api.get(`/api/fleet?cursor=${encodeURIComponent(next)}`)).body;
    body.services.push(...page.services);
    body.tags = [...new Set([...body.tags, ...page.tags])].sort();
    body.by_status = page.by_status;
    next = page.next_cursor;
  }
  body.count = body.services.length;
  return first;
}

async function resync(api, views) {
  try {
    views.fleet.beginSync();
    const fleet = await getFleet(api);
    views.fleet.load(fleet.body);
    await views.incidents.load();
    views.actions.stale = true;
    views.actions.show(views.actions.visible);
    views.charts.stale = true;
    views.charts.show(views.charts.visible);
  } catch (err) {
    views.fleet.pending = null;
    report(err);
  }
}

function dispatch(api, views, event) {
  const data = event.data || {};
  switch (event.type) {
    case "service.status":
      views.fleet.onStatus(data);
      break;
    case "service.probes":
      views.fleet.onProbes(data.probes || []);
      break;
    case "service.registered":
      api.get(`/api/services/${encodeURIComponent(data.service_id)}`).then((r) => views.fleet.upsert(r.body), report);
      break;
    case "service.removed":
      views.fleet.remove(data.service_id);
      break;
    default:
      break;
  }
  views.incidents.onEvent(event);
  views.actions.onEvent(event);
  views.charts.onEvent(event);
}

function route(views) {
  const [name, arg] = location.hash.replace(/^#/, "").split("/");
  const current = ["fleet", "incidents", "actions", "charts"].includes(name) ? name : "fleet";
  for (const section of document.querySelectorAll("main > .view")) {
    section.hidden = section.dataset.view !== current;
  }
  for (const tab of document.querySelectorAll(".tabs a")) {
    if (tab.dataset.tab === current) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  views.fleet.show(current === "fleet");
  views.actions.show(current === "actions");
  views.charts.show(current === "charts");
  if (current === "incidents") views.incidents.select(arg && /^\d+$/.test(arg) ? Number(arg) : null);
}

// -- the service drawer -----------------------------------------------------------------

async function openDrawer(api, fleet, serviceId) {
  const drawer = $("drawer");
  const body = $("drawer-body");
  drawer.hidden = false;
  body.replaceChildren(h("p", { class: "muted", text: "Loading…" }));
  try {
    const [service, incidents] = await Promise.all([
      api.get(`/api/services/${encodeURIComponent(serviceId)}`),
      api.get(`/api/incidents?service_id=${encodeURIComponent(serviceId)}&limit=10`),
    ]);
    const svc = service.body;
    const last = svc.last_check;
    const target = { line: s("polyline", { points: "" }), fails: s("g"), title: s("title") };
    drawSpark(target, svc.recent.map((p) => p.response_ms), svc.recent.map((p) => p.ok));
    const rows = [
      ["id", svc.service_id],
      ["status", svc.status],
      ["since", svc.status_since ? fmtTime(svc.status_since) : "–"],
      ["health URL", svc.health_url],
      ["webhook", svc.webhook_url || "none"],
      ["tags", svc.tags.join(", ") || "none"],
      ["interval", `${svc.interval}s, timeout ${svc.timeout}s`],
      ["last check", last ? `${fmtAgo(Date.now() / 1000 + fleet.skew - last.at)} — ${last.ok ? "ok" : "failed"}, ${fmtMs(last.response_ms)}` : "not yet"],
    ];
    if (last && last.error) rows.push(["error", last.error]);
    for (const name of ["cpu", "memory", "error_rate", "latency_ms"]) {
      if (last && last[name] !== null && last[name] !== undefined) rows.push([name.replace("_", " "), String(last[name])]);
    }
    body.replaceChildren(
      h("h3", { text: svc.name }),
      s("svg", { class: "spark", viewBox: "0 0 100 24", preserveAspectRatio: "none" }, target.title, target.line, target.fails),
      h("dl", {}, ...rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])),
      new HistoryView(api, serviceId).element,
      h("h4", { text: "Recent incidents" }),
      incidents.body.data.length
        ? h(
            "ul",
            {},
            ...incidents.body.data.map((i) =>
              h("li", {}, h("a", { href: `#incidents/${i.id}`, text: `#${i.id} ${i.type.replace(/_/g, " ")}` }), ` — ${i.status}, ${fmtTime(i.opened_at)}`),
            ),
          )
        : h("p", { class: "muted", text: "None." }),
    );
  } catch (err) {
    body.replaceChildren(h("p", { text: err.describe ? err.describe() : String(err) }));
  }
}

$("drawer-close").addEventListener("click", () => {
  $("drawer").hidden = true;
});
addEventListener("keydown", (event) => {
  if (event.key === "Escape") $("drawer").hidden = true;
});
addEventListener("hashchange", () => {
  $("drawer").hidden = true;
});

// -- notices ----------------------------------------------------------------------------

let toastTimer = null;
function report(err) {
  const toast = $("toast");
  toast.textContent = err && err.describe ? err.describe() : String(err);
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    toast.hidden = true;
  }, 5000);
}

// -- boot -------------------------------------------------------------------------------

applyTheme(initialTheme());
const stored = sessionStorage.getItem(KEY_STORAGE);
if (stored) start(stored);
else showSignin();
