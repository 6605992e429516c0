// The fleet: one tile per service, virtualised. Only the rows in view (plus a couple
// above and below) exist in the DOM, and tile nodes are reused, so 1,000 or 10,000
// services cost the same to draw. Events change the model; one animation frame then
// redraws what is visible, however many events arrived in between.

import { debounce, fmtAgo, fmtMs, frameScheduler, h, s } from "./util.js";

const TILE_H = 112;
const GAP = 10;
const ROW = TILE_H + GAP;
const MIN_TILE_W = 220;
const OVERSCAN_ROWS = 2;
const SPARK_POINTS = 30;
const STATUS_RANK = { down: 0, degraded: 1, unknown: 2, up: 3 };

export class FleetView {
  constructor({ onOpen }) {
    this.onOpen = onOpen;
    this.services = new Map();
    this.list = [];
    this.tags = [];
    this.skew = 0; // server clock minus ours, seconds
    this.loaded = false;
    this.visible = false;
    this.rendered = false;
    this.listDirty = true;
    this.filter = { q: "", tag: "", status: "" };
    this.sort = "status";
    this.pool = [];
    this.pending = null;

    this.viewport = document.getElementById("fleet-viewport");
    this.canvas = document.getElementById("fleet-canvas");
    this.window = document.getElementById("fleet-window");
    this.empty = document.getElementById("fleet-empty");
    this.countsBox = document.getElementById("fleet-counts");
    this.tagSelect = document.getElementById("fleet-tag");
    this.schedule = frameScheduler(() => this.render());

    this.viewport.addEventListener("scroll", this.schedule, { passive: true });
    new ResizeObserver(this.schedule).observe(this.viewport);
    const search = document.getElementById("fleet-search");
    const onSearch = debounce(() => this.setFilter({ q: search.value.trim().toLowerCase() }), 60);
    search.addEventListener("input", onSearch);
    this.tagSelect.addEventListener("change", () => this.setFilter({ tag: this.tagSelect.value }));
    const sort = document.getElementById("fleet-sort");
    sort.addEventListener("change", () => {
      this.sort = sort.value;
      this.listDirty = true;
      this.schedule();
    });
    this.countsBox.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-status]");
      if (button) this.setFilter({ status: button.dataset.status });
    });
    this.window.addEventListener("click", (event) => {
      const tile = event.target.closest(".tile");
      if (tile) this.onOpen(tile.dataset.serviceId);
    });
    this.window.addEventListener("keydown", (event) => {
      const tile = event.target.closest(".tile");
      if (tile && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        this.onOpen(tile.dataset.serviceId);
      }
    });
    setInterval(() => this.refreshAges(), 1000);
  }

  now() {
    return Date.now() / 1000 + this.skew;
  }

  show(visible) {
    this.visible = visible;
    if (visible) this.schedule();
  }

  setFilter(change) {
    Object.assign(this.filter, change);
    for (const button of this.countsBox.querySelectorAll("button[data-status]")) {
      button.setAttribute("aria-pressed", String(button.dataset.status === this.filter.status));
    }
    this.listDirty = true;
    this.viewport.scrollTop = 0;
    this.schedule();
  }

  // -- the model ----------------------------------------------------------------------

  /** Start a resync: events from now on are also kept, to replay over the new snapshot. */
  beginSync() {
    this.pending = [];
  }

  load(snapshot) {
    this.skew = snapshot.at - Date.now() / 1000;
    this.services = new Map(snapshot.services.map((svc) => [svc.service_id, record(svc)]));
    this.setTags(snapshot.tags);
    const replay = this.pending || [];
    this.pending = null;
    // events that arrived while the snapshot was on its way; stale ones are ignored
    for (const [kind, data] of replay) {
      if (kind === "status") this.onStatus(data);
      else this.onProbes(data);
    }
    this.loaded = true;
    this.listDirty = true;
    this.schedule();
  }

  setTags(tags) {
    this.tags = [...new Set(tags)].sort();
    const current = this.tagSelect.value;
    this.tagSelect.replaceChildren(
      h("option", { value: "", text: "All tags" }),
      ...this.tags.map((tag) => h("option", { value: tag, text: tag })),
    );
    this.tagSelect.value = this.tags.includes(current) ? current : "";
  }

  /** A service.status event. */
  onStatus(data) {
    if (this.pending) this.pending.push(["status", data]);
    const rec = this.services.get(data.service_id);
    if (!rec) return;
    const sample = data.sample || {};
    if (sample.at && rec.since && sample.at < rec.since) return; // older than what we show
    rec.status = data.status;
    rec.reason = data.reason || "";
    if (sample.at) {
      rec.since = sample.at;
      addPoint(rec, sample.at, sample.response_ms, sample.ok);
    }
    rec.v += 1;
    this.listDirty = true;
    this.schedule();
  }

  /** A service.probes event: [[service_id, at, response_ms, ok], ...]. */
  onProbes(rows) {
    if (this.pending) this.pending.push(["probes", rows]);
    for (const [id, at, ms, ok] of rows) {
      const rec = this.services.get(id);
      if (rec && addPoint(rec, at, ms, ok)) rec.v += 1;
    }
    if (this.sort === "latency") this.listDirty = true;
    this.schedule();
  }

  /** A service as GET /api/services/{id} returns it (after service.registered). */
  upsert(svc) {
    const recent = svc.recent || [];
    const rec = record({
      service_id: svc.service_id,
      name: svc.name,
      status: svc.status,
      status_since: svc.status_since,
      tags: svc.tags,
      last_check_at: svc.last_check ? svc.last_check.at : null,
      response_ms: svc.last_check ? svc.last_check.response_ms : null,
      ok: svc.last_check ? svc.last_check.ok : null,
      recent_ms: recent.map((p) => p.response_ms),
      recent_ok: recent.map((p) => p.ok),
    });
    this.services.set(rec.id, rec);
    this.setTags([...this.tags, ...rec.tags]);
    this.listDirty = true;
    this.schedule();
  }

  remove(id) {
    if (this.services.delete(id)) {
      this.listDirty = true;
      this.schedule();
    }
  }

  // -- drawing ------------------------------------------------------------------------

  rebuildList() {
    const { q, tag, status } = this.filter;
    const counts = { "": 0, up: 0, down: 0, degraded: 0, unknown: 0 };
    const matching = [];
    for (const rec of this.services.values()) {
      if (tag && !rec.tags.includes(tag)) continue;
      if (q && !rec.search.includes(q)) continue;
      counts[""] += 1;
      counts[rec.status] = (counts[rec.status] || 0) + 1;
      if (!status || rec.status === status) matching.push(rec);
    }
    const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    if (this.sort === "name") matching.sort(byName);
    else if (this.sort === "latency") matching.sort((a, b) => (b.ms ?? -1) - (a.ms ?? -1) || byName(a, b));
    else matching.sort((a, b) => (STATUS_RANK[a.status] ?? 2) - (STATUS_RANK[b.status] ?? 2) || byName(a, b));
    this.list = matching;
    for (const node of this.countsBox.querySelectorAll("b[data-count]")) {
      node.textContent = counts[node.dataset.count] ?? 0;
    }
    this.listDirty = false;
  }

  render() {
    if (!this.visible || !this.loaded) return;
    if (this.listDirty) this.rebuildList();
    const width = this.viewport.clientWidth;
    const cols = Math.max(1, Math.floor((width + GAP) / (MIN_TILE_W + GAP)));
    const total = this.list.length;
    const rows = Math.ceil(total / cols);
    this.canvas.style.height = `${Math.max(0, rows * ROW - GAP)}px`;
    this.empty.hidden = total > 0;
    const top = this.viewport.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN_ROWS);
    const last = Math.min(rows, Math.ceil((top + this.viewport.clientHeight) / ROW) + OVERSCAN_ROWS);
    const start = first * cols;
    const count = Math.max(0, Math.min(total, last * cols) - start);
    this.window.style.setProperty("--cols", String(cols));
    this.window.style.transform = `translateY(${first * ROW}px)`;
    while (this.pool.length < count) {
      const tile = makeTile();
      this.pool.push(tile);
      this.window.append(tile.node);
    }
    while (this.pool.length > count) this.pool.pop().node.remove();
    const now = this.now();
    for (let i = 0; i < count; i += 1) {
      const rec = this.list[start + i];
      const tile = this.pool[i];
      if (tile.id !== rec.id || tile.v !== rec.v) bindTile(tile, rec);
      setAge(tile, rec, now);
    }
    if (!this.rendered) {
      this.rendered = true;
      performance.mark("selfheal:fleet-rendered");
      document.documentElement.dataset.fleetRendered = String(Math.round(performance.now()));
    }
  }

  refreshAges() {
    if (!this.visible) return;
    const now = this.now();
    for (const tile of this.pool) {
      const rec = this.services.get(tile.id);
      if (rec) setAge(tile, rec, now);
    }
  }
}

