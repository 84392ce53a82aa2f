// The GB28181 panel: devices (online state, name, manufacturer) and their channels from the
// srs-sip API (/srs-sip/v1/devices, /channels); a channel's Play button plays the stream named
// after its id (the server INVITEs the camera on demand); a PTZ pad (directions, zoom, stop,
// speed) steers the channel chosen last through POST /srs-sip/v1/ptz. With sip.enable false the
// panel says so and asks nothing.

import {api, button, el, every, say, syncRows} from "./util.js";

const REFRESH_MS = 2000;

export function gbPanel(ctx, root) {
  if (!ctx.ports.sip) {
    root.append(el("p", {class: "empty",
      text: "GB28181 is not enabled on this server (set sip.enable: true in the config to accept cameras)."}));
    return;
  }
  const status = el("p", {class: "status", role: "status"});
  const devices = el("div", {class: "devices"});
  const target = el("p", {class: "ptz-target", text: "PTZ: play a channel to steer it."});
  const speed = el("input", {id: "ptz-speed", type: "range", min: "1", max: "255", value: "128"});
  const speedText = el("output", {for: "ptz-speed", text: "128"});
  speed.addEventListener("input", () => { speedText.textContent = speed.value; });
  let chosen = null;
  const pad = el("div", {class: "ptz-pad", role: "group", "aria-label": "PTZ"});
  const buttons = [];
  for (const [label, command, area] of [["▲", "up", "up"], ["◀", "left", "left"], ["■", "stop", "stop"],
                                        ["▶", "right", "right"], ["▼", "down", "down"],
                                        ["Zoom +", "zoomin", "zin"], ["Zoom −", "zoomout", "zout"]]) {
    const b = button(label, () => ptz(command), {disabled: true, "aria-label": `PTZ ${command}`,
                                                 class: `ptz-${area}`, data: {ptz: command}});
    buttons.push(b);
    pad.append(b);
  }
  root.append(status, devices, el("div", {class: "ptz"}, target, pad,
    el("div", {class: "field"}, el("label", {for: "ptz-speed", text: "Speed"}), speed, speedText)));

  async function ptz(command) {
    if (!chosen) return;
    try {
      await api("/srs-sip/v1/ptz", {method: "POST", body: {device_id: chosen.device, channel_id: chosen.channel,
                                                            ptz: command, speed: Number(speed.value)}});
      say(status, `PTZ ${command} sent to ${chosen.channel}`, "ok");
    } catch (e) {
      say(status, `PTZ ${command}: ${e.message}`);
    }
  }

  function choose(device, channel) {
    chosen = {device, channel};
    target.textContent = `PTZ: channel ${channel} of device ${device}`;
    buttons.forEach((b) => { b.disabled = false; });
    ctx.play(channel);
  }

  function buildDevice(d) {
    const tbody = el("tbody");
    const card = el("section", {class: "device"},
      el("h3", {}, el("span", {class: "dev-name"}), " ", el("span", {class: "badge"})),
      el("p", {class: "dev-info"}),
      el("div", {class: "scroll"}, el("table", {},
        el("thead", {}, el("tr", {}, ...["Channel", "Name", "Manufacturer", "State", ""]
          .map((h) => el("th", {scope: "col", text: h})))), tbody)));
    card.tbody = tbody;
    return card;
  }

  function updateDevice(card, d) {
    card.querySelector(".dev-name").textContent = d.name ? `${d.name} (${d.device_id})` : d.device_id;
    const badge = card.querySelector(".badge");
    badge.textContent = d.online ? "online" : "offline";
    badge.dataset.state = d.online ? "online" : "offline";
    card.querySelector(".dev-info").textContent =
      [d.manufacturer, d.model, d.source_addr, d.network_type].filter(Boolean).join(" · ");
    syncRows(card.tbody, d.channels, (c) => c.device_id, (c) => {
      const row = el("tr", {}, el("td", {class: "ch-id"}), el("td", {class: "ch-name"}),
        el("td", {class: "ch-maker"}), el("td", {class: "ch-state"}),
        el("td", {}, button("Play", () => choose(d.device_id, c.device_id), {"aria-label": `Play channel ${c.device_id}`})));
      return row;
    }, (row, c) => {
      row.querySelector(".ch-id").textContent = c.device_id;
      row.querySelector(".ch-name").textContent = c.name || "–";
      row.querySelector(".ch-maker").textContent = c.manufacturer || "–";
      row.querySelector(".ch-state").textContent = (c.online ? "online" : "offline") + (c.playing ? ", playing" : "");
    });
  }

  async function refresh() {
    try {
      const [devs, chans] = await Promise.all([api("/srs-sip/v1/devices"), api("/srs-sip/v1/channels")]);
      const list = (devs.data || []).map((d) => ({...d,
        channels: (chans.data || []).filter((c) => c.parent_device === d.device_id)}));
      if (!list.length) devices.replaceChildren(el("p", {class: "empty", text: "No device has registered yet."}));
      else {
        if (devices.querySelector(".empty")) devices.replaceChildren();
        syncRows(devices, list, (d) => d.device_id, buildDevice, updateDevice);
      }
      if (status.dataset.kind === "error" && status.textContent.startsWith("Devices:")) say(status, "");
    } catch (e) {
      say(status, `Devices: ${e.message}`);
    }
  }
  every(REFRESH_MS, refresh);
}
