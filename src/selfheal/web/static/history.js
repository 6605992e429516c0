// A service's metric history in the drawer: response time, latency, error rate, CPU and
// memory per interval over the chosen range (from the per-minute rollups), each with its
// static threshold drawn dashed and the service's incidents as markers (violet when the
// learned baseline found them, red when a threshold did). Hover shows the values.

import { fmtTime, h, s } from "./util.js";

const W = 480;
const H = 92;
const PAD = { top: 14, right: 8, bottom: 16, left: 46 };
const METRICS = [
  { key: "response_ms", label: "Response time", format: (v) => `${round(v)} ms` },
  { key: "latency_ms", label: "Reported latency", format: (v) => `${round(v)} ms` },
  { key: "error_rate", label: "Error rate", format: (v) => `${round(v * 100)} %` },
  { key: "cpu", label: "CPU", format: (v) => `${round(v)} %` },
  { key: "memory", label: "Memory", format: (v) => `${round(v)} %` },
];
const RANGES = ["1h", "6h", "24h", "7d", "30d"];

function round(v) {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** The history box of one service; `element` goes into the drawer. */
export class HistoryView {
  constructor(api, serviceId, range = "6h") {
    this.api = api;
    this.serviceId = serviceId;
    this.select = h(
      "select",
      { id: "history-range", "aria-label": "History range", onchange: () => this.load() },
      ...RANGES.map((r) => h("option", { value: r, text: r, selected: r === range })),
    );
    this.body = h("div", { class: "history-body" }, h("p", { class: "muted", text: "Loading…" }));
    this.element = h(
      "section",
      { class: "history", id: "history" },
      h("div", { class: "history-head" }, h("h4", { text: "Metric history" }), this.select),
      this.body,
    );
    this.load();
  }

  async load() {
    const range = this.select.value;
    try {
      const { body } = await this.api.get(`/api/services/${encodeURIComponent(this.serviceId)}/history?range=${encodeURIComponent(range)}`);
      this.render(body);
    } catch (err) {
      this.body.replaceChildren(h("p", { text: err.describe ? err.describe() : String(err) }));
    }
  }

  render(data) {
    const charts = METRICS.filter((m) => data.points.some((p) => p[m.key] !== null)).map((m) => chart(data, m));
    this.body.replaceChildren(
      ...(charts.length ? charts : [h("p", { class: "muted", text: "No complete minute of probes in this range yet." })]),
      legend(data),
    );
    this.element.dataset.loaded = data.range;
  }
}

function legend(data) {
  const anomalies = data.incidents.filter((i) => i.anomaly).length;
  return h(
    "p",
    { class: "history-legend muted" },
    h("span", { class: "key threshold" }), "threshold  ",
    h("span", { class: "key anomaly" }), `anomaly (${anomalies})  `,
    h("span", { class: "key incident" }), `incident (${data.incidents.length - anomalies})`,
  );
}

/** One metric: a line per interval (gaps where nothing was reported), threshold, markers. */
function chart(data, metric) {
  const points = data.points;
  const n = points.length;
  const start = Date.parse(data.since);
  const span = Date.parse(data.until) - start;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const values = points.map((p) => p[metric.key]);
  const present = values.filter((v) => v !== null);
  const threshold = data.thresholds[metric.key];
  const dataMax = Math.max(...present);
  // the threshold is drawn when it is within reach of the data; far above, it is named
  const top = Math.max(dataMax * 1.15, threshold !== undefined && threshold <= dataMax * 2 ? threshold * 1.08 : 0) || 1;
  const x = (i) => PAD.left + ((i + 0.5) / n) * plotW;
  const y = (v) => PAD.top + plotH - (Math.min(v, top) / top) * plotH;
  const xAt = (iso) => PAD.left + ((Date.parse(iso) - start) / span) * plotW;
  const farAbove = threshold !== undefined && threshold > top;

  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "history-chart", "aria-label": `${metric.label}, up to ${metric.format(dataMax)}` });
  svg.append(
    s("line", { class: "axis", x1: PAD.left, y1: PAD.top + plotH, x2: W - PAD.right, y2: PAD.top + plotH }),
    s("text", { class: "label", x: PAD.left - 6, y: PAD.top + 4, "text-anchor": "end", text: metric.format(top) }),
    s("text", { class: "label", x: PAD.left - 6, y: PAD.top + plotH, "text-anchor": "end", text: "0" }),
    s("text", { class: "title", x: PAD.left, y: 10, text: metric.label }, farAbove ? s("tspan", { class: "label", text: `  threshold ${metric.format(threshold)} (above)` }) : null),
    s("text", { class: "label", x: PAD.left, y: H - 3, text: fmtTime(data.since) }),
    s("text", { class: "label", x: W - PAD.right, y: H - 3, "text-anchor": "end", text: fmtTime(data.until) }),
  );
  if (threshold !== undefined && threshold <= top) {
    svg.append(
      s("line", { class: "threshold", x1: PAD.left, x2: W - PAD.right, y1: y(threshold), y2: y(threshold) }, s("title", { text: `threshold ${metric.format(threshold)}` })),
    );
  }
  const clamp = (v) => Math.max(PAD.left, Math.min(W - PAD.right, v));
  for (const incident of data.incidents) {
    // a band while it was open, and a line where it opened (when that is in the range)
    const opened = xAt(incident.opened_at);
    const x0 = clamp(opened);
    const x1 = clamp(incident.resolved_at ? xAt(incident.resolved_at) : W);
    const kind = incident.anomaly ? "anomaly" : "incident";
    const title = `#${incident.id} ${incident.type.replace(/_/g, " ")}${incident.anomaly ? " (learned baseline)" : ""}, opened ${fmtTime(incident.opened_at)}`;
    svg.append(s("rect", { class: `span ${kind}`, x: x0, y: PAD.top, width: Math.max(0, x1 - x0), height: plotH }, s("title", { text: title })));
    if (opened >= PAD.left) {
      svg.append(s("line", { class: `marker ${kind}`, x1: x0, x2: x0, y1: PAD.top - 2, y2: PAD.top + plotH, "data-incident": incident.id }, s("title", { text: title })));
    }
  }
  // one polyline per run of reported intervals
  let run = [];
  const flush = () => {
    if (run.length === 1) svg.append(s("circle", { class: "point", cx: run[0][0], cy: run[0][1], r: 2 }));
    else if (run.length) svg.append(s("polyline", { class: "line", points: run.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ") }));
    run = [];
  };
  values.forEach((v, i) => (v === null ? flush() : run.push([x(i), y(v)])));
  flush();

  // hover: a cursor on the nearest interval and its value
  const cursor = s("line", { class: "cursor", x1: 0, x2: 0, y1: PAD.top, y2: PAD.top + plotH, visibility: "hidden" });
  const dot = s("circle", { class: "cursor-dot", r: 3, visibility: "hidden" });
  const readout = s("text", { class: "readout", x: W - PAD.right, y: 10, "text-anchor": "end" });
  const overlay = s("rect", { class: "hover", x: PAD.left, y: PAD.top, width: plotW, height: plotH });
  svg.append(cursor, dot, readout, overlay);
  const hide = () => {
    cursor.setAttribute("visibility", "hidden");
    dot.setAttribute("visibility", "hidden");
    readout.textContent = "";
  };
  overlay.addEventListener("mouseleave", hide);
  overlay.addEventListener("mousemove", (event) => {
    const box = svg.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * W;
    const i = Math.max(0, Math.min(n - 1, Math.floor(((px - PAD.left) / plotW) * n)));
    const v = values[i];
    cursor.setAttribute("x1", x(i));
    cursor.setAttribute("x2", x(i));
    cursor.setAttribute("visibility", "visible");
    if (v === null) {
      dot.setAttribute("visibility", "hidden");
      readout.textContent = `${fmtTime(points[i].start)}: no data`;
      return;
    }
    dot.setAttribute("cx", x(i));
    dot.setAttribute("cy", y(v));
    dot.setAttribute("visibility", "visible");
    readout.textContent = `${fmtTime(points[i].start)}: ${metric.format(v)}`;
  });
  return h("figure", { class: "history-metric", data: { metric: metric.key } }, svg);
}