function record(svc) {
  const rec = {
    id: svc.service_id,
    name: svc.name || svc.service_id,
    status: svc.status || "unknown",
    since: svc.status_since,
    reason: "",
    tags: svc.tags || [],
    lastAt: svc.last_check_at,
    ms: svc.response_ms,
    ok: svc.ok,
    rms: (svc.recent_ms || []).slice(-SPARK_POINTS),
    rok: (svc.recent_ok || []).slice(-SPARK_POINTS),
    v: 0,
  };
  rec.search = `${rec.name} ${rec.id}`.toLowerCase();
  return rec;
}

/** Add a probe to a record unless it is not newer than the last one; true if added. */
function addPoint(rec, at, ms, ok) {
  if (rec.lastAt && at <= rec.lastAt) return false;
  rec.lastAt = at;
  rec.ms = ms;
  rec.ok = ok;
  rec.rms.push(ms);
  rec.rok.push(ok);
  if (rec.rms.length > SPARK_POINTS) {
    rec.rms.shift();
    rec.rok.shift();
  }
  return true;
}

function makeTile() {
  const name = h("span", { class: "tile-name" });
  const state = h("span", { class: "tile-state" });
  const latency = h("span", { class: "tile-latency" });
  const age = h("span", { class: "tile-age" });
  const line = s("polyline", { points: "" });
  const fails = s("g");
  const title = s("title");
  const spark = s("svg", { class: "spark", viewBox: "0 0 100 24", preserveAspectRatio: "none", "aria-hidden": "true" }, title, line, fails);
  const tags = h("div", { class: "tile-tags" });
  const node = h(
    "article",
    { class: "tile", tabindex: "0" },
    h("div", { class: "tile-head" }, h("i", { class: "dot" }), name, state),
    h("div", { class: "tile-meta" }, latency, age),
    spark,
    tags,
  );
  return { node, name, state, latency, age, line, fails, title, tags, dot: node.querySelector(".dot"), id: null, v: -1, ageText: "" };
}

