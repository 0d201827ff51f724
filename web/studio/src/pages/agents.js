// Agents: cards (thumbnail, name, model, status, created, last used) with search, paged by the API
// (24 a page, so 1,000 agents cost one small request), and each agent's Settings dialog.
import { html } from "lit";
import { api } from "../api.js";
import { badge, emptyState, errorState, loading, number, Page, when } from "../ui.js";
import "./agent-settings.js";
import "./thumb.js";

const PAGE_SIZE = 24;

class StudioAgents extends Page {
  static properties = {
    agents: { state: true },
    total: { state: true },
    offset: { state: true },
    query: { state: true },
    error: { state: true },
    busy: { state: true },
    editing: { state: true },
  };

  constructor() {
    super();
    this.agents = null;
    this.total = 0;
    this.offset = 0;
    this.query = "";
    this.error = null;
    this.busy = false;
    this.editing = null;
    this._searchTimer = null;
    this._request = null;
  }

  connectedCallback() {
    super.connectedCallback();
    this.load();
  }

  async load() {
    this._request?.abort();
    const request = (this._request = new AbortController());
    this.busy = true;
    this.error = null;
    const params = new URLSearchParams({ limit: PAGE_SIZE, offset: this.offset });
    if (this.query) params.set("q", this.query);
    const started = performance.now();
    try {
      const body = await api(`/v1/agents?${params}`, { signal: request.signal });
      this.agents = body.data;
      this.total = body.pagination.total;
      await this.updateComplete;
      performance.measure("studio:agents-list", { start: started, end: performance.now() });
      window.dispatchEvent(new CustomEvent("studio-agents-shown", { detail: { count: body.data.length } }));
    } catch (err) {
      if (err.name !== "AbortError") this.error = err;
    } finally {
      if (this._request === request) this.busy = false;
    }
  }

  onSearch(event) {
    clearTimeout(this._searchTimer);
    const value = event.target.value.trim();
    this._searchTimer = setTimeout(() => {
      this.query = value;
      this.offset = 0;
      this.load();
    }, 250);
  }

  page(delta) {
    this.offset = Math.max(0, this.offset + delta * PAGE_SIZE);
    this.load();
  }

  card(agent) {
    const title = agent.name || "Unnamed agent";
    return html`<li class="card" data-agent-id=${agent.agent_id}>
      <agent-thumb .agentId=${agent.agent_id} .ready=${agent.status === "ready"} alt="Portrait of ${title}"></agent-thumb>
      <div class="body">
        <h3>${title}</h3>
        <code>${agent.agent_id}</code>
        <dl>
          <dt>Model</dt><dd>${agent.model}</dd>
          <dt>Status</dt><dd>${badge(agent.status)}</dd>
          <dt>Created</dt><dd>${when(agent.created_at)}</dd>
          <dt>Last used</dt><dd>${when(agent.last_used_at)}</dd>
        </dl>
      </div>
      <div class="actions">
        <button type="button" class="quiet" @click=${() => (this.editing = agent)} aria-label="Settings of ${title}">
          Settings
        </button>
        ${agent.status === "ready"
          ? html`<a class="button" href="#/try/${agent.agent_id}" aria-label="Try ${title}">Try it</a>`
          : ""}
      </div>
    </li>`;
  }

  renderList() {
    if (this.error) return errorState(this.error, () => this.load());
    if (this.agents === null) return loading("Loading agents");
    if (this.agents.length === 0) {
      return this.query
        ? emptyState(html`No agent matches “${this.query}”.`)
        : emptyState("No agents yet.", html`<a class="button" href="#/create">Create one from a photo</a>`);
    }
    const last = Math.min(this.offset + this.agents.length, this.total);
    return html`<ul class="grid" aria-label="Agents">${this.agents.map((a) => this.card(a))}</ul>
      <div class="pager">
        <button type="button" class="quiet" ?disabled=${this.offset === 0 || this.busy} @click=${() => this.page(-1)}>
          Previous
        </button>
        <span aria-live="polite">${number(this.offset + 1)}–${number(last)} of ${number(this.total)}</span>
        <button type="button" class="quiet" ?disabled=${last >= this.total || this.busy} @click=${() => this.page(1)}>
          Next
        </button>
      </div>`;
  }

  render() {
    return html`<h1>Agents</h1>
      <div class="row">
        <div>
          <label for="agent-search">Search agents</label>
          <input id="agent-search" type="search" placeholder="Name or agent id" @input=${this.onSearch} />
        </div>
        <a class="button" href="#/create">New agent</a>
      </div>
      ${this.renderList()}
      ${this.editing
        ? html`<agent-settings
            .agent=${this.editing}
            @closed=${() => (this.editing = null)}
            @changed=${() => this.load()}
          ></agent-settings>`
        : ""}`;
  }
}

customElements.define("studio-agents", StudioAgents);
