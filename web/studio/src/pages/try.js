// Try it: type a sentence and watch the agent say it — live in a room on the farm's LiveKit server
// (livekit-client, served by the farm), or as an MP4 where the farm has no LiveKit — and play each
// gesture of its catalogue.
import { html } from "lit";
import { api, ApiError, sleep } from "../api.js";
import { badge, emptyState, errorState, LIVE, loading, navigate, Page } from "../ui.js";

const LIVEKIT_SDK = "/static/livekit-client.umd.js";

function loadLiveKit() {
  if (window.LivekitClient) return Promise.resolve(window.LivekitClient);
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = LIVEKIT_SDK;
    script.onload = () => resolve(window.LivekitClient);
    script.onerror = () =>
      reject(new ApiError(503, "ASSET_MISSING", "The browser SDK is not installed on this farm (make install)."));
    document.head.append(script);
  });
}

class StudioTry extends Page {
  static properties = {
    agentId: {},
    me: { attribute: false },
    agents: { state: true },
    agent: { state: true },
    room: { state: true },
    status: { state: true },
    error: { state: true },
    notice: { state: true },
    busy: { state: true },
    videoUrl: { state: true },
  };

  constructor() {
    super();
    this.agents = null;
    this.agent = null;
    this.room = null;
    this.status = "";
    this.error = null;
    this.notice = "";
    this.busy = false;
    this.videoUrl = "";
    this.lk = null;
  }

  get live() {
    return Boolean(this.me && this.me.livekit_rooms);
  }

  connectedCallback() {
    super.connectedCallback();
    this.load();
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    this.lk?.disconnect();
  }

  willUpdate(changed) {
    if (changed.has("agentId") && changed.get("agentId") !== undefined) this.load();
  }

  async load() {
    this.error = null;
    try {
      if (this.agentId) {
        this.agent = (await api(`/v1/agents/${this.agentId}`)).data;
      } else {
        this.agents = (await api("/v1/agents?status=ready&limit=100")).data;
      }
    } catch (err) {
      this.error = err;
    }
  }

  async start() {
    this.busy = true;
    this.error = null;
    try {
      const client = await loadLiveKit();
      const room = await api("/v1/rooms", { method: "POST", json: { agent_id: this.agent.agent_id } });
      this.room = room;
      const lk = (this.lk = new client.Room({ adaptiveStream: false }));
      lk.on(client.RoomEvent.TrackSubscribed, (track) => {
        track.attach(this.querySelector(track.kind === "video" ? "video" : "audio"));
      });
      await lk.connect(room.livekit_url, room.viewer_token);
      this.follow(room.session_id).catch((err) => (this.error = err)); // the status, while the page is open
    } catch (err) {
      this.error = err;
    } finally {
      this.busy = false;
    }
  }

  async follow(sessionId) {
    while (this.isConnected && this.room && this.room.session_id === sessionId) {
      const session = await api(`/v1/sessions/${sessionId}`);
      this.status = session.status;
      if (!LIVE.has(session.status)) {
        if (session.failure) this.error = new ApiError(0, session.failure.code, session.failure.message);
        return;
      }
      await sleep(session.status === "STREAMING" ? 2000 : 300);
    }
  }

  async say(event) {
    event.preventDefault();
    const message = new FormData(event.target).get("message").trim();
    if (!message) return;
    this.error = null;
    this.notice = "";
    this.busy = true;
    try {
      if (this.live) {
        await api(`/v1/agent/${this.agent.agent_id}/speak`, {
          method: "POST",
          json: { message, room_id: this.room.room_name },
        });
        this.notice = `Said: “${message}”`;
      } else {
        await this.renderVideo(message);
      }
    } catch (err) {
      this.error = err;
    } finally {
      this.busy = false;
    }
  }

  async renderVideo(text) {
    this.status = "QUEUED";
    const created = await api("/v1/video/generate", {
      method: "POST",
      json: { agent_id: this.agent.agent_id, text },
      headers: { "Idempotency-Key": crypto.randomUUID() },
    });
    for (;;) {
      const session = await api(`/v1/sessions/${created.session_id}`);
      this.status = session.status;
      if (session.status === "FAILED") throw new ApiError(0, session.failure.code, session.failure.message);
      if (session.status === "ENDED") break;
      await sleep(400);
    }
    const video = await api(`/v1/sessions/${created.session_id}/video`, { raw: true });
    if (this.videoUrl) URL.revokeObjectURL(this.videoUrl);
    this.videoUrl = URL.createObjectURL(video);
    this.notice = `Rendered ${created.duration_s.toFixed(1)} s of speech.`;
  }

