// Keys: the tenant's API keys; a new key's secret is shown once; revoke with a confirmation.
import { html } from "lit";
import { api } from "../api.js";
import { copyText, emptyState, errorState, loading, Page, when } from "../ui.js";

class StudioKeys extends Page {
  static properties = {
    me: { attribute: false },
    keys: { state: true },
    error: { state: true },
    created: { state: true },
    confirm: { state: true },
    notice: { state: true },
  };

  constructor() {
    super();
    this.keys = null;
    this.error = null;
    this.created = null;
    this.confirm = null;
    this.notice = "";
  }

  connectedCallback() {
    super.connectedCallback();
    this.load();
  }

  async load() {
    try {
      this.keys = (await api("/v1/keys")).data;
      this.error = null;
    } catch (err) {
      this.error = err;
    }
  }

  async create(event) {
    event.preventDefault();
    const form = event.target;
    const name = new FormData(form).get("name").trim();
    this.error = null;
    try {
      this.created = await api("/v1/keys", { method: "POST", json: { name } });
      form.reset();
      await this.load();
    } catch (err) {
      this.error = err;
    }
  }

  async revoke(key) {
    this.confirm = null;
    this.error = null;
    try {
      await api(`/v1/keys/${key.key_id}`, { method: "DELETE" });
      if (key.current) {
        window.dispatchEvent(new CustomEvent("studio-signed-out"));
        return;
      }
      this.notice = `Key “${key.name}” revoked.`;
      await this.load();
    } catch (err) {
      this.error = err;
    }
  }

  renderCreated() {
    const c = this.created;
    return html`<div class="secret" role="status">
      <p><strong>New key “${c.name}”.</strong> Copy its secret now: it is shown this once.</p>
      <label for="new-secret">Secret</label>
      <div class="row">
        <input id="new-secret" readonly .value=${c.secret} @focus=${(e) => e.target.select()} />
        <button type="button" @click=${async () => (this.notice = (await copyText(c.secret)) ? "Secret copied." : "Copy failed.")}>Copy</button>
        <button type="button" class="quiet" @click=${() => (this.created = null)}>I have saved it</button>
      </div>
    </div>`;
  }

  renderRow(k) {
    const confirming = this.confirm === k.key_id;
    return html`<tr data-key-id=${k.key_id}>
      <td data-label="Name">${k.name}${k.current ? html` <span class="badge">this key</span>` : ""}</td>
      <td data-label="Id"><code>${k.key_id}</code></td>
      <td data-label="Created">${when(k.created_at)}</td>
      <td data-label="State">${k.revoked ? html`<span class="badge badge-failed">revoked</span>` : html`<span class="badge badge-ready">active</span>`}</td>
      <td data-label="Revoke">
        ${k.revoked
          ? ""
          : confirming
            ? html`<span class="row">
                <button type="button" class="danger" @click=${() => this.revoke(k)}>${k.current ? "Revoke and sign out" : "Revoke"}</button>
                <button type="button" class="quiet" @click=${() => (this.confirm = null)}>Cancel</button>
              </span>`
            : html`<button type="button" class="quiet" aria-label="Revoke key ${k.name}" @click=${() => (this.confirm = k.key_id)}>Revoke</button>`}
      </td>
    </tr>`;
  }

  render() {
    return html`<h1>API keys</h1>
      <form class="panel" @submit=${this.create}>
        <label for="key-name">New key name</label>
        <div class="row">
          <input id="key-name" name="name" maxlength="80" required placeholder="e.g. production agent" />
          <button type="submit">Create key</button>
        </div>
      </form>
      ${this.created ? this.renderCreated() : ""}
      <p role="status" aria-live="polite">${this.notice}</p>
      ${this.error ? errorState(this.error, () => this.load()) : ""}
      ${this.keys === null
        ? this.error ? "" : loading("Loading keys")
        : this.keys.length
          ? html`<table class="responsive">
              <thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Created</th><th scope="col">State</th><th scope="col"><span class="visually-hidden">Revoke</span></th></tr></thead>
              <tbody>${this.keys.map((k) => this.renderRow(k))}</tbody>
            </table>`
          : emptyState("No keys.")}`;
  }
}

customElements.define("studio-keys", StudioKeys);
