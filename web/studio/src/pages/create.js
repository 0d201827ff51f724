// Create from a photo: drop or pick an image, see the face and the framing the farm found (on a build
// worker) drawn over it BEFORE building — for an animal or cartoon, drag a box around its mouth — then
// build and watch the progress.
import { html } from "lit";
import { api, ApiError, base64Of, sleep } from "../api.js";
import { errorState, Page } from "../ui.js";

const MAX_IMAGE_MB = 10;
const TYPES = ["image/png", "image/jpeg"];
const PREVIEW_DEADLINE_MS = 60_000;
const MESSAGES = {
  NO_FACE_FOUND:
    "No face found in this photo. Use a photo where one face looks at the camera, or choose “Animal or cartoon” and mark its mouth.",
  MOUTH_TOO_SMALL: "The face is too small in this photo to animate. Use a closer photo, or the “face” framing.",
  INVALID_IMAGE: "This file is not an image the farm can read. Use a PNG or JPEG.",
  NOT_AN_IMAGE: "This file is not an image. Use a PNG or JPEG photo.",
  PAYLOAD_TOO_LARGE: `This image is too large. Use one under ${MAX_IMAGE_MB} MB (and 25 megapixels).`,
  POINTS_REQUIRED: "Drag a box around the mouth on the image first.",
  POINTS_OUTSIDE_IMAGE: "The mouth box must lie inside the image.",
};

export function friendly(err) {
  return MESSAGES[err.code] ? new ApiError(err.status, err.code, MESSAGES[err.code]) : err;
}

class StudioCreate extends Page {
  static properties = {
    file: { state: true },
    mode: { state: true },
    framing: { state: true },
    preview: { state: true },
    previewing: { state: true },
    error: { state: true },
    mouth: { state: true },
    agent: { state: true },
    over: { state: true },
  };

  constructor() {
    super();
    this.reset();
    this.mode = "person";
    this.framing = "face";
    this.over = false;
  }

  reset() {
    this.file = null;
    this.image = null;
    this.preview = null;
    this.previewing = false;
    this.error = null;
    this.mouth = null;
    this.agent = null;
  }

  pick(file) {
    this.reset();
    if (!file) return;
    if (!TYPES.includes(file.type)) {
      this.error = friendly(new ApiError(0, "NOT_AN_IMAGE", ""));
      return;
    }
    if (file.size > MAX_IMAGE_MB * 1024 * 1024) {
      this.error = friendly(new ApiError(413, "PAYLOAD_TOO_LARGE", ""));
      return;
    }
    this.file = file;
    const image = new Image();
    image.onload = () => {
      this.image = image;
      this.draw();
      if (this.mode === "person") this.requestPreview();
    };
    image.onerror = () => (this.error = friendly(new ApiError(0, "INVALID_IMAGE", "")));
    image.src = URL.createObjectURL(file);
  }

  options() {
    const options = { mode: this.mode, framing: this.framing };
    if (this.mode === "animal" && this.mouth) options.mouth_box = this.mouth.map(Math.round);
    return options;
  }

  async requestPreview() {
    this.preview = null;
    this.error = null;
    this.previewing = true;
    try {
      const image = await base64Of(this.file);
      let preview = await api("/v1/previews", { method: "POST", json: { image, ...this.options() } });
      const end = performance.now() + PREVIEW_DEADLINE_MS;
      while (preview.status === "pending") {
        if (performance.now() > end) throw new ApiError(0, "TIMEOUT", "No build worker answered in time; try again.");
        await sleep(300);
        preview = await api(`/v1/previews/${preview.preview_id}`);
      }
      this.preview = preview;
      if (preview.error) this.error = friendly(new ApiError(400, preview.error.code, preview.error.message));
    } catch (err) {
      this.error = friendly(err);
    } finally {
      this.previewing = false;
      this.draw();
    }
  }