  async gesture(action) {
    this.error = null;
    try {
      if (this.live) {
        const body = await api(`/v1/sessions/${this.room.session_id}/dynamics`, { method: "POST", json: { action } });
        const played = body.data.animation_triggered;
        this.notice = played === false ? `“${action}” was not played: ${body.data.reason}` : `Gesture “${action}” sent.`;
      } else {
        const clip = await api(`/v1/dynamics/${this.agent.agent_id}/previews/${action}.mp4`, { raw: true });
        if (this.videoUrl) URL.revokeObjectURL(this.videoUrl);
        this.videoUrl = URL.createObjectURL(clip);
        this.notice = `Playing the “${action}” preview.`;
      }
    } catch (err) {
      this.error = err;
    }
  }

  async stop() {
    const room = this.room;
    this.room = null;
    this.lk?.disconnect();
    this.lk = null;
    try {
      const session = await api(`/v1/sessions/${room.session_id}`, { method: "DELETE" });
      this.status = session.status;
      this.notice = "Session stopped.";
    } catch (err) {
      this.error = err;
    }
  }

  renderPicker() {
    if (this.agents === null) return this.error ? errorState(this.error, () => this.load()) : loading("Loading agents");
    if (!this.agents.length) {
      return emptyState("No ready agent to try.", html`<a class="button" href="#/create">Create one from a photo</a>`);
    }
    return html`<label for="try-agent">Agent</label>
      <select id="try-agent" @change=${(e) => navigate(`#/try/${e.target.value}`)}>
        <option value="">Choose an agent…</option>
        ${this.agents.map((a) => html`<option value=${a.agent_id}>${a.name || a.agent_id} (${a.agent_id})</option>`)}
      </select>`;
  }

  renderStage() {
    const a = this.agent;
    const running = Boolean(this.room);
    const canSpeak = this.live ? running && this.status === "STREAMING" : true;
    return html`<p>
        <strong>${a.name || "Unnamed agent"}</strong> <code>${a.agent_id}</code> ${badge(a.status)}
        ${this.status ? html` · session ${badge(this.status)}` : ""}
      </p>
      ${this.live
        ? html`<video class="video" autoplay muted playsinline aria-label="The agent, live"></video><audio autoplay></audio>
            <div class="row">
              ${running
                ? html`<button type="button" class="danger" @click=${this.stop}>Stop session</button>`
                : html`<button type="button" ?disabled=${this.busy || a.status !== "ready"} @click=${this.start}>
                    Start live session
                  </button>`}
            </div>`
        : html`<p class="hint">This farm has no LiveKit server: each sentence is rendered as an MP4.</p>
            ${this.videoUrl
              ? html`<video class="video" src=${this.videoUrl} autoplay muted playsinline controls aria-label="The agent's answer"></video>`
              : ""}`}
      <form @submit=${this.say}>
        <label for="say">What should the agent say?</label>
        <div class="row">
          <input id="say" name="message" maxlength="500" placeholder="Hello! Nice to meet you." required />
          <button type="submit" ?disabled=${!canSpeak || this.busy}>Speak</button>
        </div>
      </form>
      <h2 id="gestures-title">Gestures</h2>
      ${a.gestures && a.gestures.length
        ? html`<div class="gestures" role="group" aria-labelledby="gestures-title">
            ${a.gestures.map(
              (g) => html`<button type="button" class="quiet" ?disabled=${this.live && !canSpeak}
                @click=${() => this.gesture(g)}>${g.replaceAll("_", " ")}</button>`,
            )}
          </div>`
        : emptyState("This agent has no gestures.")}
      <p role="status" aria-live="polite">${this.notice}</p>`;
  }

  render() {
    return html`<h1>Try it</h1>
      ${this.agentId ? (this.agent ? this.renderStage() : this.error ? "" : loading("Loading the agent")) : this.renderPicker()}
      ${this.error && (this.agentId || this.agents !== null) ? errorState(this.error) : ""}`;
  }
}

customElements.define("studio-try", StudioTry);