function bindTile(tile, rec) {
  tile.id = rec.id;
  tile.v = rec.v;
  tile.ageText = "";
  const { node } = tile;
  node.dataset.serviceId = rec.id;
  node.dataset.status = rec.status;
  node.title = rec.reason ? `${rec.name}: ${rec.reason}` : rec.name;
  node.setAttribute("aria-label", `${rec.name}: ${rec.status}`);
  tile.dot.className = `dot ${rec.status}`;
  tile.name.textContent = rec.name;
  tile.state.textContent = rec.status;
  tile.latency.textContent = rec.ok === false ? "failed" : fmmsOrDash(rec.ms);
  drawSpark(tile, rec.rms, rec.rok);
  const shown = rec.tags.slice(0, 3).map((tag) => h("span", { class: "tag", text: tag }));
  if (rec.tags.length > 3) shown.push(h("span", { class: "tag", text: `+${rec.tags.length - 3}` }));
  tile.tags.replaceChildren(...shown);
}

function fmmsOrDash(ms) {
  return ms === null || ms === undefined ? "no probe yet" : fmtMs(ms);
}

function setAge(tile, rec, now) {
  const text = rec.lastAt ? `checked ${fmtAgo(now - rec.lastAt)}` : "not checked yet";
  if (text !== tile.ageText) {
    tile.ageText = text;
    tile.age.textContent = text;
  }
}

/** Draw a sparkline into an svg built by makeTile (viewBox 100 x 24). */
export function drawSpark(target, values, oks) {
  const n = values.length;
  // fewer probes than the sparkline holds (a new service): spread them over the width
  const step = 100 / Math.max(1, n - 1);
  const max = Math.max(1, ...values);
  let points = "";
  const failMarks = [];
  for (let i = 0; i < n; i += 1) {
    const x = 100 - (n - 1 - i) * step;
    const y = 22 - (values[i] / max) * 20;
    points += `${x.toFixed(1)},${y.toFixed(1)} `;
    if (oks[i] === false) failMarks.push(s("rect", { class: "fail", x: (x - 0.8).toFixed(1), y: "0", width: "1.6", height: "24" }));
  }
  target.line.setAttribute("points", points.trim());
  target.fails.replaceChildren(...failMarks);
  target.title.textContent = n ? `last ${n} probes, max ${fmtMs(max)}` : "no probes yet";
}
