// The Server panel: version, uptime and bound ports (GET /api/v1/server) and the sessions
// (GET /api/v1/sessions), refreshed every 2 s.

import {api, el, every, say, seconds, syncRows} from "./util.js";

const REFRESH_MS = 2000;

export function serverPanel(ctx, root) {
  const status = el("p", {class: "status", role: "status"});
  const facts = el("dl", {class: "facts"});
  const tbody = el("tbody");
  const count = el("p", {class: "count"});
  root.append(status, facts, el("h3", {text: "Sessions"}), count, el("div", {class: "scroll"}, el("table", {},
    el("thead", {}, el("tr", {}, ...["Kind", "Id", "Peer", "Publishing", "Playing", "Age"]
      .map((h) => el("th", {scope: "col", text: h})))), tbody)));

  function fact(label, value) {
    return [el("dt", {text: label}), el("dd", {text: value})];
  }

  function portText(value) {
    if (Array.isArray(value)) return value.length > 2 ? `${value[0]}–${value[value.length - 1]}` : value.join(", ");
    return String(value);
  }

  async function refresh() {
    try {
      const [server, sessions] = await Promise.all([api("/api/v1/server"), api("/api/v1/sessions")]);
      ctx.ports = server.ports || ctx.ports;
      facts.replaceChildren(...fact("Version", server.version), ...fact("Uptime", seconds(server.uptime)),
        ...Object.entries(server.ports || {}).flatMap(([k, v]) => fact(`Port ${k}`, portText(v))));
      const list = sessions.sessions || [];
      count.textContent = `${list.length} session${list.length === 1 ? "" : "s"}`;
      syncRows(tbody, list, (s) => `${s.kind}:${s.id}`, () => el("tr", {}, ...Array.from({length: 6}, () => el("td"))),
        (row, s) => {
          const cells = row.children;
          cells[0].textContent = s.kind;
          cells[1].textContent = s.id;
          cells[2].textContent = s.peer || "–";
          cells[3].textContent = (s.publishing || (s.role === "publish" ? [s.stream] : [])).join(", ") || "–";
          cells[4].textContent = (s.playing || (s.role === "play" ? [s.stream] : [])).join(", ") || "–";
          cells[5].textContent = seconds(s.age || 0);
        });
      if (status.dataset.kind === "error") say(status, "");
    } catch (e) {
      say(status, e.message);
    }
  }
  every(REFRESH_MS, refresh);
}
