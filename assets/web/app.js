// vaak's web client: one button starts a WebRTC call (WHIP: POST the offer to /whip, DELETE
// the Location to hang up); the call's data channel brings captions, the language and each
// turn's timings. The page measures its own latency: end of the user's speech (the mic tap)
// to the first reply sample it receives (the reply tap). No build step, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const talk = $("talk");
const statusLine = $("status");
const captions = $("captions");

// State the tests (and a curious user's console) can read: window.vaak.
const vaak = {
  state: "idle",
  events: [],
  latencies: [],
  turns: [],
  error: null,
  pc: null,
  dc: null,
  location: null,
  ctx: null,
  replyTap: null,
  replyPcm: [],
  lastVoice: -1,
  awaitingReply: false,
  onsets: [],
  soundEnds: [],
  interruptedAt: [],
  // Tests and demos: a WAV (base64) to use as the microphone, spoken on `vaak.speakFile()`.
  fileMic: null,
  mic: null,
  sessionId: null,
  reconnects: 0,
  pcStates: [],
};
// A call whose connection fails is re-offered this many times, continuing its session.
const MAX_RECONNECTS = 2;
window.vaak = vaak;

function setStatus(text) {
  statusLine.textContent = text;
}

function keyHeaders() {
  const key = localStorage.getItem("vaak-key") || $("key").value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}

$("key").addEventListener("change", () => localStorage.setItem("vaak-key", $("key").value.trim()));

// ---- captions ------------------------------------------------------------------------------

const partials = new Map();

function caption(who, text, opts = {}) {
  let li = opts.turn !== undefined ? partials.get(who + opts.turn) : null;
  if (!li) {
    li = document.createElement("li");
    li.className = who;
    const w = document.createElement("span");
    w.className = "who";
    li.append(w, document.createElement("span"));
    captions.append(li);
    if (opts.turn !== undefined) partials.set(who + opts.turn, li);
  }
  li.children[0].textContent = who === "you" ? `you${opts.lang ? " (" + opts.lang + ")" : ""}` : "vaak";
  li.children[1].textContent = text;
  if (opts.lang) li.lang = opts.lang;
  li.classList.toggle("partial", !!opts.partial);
  li.scrollIntoView({ block: "end" });
}

function onEvent(ev) {
  vaak.events.push(ev);
  switch (ev.type) {
    case "session_started":
      vaak.sessionId = ev.session_id;
      setStatus(ev.resumed ? "Reconnected. Go on." : "Connected. Speak now.");
      break;
    case "speech_started":
      setStatus("Listening…");
      break;
    case "speech_stopped":
      vaak.awaitingReply = true;
      setStatus("Thinking…");
      break;
    case "transcript":
      caption("you", ev.text, { turn: ev.turn, lang: ev.language, partial: !ev.is_final });
      break;
    case "language_decision":
      $("language").textContent = ev.language + (ev.mixed_with_english ? " + English" : "");
      break;
    case "reply_text": {
      const key = "vaak" + ev.turn;
      const li = partials.get(key);
      const before = li ? li.children[1].textContent + " " : "";
      caption("vaak", before + ev.text, { turn: ev.turn });
      break;
    }
    case "turn_completed": {
      const t = { turn: ev.turn, server_ms: ev.timings.end_to_first_audio_ms, language: ev.language };
      vaak.turns.push(t);
      showLatency();
      setStatus("Your turn.");
      break;
    }
    case "interrupted":
      if (vaak.ctx) vaak.interruptedAt.push(vaak.ctx.currentTime);
      setStatus("Go on, I'm listening.");
      break;
    case "error":
      if (ev.code !== "no_speech") setStatus("Problem: " + ev.message);
      break;
  }
}

function showLatency() {
  const page = vaak.latencies[vaak.latencies.length - 1];
  const server = vaak.turns[vaak.turns.length - 1];
  const parts = [];
  if (page !== undefined) parts.push(`${Math.round(page)} ms to your ears`);
  if (server && server.server_ms) parts.push(`${Math.round(server.server_ms)} ms in vaak`);
  $("latency").textContent = parts.join(" · ") || "–";
}

// ---- audio taps ----------------------------------------------------------------------------

