// The WebSocket signaling of SPEC section 3: one JSON object per text frame, replies matched to
// requests by their echoed method, the session id the server gives kept and sent back, a
// heartbeat every 5 s, and reconnection with backoff (0.5 s doubling to 10 s) when the socket drops.
// Events: "state" (detail {state, text}), "open" (a new session: callers publish or play again),
// "closed-stream" (the server's stream.closed notification, detail the message).

const HEARTBEAT_MS = 5000;
const MAX_BACKOFF_MS = 10000;

export class SignalingError extends Error {
  constructor(method, reply) {
    super(`${method}: error ${reply.err}: ${reply.err_msg}`);
    this.code = reply.err;
  }
}

export class Signaling extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.session = "";
    this.ws = null;
    this.waiting = new Map();
    this.stopped = false;
    this.attempt = 0;
    this.heartbeat = null;
    this.retry = null;
    this.state = "new";
  }

  start() { this._connect(); return this; }

  _setState(state, text) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", {detail: {state, text}}));
  }

  _connect() {
    this.retry = null;
    this._setState("connecting", this.attempt ? `reconnecting (attempt ${this.attempt})…` : "connecting…");
    let ws;
    try { ws = new WebSocket(this.url); } catch (e) {
      this._lost(`cannot open ${this.url}: ${e.message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.session = "";
      this._setState("connected", "connected");
      this.heartbeat = setInterval(() => {
        this.request("stream.heartbeat", "", {}).catch(() => {});
      }, HEARTBEAT_MS);
      this.dispatchEvent(new Event("open"));
    };
    ws.onmessage = (event) => this._received(event.data);
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.heartbeat);
      const why = event.code === 1000 || event.code === 1005 ? "" : ` (code ${event.code})`;
      for (const queue of this.waiting.values()) {
        for (const pending of queue) pending.fail(new Error(`the signaling connection was lost${why}`));
      }
      this.waiting.clear();
      if (!this.stopped) this._lost(`connection to the signaling server lost${why}`);
    };
  }

  _lost(text) {
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt);
    this.attempt += 1;
    this._setState("lost", `${text}; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    this.dispatchEvent(new Event("lost"));
    this.retry = setTimeout(() => this._connect(), delay);
  }

  _received(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.session) this.session = msg.session;
    if (msg.method === "stream.closed") {
      this.dispatchEvent(new CustomEvent("closed-stream", {detail: msg.err_msg || "the stream ended"}));
      return;
    }
    const queue = this.waiting.get(msg.method) || this.waiting.get("ack");
    const pending = queue?.shift();
    if (!pending) return;
    clearTimeout(pending.timer);
    if (msg.err === 0) pending.ok(msg.data || {});
    else pending.fail(new SignalingError(msg.method, msg));
  }

  // Resolves with the reply's data, or rejects with a SignalingError (err != 0) or an Error.
  request(method, stream, data = {}, timeoutMs = 20000) {
    return new Promise((ok, fail) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        fail(new Error(`${method}: not connected to the signaling server`));
        return;
      }
      const queue = this.waiting.get(method) || [];
      this.waiting.set(method, queue);
      const pending = {ok, fail};
      pending.timer = setTimeout(() => {
        const i = queue.indexOf(pending);
        if (i >= 0) queue.splice(i, 1);
        fail(new Error(`${method}: no reply within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      queue.push(pending);
      this.ws.send(JSON.stringify({version: "1.0", method, stream, session: this.session, data}));
    });
  }

  close() {
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retry);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
    this._setState("closed", "closed");
  }
}
