// Charts over a chosen range, drawn as plain SVG: incidents opened and MTTR per interval,
// availability per service, success rate per (incident type, action). Feed events that
// change these figures mark the charts stale; they reload while shown, debounced.

import { debounce, fmtDuration, fmtPercent, h, s } from "./util.js";

const H = 180;
const PAD = { top: 10, right: 8, bottom: 22, left: 44 };
const MAX_SERVICES = 15;

export class ChartsView {
  constructor(api) {
    this.api = api;
    this.visible = false;
    this.stale = true;
    this.range = document.getElementById("charts-range");
    this.range.addEventListener("change", () => this.load());
    this.reload = debounce(() => this.load(), 2000);
    this.data = null;
    // charts are drawn at their real pixel width, so text stays readable on a phone
    const redraw = debounce(() => this.data && this.visible && this.render(this.data), 150);
    new ResizeObserver(redraw).observe(document.querySelector(".charts-grid"));
  }

  show(visible) {
    this.visible = visible;
    if (visible && this.stale) this.load();
  }

  onEvent(event) {
    if (!["incident.opened", "incident.resolved", "verification.finished"].includes(event.type)) return;
    this.stale = true;
    if (this.visible) this.reload();
  }

  async load() {
    this.stale = false;
    const { body } = await this.api.get(`/api/charts?range=${encodeURIComponent(this.range.value)}`);
    this.render(body);
  }

  render(data) {
    this.data = data;
    document.getElementById("charts-note").textContent =
      `${data.buckets.length} intervals of ${fmtDuration(data.bucket_seconds)}`;
    document.getElementById("charts-summary").replaceChildren(
      stat(String(data.incidents_opened), "incidents opened"),
      stat(fmtDuration(data.mttr_seconds), "mean time to resolve"),
      stat(fmtPercent(data.availability, 2), "fleet availability"),
      stat(String(data.actions.reduce((n, a) => n + a.runs, 0)), "actions run"),
    );
    const labels = (i) => timeLabel(data.buckets[i].start, data.bucket_seconds);
    put("chart-incidents", columns(width("chart-incidents"), data.buckets.map((b) => b.opened), labels, (v) => String(v), "bar bad"));
    put(
      "chart-mttr",
      data.buckets.some((b) => b.mttr_seconds !== null)
        ? columns(width("chart-mttr"), data.buckets.map((b) => b.mttr_seconds), labels, fmtDuration, "bar")
        : empty("No incident was resolved in this range."),
    );
    const services = data.services.slice(0, MAX_SERVICES);
    put(
      "chart-availability",
      services.length
        ? bars(
            width("chart-availability"),
            services.map((sv) => ({
              label: sv.service_id,
              value: sv.availability ?? 0,
              text: `${fmtPercent(sv.availability, 2)} of ${sv.probes}`,
              tone: tone(sv.availability, 0.999, 0.99),
            })),
            data.services.length > MAX_SERVICES ? `${data.services.length - MAX_SERVICES} more services not shown` : null,
          )
        : empty("No complete minute of probes in this range yet."),
    );
    put(
      "chart-actions",
      data.actions.length
        ? bars(
            width("chart-actions"),
            data.actions.map((a) => ({
              label: `${a.incident_type} · ${a.action}`,
              value: a.success_rate ?? 0,
              text: a.success_rate === null ? `${a.runs} run, none verified` : `${fmtPercent(a.success_rate, 0)} (${a.recovered}/${a.recovered + a.not_recovered})`,
              tone: tone(a.success_rate, 0.8, 0.5),
            })),
          )
        : empty("No action ran in this range."),
    );
  }
}

function width(id) {
  return Math.max(260, Math.floor(document.getElementById(id).clientWidth) || 600);
}

function put(id, node) {
  document.getElementById(id).replaceChildren(node);
}

function stat(value, label) {
  return h("div", { class: "stat" }, h("b", { text: value }), h("span", { text: label }));
}

function empty(text) {
  return h("p", { class: "chart-empty", text });
}

function tone(value, good, warn) {
  if (value === null || value === undefined) return "";
  return value >= good ? "good" : value >= warn ? "warn" : "bad";
}

function timeLabel(iso, step) {
  const date = new Date(iso);
  if (step >= 6 * 3600) return date.toLocaleDateString([], { day: "numeric", month: "short" });
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

/** A column chart of one value per interval (null values leave a gap). */
function columns(W, values, label, format, barClass) {
  const n = values.length;
  const max = Math.max(0, ...values.filter((v) => v !== null));
  const top = max > 0 ? max : 1;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / n;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  svg.append(
    s("line", { class: "axis", x1: PAD.left, y1: PAD.top + plotH, x2: W - PAD.right, y2: PAD.top + plotH }),
    s("text", { class: "label", x: PAD.left - 6, y: PAD.top + 8, "text-anchor": "end", text: format(top) }),
    s("text", { class: "label", x: PAD.left - 6, y: PAD.top + plotH, "text-anchor": "end", text: "0" }),
  );
  values.forEach((value, i) => {
    if (value === null || value === undefined) return;
    const height = (value / top) * plotH;
    const bar = s("rect", {
      class: barClass,
      x: (PAD.left + i * slot + slot * 0.12).toFixed(1),
      y: (PAD.top + plotH - height).toFixed(1),
      width: Math.max(1, slot * 0.76).toFixed(1),
      height: Math.max(value > 0 ? 1 : 0, height).toFixed(1),
    });
    bar.append(s("title", { text: `${label(i)}: ${format(value)}` }));
    svg.append(bar);
  });
  const ticks = W < 420 ? 3 : 6;
  for (let t = 0; t < ticks; t += 1) {
    const i = Math.round((t * (n - 1)) / (ticks - 1));
    svg.append(s("text", { class: "label", x: (PAD.left + i * slot + slot / 2).toFixed(1), y: H - 6, "text-anchor": "middle", text: label(i) }));
  }
  svg.setAttribute("aria-label", `maximum ${format(top)}`);
  return svg;
}

/** Horizontal bars of ratios (0-1), one labelled row each. */
function bars(W, rows, footnote = null) {
  const rowH = 24;
  const labelW = Math.min(190, Math.round(W * 0.4));
  const textW = Math.min(120, Math.round(W * 0.3));
  const height = rows.length * rowH + 4;
  const svg = s("svg", { viewBox: `0 0 ${W} ${height}`, role: "img" });
  const barW = W - labelW - textW;
  rows.forEach((row, i) => {
    const y = i * rowH + 4;
    const room = Math.max(8, Math.floor(labelW / 6.5));
    const label = row.label.length > room ? `${row.label.slice(0, room - 1)}…` : row.label;
    svg.append(
      s("text", { class: "label", x: labelW - 8, y: y + 13, "text-anchor": "end", text: label }, s("title", { text: row.label })),
      s("rect", { class: "track", x: labelW, y: y + 2, width: barW, height: 14, rx: 3 }),
      s("rect", { class: `bar ${row.tone}`, x: labelW, y: y + 2, width: (Math.max(0, Math.min(1, row.value)) * barW).toFixed(1), height: 14, rx: 3 }),
      s("text", { class: "value", x: labelW + barW + 8, y: y + 13, text: row.text }),
    );
  });
  const box = h("div", {}, svg);
  if (footnote) box.append(h("p", { class: "chart-empty", text: footnote }));
  return box;
}
