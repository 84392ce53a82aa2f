// The GB28181 playback panel: pick a channel and a time range, search what the device recorded
// (POST /srs-sip/v1/query-record), see the records on a time line and in a list, play one
// (POST /srs-sip/v1/invite, play_type 1: the Play panel then plays the stream it names) or
// download it (play_type 2: into the recording folder), and pause, resume, change the speed of
// or seek the playback last started (POST /srs-sip/v1/pause|resume|speed|seek). Times in the
// inputs are this browser's local time; the API gets UNIX seconds. With sip.enable false the
// panel says so and asks nothing.

import {api, button, el, say} from "./util.js";

const SPEEDS = ["0.25", "0.5", "1", "2", "4", "8"];

function localInput(seconds) {
  const d = new Date(seconds * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function toSeconds(value) {
  const t = new Date(value).getTime();
  return Number.isFinite(t) ? Math.floor(t / 1000) : null;
}

export function historyPanel(ctx, root) {
  if (!ctx.ports.sip) {
    root.append(el("p", {class: "empty", text: "GB28181 is not enabled on this server."}));
    return;
  }
  const status = el("p", {class: "status", role: "status"});
  const channel = el("select", {id: "pb-channel"});
  const now = Math.floor(Date.now() / 1000);
  const from = el("input", {id: "pb-from", type: "datetime-local", step: "1", value: localInput(now - 86400)});
  const to = el("input", {id: "pb-to", type: "datetime-local", step: "1", value: localInput(now)});
  const timeline = el("div", {class: "timeline", role: "img", "aria-label": "Records on a time line"});
  const tbody = el("tbody");
  const speed = el("select", {id: "pb-speed", "aria-label": "Playback speed"},
    ...SPEEDS.map((s) => el("option", {value: s, text: `${s}×`, selected: s === "1"})));
  const seekTo = el("input", {id: "pb-seek", type: "datetime-local", step: "1", "aria-label": "Seek to"});
  const current = el("p", {class: "pb-current", text: "Nothing is playing back."});
  let session = null;  // {device_id, channel_id, url, stream, start, end}
  const controls = [
    button("Pause", () => control("pause"), {disabled: true}),
    button("Resume", () => control("resume"), {disabled: true}),
    button("Set speed", () => control("speed", {speed: Number(speed.value)}), {disabled: true}),
    button("Seek", () => {
      const t = toSeconds(seekTo.value);
      if (t === null) { say(status, "Seek: choose a time"); return; }
      control("seek", {time: t});
    }, {disabled: true}),
    button("Stop playback", () => control("bye"), {disabled: true}),
  ];
  const form = el("form", {class: "grid-form", onsubmit: (e) => { e.preventDefault(); search(); }},
    el("div", {class: "field"}, el("label", {for: "pb-channel", text: "Channel"}), channel),
    el("div", {class: "field"}, el("label", {for: "pb-from", text: "From"}), from),
    el("div", {class: "field"}, el("label", {for: "pb-to", text: "To"}), to),
    el("div", {class: "buttons"}, el("button", {type: "submit", text: "Search records"})));
  root.append(form, status, timeline,
    el("div", {class: "scroll"}, el("table", {class: "records"},
      el("thead", {}, el("tr", {}, ...["Start", "End", "Type", "File", ""]
        .map((h) => el("th", {scope: "col", text: h})))), tbody)),
    current,
    el("div", {class: "row pb-controls"}, ...controls.slice(0, 2), speed, controls[2], seekTo, controls[3],
      controls[4]));

  async function loadChannels() {
    try {
      const doc = await api("/srs-sip/v1/channels");
      const chosen = channel.value;
      channel.replaceChildren(...(doc.data || []).map((c) => el("option", {
        value: `${c.parent_device}/${c.device_id}`, text: c.name ? `${c.name} (${c.device_id})` : c.device_id})));
      if (chosen) channel.value = chosen;
    } catch (e) {
      say(status, `Channels: ${e.message}`);
    }
  }
  channel.addEventListener("focus", loadChannels);
  loadChannels();

  function picked() {
    const [device_id, channel_id] = (channel.value || "").split("/");
    return channel_id ? {device_id, channel_id} : null;
  }

  async function search() {
    const which = picked();
    const start = toSeconds(from.value), end = toSeconds(to.value);
    if (!which) { say(status, "Choose a channel (no device has registered one yet?)"); return; }
    if (start === null || end === null || end <= start) { say(status, "Choose a time range: To after From"); return; }
    say(status, "Asking the device…", "warn");
    try {
      const doc = await api("/srs-sip/v1/query-record", {method: "POST", body: {...which, start_time: start,
                                                                               end_time: end}});
      show(which, doc.data || [], start, end);
      say(status, `${(doc.data || []).length} record(s)`, "ok");
    } catch (e) {
      say(status, `Search: ${e.message}`);
    }
  }

  function show(which, records, start, end) {
    const span = Math.max(1, end - start);
    timeline.replaceChildren(...records.filter((r) => r.valid).map((r) => {
      const left = Math.max(0, (r.start - start) / span) * 100;
      const width = Math.max(0.5, (Math.min(r.end, end) - Math.max(r.start, start)) / span * 100);
      const item = el("button", {type: "button", class: "tl-item", title: `${r.start_time} – ${r.end_time}`,
        "aria-label": `Play record from ${r.start_time}`, onclick: () => play(which, r, 1)});
      item.style.left = `${left}%`;  // CSSOM, not a style attribute (the page's CSP allows no inline style)
      item.style.width = `${width}%`;
      return item;
    }));
    tbody.replaceChildren(...records.map((r) => el("tr", {},
      el("td", {text: r.start_time}), el("td", {text: r.end_time}), el("td", {text: r.type || "–"}),
      el("td", {class: "file", text: r.file_path || "–"}),
      el("td", {class: "actions"},
        button("Play", () => play(which, r, 1), {disabled: !r.valid, "aria-label": `Play ${r.start_time}`}),
        " ",
        button("Download", () => play(which, r, 2), {disabled: !r.valid, "aria-label": `Download ${r.start_time}`})))));
    if (!records.length) tbody.append(el("tr", {}, el("td", {colspan: "5", class: "empty", text: "No record."})));
  }

  async function play(which, record, playType) {
    say(status, playType === 1 ? "Starting the playback…" : "Starting the download…", "warn");
    try {
      const doc = await api("/srs-sip/v1/invite", {method: "POST", body: {...which, play_type: playType,
        start_time: record.start, end_time: record.end}});
      const d = doc.data;
      if (playType === 2) {
        say(status, `Downloading into ${d.file} (see Recording)`, "ok");
        return;
      }
      session = {...which, url: d.url, stream: d.stream, start: record.start, end: record.end};
      seekTo.value = localInput(record.start);
      current.textContent = `Playing back ${d.stream}`;
      controls.forEach((b) => { b.disabled = false; });
      say(status, `Playback ${d.stream} started`, "ok");
      ctx.play(d.stream);
    } catch (e) {
      say(status, `${playType === 1 ? "Playback" : "Download"}: ${e.message}`);
    }
  }

  async function control(action, extra = {}) {
    if (!session) return;
    try {
      await api(`/srs-sip/v1/${action}`, {method: "POST", body: {device_id: session.device_id,
        channel_id: session.channel_id, url: session.url, ...extra}});
      const words = {pause: "Paused", resume: "Resumed", speed: `Speed ${extra.speed}×`, seek: "Seeked",
                     bye: "Stopped"}[action];
      say(status, `${words}: ${session.stream}`, "ok");
      if (action === "bye") {
        current.textContent = "Nothing is playing back.";
        controls.forEach((b) => { b.disabled = true; });
        session = null;
      }
    } catch (e) {
      say(status, `${action}: ${e.message}`);
    }
  }
}