  async build() {
    this.error = null;
    try {
      const image = await base64Of(this.file);
      const created = await api("/v1/agents", {
        method: "POST",
        json: { image, ...this.options() },
        headers: { "Idempotency-Key": crypto.randomUUID() },
      });
      const name = this.querySelector("#new-name").value.trim();
      if (name) await api(`/v1/agents/${created.agent_id}`, { method: "PATCH", json: { name } });
      this.agent = { agent_id: created.agent_id, status: created.status, progress: 0, build_stage: "queued" };
      while (this.agent.status === "processing") {
        await sleep(400);
        this.agent = (await api(`/v1/agents/${created.agent_id}`)).data;
      }
      if (this.agent.status === "failed") {
        this.error = new ApiError(0, "BUILD_FAILED", this.agent.error_message || "The build failed.");
      }
    } catch (err) {
      this.error = friendly(err);
    }
  }

  // ---------------------------------------------------------------- the picture and what was found
  scale() {
    const canvas = this.querySelector("canvas");
    return canvas && this.image ? canvas.width / this.image.naturalWidth : 1;
  }

  draw() {
    const canvas = this.querySelector("canvas");
    if (!canvas || !this.image) return;
    const img = this.image;
    const k = Math.min(1, 640 / img.naturalWidth);
    canvas.width = Math.round(img.naturalWidth * k);
    canvas.height = Math.round(img.naturalHeight * k);
    const g = canvas.getContext("2d");
    g.drawImage(img, 0, 0, canvas.width, canvas.height);
    const box = (b, color, dash = []) => {
      g.setLineDash(dash);
      g.strokeStyle = color;
      g.lineWidth = 3;
      g.strokeRect(b[0] * k, b[1] * k, (b[2] - b[0]) * k, (b[3] - b[1]) * k);
    };
    const p = this.preview;
    if (p && p.crop_box) box(p.crop_box, "#2f7bff", [10, 6]);
    if (p && p.face_box && this.mode === "person") box(p.face_box, "#19c37d");
    if (p && p.points) {
      g.fillStyle = "#ffd43b";
      for (const [x, y] of p.points) g.fillRect(x * k - 2, y * k - 2, 4, 4);
    }
    if (this.mouth) box(this.mouth, "#ff7a00");
  }

  startMouth(event) {
    if (this.mode !== "animal" || !this.image) return;
    const canvas = event.currentTarget;
    canvas.setPointerCapture(event.pointerId);
    const rect = canvas.getBoundingClientRect();
    const toImage = (e) => [
      ((e.clientX - rect.left) / rect.width) * this.image.naturalWidth,
      ((e.clientY - rect.top) / rect.height) * this.image.naturalHeight,
    ];
    const [x0, y0] = toImage(event);
    const move = (e) => {
      const [x1, y1] = toImage(e);
      this.mouth = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
      this.draw();
    };
    const up = () => {
      canvas.removeEventListener("pointermove", move);
      canvas.removeEventListener("pointerup", up);
      if (this.mouth && this.mouth[2] - this.mouth[0] > 4) this.requestPreview();
    };
    canvas.addEventListener("pointermove", move);
    canvas.addEventListener("pointerup", up);
  }

  setMouthField(index, value) {
    const mouth = this.mouth ? [...this.mouth] : [0, 0, 0, 0];
    mouth[index] = Number(value);
    this.mouth = mouth;
    this.draw();
  }

  setMode(mode) {
    this.mode = mode;
    this.preview = null;
    this.mouth = null;
    this.error = null;
    this.draw();
    if (this.file && mode === "person") this.requestPreview();
  }

  setFraming(framing) {
    this.framing = framing;
    if (this.file && (this.mode === "person" || this.mouth)) this.requestPreview();
  }

  onDrop(event) {
    event.preventDefault();
    this.over = false;
    this.pick(event.dataTransfer.files[0]);
  }

  renderMouthFields() {
    const m = this.mouth || [];
    const names = ["Left", "Top", "Right", "Bottom"];
    return html`<fieldset>
      <legend>Mouth box (drag on the image, or type pixels)</legend>
      <div class="row">
        ${names.map(
          (n, i) => html`<div>
            <label for="mouth-${i}">${n}</label>
            <input id="mouth-${i}" type="number" min="0" .value=${m[i] !== undefined ? String(Math.round(m[i])) : ""}
              @change=${(e) => this.setMouthField(i, e.target.value)} />
          </div>`,
        )}
        <button type="button" ?disabled=${!this.mouth} @click=${() => this.requestPreview()}>Check mouth</button>
      </div>
    </fieldset>`;
  }

