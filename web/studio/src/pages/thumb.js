// An agent's thumbnail: fetched with the API secret (an <img src> cannot send it), shown from a blob
// URL, and only once the card scrolls into view, so a page of cards does not queue 24 requests ahead
// of the next list request.
import { html } from "lit";
import { thumbnailUrl } from "../api.js";
import { Page } from "../ui.js";

const seen = new WeakMap();
const observer = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) {
        observer.unobserve(entry.target);
        seen.get(entry.target)?.();
      }
    }
  },
  { rootMargin: "200px" },
);

class AgentThumb extends Page {
  static properties = { agentId: {}, alt: {}, ready: { type: Boolean }, src: { state: true } };

  connectedCallback() {
    super.connectedCallback();
    seen.set(this, () => this.fetchThumb());
    observer.observe(this);
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    observer.unobserve(this);
  }

  updated(changed) {
    if (changed.has("agentId") && changed.get("agentId") !== undefined) {
      this.src = null;
      observer.observe(this);
    }
  }

  fetchThumb() {
    const agentId = this.agentId;
    thumbnailUrl(agentId).then(
      (url) => agentId === this.agentId && (this.src = url),
      () => (this.src = ""),
    );
  }

  render() {
    return this.src
      ? html`<img class="thumb" src=${this.src} alt=${this.alt || ""} width="160" height="160" />`
      : html`<span class="thumb" role="img" aria-label=${this.alt || ""}></span>`;
  }
}

customElements.define("agent-thumb", AgentThumb);
