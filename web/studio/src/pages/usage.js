// Usage: plan and balance, and credits and minutes per day as plots (numbers also in a table).
import { html } from "lit";
import { api } from "../api.js";
import { bars } from "../plot.js";
import { emptyState, errorState, loading, number, Page, when } from "../ui.js";

const DAYS = 30;

class StudioUsage extends Page {
  static properties = { usage: { state: true }, daily: { state: true }, error: { state: true } };

  constructor() {
    super();
    this.usage = null;
    this.daily = null;
    this.error = null;
  }

  connectedCallback() {
    super.connectedCallback();
    this.load();
  }

  async load() {
    this.error = null;
    try {
      [this.usage, this.daily] = await Promise.all([api("/v1/usage"), api(`/v1/usage/daily?days=${DAYS}`)]);
    } catch (err) {
      this.error = err;
    }
  }

  updated() {
    if (!this.daily) return;
    const days = this.daily.days;
    const labels = days.map((d) => d.day.slice(5));
    const kinds = [...new Set(days.flatMap((d) => Object.keys(d.credits)))];
    const models = [...new Set(days.flatMap((d) => Object.keys(d.minutes)))];
    const credits = this.querySelector("#credits-plot");
    const minutes = this.querySelector("#minutes-plot");
    if (credits && kinds.length) {
      bars(credits, {
        title: `Credits per day, last ${DAYS} days`,
        labels,
        yLabel: "credits",
        series: kinds.map((k) => ({ label: k, values: days.map((d) => d.credits[k] || 0) })),
      });
    }
    if (minutes && models.length) {
      bars(minutes, {
        title: `Session minutes per day, last ${DAYS} days`,
        labels,
        yLabel: "minutes",
        series: models.map((m) => ({ label: m, values: days.map((d) => d.minutes[m] || 0) })),
      });
    }
  }

  render() {
    const head = html`<h1>Usage</h1>`;
    if (this.error) return html`${head}${errorState(this.error, () => this.load())}`;
    if (!this.usage || !this.daily) return html`${head}${loading("Loading usage")}`;
    const u = this.usage;
    const plan = u.plan;
    const used = this.daily.days.filter((d) => Object.keys(d.credits).length);
    return html`${head}
      <div class="kpis">
        <div class="kpi">Plan<b>${plan.name}</b><span class="hint">${plan.monthly_credits === null ? "unlimited" : `${number(plan.monthly_credits)} credits a month`}</span></div>
        <div class="kpi">Balance<b>${u.balance === null ? "unlimited" : number(u.balance)}</b><span class="hint">credits, top-ups ${number(u.topup_credits)}</span></div>
        <div class="kpi">Used this month<b>${number(u.credits_used)}</b><span class="hint">credits since ${u.period}</span></div>
        <div class="kpi">Resets<b>${when(u.resets_at).split(",")[0]}</b><span class="hint">UTC month</span></div>
      </div>
      <h2>Per day</h2>
      ${used.length
        ? html`<div id="credits-plot" class="plot"></div>
            ${used.some((d) => Object.keys(d.minutes).length) ? html`<div id="minutes-plot" class="plot"></div>` : ""}
            <table class="responsive">
              <thead><tr><th scope="col">Day</th><th scope="col">Credits</th><th scope="col">Minutes</th></tr></thead>
              <tbody>
                ${used.map(
                  (d) => html`<tr>
                    <td data-label="Day">${d.day}</td>
                    <td data-label="Credits">${Object.entries(d.credits).map(([k, v]) => `${k} ${v}`).join(", ")}</td>
                    <td data-label="Minutes">${Object.entries(d.minutes).map(([k, v]) => `${k} ${v}`).join(", ") || "—"}</td>
                  </tr>`,
                )}
              </tbody>
            </table>`
        : emptyState(`Nothing used in the last ${DAYS} days.`)}
      <h2>Minutes left</h2>
      <ul>
        ${Object.entries(u.by_model).map(
          ([m, b]) => html`<li>${m}: ${b.minutes_left === null ? "unlimited" : number(b.minutes_left)} minutes (${b.credits_per_minute} credits a minute)</li>`,
        )}
      </ul>`;
  }
}

customElements.define("studio-usage", StudioUsage);
