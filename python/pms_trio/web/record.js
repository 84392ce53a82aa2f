// The Recording panel: the files under recordPath (GET /api/v1/records every 2 s: name, stream,
// size, start, duration, state) and a <video> that plays one from /records/NAME (Range requests,
// so it seeks). Recordings are started and stopped from the Streams panel.

import {api, button, bytes, el, every, say, seconds, syncRows} from "./util.js";

const REFRESH_MS = 2000;

export function recordPanel(ctx, root) {
  const status = el("p", {class: "status", role: "status"});
  const empty = el("p", {class: "empty", text: "No recordings yet. Start one from the Streams panel."});
  const tbody = el("tbody");
  const table = el("table", {},
    el("thead", {}, el("tr", {}, ...["File", "Stream", "Size", "Started", "Duration", "State", ""]
      .map((h) => el("th", {scope: "col", text: h})))), tbody);
  const title = el("p", {class: "now-playing"});
  const video = el("video", {controls: true, playsInline: true, class: "recording", hidden: true});
  video.addEventListener("error", () => {
    say(status, `Cannot play ${title.textContent}: ${video.error?.message || `media error ${video.error?.code}`}` +
                " (a browser plays .webm and .mp4; download .mkv instead)");
  });
  root.append(status, empty, el("div", {class: "scroll"}, table), title, video);

  function play(name) {
    say(status, "");
    title.textContent = name;
    video.hidden = false;
    video.src = `/records/${encodeURIComponent(name)}`;
    video.play().catch(() => {});
  }

  function build(r) {
    const link = el("a", {href: `/records/${encodeURIComponent(r.name)}`, download: r.name, text: "Download"});
    return el("tr", {}, el("td", {class: "file"}), el("td", {class: "stream"}), el("td", {class: "size"}),
      el("td", {class: "start"}), el("td", {class: "duration"}), el("td", {class: "state"}),
      el("td", {class: "actions"}, button("Play", () => play(r.name), {"aria-label": `Play recording ${r.name}`}),
         " ", link));
  }

  function update(row, r) {
    row.querySelector(".file").textContent = r.name;
    row.querySelector(".stream").textContent = r.stream || "–";
    row.querySelector(".size").textContent = bytes(r.size || 0);
    row.querySelector(".start").textContent = r.start ? new Date(r.start * 1000).toLocaleString() : "–";
    row.querySelector(".duration").textContent = typeof r.duration === "number" ? seconds(r.duration) : "–";
    row.querySelector(".state").textContent = r.state || "–";
  }

  async function refresh() {
    try {
      const doc = await api("/api/v1/records");
      const records = doc.records || [];
      syncRows(tbody, records, (r) => r.name, build, update);
      empty.hidden = records.length > 0;
      table.hidden = records.length === 0;
      if (status.dataset.kind === "error" && status.textContent.startsWith("Recordings:")) say(status, "");
    } catch (e) {
      if (e.status === 503) {
        say(status, "Recording is not running on this server.", "info");
        return false;
      }
      say(status, `Recordings: ${e.message}`);
    }
    return true;
  }
  every(REFRESH_MS, refresh);
}