  renderStatus() {
    if (this.agent) {
      const a = this.agent;
      if (a.status === "ready") {
        return html`<div class="panel" role="status">
          <p><strong>Ready.</strong> Agent <code>${a.agent_id}</code> is built.</p>
          <a class="button" href="#/try/${a.agent_id}">Try it</a> <a class="button quiet" href="#/agents">See all agents</a>
        </div>`;
      }
      if (a.status === "processing") {
        return html`<div class="panel">
          <label for="build-progress">Building ${a.agent_id}: ${a.build_stage || "queued"}</label>
          <progress id="build-progress" max="1" .value=${a.progress || 0}></progress>
        </div>`;
      }
    }
    if (this.previewing) return html`<p role="status" class="hint">Looking for the face on a build worker…</p>`;
    if (this.preview && this.preview.status === "ready") {
      return html`<p role="status" class="hint">
        ${this.mode === "person" ? "Face found" : "Mouth placed"}: the dashed box is what the agent will show
        (${this.preview.output_size.join("×")} px, mouth ${Math.round(this.preview.mouth_px)} px wide).
      </p>`;
    }
    return "";
  }

  render() {
    const ready = this.preview && this.preview.status === "ready" && !this.agent;
    return html`<h1>Create an agent from a photo</h1>
      <fieldset class="panel">
        <legend>What is in the photo?</legend>
        <label class="choice"><input type="radio" name="mode" value="person" ?checked=${this.mode === "person"} @change=${() => this.setMode("person")} /> A person</label>
        <label class="choice"><input type="radio" name="mode" value="animal" ?checked=${this.mode === "animal"} @change=${() => this.setMode("animal")} /> An animal or cartoon</label>
        <label for="framing">Framing</label>
        <select id="framing" @change=${(e) => this.setFraming(e.target.value)}>
          <option value="face" ?selected=${this.framing === "face"}>Head and shoulders</option>
          <option value="full" ?selected=${this.framing === "full"}>The whole photo</option>
        </select>
      </fieldset>
      <div class="drop ${this.over ? "over" : ""}" role="button" tabindex="0" aria-describedby="drop-hint"
        @click=${() => this.querySelector("#photo").click()}
        @keydown=${(e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), this.querySelector("#photo").click())}
        @dragover=${(e) => (e.preventDefault(), (this.over = true))}
        @dragleave=${() => (this.over = false)}
        @drop=${this.onDrop}>
        <label for="photo">Photo</label>
        <p id="drop-hint" class="hint">Drop a PNG or JPEG here, or press Enter to choose one (at most ${MAX_IMAGE_MB} MB).</p>
        <input id="photo" type="file" accept="image/png,image/jpeg" class="visually-hidden"
          @click=${(e) => e.stopPropagation()} @change=${(e) => this.pick(e.target.files[0])} />
      </div>
      ${this.file
        ? html`<div class="panel">
            <div class="stage">
              <canvas aria-label="Your photo with the face and framing the farm found" role="img"
                @pointerdown=${this.startMouth}></canvas>
            </div>
            <div class="legend">
              <span><span class="swatch" style="background:#19c37d"></span>face</span>
              <span><span class="swatch" style="background:#ffd43b"></span>landmarks</span>
              <span><span class="swatch" style="background:#2f7bff"></span>what the agent shows</span>
              ${this.mode === "animal" ? html`<span><span class="swatch" style="background:#ff7a00"></span>mouth</span>` : ""}
            </div>
            ${this.mode === "animal" ? this.renderMouthFields() : ""}
          </div>`
        : ""}
      ${this.renderStatus()}
      ${this.error ? errorState(this.error, this.file && !this.agent ? () => this.requestPreview() : null) : ""}
      <div class="row">
        <div>
          <label for="new-name">Name (optional)</label>
          <input id="new-name" maxlength="80" placeholder="e.g. Ada, support desk" />
        </div>
        <button type="button" ?disabled=${!ready} @click=${this.build}>Build agent</button>
      </div>`;
  }

  updated() {
    this.draw();
  }
}

customElements.define("studio-create", StudioCreate);
