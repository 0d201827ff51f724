// The studio's shell: sign in with an API secret, then one page per hash route. Pages load lazily
// except the agent list (the first thing people see), so the first paint stays small.
import "./styles.css";
import { html } from "lit";
import { api, ApiError, secret } from "./api.js";
import "./pages/agents.js";
import { errorState, navigate, Page } from "./ui.js";

const PAGES = {
  agents: { title: "Agents", load: () => Promise.resolve() },
  create: { title: "Create", load: () => import("./pages/create.js") },
  try: { title: "Try it", load: () => import("./pages/try.js") },
  sessions: { title: "Sessions", load: () => import("./pages/sessions.js") },
  usage: { title: "Usage", load: () => import("./pages/usage.js") },
  keys: { title: "Keys", load: () => import("./pages/keys.js") },
  operators: { title: "Operators", load: () => import("./pages/operators.js"), admin: true },
};

function parseRoute() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  return { name: PAGES[name] ? name : "agents", arg: rest.join("/") || "" };
}

class FarmStudio extends Page {
  static properties = {
    me: { state: true },
    route: { state: true },
    signInError: { state: true },
    busy: { state: true },
    loaded: { state: true },
    failed: { state: true },
  };

  constructor() {
    super();
    this.me = null;
    this.route = parseRoute();
    this.wanted = this.route;
    this.signInError = null;
    this.busy = false;
    this.loaded = new Set(["agents"]);
    this.failed = null; // { name, error }: a page whose module did not load
    window.addEventListener("hashchange", () => this.go(parseRoute()));
    window.addEventListener("studio-signed-out", () => this.signOut());
  }

  connectedCallback() {
    this.replaceChildren(); // the static header of index.html was only for the first paint
    super.connectedCallback();
    if (secret.get()) this.signIn(secret.get());
  }

  /** Show ``route``'s page, loading its module first. The last navigation wins: a page whose module
   * arrives after the user went elsewhere (a second click while the first page was still loading)
   * must not replace the page they went to. A module that does not load (the network, or a farm
   * upgraded since this tab opened: the old build's files are gone) shows as that page's error, with
   * the way out; the rest of the studio keeps working. */
  async go(route) {
    const page = PAGES[route.name];
    this.wanted = route;
    if (!this.loaded.has(route.name)) {
      try {
        await page.load();
        this.loaded = new Set([...this.loaded, route.name]);
        if (this.failed?.name === route.name) this.failed = null;
      } catch (err) {
        const why = err instanceof Error ? ` (${err.message})` : "";
        const message = `The ${page.title} page could not be loaded${why}. If this farm was upgraded since this tab opened, reloading the page fixes it.`;
        this.failed = { name: route.name, error: new ApiError(0, "PAGE_NOT_LOADED", message) };
      }
      if (this.wanted !== route) return;
    }
    this.route = route;
    document.title = `${page.title} · Avatar farm studio`;
  }

  async signIn(value) {
    this.busy = true;
    this.signInError = null;
    secret.set(value);
    try {
      this.me = await api("/v1/me");
      await this.go(parseRoute());
    } catch (err) {
      secret.clear();
      this.signInError =
        err instanceof ApiError && err.status === 401
          ? new ApiError(401, err.code, "That API secret is not valid (unknown or revoked). Check it and try again.")
          : err;
    } finally {
      this.busy = false;
    }
  }

  signOut() {
    secret.clear();
    this.me = null;
  }

  onSubmit(event) {
    event.preventDefault();
    const value = new FormData(event.target).get("secret").trim();
    if (!value) {
      this.signInError = new ApiError(0, "MISSING_SECRET", "Paste an API secret (farm_…) to sign in.");
      return;
    }
    this.signIn(value);
  }

  renderSignIn() {
    return html`<header class="bar"><span class="brand">Avatar farm studio</span></header>
      <main class="signin">
        <form @submit=${this.onSubmit} aria-labelledby="signin-title">
          <h1 id="signin-title">Sign in</h1>
          <p class="hint">
            Paste an API secret (<code>farm keys create</code> prints one). It stays in this tab only and is
            sent to this farm's API, nowhere else.
          </p>
          <label for="secret">API secret</label>
          <input id="secret" name="secret" type="password" autocomplete="off" spellcheck="false" required />
          <button type="submit" ?disabled=${this.busy}>${this.busy ? "Signing in…" : "Sign in"}</button>
          ${this.signInError ? errorState(this.signInError) : ""}
        </form>
      </main>`;
  }

  renderPage() {
    const { name, arg } = this.route;
    const me = this.me;
    if (this.failed?.name === name) {
      return html`<h1>${PAGES[name].title}</h1>
        ${errorState(this.failed.error, () => location.reload())}`;
    }
    switch (name) {
      case "create":
        return html`<studio-create></studio-create>`;
      case "try":
        return html`<studio-try .agentId=${arg} .me=${me}></studio-try>`;
      case "sessions":
        return html`<studio-sessions></studio-sessions>`;
      case "usage":
        return html`<studio-usage></studio-usage>`;
      case "keys":
        return html`<studio-keys .me=${me}></studio-keys>`;
      case "operators":
        return me.admin
          ? html`<studio-operators></studio-operators>`
          : errorState(new ApiError(403, "ADMIN_ONLY", "The Operators page needs a key of an admin tenant."));
      default:
        return html`<studio-agents></studio-agents>`;
    }
  }

  render() {
    if (!this.me) return this.renderSignIn();
    const links = Object.entries(PAGES).filter(([, p]) => !p.admin || this.me.admin);
    return html`<header class="bar">
        <a class="brand" href="#/agents">Avatar farm studio</a>
        <nav aria-label="Studio">
          ${links.map(
            ([name, page]) =>
              html`<a href="#/${name}" aria-current=${this.route.name === name ? "page" : "false"}>${page.title}</a>`,
          )}
        </nav>
        <span class="who" title="Signed in as key ${this.me.key_name}">${this.me.tenant}</span>
        <button type="button" class="quiet" @click=${() => this.signOut()}>Sign out</button>
      </header>
      <main id="main">${this.renderPage()}</main>`;
  }
}

customElements.define("farm-studio", FarmStudio);
export { navigate };
