// The public API, as the studio calls it: every request carries the api-secret the user typed, held in
// this tab's sessionStorage only (gone when the tab closes). Errors keep the farm's stable code.

const SECRET_KEY = "avatar-farm.studio.secret";

export class ApiError extends Error {
  constructor(status, code, message, retryAfterS = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
  }
}

export const secret = {
  get: () => sessionStorage.getItem(SECRET_KEY) || "",
  set: (value) => sessionStorage.setItem(SECRET_KEY, value),
  clear: () => sessionStorage.removeItem(SECRET_KEY),
};

/** fetch one API path; JSON in and out (``raw``: the body as a Blob). Throws ApiError. */
export async function api(path, { method = "GET", json, headers = {}, raw = false, signal } = {}) {
  const sent = { "api-secret": secret.get(), ...headers };
  let body;
  if (json !== undefined) {
    sent["content-type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "NETWORK", "The farm did not answer. Check your connection and try again.");
  }
  if (!response.ok) {
    let envelope = null;
    try {
      envelope = await response.json();
    } catch {
      /* not JSON: keep the status */
    }
    const error = envelope && envelope.error;
    const retry = response.headers.get("retry-after");
    throw new ApiError(
      response.status,
      (error && error.code) || `HTTP_${response.status}`,
      (error && error.message) || response.statusText || `HTTP ${response.status}`,
      retry ? Number(retry) : null,
    );
  }
  if (raw) return response.blob();
  return response.json();
}

/** Base64 of a File/Blob (for JSON bodies). */
export async function base64Of(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

const thumbs = new Map();

/** An object URL of an agent's thumbnail (fetched once with the secret, kept for the tab). */
export function thumbnailUrl(agentId) {
  if (!thumbs.has(agentId)) {
    thumbs.set(
      agentId,
      api(`/v1/agents/${agentId}/thumbnail`, { raw: true }).then(
        (blob) => URL.createObjectURL(blob),
        (err) => {
          thumbs.delete(agentId);
          throw err;
        },
      ),
    );
  }
  return thumbs.get(agentId);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
