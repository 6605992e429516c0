// Incidents: the open ones (or recent ones) in a list, one in detail with its timeline,
// the decision's reason and confidence, and buttons that call the API and show exactly
// what it answered.

import { debounce, fmtAgo, fmtDuration, fmtTime, frameScheduler, h, pill, toSeconds } from "./util.js";

const SEVERITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };

// timeline kinds -> the five stages an operator reads an incident by
const STAGE_OF = {
  detected: "detected",
  decided: "decided",
  remediating: "decided",
  held: "held",
  awaiting_approval: "held",
  approval_requested: "held",
  approved: "held",
  action_succeeded: "acted",
  action_failed: "acted",
  action_interrupted: "acted",
  verifying: "verified",
  not_recovered: "verified",
  verified: "verified",
  resolved: "verified",
};
const STAGES = [
  ["detected", "Detected"],
  ["decided", "Decided"],
  ["held", "Held"],
  ["acted", "Acted"],
  ["verified", "Verified"],
];
const FAILED_KINDS = new Set(["action_failed", "action_interrupted", "not_recovered", "escalated"]);
const KIND_LABEL = {
  action_succeeded: "acted",
  action_failed: "action failed",
  action_interrupted: "interrupted",
  not_recovered: "not recovered",
};

export class IncidentsView {
  constructor(api, { onCount, onChange }) {
    this.api = api;
    this.onCount = onCount;
    this.onChange = onChange;
    this.incidents = new Map();
    this.selected = null;
    this.detail = null;
    this.filter = "open";
    this.list = document.getElementById("incident-list");
    this.empty = document.getElementById("incident-empty");
    this.total = document.getElementById("incident-total");
    this.placeholder = document.getElementById("incident-placeholder");
    this.view = document.getElementById("incident-view");
    this.head = document.getElementById("incident-head");
    this.body = document.getElementById("incident-body");
    this.result = document.getElementById("incident-result");
    this.silenceForm = document.getElementById("silence-form");
    this.scheduleList = frameScheduler(() => this.renderList());
    this.refreshDetail = debounce(() => this.loadDetail(), 150);

    document.getElementById("incident-filter").addEventListener("change", (event) => {
      this.filter = event.target.value;
      this.scheduleList();
    });
    this.list.addEventListener("click", (event) => {
      const item = event.target.closest("[data-incident-id]");
      if (item) location.hash = `#incidents/${item.dataset.incidentId}`;
    });
    this.view.querySelector(".incident-buttons").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-op]");
      if (button) this.operate(button.dataset.op);
    });
    this.silenceForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.silence();
    });
    this.silenceForm.querySelector("[data-op=silence-cancel]").addEventListener("click", () => {
      this.silenceForm.hidden = true;
    });
  }

  async load() {
    // every incident not resolved (whatever its status), and the latest ones
    const pages = await Promise.all([
      this.api.get("/api/incidents?status=unresolved&limit=500"),
      this.api.get("/api/incidents?limit=100"),
    ]);
    const previous = this.incidents;
    this.incidents = new Map();
    for (const page of pages) for (const incident of page.body.data) this.incidents.set(incident.id, incident);
    // an event that arrived while the pages loaded may be newer than what they say
    for (const [id, known] of previous) {
      const loaded = this.incidents.get(id);
      if (loaded && known.updated_at && toSeconds(known.updated_at) > toSeconds(loaded.updated_at)) {
        this.incidents.set(id, known);
      }
    }
    this.scheduleList();
    if (this.selected !== null) this.loadDetail();
  }

  openCount() {
    let count = 0;
    for (const incident of this.incidents.values()) if (incident.status !== "resolved") count += 1;
    return count;
  }

  /** Show one incident (from the URL #incidents/ID), or none. */
  select(id) {
    if (id === this.selected) return;
    this.selected = id;
    this.detail = null;
    this.result.hidden = true;
    this.silenceForm.hidden = true;
    this.placeholder.hidden = id !== null;
    this.view.hidden = id === null;
    this.body.replaceChildren();
    this.head.replaceChildren();
    this.scheduleList();
    if (id !== null) this.loadDetail();
  }

  async loadDetail() {
    const id = this.selected;
    if (id === null) return;
    try {
      const { body } = await this.api.get(`/api/incidents/${id}`);
      if (id !== this.selected) return;
      this.detail = body;
      this.incidents.set(body.id, stripDetail(body));
      this.renderDetail();
      this.scheduleList();
    } catch (err) {
      if (id !== this.selected) return;
      this.head.replaceChildren(h("p", { class: "api-result", data: { ok: "false" }, text: `Incident ${id}: ${err.describe ? err.describe() : err.message}` }));
    }
  }

  /** Any event of the live feed; incident and action events concern this view. */
  onEvent(event) {
    const data = event.data || {};
    if (event.type.startsWith("incident.")) {
      const id = data.id;
      if (data.status) {
        const known = this.incidents.get(id) || {};
        this.incidents.set(id, { ...known, ...withoutMessage(data) });
        this.scheduleList();
      }
      if (id === this.selected) this.refreshDetail();
    } else if (data.incident_id !== undefined && data.incident_id === this.selected) {
      this.refreshDetail(); // decision.made, action.*, verification.finished
    }
  }

  // -- list ---------------------------------------------------------------------------

  renderList() {
    const all = [...this.incidents.values()];
    const shown = (this.filter === "open" ? all.filter((i) => i.status !== "resolved") : all)
      .sort((a, b) => {
        if (this.filter === "open") {
          const bySeverity = (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9);
          if (bySeverity) return bySeverity;
        }
        return b.id - a.id;
      })
      .slice(0, 500);
    const now = Date.now() / 1000;
    this.list.replaceChildren(
      ...shown.map((incident) =>
        h(
          "li",
          {
            class: "incident-item",
            tabindex: "0",
            data: { incidentId: incident.id, severity: incident.severity, status: incident.status, serviceId: incident.service_id },
            "aria-current": incident.id === this.selected ? "true" : "false",
          },
          h("div", { class: "incident-line" }, h("b", { text: incident.service_id }), pill(incident.status)),
          h(
            "div",
            { class: "incident-line muted" },
            h("span", { text: `#${incident.id} ${incident.type.replace(/_/g, " ")} · ${incident.severity}` }),
            h("span", { text: fmtAgo(now - toSeconds(incident.opened_at)) }),
          ),
          incident.acknowledged_by ? h("small", { class: "muted", text: `acknowledged by ${incident.acknowledged_by}` }) : null,
        ),
      ),
    );
    this.empty.hidden = shown.length > 0;
    this.empty.textContent = this.filter === "open" ? "No open incidents. All quiet." : "No incidents yet.";
    this.total.textContent = `${shown.length} shown`;
    this.onCount(this.openCount());
    this.onChange();
  }

  // -- detail -------------------------------------------------------------------------

  renderDetail() {
    const d = this.detail;
    if (!d) return;
    this.head.replaceChildren(
      h(
        "h2",
        { class: "incident-title" },
        h("span", { text: `#${d.id} ${d.service_id}` }),
        pill(d.type, d.type.replace(/_/g, " ")),
        pill(d.severity),
        pill(d.status),
      ),
      h("p", { class: "incident-sub", text: d.summary }),
      h(
        "p",
        { class: "incident-sub" },
        `opened ${fmtTime(d.opened_at)}`,
        d.resolved_at ? ` · resolved ${fmtTime(d.resolved_at)} (${fmtDuration(toSeconds(d.resolved_at) - toSeconds(d.opened_at))})` : "",
        d.acknowledged_by ? ` · acknowledged by ${d.acknowledged_by} at ${fmtTime(d.acknowledged_at)}` : "",
        d.resolution ? ` · ${d.resolution}` : "",
      ),
    );
    const buttons = this.view.querySelectorAll(".incident-buttons button");
    for (const button of buttons) {
      const op = button.dataset.op;
      button.disabled = (op === "resolve" && d.status === "resolved") || (op === "ack" && Boolean(d.acknowledged_at));
    }
    this.body.replaceChildren(
      ...decisionBlock(d),
      h("h3", { class: "section-title", text: "Timeline" }),
      stepper(d),
      timeline(d),
      ...actionsBlock(d),
    );
  }

  async operate(op) {
    const d = this.detail;
    if (!d) return;
    if (op === "silence") {
      this.silenceForm.hidden = !this.silenceForm.hidden;
      if (!this.silenceForm.hidden) this.silenceForm.querySelector("input[name=comment]").focus();
      return;
    }
    const label = { ack: "Acknowledge", resolve: "Resolve", approve: "Approve" }[op];
    const path = `/api/incidents/${d.id}/${op}`;
    await this.call(label, path, op === "resolve" ? { note: "resolved from the dashboard" } : undefined, (body) => {
      if (op === "ack") return `acknowledged by ${body.acknowledged_by}`;
      if (op === "resolve") return `incident #${body.id} is ${body.status}`;
      return `released the held action of incident #${body.id} (now ${body.status})`;
    });
  }

  async silence() {
    const d = this.detail;
    if (!d) return;
    const form = new FormData(this.silenceForm);
    const seconds = Number(form.get("duration"));
    const start = new Date();
    const end = new Date(start.getTime() + seconds * 1000);
    const matchers = { service_id: d.service_id };
    const body = {
      matchers,
      starts_at: start.toISOString(),
      ends_at: end.toISOString(),
      comment: String(form.get("comment") || "").trim() || `silenced from the dashboard (incident #${d.id})`,
    };
    const ok = await this.call("Silence", "/api/silences", body, (answer) => {
      const id = answer && answer.id !== undefined ? ` (silence ${answer.id})` : "";
      return `${d.service_id} silenced until ${fmtTime(end.toISOString())}${id}`;
    });
    if (ok) this.silenceForm.hidden = true;
  }

  /** POST, then show what the API answered: its status and message, verbatim. */
  async call(label, path, body, describe) {
    this.result.hidden = false;
    this.result.dataset.ok = "";
    this.result.dataset.op = label.toLowerCase();
    this.result.textContent = `${label}…`;
    try {
      const answer = await this.api.post(path, body);
      this.result.dataset.ok = "true";
      this.result.dataset.status = String(answer.status);
      this.result.replaceChildren(h("code", { text: `${label} → ${answer.status}` }), ` ${describe(answer.body)}`);
      this.loadDetail();
      return true;
    } catch (err) {
      this.result.dataset.ok = "false";
      this.result.dataset.status = String(err.status ?? 0);
      this.result.replaceChildren(
        h("code", { text: `${label} → ${err.status || "failed"} ${err.code || ""}`.trim() }),
        ` ${err.message}`,
      );
      return false;
    }
  }
}

