// The Publish panel: pick a camera and microphone (enumerateDevices), a video codec the browser
// can send (RTCRtpSender.getCapabilities + setCodecPreferences) and a bitrate cap (stream.publish's
// max_bitrate), see the local preview and what is being sent, mute, stop. When the signaling
// connection drops the publish ends on the server; on reconnection it is published again.

import {Signaling} from "./signaling.js";
import {completeOffer, preferCodec, readStats, sendableVideoCodecs, showStats, statsView} from "./rtc.js";
import {button, el, say, withToken} from "./util.js";

const STATS = [["resolution", "Resolution"], ["fps", "Frame rate"], ["bitrate", "Bitrate sent"],
               ["packets", "Packets sent"], ["lost", "Packets lost"], ["rtt", "Round trip"], ["codec", "Codec"]];

export function publishPanel(ctx, root) {
  const name = el("input", {id: "pub-name", value: "cam1", required: true, autocomplete: "off"});
  const camera = el("select", {id: "pub-camera"});
  const mic = el("select", {id: "pub-mic"});
  const codec = el("select", {id: "pub-codec"}, el("option", {value: "", text: "browser's choice"}));
  for (const mime of sendableVideoCodecs()) codec.append(el("option", {value: mime, text: mime.slice(6)}));
  const bitrate = el("input", {id: "pub-bitrate", type: "number", min: "0", step: "100", value: "0",
                               inputMode: "numeric"});
  const start = el("button", {type: "submit", text: "Publish"});
  const stop = button("Stop", () => finish("Stopped"), {disabled: true});
  const muteVideo = button("Mute video", () => mute("video"), {disabled: true});
  const muteAudio = button("Mute audio", () => mute("audio"), {disabled: true});
  const preview = el("video", {autoplay: true, muted: true, playsInline: true, class: "preview"});
  const status = el("p", {class: "status", role: "status"});
  const stats = statsView(STATS);
  const field = (id, label, input) => el("div", {class: "field"}, el("label", {for: id, text: label}), input);
  const form = el("form", {class: "grid-form"},
    field("pub-name", "Stream name", name), field("pub-camera", "Camera", camera),
    field("pub-mic", "Microphone", mic), field("pub-codec", "Video codec", codec),
    field("pub-bitrate", "Max bitrate (kbps, 0 = no cap)", bitrate),
    el("div", {class: "buttons"}, start, stop, muteVideo, muteAudio));
  root.append(form, status, el("div", {class: "publish-view"}, preview, stats.node));

  let media = null, pc = null, signaling = null, last = null, streamName = "";
  let muted = {video: false, audio: false};

  async function listDevices() {
    if (!navigator.mediaDevices?.enumerateDevices) {
      say(status, "This browser cannot capture media here (a camera needs https:// or http://localhost).");
      start.disabled = true;
      return;
    }
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (const [select, kind, word] of [[camera, "videoinput", "Camera"], [mic, "audioinput", "Microphone"]]) {
      const chosen = select.value;
      select.replaceChildren(el("option", {value: "-", text: "none"}));
      devices.filter((d) => d.kind === kind).forEach((d, i) => {
        select.append(el("option", {value: d.deviceId || `#${i}`, text: d.label || `${word} ${i + 1}`}));
      });
      select.value = chosen && [...select.options].some((o) => o.value === chosen) ? chosen
        : (select.options[1]?.value ?? "-");
    }
  }

  function constraint(select) {
    if (select.value === "-") return false;
    return select.value.startsWith("#") ? true : {deviceId: {exact: select.value}};
  }

  async function negotiate() {
    if (pc) pc.close();
    pc = new RTCPeerConnection({iceServers: []});
    last = null;
    for (const track of media.getTracks()) {
      const t = pc.addTransceiver(track, {direction: "sendonly", streams: [media]});
      if (track.kind === "video") preferCodec(t, codec.value);
    }
    pc.onconnectionstatechange = () => {
      if (pc?.connectionState === "connected") say(status, `Publishing ${streamName}`, "ok");
      if (pc?.connectionState === "failed") say(status, "The media connection failed");
    };
    const offer = await completeOffer(pc);
    const kbps = Math.max(0, Math.round(Number(bitrate.value) || 0));
    const data = {sdp: offer, ...(kbps ? {max_bitrate: kbps * 1000} : {})};
    const reply = await signaling.request("stream.publish", streamName, withToken(data));
    await pc.setRemoteDescription({type: "answer", sdp: reply.sdp});
    muted = {video: false, audio: false};
    showMute();
    say(status, `Connecting media for ${streamName}…`, "info");
  }

  async function begin() {
    say(status, "");
    streamName = name.value.trim();
    if (!streamName) { say(status, "Give the stream a name"); return; }
    const video = constraint(camera), audio = constraint(mic);
    if (!video && !audio) { say(status, "Choose a camera or a microphone"); return; }
    start.disabled = true;
    try {
      media = await navigator.mediaDevices.getUserMedia({video, audio});
    } catch (e) {
      start.disabled = false;
      say(status, `Cannot open the camera or microphone: ${e.name}: ${e.message}`);
      return;
    }
    preview.srcObject = media;
    listDevices().catch(() => {});  // labels are known once permission is given
    for (const b of [stop, muteVideo, muteAudio]) b.disabled = false;
    signaling = new Signaling(ctx.wsUrl);
    signaling.addEventListener("state", (e) => {
      if (e.detail.state !== "connected" && media) say(status, `Signaling: ${e.detail.text}`, "warn");
    });
    signaling.addEventListener("lost", () => { if (pc) { pc.close(); pc = null; } });
    signaling.addEventListener("open", () => {
      negotiate().catch((e) => {
        // Refused for want of a (good) token: stop, and say so (a retry would only be refused again).
        if (e.code === 401 || e.code === 403) finish(`Publish refused: ${e.message} (set the stream token under Tokens)`);
        else say(status, `Publish failed: ${e.message}`);
      });
    });
    signaling.start();
  }

  function finish(message) {
    if (signaling) { signaling.close(); signaling = null; }
    if (pc) { pc.close(); pc = null; }
    if (media) { media.getTracks().forEach((t) => t.stop()); media = null; }
    preview.srcObject = null;
    start.disabled = false;
    for (const b of [stop, muteVideo, muteAudio]) b.disabled = true;
    say(status, message, message.startsWith("Publish refused") ? "error" : "info");
  }

  async function mute(kind) {
    try {
      const state = await signaling.request("stream.mute", streamName, {[kind]: !muted[kind]});
      muted = {video: !!state.video, audio: !!state.audio};
      showMute();
    } catch (e) {
      say(status, e.message);
    }
  }

  function showMute() {
    muteVideo.textContent = muted.video ? "Unmute video" : "Mute video";
    muteAudio.textContent = muted.audio ? "Unmute audio" : "Mute audio";
    muteVideo.setAttribute("aria-pressed", String(muted.video));
    muteAudio.setAttribute("aria-pressed", String(muted.audio));
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); begin(); });
  navigator.mediaDevices?.addEventListener?.("devicechange", () => listDevices().catch(() => {}));
  listDevices().catch((e) => say(status, `Cannot list devices: ${e.message}`));
  setInterval(async () => {
    if (!pc || pc.connectionState === "closed") return;
    try {
      last = await readStats(pc, "outbound", last);
      showStats(stats.cells, last);
    } catch (e) {
      say(status, `getStats failed: ${e.message}`);
    }
  }, 1000);
}
