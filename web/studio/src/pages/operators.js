// Operators (admin keys): workers per pool with READY / draining, capacity used, queue depth, and the
// TTFF and fps histograms of the farm's latest sessions, as plots.
import { html } from "lit";
import { api } from "../api.js";
import { bars } from "../plot.js";
import { badge, emptyState, errorState, loading, number, Page, when } from "../ui.js";

const REFRESH_MS = 5000;
const label = (bounds, i, unit) => (i < bounds.length ? `≤${bounds[i]}${unit}` : `>${bounds[bounds.length - 1]}${unit}`);

class StudioOperators extends Page {
  static properties = { view: { state: true }, error: { state: true } };

  constructor() {
    super();
    this.view = null;
    this.error = null;
    this._timer = null;
  }

  connectedCallback() {
    super.connectedCallback();
    this.load();
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    clearTimeout(this._timer);
  }

  async load() {
    clearTimeout(this._timer);
    try {
      this.view = await api("/v1/operators/overview");
      this.error = null;
      this._timer = setTimeout(() => this.load(), REFRESH_MS);
    } catch (err) {
      this.error = err;
    }
  }

  updated() {
    if (!this.view) return;
    for (const pool of this.view.pools) {
      const t = this.view.ttff_s[pool.pool];
      const f = this.view.fps[pool.pool];
      const ttffEl = this.querySelector(`#ttff-${pool.pool}`);
      const fpsEl = this.querySelector(`#fps-${pool.pool}`);
      if (ttffEl && t.samples) {
        bars(ttffEl, {
          title: `${pool.pool}: time to first frame, ${t.samples} sessions`,
          labels: t.counts.map((_, i) => label(t.bounds, i, "s")),
          yLabel: "sessions",
          series: [{ label: "sessions", values: t.counts }],
        });
      }
      if (fpsEl && f.samples) {
        bars(fpsEl, {
          title: `${pool.pool}: frames per second delivered, ${f.samples} sessions`,
          labels: f.counts.map((_, i) => label(f.bounds, i, "")),
          yLabel: "sessions",
          series: [{ label: "sessions", values: f.counts }],
        });
      }
    }
  }

  pool(p) {
    const t = this.view.ttff_s[p.pool];
    const f = this.view.fps[p.pool];
    return html`<section class="panel" aria-labelledby="pool-${p.pool}">
      <h2 id="pool-${p.pool}">${p.pool}</h2>
      <div class="kpis">
        <div class="kpi">Ready<b>${p.ready}</b><span class="hint">draining ${p.draining}, starting ${p.starting}, error ${p.errored}</span></div>
        <div class="kpi">
          <label for="cap-${p.pool}">Capacity used</label>
          <meter id="cap-${p.pool}" min="0" max=${Math.max(1, p.capacity)} .value=${p.active_sessions}></meter>
          <span class="hint">${p.active_sessions} of ${p.capacity} slots</span>
        </div>
        <div class="kpi">Queue depth<b>${number(p.queue_depth)}</b><span class="hint">waiting on the shared queue</span></div>
        <div class="kpi">TTFF p50 / p95<b>${t.p50 ?? "—"} / ${t.p95 ?? "—"} s</b><span class="hint">fps p50 ${f.p50 === null ? "—" : f.p50.toFixed(1)}</span></div>
      </div>
      ${p.workers.length
        ? html`<table class="responsive">
            <thead><tr><th scope="col">Worker</th><th scope="col">State</th><th scope="col">Sessions</th><th scope="col">Backend</th><th scope="col">Heartbeat</th></tr></thead>
            <tbody>
              ${p.workers.map(
                (w) => html`<tr>
                  <td data-label="Worker"><code>${w.worker_id}</code></td>
                  <td data-label="State">${badge(w.state)}</td>
                  <td data-label="Sessions">${w.active_sessions} / ${w.capacity}</td>
                  <td data-label="Backend">${w.backend || "—"}</td>
                  <td data-label="Heartbeat">${when(w.heartbeat_at)}</td>
                </tr>`,
              )}
            </tbody>
          </table>`
        : emptyState(`No ${p.pool} worker is registered.`)}
      ${t.samples ? html`<div id="ttff-${p.pool}" class="plot"></div>` : emptyState("No finished session to plot yet.")}
      ${f.samples ? html`<div id="fps-${p.pool}" class="plot"></div>` : ""}
    </section>`;
  }

  render() {
    const head = html`<h1>Operators</h1>`;
    if (this.error) return html`${head}${errorState(this.error, () => this.load())}`;
    if (!this.view) return html`${head}${loading("Loading the fleet")}`;
    return html`${head}
      <p class="hint">From the worker registry, the queues and the farm's last ${this.view.sessions_sampled} finished sessions.</p>
      ${this.view.pools.map((p) => this.pool(p))}`;
  }
}

customElements.define("studio-operators", StudioOperators);
