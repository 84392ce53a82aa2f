// The Play panel: players side by side, each on its own signaling connection (so closing one
// ends only its play). Per player: the video, getStats() every second (resolution, frame rate,
// bitrate, packets, lost, jitter, round-trip time), mute buttons that send stream.mute, sound
// on/off locally, close. A player whose connection drops or whose stream ends tries again.

import {Signaling} from "./signaling.js";
import {completeOffer, readStats, receivableVideoCodecs, showStats, statsView} from "./rtc.js";
import {button, el, say, withToken} from "./util.js";

const RETRY_MS = 3000;
const STATS = [["resolution", "Resolution"], ["fps", "Frame rate"], ["bitrate", "Bitrate"],
               ["packets", "Packets received"], ["lost", "Packets lost"], ["jitter", "Jitter"],
               ["rtt", "Round trip"], ["codec", "Codec"]];

class Player {
  constructor(ctx, name, onClose) {
    this.ctx = ctx;
    this.name = name;
    this.pc = null;
    this.closed = false;
    this.retry = null;
    this.last = null;
    this.muted = {video: false, audio: false};
    this.video = el("video", {autoplay: true, muted: true, playsInline: true});
    this.status = el("p", {class: "status", role: "status"});
    this.stats = statsView(STATS);
    this.muteVideo = button("Mute video", () => this.mute("video"));
    this.muteAudio = button("Mute audio", () => this.mute("audio"));
    this.sound = button("Sound on", () => this.toggleSound());
    this.card = el("article", {class: "player", data: {stream: name}},
      el("h3", {text: name}),
      this.video,
      el("div", {class: "buttons"}, this.muteVideo, this.muteAudio, this.sound,
         button("Close", () => { this.close(); onClose(this); })),
      this.status, this.stats.node);
    this.signaling = new Signaling(ctx.wsUrl);
    this.signaling.addEventListener("state", (e) => {
      if (e.detail.state !== "connected" && !this.closed) say(this.status, `Signaling: ${e.detail.text}`, "warn");
    });
    this.signaling.addEventListener("open", () => this.play());
    this.signaling.addEventListener("lost", () => this.teardown());
    this.signaling.addEventListener("closed-stream", (e) => {
      this.teardown();
      this.later(`${e.detail}; waiting for it to come back`);
    });
    this.timer = setInterval(() => this.tick(), 1000);
    this.signaling.start();
  }

  teardown() {
    if (this.pc) { this.pc.close(); this.pc = null; }
    this.last = null;
  }

  later(message) {
    say(this.status, `${message} (trying again in ${RETRY_MS / 1000} s)`, "warn");
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.play(), RETRY_MS);
  }

  async play() {
    if (this.closed || this.signaling.state !== "connected") return;
    this.teardown();
    say(this.status, `Asking for ${this.name}…`, "info");
    const pc = new RTCPeerConnection({iceServers: []});
    this.pc = pc;
    pc.addTransceiver("video", {direction: "recvonly"});
    pc.addTransceiver("audio", {direction: "recvonly"});
    const media = new MediaStream();
    pc.ontrack = (e) => {
      media.addTrack(e.track);
      if (this.video.srcObject !== media) this.video.srcObject = media;
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "connected") say(this.status, "Playing", "ok");
      if (pc.connectionState === "failed") this.later("The media connection failed");
    };
    try {
      const offer = await completeOffer(pc);
      const reply = await this.signaling.request("stream.play", this.name, withToken({sdp: offer}));
      if (pc !== this.pc) return;
      await pc.setRemoteDescription({type: "answer", sdp: reply.sdp});
      say(this.status, "Connecting media…", "info");
      this.muted = {video: false, audio: false};
      this.showMute();
    } catch (e) {
      if (pc !== this.pc || this.closed) return;
      this.teardown();
      // No codec in common (415): asking again would only be refused again; say why, in words.
      if (e.code === 415) say(this.status, `This browser cannot play ${this.name}: it decodes `
        + `${receivableVideoCodecs().join(", ") || "no video codec"} and the stream has none of them (${e.message})`);
      else if (this.signaling.state === "connected") this.later(e.message);
      else say(this.status, e.message, "error");
    }
  }

  async tick() {
    if (!this.pc || this.pc.connectionState === "closed") return;
    try {
      const s = await readStats(this.pc, "inbound", this.last);
      this.last = s;
      showStats(this.stats.cells, s);
    } catch (e) {
      say(this.status, `getStats failed: ${e.message}`);
    }
  }

  async mute(kind) {
    try {
      const state = await this.signaling.request("stream.mute", this.name, {[kind]: !this.muted[kind]});
      this.muted = {video: !!state.video, audio: !!state.audio};
      this.showMute();
    } catch (e) {
      say(this.status, e.message);
    }
  }

  showMute() {
    this.muteVideo.textContent = this.muted.video ? "Unmute video" : "Mute video";
    this.muteAudio.textContent = this.muted.audio ? "Unmute audio" : "Mute audio";
    this.muteVideo.setAttribute("aria-pressed", String(this.muted.video));
    this.muteAudio.setAttribute("aria-pressed", String(this.muted.audio));
  }

  toggleSound() {
    this.video.muted = !this.video.muted;
    this.sound.textContent = this.video.muted ? "Sound on" : "Sound off";
    if (!this.video.muted) this.video.play().catch((e) => say(this.status, `Cannot play sound: ${e.message}`));
  }

  close() {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.retry);
    this.teardown();
    this.signaling.close();
  }
}

export function playPanel(ctx, root) {
  const players = [];
  const list = el("div", {class: "players"});
  const input = el("input", {id: "play-name", name: "stream", required: true, autocomplete: "off",
                             list: "live-streams", placeholder: "stream name"});
  const status = el("p", {class: "status", role: "status"});
  const form = el("form", {class: "row"},
    el("label", {for: "play-name", text: "Stream"}), input, el("button", {type: "submit", text: "Play"}));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = input.value.trim();
    if (name) open(name);
  });
  root.append(form, status, list);

  function open(name) {
    say(status, "");
    const player = new Player(ctx, name, (p) => {
      players.splice(players.indexOf(p), 1);
      p.card.remove();
    });
    players.push(player);
    list.append(player.card);
    player.card.scrollIntoView({block: "nearest"});
    return player;
  }
  window.pmsConsole.players = players;
  return {open};
}