function stripDetail(detail) {
  const { timeline: _t, actions: _a, ...incident } = detail;
  return incident;
}

function withoutMessage(data) {
  const { message: _m, event: _e, ...incident } = data;
  return incident;
}

function latestDecision(d) {
  for (let i = d.timeline.length - 1; i >= 0; i -= 1) {
    const step = d.timeline[i];
    if ((step.kind === "decided" || step.kind === "escalated") && step.data && step.data.reason) return step.data;
  }
  const last = d.actions[d.actions.length - 1];
  return last ? last.decision : null;
}

function decisionBlock(d) {
  const decision = latestDecision(d);
  if (!decision) return [h("h3", { class: "section-title", text: "Decision" }), h("p", { class: "muted", text: "No decision yet." })];
  const confidence = Number(decision.confidence ?? 0);
  const meter = h("span", { class: "meter" }, h("i"));
  meter.firstChild.style.width = `${Math.round(Math.max(0, Math.min(1, confidence)) * 100)}%`;
  const considered = (decision.considered || []).map((c) =>
    h(
      "li",
      { text: `${c.action}: expected success ${Number(c.score ?? 0).toFixed(2)}${c.chosen ? " — chosen" : c.skipped ? ` — skipped: ${c.skipped}` : ""}` },
    ),
  );
  return [
    h("h3", { class: "section-title", text: "Decision" }),
    h(
      "div",
      { class: "decision" },
      h("p", {}, h("b", { text: decision.action ? `${decision.action} via ${decision.executor}` : "escalate to people" })),
      h("p", { class: "decision-reason", text: decision.reason }),
      h("div", { class: "confidence" }, h("span", { text: "confidence" }), meter, h("b", { class: "confidence-value", text: confidence.toFixed(2) })),
      considered.length ? h("ul", { class: "considered" }, ...considered) : null,
    ),
  ];
}

