// Action history: every fix run with its outcome and recovery time. An action event on
// the live feed reloads the first page (debounced), so the table never polls.

import { debounce, fmtDuration, fmtTime, h, pill } from "./util.js";

const PAGE = 100;

export class ActionsView {
  constructor(api) {
    this.api = api;
    this.rows = [];
    this.cursor = null;
    this.visible = false;
    this.stale = true;
    this.tbody = document.querySelector("#actions-table tbody");
    this.empty = document.getElementById("actions-empty");
    this.total = document.getElementById("actions-total");
    this.more = document.getElementById("actions-more");
    this.more.addEventListener("click", () => this.loadMore());
    this.reload = debounce(() => this.load(), 300);
  }

  show(visible) {
    this.visible = visible;
    if (visible && this.stale) this.load();
  }

  onEvent(event) {
    if (!event.type.startsWith("action.") && event.type !== "verification.finished") return;
    this.stale = true;
    if (this.visible) this.reload();
  }

  async load() {
    this.stale = false;
    const { body } = await this.api.get(`/api/actions?limit=${PAGE}`);
    this.rows = body.data;
    this.cursor = body.next_cursor;
    this.render();
  }

  async loadMore() {
    if (!this.cursor) return;
    const { body } = await this.api.get(`/api/actions?limit=${PAGE}&cursor=${encodeURIComponent(this.cursor)}`);
    this.rows = this.rows.concat(body.data);
    this.cursor = body.next_cursor;
    this.render();
  }

  render() {
    this.tbody.replaceChildren(
      ...this.rows.map((a) =>
        h(
          "tr",
          { data: { actionId: a.id } },
          h("td", { text: fmtTime(a.started_at) }),
          h("td", { text: a.service_id }),
          h("td", {}, h("a", { href: `#incidents/${a.incident_id}`, text: `#${a.incident_id}` }), ` ${a.incident_type.replace(/_/g, " ")}`),
          h("td", { text: `${a.action} (${a.executor})` }),
          h("td", {}, pill(a.status)),
          h("td", {}, a.outcome ? pill(a.outcome) : h("span", { class: "muted", text: a.status === "pending" ? "running" : "–" })),
          h("td", { class: "num", text: fmtDuration(a.recovery_seconds) }),
          h("td", { class: "num", text: a.decision && a.decision.confidence !== undefined ? Number(a.decision.confidence).toFixed(2) : "–" }),
        ),
      ),
    );
    this.empty.hidden = this.rows.length > 0;
    this.more.hidden = !this.cursor;
    this.total.textContent = `${this.rows.length} shown`;
  }
}