async function tap(ctx, stream, role, onMessage) {
  const src = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, "vaak-tap", { processorOptions: { role } });
  node.port.onmessage = (e) => onMessage(e.data);
  // A sink that plays nothing keeps the worklet pulled.
  const mute = ctx.createGain();
  mute.gain.value = 0;
  src.connect(node).connect(mute).connect(ctx.destination);
  return node;
}

function onMic(m) {
  if (m.voice !== undefined) vaak.lastVoice = m.voice;
}

function onReply(m) {
  if (m.pcm) {
    vaak.replyPcm.push(m.pcm);
    return;
  }
  if (m.soundEnd !== undefined) vaak.soundEnds.push(m.soundEnd);
  if (m.onset !== undefined) vaak.onsets.push(m.onset);
  if (m.onset !== undefined && vaak.awaitingReply && vaak.lastVoice >= 0) {
    vaak.awaitingReply = false;
    vaak.latencies.push((m.onset - vaak.lastVoice) * 1000);
    showLatency();
  }
}

// ---- the call ------------------------------------------------------------------------------

function waitForIce(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ms);
  });
}

async function iceServers() {
  try {
    const r = await fetch("/webrtc/ice-servers", { headers: keyHeaders() });
    if (r.ok) return await r.json();
  } catch (_) {
    /* offline kiosk: host candidates only */
  }
  return [];
}

// A WAV as the microphone: silence until `vaak.speakFile()` plays it (tests drive barge-in so).
async function fileMicrophone(ctx, base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const buffer = await ctx.decodeAudioData(bytes.buffer);
  const dest = ctx.createMediaStreamDestination();
  dest.channelCount = 1;
  vaak.speakFile = () => {
    const src = ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(dest);
    src.start();
  };
  return dest.stream;
}

async function start() {
  vaak.state = "connecting";
  vaak.error = null;
  talk.disabled = true;
  setStatus("Starting the microphone…");
  try {
    let ctx;
    try {
      ctx = new AudioContext({ sampleRate: 48000 });
    } catch (_) {
      ctx = new AudioContext(); // a browser that only runs at the device's own rate
    }
    vaak.ctx = ctx;
    await ctx.audioWorklet.addModule("/capture-worklet.js");
    const mic = vaak.fileMic
      ? await fileMicrophone(ctx, vaak.fileMic)
      : await navigator.mediaDevices.getUserMedia({
          audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
        });
    vaak.mic = mic;
    await tap(ctx, mic, "mic", onMic);

    const pc = new RTCPeerConnection({ iceServers: await iceServers() });
    vaak.pc = pc;
    for (const track of mic.getAudioTracks()) pc.addTransceiver(track, { direction: "sendrecv" });
    const dc = pc.createDataChannel("vaak");
    vaak.dc = dc;
    dc.onmessage = (e) => {
      try {
        onEvent(JSON.parse(e.data));
      } catch (err) {
        console.warn("bad event", err);
      }
    };
    pc.ontrack = async (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      // Chromium feeds a remote stream to WebAudio only while a media element plays it.
      $("reply").srcObject = stream;
      vaak.replyTap = await tap(ctx, stream, "reply", onReply);
      if (vaak.recording) vaak.replyTap.port.postMessage({ record: true });
    };
    pc.onconnectionstatechange = async () => {
      vaak.pcStates.push([Math.round(performance.now()), pc.connectionState, pc.iceConnectionState]);
      if (pc.connectionState !== "failed" || vaak.pc !== pc) return;
      if (vaak.reconnects < MAX_RECONNECTS) {
        // A lossy or changing network: offer again and continue the same conversation.
        vaak.reconnects++;
        const session = vaak.sessionId;
        await stop("Reconnecting…");
        vaak.resumeSession = session;
        start();
      } else {
        stop("The connection failed. Press Talk to try again.");
      }
    };

    setStatus("Connecting…");
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc, 2000);
    const lang = $("lang").value;
    const params = new URLSearchParams();
    if (lang) params.set("preferred_language", lang);
    if (vaak.resumeSession) params.set("session_id", vaak.resumeSession);
    vaak.resumeSession = null;
    const url = "/whip" + (params.toString() ? "?" + params : "");
    const resp = await fetch(url, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/sdp" }, keyHeaders()),
      body: pc.localDescription.sdp,
    });
    const body = await resp.text();
    if (resp.status === 401) $("keyrow").hidden = false;
    if (resp.status !== 201) throw new Error(body.trim() || "HTTP " + resp.status);
    vaak.location = resp.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: body });
    vaak.state = "connected";
    talk.setAttribute("aria-pressed", "true");
    talk.textContent = "Hang up";
    $("text").disabled = false;
    $("send").disabled = false;
  } catch (err) {
    vaak.error = String(err.message || err);
    await stop("Could not start: " + vaak.error);
  } finally {
    talk.disabled = false;
  }
}

