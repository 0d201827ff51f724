// An agent's Settings dialog: its Agent ID (shown, copied), rename, keyword → gesture rules, delete.
import { html } from "lit";
import { api } from "../api.js";
import { copyText, errorState, Page } from "../ui.js";

class AgentSettings extends Page {
  static properties = {
    agent: { attribute: false },
    rules: { state: true },
    error: { state: true },
    notice: { state: true },
    confirmDelete: { state: true },
  };

  constructor() {
    super();
    this.rules = null;
    this.error = null;
    this.notice = "";
    this.confirmDelete = false;
  }

  firstUpdated() {
    this.querySelector("dialog").showModal();
    this.loadRules();
  }

  async loadRules() {
    try {
      const body = await api(`/v1/dynamics/${this.agent.agent_id}/rules`);
      this.rules = Object.entries(body.data.rules || {});
    } catch (err) {
      this.rules = [];
      this.error = err;
    }
  }

  close() {
    this.querySelector("dialog").close();
  }

  onClosed() {
    this.dispatchEvent(new CustomEvent("closed"));
  }

  async copyId() {
    const ok = await copyText(this.agent.agent_id);
    this.notice = ok ? `Copied ${this.agent.agent_id}` : "Copy failed: select the id and copy it.";
  }

  async rename(event) {
    event.preventDefault();
    const name = new FormData(event.target).get("name").trim();
    await this.act(async () => {
      const body = await api(`/v1/agents/${this.agent.agent_id}`, { method: "PATCH", json: { name: name || null } });
      this.agent = body.data;
      this.notice = "Name saved.";
    });
  }

  addRule() {
    const gesture = (this.agent.gestures || [])[0] || "";
    this.rules = [...this.rules, ["", gesture]];
  }

  setRule(index, position, value) {
    this.rules = this.rules.map((rule, i) => (i === index ? Object.assign([...rule], { [position]: value }) : rule));
  }

  async saveRules(event) {
    event.preventDefault();
    const rules = Object.fromEntries(this.rules.filter(([phrase]) => phrase.trim()));
    await this.act(async () => {
      const body = await api(`/v1/dynamics/${this.agent.agent_id}/rules`, { method: "PUT", json: { rules } });
      this.rules = Object.entries(body.data.rules);
      this.notice = "Rules saved: sessions started from now on use them.";
    });
  }

  async deleteAgent() {
    await this.act(async () => {
      await api(`/v1/agents/${this.agent.agent_id}`, { method: "DELETE" });
      this.close();
    });
  }

  async act(action) {
    this.error = null;
    this.notice = "";
    try {
      await action();
      this.dispatchEvent(new CustomEvent("changed"));
    } catch (err) {
      this.error = err;
    }
  }

  renderRules() {
    const gestures = this.agent.gestures || [];
    if (this.rules === null) return html`<p class="hint">Loading rules…</p>`;
    if (!gestures.length) return html`<p class="hint">This agent has no gestures yet (it is still being built).</p>`;
    return html`<form @submit=${this.saveRules} aria-labelledby="rules-title">
      <table>
        <thead><tr><th scope="col">When the agent says</th><th scope="col">Gesture</th><th><span class="visually-hidden">Remove</span></th></tr></thead>
        <tbody>
          ${this.rules.length === 0
            ? html`<tr><td colspan="3" class="hint">No rules: gestures play only when triggered.</td></tr>`
            : ""}
          ${this.rules.map(
            ([phrase, gesture], i) => html`<tr>
              <td>
                <label class="visually-hidden" for="phrase-${i}">Keyword or phrase ${i + 1}</label>
                <input id="phrase-${i}" .value=${phrase} @input=${(e) => this.setRule(i, 0, e.target.value)} />
              </td>
              <td>
                <label class="visually-hidden" for="gesture-${i}">Gesture for rule ${i + 1}</label>
                <select id="gesture-${i}" @change=${(e) => this.setRule(i, 1, e.target.value)}>
                  ${gestures.map((g) => html`<option ?selected=${g === gesture}>${g}</option>`)}
                </select>
              </td>
              <td>
                <button type="button" class="quiet" aria-label="Remove rule ${i + 1}"
                  @click=${() => (this.rules = this.rules.filter((_, j) => j !== i))}>Remove</button>
              </td>
            </tr>`,
          )}
        </tbody>
      </table>
      <div class="row" style="margin-top:.5rem">
        <button type="button" class="quiet" @click=${this.addRule}>Add rule</button>
        <button type="submit" ?disabled=${!this.rules.length}>Save rules</button>
      </div>
    </form>`;
  }

  render() {
    const a = this.agent;
    return html`<dialog aria-labelledby="settings-title" @close=${this.onClosed}>
      <div class="head">
        <h2 id="settings-title">Agent settings</h2>
        <button type="button" class="quiet" @click=${this.close}>Close</button>
      </div>
      <div class="content">
        <label for="agent-id">Agent ID</label>
        <div class="row">
          <input id="agent-id" readonly .value=${a.agent_id} @focus=${(e) => e.target.select()} />
          <button type="button" @click=${this.copyId}>Copy ID</button>
        </div>
        <p class="hint">Use it as <code>avatar_id</code> in your agent code.</p>
        <form @submit=${this.rename}>
          <label for="agent-name">Name</label>
          <div class="row">
            <input id="agent-name" name="name" maxlength="80" .value=${a.name || ""} />
            <button type="submit">Rename</button>
          </div>
        </form>
        <h2 id="rules-title">Keyword → gesture rules</h2>
        ${this.renderRules()}
        <p role="status" aria-live="polite">${this.notice}</p>
        ${this.error ? errorState(this.error) : ""}
      </div>
      <div class="foot">
        ${this.confirmDelete
          ? html`<span>Delete ${a.name || a.agent_id} for good?</span>
              <span class="row">
                <button type="button" class="quiet" @click=${() => (this.confirmDelete = false)}>Keep it</button>
                <button type="button" class="danger" @click=${this.deleteAgent}>Delete</button>
              </span>`
          : html`<button type="button" class="danger" @click=${() => (this.confirmDelete = true)}>Delete agent</button>`}
      </div>
    </dialog>`;
  }
}

customElements.define("agent-settings", AgentSettings);
