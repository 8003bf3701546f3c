// A browser calls vaak: Debian's chromium, driven by playwright-core, opens vaak's page with a
// fake microphone playing a WAV, presses Talk and waits for the replies. Prints one JSON
// object: what the page showed (captions, language, latency), its events, getStats() packet
// counts both ways, and the reply audio it captured (written to --out-wav).
//
//   node call.cjs --url http://127.0.0.1:PORT/ --wav /abs/in.wav [--key KEY] [--lang hi]
//                 [--turns 1] [--timeout-s 150] [--out-wav reply.wav] [--metrics]
//   node call.cjs --url … --probe-signalling --key KEY [--max-calls N]
//   node call.cjs --url … --barge-in --wav /abs/speech.wav [--key KEY]
//     (a typed question; once its reply plays, the WAV is spoken over it through a WebAudio
//     microphone; reports how long reply sound went on after the interruption reached the page)
//
// Every wait is bounded; a failure is reported in the JSON ("error"), never by hanging.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

function args() {
  const a = { turns: 1, timeoutS: 150, lang: "", key: "" };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i];
    const next = () => v[++i];
    if (k === "--url") a.url = next();
    else if (k === "--wav") a.wav = next();
    else if (k === "--key") a.key = next();
    else if (k === "--lang") a.lang = next();
    else if (k === "--turns") a.turns = Number(next());
    else if (k === "--timeout-s") a.timeoutS = Number(next());
    else if (k === "--out-wav") a.outWav = next();
    else if (k === "--metrics") a.metrics = true;
    else if (k === "--probe-signalling") a.probe = true;
    else if (k === "--max-calls") a.maxCalls = Number(next());
    else if (k === "--barge-in") a.bargeIn = true;
    else throw new Error("unknown argument " + k);
  }
  return a;
}

