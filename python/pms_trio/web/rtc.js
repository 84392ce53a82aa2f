// WebRTC helpers: a complete offer (the server takes no trickle ICE, so gathering finishes first),
// codec preferences, and the numbers a person wants from getStats().

export async function completeOffer(pc, timeoutMs = 5000) {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((ok) => {
      const timer = setTimeout(ok, timeoutMs);  // use what was gathered so far
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") { clearTimeout(timer); ok(); }
      });
    });
  }
  return pc.localDescription.sdp;
}

const VIDEO_CODECS = ["video/VP8", "video/H264", "video/VP9", "video/AV1"];

// The video codecs this browser can send, among those the console offers.
export function sendableVideoCodecs() {
  const caps = window.RTCRtpSender?.getCapabilities?.("video");
  const have = new Set((caps?.codecs || []).map((c) => c.mimeType.toLowerCase()));
  return VIDEO_CODECS.filter((mime) => have.has(mime.toLowerCase()));
}

// The video codecs this browser can decode (for a player's words when the server finds none in common).
export function receivableVideoCodecs() {
  const caps = window.RTCRtpReceiver?.getCapabilities?.("video");
  const names = (caps?.codecs || []).map((c) => c.mimeType.slice(6))
    .filter((n) => !/^(rtx|red|ulpfec|flexfec-03)$/i.test(n));
  return [...new Set(names)];
}

// Puts `mime` first (keeping RTX, RED and FEC after it) in the transceiver's preferences.
export function preferCodec(transceiver, mime) {
  if (!mime || !transceiver.setCodecPreferences) return;
  const caps = RTCRtpSender.getCapabilities("video").codecs;
  const wanted = caps.filter((c) => c.mimeType.toLowerCase() === mime.toLowerCase());
  const helpers = caps.filter((c) => /\/(rtx|red|ulpfec|flexfec-03)$/i.test(c.mimeType));
  if (wanted.length) transceiver.setCodecPreferences([...wanted, ...helpers]);
}

// One reading of getStats(): `direction` "inbound" (a player) or "outbound" (a publisher).
// `previous` is the last reading, for rates. Bitrate is of every RTP stream (video and audio).
export async function readStats(pc, direction, previous) {
  const report = await pc.getStats();
  const out = {time: performance.now(), bytes: 0, packets: 0, packetsLost: 0, width: 0, height: 0,
               fps: null, jitterMs: null, rttMs: null, codec: "", frames: 0, bitrateKbps: null};
  let video = null;
  report.forEach((s) => {
    if (s.type !== `${direction}-rtp`) return;
    out.bytes += (direction === "inbound" ? s.bytesReceived : s.bytesSent) || 0;
    out.packets += (direction === "inbound" ? s.packetsReceived : s.packetsSent) || 0;
    out.packetsLost += s.packetsLost || 0;
    if (s.kind === "video" && (!video || (s.bytesReceived || s.bytesSent || 0) > (video.bytesReceived || video.bytesSent || 0))) {
      video = s;
    }
  });
  if (video) {
    out.width = video.frameWidth || 0;
    out.height = video.frameHeight || 0;
    out.frames = (direction === "inbound" ? video.framesDecoded : video.framesEncoded) || 0;
    out.fps = video.framesPerSecond ?? null;
    if (typeof video.jitter === "number") out.jitterMs = video.jitter * 1000;
    out.codec = report.get(video.codecId)?.mimeType || "";
  }
  report.forEach((s) => {
    if (s.type === "remote-inbound-rtp" && s.kind === "video" && typeof s.packetsLost === "number") {
      out.packetsLost = Math.max(out.packetsLost, s.packetsLost);  // what the server says it lost of ours
    }
    if (s.type === "transport" && s.selectedCandidatePairId) {
      const pair = report.get(s.selectedCandidatePairId);
      if (pair && typeof pair.currentRoundTripTime === "number") out.rttMs = pair.currentRoundTripTime * 1000;
    }
  });
  if (out.rttMs === null) {
    report.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && typeof s.currentRoundTripTime === "number") {
        out.rttMs = s.currentRoundTripTime * 1000;
      }
    });
  }
  if (previous && out.time > previous.time && out.bytes >= previous.bytes) {
    out.bitrateKbps = ((out.bytes - previous.bytes) * 8) / (out.time - previous.time);
    if (out.fps === null && out.frames >= previous.frames) {
      out.fps = ((out.frames - previous.frames) * 1000) / (out.time - previous.time);
    }
  }
  return out;
}

// A small table of stats, one <dd data-stat=NAME> per number (tests read them as text).
export function statsView(names) {
  const dl = document.createElement("dl");
  dl.className = "stats";
  const cells = {};
  for (const [key, label] of names) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.dataset.stat = key;
    dd.textContent = "–";
    dl.append(dt, dd);
    cells[key] = dd;
  }
  return {node: dl, cells};
}

export function showStats(cells, s) {
  const set = (key, text) => { if (cells[key]) cells[key].textContent = text; };
  set("resolution", s.width ? `${s.width}×${s.height}` : "–");
  set("fps", s.fps === null ? "–" : s.fps.toFixed(1));
  set("bitrate", s.bitrateKbps === null ? "–" : `${Math.round(s.bitrateKbps)} kbps`);
  set("packets", String(s.packets));
  set("lost", String(s.packetsLost));
  set("jitter", s.jitterMs === null ? "–" : `${s.jitterMs.toFixed(1)} ms`);
  set("rtt", s.rttMs === null ? "–" : `${s.rttMs.toFixed(1)} ms`);
  set("codec", s.codec || "–");
}