function stepper(d) {
  const seen = {};
  for (const step of d.timeline) {
    const stage = STAGE_OF[step.kind];
    if (!stage) continue;
    seen[stage] = seen[stage] || { first: step, failed: false, last: step };
    seen[stage].last = step;
    if (FAILED_KINDS.has(step.kind)) seen[stage].failed = true;
    if (step.kind === "resolved" || step.kind === "action_succeeded") seen[stage].failed = false;
  }
  const heldApplies = Boolean(seen.held);
  return h(
    "div",
    { class: "stepper", role: "list" },
    ...STAGES.map(([stage, label]) => {
      const info = seen[stage];
      let state = "todo";
      let note = "";
      if (info) {
        state = info.failed ? "failed" : "done";
        note = fmtTime(info.first.at);
        if (stage === "verified" && info.last.kind === "verifying") {
          state = d.status === "verifying" ? "active" : state;
          note = "in progress";
        }
      } else if (stage === "held" && !heldApplies) {
        note = "no approval needed";
      }
      return h("div", { class: "step", role: "listitem", data: { stage, state } }, label, h("small", { text: note || "—" }));
    }),
  );
}

function timeline(d) {
  return h(
    "ol",
    { class: "timeline" },
    ...d.timeline.map((step) =>
      h(
        "li",
        { data: { kind: step.kind, stage: STAGE_OF[step.kind] || "other", failed: String(FAILED_KINDS.has(step.kind)) } },
        h("time", { datetime: step.at, text: fmtTime(step.at) }),
        h("span", { class: "kind", text: KIND_LABEL[step.kind] || step.kind.replace(/_/g, " ") }),
        h("span", { class: "msg", text: step.message }),
      ),
    ),
  );
}

function actionsBlock(d) {
  if (!d.actions.length) return [];
  return [
    h("h3", { class: "section-title", text: "Actions" }),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table" },
        h("thead", {}, h("tr", {}, ...["Started", "Action", "Run", "Outcome", "Recovery", "Detail"].map((t) => h("th", { text: t })))),
        h(
          "tbody",
          {},
          ...d.actions.map((a) =>
            h(
              "tr",
              {},
              h("td", { text: fmtTime(a.started_at) }),
              h("td", { text: `${a.action} (${a.executor})` }),
              h("td", {}, pill(a.status)),
              h("td", {}, a.outcome ? pill(a.outcome) : "–"),
              h("td", { class: "num", text: fmtDuration(a.recovery_seconds) }),
              h("td", { class: "muted", text: (a.result && a.result.detail) || "" }),
            ),
          ),
        ),
      ),
    ),
  ];
}
