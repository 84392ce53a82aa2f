// The Streams panel: GET /api/v1/streams every second (name, source, codecs, players, recording),
// the RTSP URL of each with a copy button, and buttons to play it here and to start or stop
// recording it (POST /api/v1/record/start|stop).

import {api, button, el, every, say, syncRows} from "./util.js";

const REFRESH_MS = 1000;

// The recording's extension for a stream's codecs (SPEC section 5): WebM for VP8/VP9/AV1,
// fragmented MP4 for H.264/H.265 with Opus, AAC or no audio (browsers play both), else Matroska.
export function recordExtension(codecs) {
  const lower = codecs.map((c) => c.toLowerCase());
  const video = lower.find((c) => c.startsWith("video/")) || "";
  const audio = lower.filter((c) => c.startsWith("audio/"));
  if (/vp8|vp9|av1/.test(video) && audio.every((c) => c === "audio/opus")) return "webm";
  if (/h264|h265|hevc/.test(video) && audio.every((c) => /opus|aac|mpeg4/.test(c))) return "mp4";
  return "mkv";
}

function stamp() {
  const d = new Date(), p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

async function copy(text, note) {
  try {
    if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
    else {
      const area = el("textarea", {value: text, readOnly: true});
      document.body.append(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      if (!ok) throw new Error("the browser refused");
    }
    say(note, "Copied", "ok");
  } catch (e) {
    say(note, `Copy failed (${e.message}): select the URL and copy it by hand`);
  }
  setTimeout(() => say(note, ""), 3000);
}

export function streamsPanel(ctx, root) {
  const status = el("p", {class: "status", role: "status"});
  const empty = el("p", {class: "empty", text: "No live streams."});
  const tbody = el("tbody");
  const table = el("table", {},
    el("thead", {}, el("tr", {}, ...["Stream", "Source", "Codecs", "Players", "Recording", "RTSP URL", ""]
      .map((h) => el("th", {scope: "col", text: h})))),
    tbody);
  const datalist = el("datalist", {id: "live-streams"});
  root.append(status, empty, el("div", {class: "scroll"}, table), datalist);

  function build(s) {
    const url = el("code", {class: "url"});
    const note = el("span", {class: "note", role: "status"});
    const rec = button("Record", () => record(row, s.name));
    const row = el("tr", {},
      el("td", {class: "name"}), el("td", {class: "source"}), el("td", {class: "codecs"}),
      el("td", {class: "viewers"}), el("td", {class: "recording"}),
      el("td", {}, url, " ", button("Copy", () => copy(url.textContent, note), {"aria-label": `Copy the RTSP URL of ${s.name}`}), note),
      el("td", {class: "actions"}, button("Play", () => ctx.play(s.name), {"aria-label": `Play ${s.name}`}), rec));
    row.parts = {url, rec};
    return row;
  }

  function update(row, s) {
    row.querySelector(".name").textContent = s.name;
    row.querySelector(".source").textContent = s.source + (s.live ? "" : " (starting)");
    row.querySelector(".codecs").textContent = (s.codecs || []).join(", ") || "–";
    row.querySelector(".viewers").textContent = String(s.players);
    row.querySelector(".recording").textContent = s.recording ? "recording" : "no";
    row.parts.url.textContent = `rtsp://${location.hostname}:${ctx.ports.rtsp}/${encodeURIComponent(s.name)}`;
    row.parts.rec.textContent = s.recording ? "Stop recording" : "Record";
    row.parts.rec.setAttribute("aria-label", `${s.recording ? "Stop recording" : "Record"} ${s.name}`);
    row.stream = s;
  }

  async function record(row, name) {
    const s = row.stream;
    try {
      if (s.recording) {
        await api("/api/v1/record/stop", {method: "POST", body: {stream: name, data: {}}});
        say(status, `Recording of ${name} stopped`, "ok");
      } else {
        const base = name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64) || "stream";
        const fileName = `${base}-${stamp()}.${recordExtension(s.codecs || [])}`;
        await api("/api/v1/record/start", {method: "POST", body: {stream: name, data: {fileName}}});
        say(status, `Recording ${name} to ${fileName}`, "ok");
      }
    } catch (e) {
      say(status, e.message);
    }
    refresh();
  }

  async function refresh() {
    try {
      const doc = await api("/api/v1/streams");
      const streams = doc.streams || [];
      syncRows(tbody, streams, (s) => s.name, build, update);
      datalist.replaceChildren(...streams.map((s) => el("option", {value: s.name})));
      empty.hidden = streams.length > 0;
      table.hidden = streams.length === 0;
      if (status.dataset.kind === "error" && status.textContent.startsWith("Stream list:")) say(status, "");
    } catch (e) {
      say(status, `Stream list: ${e.message}`);
    }
  }
  every(REFRESH_MS, refresh);
}
