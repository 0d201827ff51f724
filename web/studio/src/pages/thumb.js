// An agent's thumbnail: fetched with the API secret (an <img src> cannot send it), shown from a blob URL.
import { html } from "lit";
import { thumbnailUrl } from "../api.js";
import { Page } from "../ui.js";

class AgentThumb extends Page {
  static properties = { agentId: {}, alt: {}, ready: { type: Boolean }, src: { state: true } };

  updated(changed) {
    if (changed.has("agentId") && this.agentId) {
      this.src = null;
      thumbnailUrl(this.agentId).then(
        (url) => (this.src = url),
        () => (this.src = ""),
      );
    }
  }

  render() {
    return this.src
      ? html`<img class="thumb" src=${this.src} alt=${this.alt || ""} width="160" height="160" />`
      : html`<span class="thumb" role="img" aria-label=${this.alt || ""}></span>`;
  }
}

customElements.define("agent-thumb", AgentThumb);
