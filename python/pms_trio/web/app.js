// The web console's entry point: reads /api/v1/server (ports, the signaling path), works out the
// WebSocket URL (or takes ?ws=URL), keeps one signaling connection of its own open with
// heartbeats to show in the header whether the server is reachable, and builds the panels.

import {Signaling} from "./signaling.js";
import {gbPanel} from "./gb.js";
import {historyPanel} from "./history.js";
import {playPanel} from "./play.js";
import {publishPanel} from "./publish.js";
import {recordPanel} from "./record.js";
import {serverPanel} from "./server.js";
import {streamsPanel} from "./streams.js";
import {api, el, say, setToken, tokens} from "./util.js";

window.pmsConsole = {players: [], ready: false};

function signalingUrl(server) {
  const given = new URLSearchParams(location.search).get("ws");
  if (given) return given;
  const ws = server.websocket || {};
  const scheme = ws.ssl ? "wss" : "ws";
  const host = location.hostname.includes(":") ? `[${location.hostname}]` : location.hostname;
  return `${scheme}://${host}:${server.ports.websocket}${ws.path || "/"}`;
}

async function serverInfo(banner) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await api("/api/v1/server");
    } catch (e) {
      const delay = Math.min(10, 2 ** attempt);
      say(banner, `${e.message}; trying again in ${delay} s`);
      await new Promise((ok) => setTimeout(ok, delay * 1000));
    }
  }
}

function tokenFields() {
  for (const [id, kind] of [["api-token", "api"], ["stream-token", "stream"]]) {
    const input = document.getElementById(id);
    input.value = tokens[kind];
    input.addEventListener("change", () => setToken(kind, input.value));
  }
}

async function main() {
  tokenFields();
  const banner = document.getElementById("banner");
  const conn = document.getElementById("conn");
  const server = await serverInfo(banner);
  say(banner, "");
  document.getElementById("version").textContent = `v${server.version}`;
  const ctx = {ports: server.ports, wsUrl: signalingUrl(server), play: null};

  // The header's connection: heartbeats only; its state is the server's reachability.
  const lobby = new Signaling(ctx.wsUrl);
  lobby.addEventListener("state", (e) => {
    conn.textContent = e.detail.state === "connected" ? "Signaling: connected" : `Signaling: ${e.detail.text}`;
    conn.dataset.state = e.detail.state;
  });
  lobby.addEventListener("open", () => {
    if (conn.dataset.lost === "yes") say(banner, "Reconnected to the server.", "ok");
    conn.dataset.lost = "";
  });
  lobby.addEventListener("lost", () => {
    conn.dataset.lost = "yes";
    say(banner, "Lost the connection to the server; reconnecting…", "warn");
  });
  lobby.start();

  const section = (id) => document.querySelector(`#${id} .body`);
  const player = playPanel(ctx, section("play"));
  ctx.play = (name) => {
    document.getElementById("play").scrollIntoView({block: "start", behavior: "smooth"});
    return player.open(name);
  };
  publishPanel(ctx, section("publish"));
  streamsPanel(ctx, section("streams"));
  gbPanel(ctx, section("gb28181"));
  historyPanel(ctx, section("playback"));
  recordPanel(ctx, section("recording"));
  serverPanel(ctx, section("server"));
  window.pmsConsole.ready = true;
}

main().catch((e) => {
  const banner = document.getElementById("banner");
  banner.append(el("span", {text: `The console failed to start: ${e.message}`}));
  banner.dataset.kind = "error";
});
