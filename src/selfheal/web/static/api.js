// The dashboard's only way to the agent's data: the public JSON API, with the key in a header.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** "409 conflict: incident 3 has no action waiting for approval" */
  describe() {
    return this.status ? `${this.status} ${this.code}: ${this.message}` : this.message;
  }
}

export class Api {
  constructor(header, key, onUnauthorized = () => {}) {
    this.header = header;
    this.key = key;
    this.onUnauthorized = onUnauthorized;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body) {
    return this.request("POST", path, body);
  }

  /** Resolve with {status, body}; reject with ApiError for anything but 2xx. */
  async request(method, path, body) {
    const headers = { [this.header]: this.key, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network", `the agent did not answer (${err.message})`);
    }
    let payload = null;
    const text = await response.text();
    if (text) {
      try {
        payload = JSON.parse(text);
      } catch {
        payload = null;
      }
    }
    if (response.ok) return { status: response.status, body: payload };
    const error = payload && payload.error ? payload.error : {};
    const failure = new ApiError(
      response.status,
      error.code || "error",
      error.message || response.statusText || "request failed",
    );
    if (response.status === 401) this.onUnauthorized(failure);
    throw failure;
  }
}