async function stop(message) {
  const { pc, location } = vaak;
  vaak.pc = null;
  vaak.location = null;
  vaak.state = "idle";
  if (vaak.dc && vaak.dc.readyState === "open") {
    try {
      vaak.dc.send(JSON.stringify({ type: "hangup" }));
    } catch (_) {
      /* closing anyway */
    }
  }
  if (location) {
    try {
      await fetch(location, { method: "DELETE", headers: keyHeaders() });
    } catch (_) {
      /* the server ends the call when the connection closes */
    }
  }
  if (pc) pc.close();
  // Release the microphone with the call.
  if (vaak.mic) vaak.mic.getTracks().forEach((t) => t.stop());
  vaak.mic = null;
  if (vaak.ctx) vaak.ctx.close();
  vaak.ctx = null;
  vaak.replyTap = null;
  talk.setAttribute("aria-pressed", "false");
  talk.textContent = "Talk";
  $("text").disabled = true;
  $("send").disabled = true;
  setStatus(message || "Call ended. Press Talk to start again.");
}

talk.addEventListener("click", () => {
  vaak.reconnects = 0;
  return vaak.pc ? stop() : start();
});

$("typed").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || !vaak.dc || vaak.dc.readyState !== "open") return;
  vaak.dc.send(JSON.stringify({ type: "text", text }));
  caption("you", text);
  $("text").value = "";
});

window.addEventListener("pagehide", () => {
  if (vaak.pc) stop();
});

// ---- for tests and measurements ------------------------------------------------------------

vaak.start = start;
vaak.stop = stop;
vaak.record = (on) => {
  vaak.recording = on;
  if (vaak.replyTap) vaak.replyTap.port.postMessage({ record: on });
};
// The reply audio received so far as a 16-bit mono WAV at the page's rate, base64.
vaak.replyWav = () => {
  const rate = vaak.ctx ? vaak.ctx.sampleRate : 48000;
  const n = vaak.replyPcm.reduce((a, p) => a + p.length, 0);
  const buf = new DataView(new ArrayBuffer(44 + n * 2));
  const str = (o, s) => [...s].forEach((c, i) => buf.setUint8(o + i, c.charCodeAt(0)));
  str(0, "RIFF");
  buf.setUint32(4, 36 + n * 2, true);
  str(8, "WAVEfmt ");
  buf.setUint32(16, 16, true);
  buf.setUint16(20, 1, true);
  buf.setUint16(22, 1, true);
  buf.setUint32(24, rate, true);
  buf.setUint32(28, rate * 2, true);
  buf.setUint16(32, 2, true);
  buf.setUint16(34, 16, true);
  str(36, "data");
  buf.setUint32(40, n * 2, true);
  let o = 44;
  for (const p of vaak.replyPcm) {
    for (const s of p) {
      buf.setInt16(o, Math.max(-32768, Math.min(32767, Math.round(s * 32767))), true);
      o += 2;
    }
  }
  const bytes = new Uint8Array(buf.buffer);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
};
// Packets both ways, from the browser's own statistics.
vaak.stats = async () => {
  if (!vaak.pc) return null;
  const out = { packetsSent: 0, packetsReceived: 0, packetsLost: 0, concealedSamples: 0, fecPacketsReceived: 0 };
  (await vaak.pc.getStats()).forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "audio") out.packetsSent += r.packetsSent || 0;
    if (r.type === "inbound-rtp" && r.kind === "audio") {
      out.packetsReceived += r.packetsReceived || 0;
      out.packetsLost += r.packetsLost || 0;
      out.concealedSamples += r.concealedSamples || 0;
      out.fecPacketsReceived += r.fecPacketsReceived || 0;
    }
  });
  return out;
};
