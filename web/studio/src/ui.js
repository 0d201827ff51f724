// Shared pieces: a light-DOM base element (one stylesheet, labels that work across components),
// empty / error / loading states, formatting, and a copy-to-clipboard helper.
import { html, LitElement } from "lit";

export class Page extends LitElement {
  createRenderRoot() {
    return this;
  }
}

export function errorState(error, retry) {
  const code = error && error.code ? html`<code>${error.code}</code> ` : "";
  return html`<div class="state error" role="alert">
    <p><strong>Something went wrong.</strong> ${code}${error ? error.message : ""}</p>
    ${retry ? html`<button type="button" @click=${retry}>Try again</button>` : ""}
  </div>`;
}

export function emptyState(text, action = "") {
  return html`<div class="state empty"><p>${text}</p>${action}</div>`;
}

export const loading = (what = "Loading") => html`<p class="state loading" aria-live="polite">${what}…</p>`;

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
export const when = (epochS) => (epochS ? dateFormat.format(new Date(epochS * 1000)) : "never");
export const number = (n) => (n === null || n === undefined ? "—" : new Intl.NumberFormat().format(n));
export const ms = (value) => (value === null || value === undefined ? "—" : `${Math.round(value)} ms`);

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    return done;
  }
}

export const LIVE = new Set(["QUEUED", "ASSIGNED", "STARTING", "STREAMING", "ENDING"]);

export function badge(status) {
  return html`<span class="badge badge-${String(status).toLowerCase()}">${status}</span>`;
}

export function navigate(hash) {
  if (location.hash !== hash) location.hash = hash;
}
