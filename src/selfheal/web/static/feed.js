// The live feed over WebSocket. A browser cannot set headers on a WebSocket, so the key
// goes in the first message (never in the URL). Reconnects with backoff; after a
// connection the views resynchronise once: events may have been missed before it.

const BACKOFF = [500, 1000, 2000, 5000, 10000];

export class Feed {
  constructor(key, { onEvent, onState, onResync, onUnauthorized, onTenant }) {
    this.key = key;
    this.handlers = { onEvent, onState, onResync, onUnauthorized, onTenant };
    this.socket = null;
    this.attempt = 0;
    this.closed = false;
    this.everConnected = false;
    this.received = 0;
  }

  connect() {
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/api/events/ws`);
    this.socket = socket;
    this.handlers.onState(this.everConnected ? "reconnecting" : "connecting");
    socket.addEventListener("open", () => socket.send(JSON.stringify({ api_key: this.key })));
    socket.addEventListener("message", (message) => this.onMessage(message));
    socket.addEventListener("close", (event) => this.onClose(event));
  }

  onMessage(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (event.error) {
      this.closed = true;
      this.handlers.onState("offline");
      this.handlers.onUnauthorized(event.error);
      return;
    }
    if (event.type === "connected") {
      // the server subscribed before saying "connected": a snapshot loaded from now on,
      // plus the events that follow, is complete. So every connection resyncs once.
      this.everConnected = true;
      this.attempt = 0;
      this.handlers.onTenant(event.tenant_id);
      this.handlers.onState("live");
      this.handlers.onResync();
      return;
    }
    this.received += 1;
    this.handlers.onEvent(event);
  }

  onClose(event) {
    if (this.closed) return;
    if (event.code === 4401) {
      this.closed = true;
      this.handlers.onState("offline");
      this.handlers.onUnauthorized({ code: "unauthorized", message: "the API key is not valid" });
      return;
    }
    this.handlers.onState("reconnecting");
    const delay = BACKOFF[Math.min(this.attempt, BACKOFF.length - 1)];
    this.attempt += 1;
    setTimeout(() => this.connect(), delay);
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.close();
  }
}