async function launch(wav) {
  const flags = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
  ];
  if (wav) flags.push(`--use-file-for-fake-audio-capture=${wav}%noloop`);
  return chromium.launch({
    executablePath: process.env.VAAK_CHROMIUM || "/usr/bin/chromium",
    args: flags,
    headless: true,
    timeout: 60000,
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(page, fn, arg, ms) {
  await page.waitForFunction(fn, arg, { timeout: ms, polling: 100 });
}

// Presses Talk and waits until the page has its answer (or says why not).
async function connect(page) {
  await page.click("#talk");
  await until(page, () => window.vaak.state === "connected" || window.vaak.error, null, 30000);
  const err = await page.evaluate(() => window.vaak.error);
  if (err) throw new Error("the page could not connect: " + err);
}

// Hangs up from the page: the data channel's hangup and the WHIP DELETE.
async function hangUp(page) {
  await page.click("#talk");
  await until(page, () => window.vaak.state === "idle", null, 10000);
}

async function call(a) {
  const out = { ok: false };
  const browser = await launch(a.wav);
  try {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const consoleErrors = [];
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    out.console_errors = consoleErrors;
    await page.goto(a.url, { timeout: 20000 });
    if (a.key) await page.evaluate((k) => localStorage.setItem("vaak-key", k), a.key);
    if (a.lang) await page.selectOption("#lang", a.lang);
    const started = Date.now();
    await connect(page);
    out.connect_ms = Date.now() - started;
    await until(page, () => window.vaak.replyTap !== null, null, 20000);
    await page.evaluate(() => window.vaak.record(true));
    const deadline = a.timeoutS * 1000 - (Date.now() - started) - 15000;
    try {
      await until(page, (n) => window.vaak.turns.length >= n, a.turns, Math.max(deadline, 10000));
    } catch (e) {
      // Report what did happen (a benchmark keeps the turns that were answered).
      out.timed_out = `fewer than ${a.turns} turns completed in time`;
    }
    // The last reply frames are still in flight when turn_completed arrives.
    await sleep(2500);
    out.stats = await page.evaluate(() => window.vaak.stats());
    const v = await page.evaluate(() => ({
      events: window.vaak.events,
      latencies: window.vaak.latencies,
      turns: window.vaak.turns,
      reconnects: window.vaak.reconnects,
      pcStates: window.vaak.pcStates,
    }));
    out.reconnects = v.reconnects;
    out.pc_states = v.pcStates;
    out.events = v.events.map((e) => e.type);
    out.transcripts = v.events.filter((e) => e.type === "transcript" && e.is_final).map((e) => e.text);
    out.languages = v.events.filter((e) => e.type === "language_decision").map((e) => e.language);
    out.replies = v.events.filter((e) => e.type === "turn_completed").map((e) => e.reply_text);
    out.page_latencies_ms = v.latencies;
    out.server_latencies_ms = v.turns.map((t) => t.server_ms);
    out.shown = await page.evaluate(() => ({
      you: [...document.querySelectorAll("#captions li.you")].map((l) => l.textContent),
      vaak: [...document.querySelectorAll("#captions li.vaak")].map((l) => l.textContent),
      language: document.getElementById("language").textContent,
      latency: document.getElementById("latency").textContent,
      status: document.getElementById("status").textContent,
    }));
    if (a.outWav) {
      const b64 = await page.evaluate(() => window.vaak.replyWav());
      fs.writeFileSync(a.outWav, Buffer.from(b64, "base64"));
      out.reply_wav = a.outWav;
    }
    await hangUp(page);
    if (a.metrics) out.metrics = await (await fetch(new URL("/metrics", a.url))).text();
    out.ok = !out.timed_out;
  } catch (e) {
    out.error = String(e && e.stack ? e.stack : e);
  } finally {
    await browser.close().catch(() => {});
  }
  return out;
}

async function bargeIn(a) {
  const out = { ok: false };
  const browser = await launch(null);
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(a.url, { timeout: 20000 });
    if (a.key) await page.evaluate((k) => localStorage.setItem("vaak-key", k), a.key);
    const wav = fs.readFileSync(a.wav).toString("base64");
    await page.evaluate((b64) => (window.vaak.fileMic = b64), wav);
    await connect(page);
    await until(page, () => window.vaak.events.some((e) => e.type === "session_started"), null, 20000);
    await page.evaluate(() =>
      window.vaak.dc.send(JSON.stringify({ type: "text", text: "Please tell me a long story about the history of India." })),
    );
    await until(page, () => window.vaak.onsets.length > 0, null, a.timeoutS * 500);
    await sleep(1000);
    await page.evaluate(() => window.vaak.speakFile());
    await until(page, () => window.vaak.interruptedAt.length > 0, null, 30000);
    await sleep(3000);
    const v = await page.evaluate(() => ({
      events: window.vaak.events,
      interruptedAt: window.vaak.interruptedAt[0],
      soundEnds: window.vaak.soundEnds,
      onsets: window.vaak.onsets,
    }));
    out.events = v.events.map((e) => e.type);
    const cut = v.events.find((e) => e.type === "interrupted");
    out.interrupted = cut;
    // Reply sound that went on after the interruption reached the page.
    const ends = v.soundEnds.filter((t) => t <= v.interruptedAt + 2.0);
    out.reply_tail_ms = ends.length ? Math.max(0, (Math.max(...ends) - v.interruptedAt) * 1000) : null;
    await hangUp(page);
    out.ok = true;
  } catch (e) {
    out.error = String(e && e.stack ? e.stack : e);
  } finally {
    await browser.close().catch(() => {});
  }
  return out;
}

// Signalling errors: each must get its HTTP status and a reason, and leave the daemon healthy.
async function probe(a) {
  const whip = new URL("/whip", a.url);
  const auth = { Authorization: "Bearer " + a.key };
  const sdpType = { "Content-Type": "application/sdp" };
  const res = {};
  const post = async (name, headers, body, query = "") => {
    const r = await fetch(whip + query, { method: "POST", headers, body });
    res[name] = { status: r.status, body: (await r.text()).trim(), location: r.headers.get("location") };
    return res[name];
  };
  // A real offer, made by the browser (no microphone needed for an offer).
  const browser = await launch(null);
  let offers = [];
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(a.url, { timeout: 20000 });
    offers = await page.evaluate(async (n) => {
      const made = [];
      for (let i = 0; i < n; i++) {
        const pc = new RTCPeerConnection();
        pc.addTransceiver("audio", { direction: "sendrecv" });
        pc.createDataChannel("vaak");
        await pc.setLocalDescription(await pc.createOffer());
        made.push(pc.localDescription.sdp);
      }
      return made;
    }, (a.maxCalls || 1) + 2);
  } finally {
    await browser.close().catch(() => {});
  }
  const offer = offers[0];
  await post("no_auth", sdpType, offer);
  await post("wrong_key", { ...sdpType, Authorization: "Bearer not-the-key-0000000000" }, offer);
  await post("wrong_content_type", { ...auth, "Content-Type": "text/plain" }, offer);
  await post("garbage_sdp", { ...auth, ...sdpType }, "hello, this is not SDP");
  await post("no_opus", { ...auth, ...sdpType }, offer.replace(/opus\/48000/gi, "PCMU/8000"));
  await post("oversized", { ...auth, ...sdpType }, offer + "a=x-pad:" + "x".repeat(70 * 1024) + "\r\n");
  await post("unknown_language", { ...auth, ...sdpType }, offer, "?languages=xx");
  // Fill every call slot, then one more.
  const open = [];
  for (let i = 0; i < (a.maxCalls || 1); i++) {
    const r = await post("fill_" + i, { ...auth, ...sdpType }, offers[i]);
    if (r.location) open.push(r.location);
  }
  await post("too_many", { ...auth, ...sdpType }, offers[(a.maxCalls || 1)]);
  // Hang those up; a DELETE of an unknown call is a 404.
  res.deletes = [];
  for (const loc of open) {
    const r = await fetch(new URL(loc, a.url), { method: "DELETE", headers: auth });
    res.deletes.push(r.status);
  }
  const r404 = await fetch(new URL("/whip/0123456789abcdef", a.url), { method: "DELETE", headers: auth });
  res.delete_unknown = r404.status;
  // The slots come back (the call tasks end within a second or two).
  let again = null;
  for (let i = 0; i < 50; i++) {
    again = await post("after_hangup", { ...auth, ...sdpType }, offers[(a.maxCalls || 1) + 1]);
    if (again.status === 201) break;
    await sleep(200);
  }
  if (again && again.location) {
    await fetch(new URL(again.location, a.url), { method: "DELETE", headers: auth });
  }
  const h = await fetch(new URL("/healthz", a.url));
  res.healthz = h.status;
  return { ok: true, probes: res };
}

(async () => {
  const a = args();
  let out;
  const watchdog = setTimeout(() => {
    process.stdout.write(JSON.stringify({ ok: false, error: "watchdog: the script ran out of time" }) + "\n");
    process.exit(2);
  }, (a.timeoutS + 30) * 1000);
  try {
    out = a.probe ? await probe(a) : a.bargeIn ? await bargeIn(a) : await call(a);
  } catch (e) {
    out = { ok: false, error: String(e && e.stack ? e.stack : e) };
  }
  clearTimeout(watchdog);
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
})();
