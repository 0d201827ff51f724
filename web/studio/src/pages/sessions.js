// Sessions: live and recent, with status, the time-to-first-frame breakdown and a stop button.
import { html } from "lit";
import { api } from "../api.js";
import { badge, emptyState, errorState, LIVE, loading, ms, Page, when } from "../ui.js";

// timings_ms: queue_wait (created → claimed), then claim, avatar_ready, first_frame counted from the claim.
const STAGES = [
  ["claim", "claim", "#e8590c"],
  ["avatar_ready", "avatar", "#2453d6"],
  ["first_frame", "first frame", "#2b8a3e"],
];
const REFRESH_MS = 3000;

function ttff(timings) {
  const t = timings || {};
  if (t.first_frame === undefined) return html`<span class="hint">—</span>`;
  const queue = t.queue_wait || 0;
  const segments = [["queue", queue, "#868e96"]];
  let at = 0;
  for (const [key, name, color] of STAGES) {
    if (t[key] === undefined) continue;
    segments.push([name, Math.max(0, t[key] - at), color]);
    at = t[key];
  }
  const total = queue + t.first_frame;
  const text = `${ms(total)}: ${segments.map(([name, v]) => `${name} ${ms(v)}`).join(" + ")}`;
  return html`<span title=${text}>
    <span class="ttff" aria-hidden="true">
      ${segments.map(([, v, color]) => html`<span style="width:${(v / Math.max(1, total)) * 100}%;background:${color}"></span>`)}
    </span>
    <span class="hint">${text}</span>
  </span>`;
}

class StudioSessions extends Page {
  static properties = { sessions: { state: true }, error: { state: true }, stopping: { state: true } };

  constructor() {
    super();
    this.sessions = null;
    this.error = null;
    this.stopping = new Set();
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
      this.sessions = (await api("/v1/sessions?limit=50")).data;
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    if (this.isConnected && !this.error) this._timer = setTimeout(() => this.load(), REFRESH_MS);
  }

  async stop(id) {
    this.stopping = new Set([...this.stopping, id]);
    try {
      await api(`/v1/sessions/${id}`, { method: "DELETE" });
      await this.load();
    } catch (err) {
      this.error = err;
    } finally {
      this.stopping = new Set([...this.stopping].filter((s) => s !== id));
    }
  }

  table(rows, live) {
    return html`<table class="responsive">
      <thead>
        <tr>
          <th scope="col">Session</th><th scope="col">Agent</th><th scope="col">Model</th><th scope="col">Status</th>
          <th scope="col">Started</th><th scope="col">Time to first frame</th>${live ? html`<th scope="col">Stop</th>` : ""}
        </tr>
      </thead>
      <tbody>
        ${rows.map(
          (s) => html`<tr data-session-id=${s.session_id}>
            <td data-label="Session"><code title=${s.session_id}>${s.session_id.slice(0, 8)}</code></td>
            <td data-label="Agent">${s.avatar_id ? html`<code>${s.avatar_id}</code>` : html`<span class="hint">photo</span>`}</td>
            <td data-label="Model">${s.model}</td>
            <td data-label="Status">${badge(s.status)}${s.failure ? html` <span class="hint">${s.failure.code}</span>` : ""}</td>
            <td data-label="Started">${when(s.created_at)}</td>
            <td data-label="Time to first frame">${ttff(s.timings_ms)}</td>
            ${live
              ? html`<td data-label="Stop">
                  <button type="button" class="danger" ?disabled=${this.stopping.has(s.session_id)}
                    aria-label="Stop session ${s.session_id.slice(0, 8)}" @click=${() => this.stop(s.session_id)}>Stop</button>
                </td>`
              : ""}
          </tr>`,
        )}
      </tbody>
    </table>`;
  }

  render() {
    const head = html`<h1>Sessions</h1>`;
    if (this.error) return html`${head}${errorState(this.error, () => this.load())}`;
    if (this.sessions === null) return html`${head}${loading("Loading sessions")}`;
    const live = this.sessions.filter((s) => LIVE.has(s.status));
    const recent = this.sessions.filter((s) => !LIVE.has(s.status));
    return html`${head}
      <h2>Live</h2>
      ${live.length ? this.table(live, true) : emptyState("No live session.")}
      <h2>Recent</h2>
      ${recent.length ? this.table(recent, false) : emptyState("No finished session yet.")}`;
  }
}

customElements.define("studio-sessions", StudioSessions);
