// Softphone: calls the gateway over WebRTC, shows captions and the turn-taking timeline that the
// server pushes over the "events" data channel, and reports what it hears back (for tests and
// for operators: received audio energy from RTP stats and a WebAudio analyser).
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { pc: null, channel: null, id: null, stream: null, stats: null, analyser: null, micAnalyser: null,
  captureStart: 0, connectedAt: 0, now: 0, caller: [], agent: [], marks: [], overlaps: [], ended: false };

function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = "status " + (cls || ""); }

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const data = await r.json();
  if (!r.ok) { const e = new Error(data.error || r.statusText); e.data = data; e.status = r.status; throw e; }
  return data;
}

// Every offer needs a token for its agent: open demo mode hands one out, else the page password.
async function offerToken(agent) {
  let password = sessionStorage.getItem("gateway-page-password") || params.get("password") || undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return (await post("/webrtc/token", { agent, password })).token;
    } catch (err) {
      if (err.status !== 401) throw err;  // 401: the page password is required, or was wrong
      password = window.prompt("Password for this softphone:") || "";
      if (!password) throw err;
      sessionStorage.setItem("gateway-page-password", password);
    }
  }
  throw new Error("no token");
}

function waitGathering(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ms);
  });
}

function rms(analyser) {
  const buf = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(buf);
  let s = 0; for (const v of buf) s += v * v;
  return Math.sqrt(s / buf.length);
}

async function call() {
  $("call").disabled = true; $("hangup").disabled = false; setStatus("connecting");
  reset();
  try {
    const cfg = await (await fetch("/webrtc/config")).json();
    const pc = new RTCPeerConnection({ iceServers: cfg.iceServers });
    state.pc = pc;
    state.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    state.captureStart = performance.now();
    state.stream.getTracks().forEach((t) => pc.addTrack(t, state.stream));
    const ctx = new AudioContext();
    state.micAnalyser = ctx.createAnalyser();
    ctx.createMediaStreamSource(state.stream).connect(state.micAnalyser);
    state.channel = pc.createDataChannel("events");
    state.channel.onmessage = (e) => onFeed(JSON.parse(e.data));
    pc.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      $("remote").srcObject = stream;
      state.analyser = ctx.createAnalyser();
      ctx.createMediaStreamSource(stream).connect(state.analyser);
      ctx.resume();
    };
    const late = [];
    pc.onicecandidate = (e) => {
      if (state.id) post("/webrtc/ice", { id: state.id, candidate: e.candidate }).catch(() => {});
      else late.push(e.candidate);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") { state.connectedAt = performance.now(); setStatus("in call", "live"); }
      if (pc.connectionState === "failed") { setStatus("failed", "error"); hangup(); }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathering(pc, 2000);
    const agent = $("agent").value;
    const token = await offerToken(agent);
    const answer = await post("/webrtc/offer", { sdp: pc.localDescription.sdp, type: "offer", agent, token });
    state.id = answer.id;
    await pc.setRemoteDescription(answer);
    const m = /a=rtpmap:\d+ ([^\s/]+)\/(\d+)/.exec(answer.sdp);
    $("codec").textContent = m ? `${m[1]} ${m[2] / 1000} kHz` : "";
    for (const c of late) if (c) post("/webrtc/ice", { id: state.id, candidate: c }).catch(() => {});
    state.stats = setInterval(report, 200);
  } catch (err) {
    setStatus(String(err.message || err), "error"); hangup();
  }
}

async function report() {
  const pc = state.pc; if (!pc) return;
  let energy = 0, level = 0, packets = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      energy = s.totalAudioEnergy || 0; level = s.audioLevel || 0; packets = s.packetsReceived || 0;
    }
  });
  const agentRms = state.analyser ? rms(state.analyser) : 0;
  const micRms = state.micAnalyser ? rms(state.micAnalyser) : 0;
  $("agent-level").style.width = Math.min(100, Math.max(level, agentRms) * 400) + "%";
  $("mic-level").style.width = Math.min(100, micRms * 400) + "%";
  if (state.connectedAt) $("clock").textContent = ((performance.now() - state.connectedAt) / 1000).toFixed(1) + " s";
  if (state.channel && state.channel.readyState === "open") {
    state.channel.send(JSON.stringify({ type: "stats", inbound_energy: energy, audio_level: level, packets,
      rms: agentRms, mic_rms: micRms, capture_ms: performance.now() - state.captureStart,
      connected_ms: state.connectedAt ? performance.now() - state.connectedAt : null }));
  }
}

function hangup() {
  if (state.id && !state.ended) post("/webrtc/hangup", { id: state.id }).catch(() => {});
  if (state.stats) clearInterval(state.stats);
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  if (state.pc) state.pc.close();
  state.pc = null; state.id = null;
  $("call").disabled = false; $("hangup").disabled = true;
  if (!$("status").classList.contains("error")) setStatus("idle");
}

function reset() {
  Object.assign(state, { caller: [], agent: [], marks: [], overlaps: [], now: 0, ended: false, connectedAt: 0 });
  for (const id of ["caller-captions", "agent-captions", "events"]) $(id).innerHTML = "";
  draw();
}

function item(list, t, text, cls) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  li.innerHTML = `<time>${t.toFixed(1)}s</time>`;
  li.appendChild(document.createTextNode(text));
  $(list).appendChild(li); li.scrollIntoView({ block: "nearest" });
}

function onFeed(msg) {
  if (msg.type === "caption") {
    item(msg.who === "caller" ? "caller-captions" : "agent-captions", msg.t, msg.text);
    state.now = Math.max(state.now, msg.t);
  } else if (msg.type === "event") {
    const e = msg.event; state.now = Math.max(state.now, e.t);
    const open = (lane) => lane.push([e.t, null]);
    const close = (lane) => { const last = lane[lane.length - 1]; if (last && last[1] === null) last[1] = e.t; };
    switch (e.type) {
      case "user_speech_start": open(state.caller); break;
      case "user_speech_end": close(state.caller); break;
      case "agent_speech_start": case "resume_playout": open(state.agent); break;
      case "agent_speech_end": case "pause_playout": case "stop_playout": close(state.agent); break;
      case "overlap_start": state.overlaps.push([e.t, null]); break;
      case "interruption": case "backchannel": case "false_interruption": case "end_of_turn":
        state.marks.push(e); { const o = state.overlaps[state.overlaps.length - 1]; if (o && o[1] === null && e.type !== "end_of_turn") o[1] = e.t; }
        break;
    }
    let text = e.type;
    if (e.type === "interruption") text += ` (${e.mode}, p=${e.probability ?? "–"}, ${Math.round(e.latency_ms)} ms)`;
    if (e.type === "backchannel") text += ` (${e.duration.toFixed(2)} s, p=${e.probability ?? "–"})`;
    if (e.type === "false_interruption") text += e.resumed ? " (resumed)" : "";
    if (e.type === "end_of_turn") text += ` (${Math.round(e.delay_ms)} ms)`;
    item("events", e.t, text, e.type);
  } else if (msg.type === "ended") {
    state.ended = true; setStatus("call ended"); hangup();
  }
  draw();
}

const COLORS = { interruption: "#ff5d5d", backchannel: "#3ddc84", false_interruption: "#ffb347", end_of_turn: "#d0d7de" };

function draw() {
  const svg = $("timeline");
  const span = Math.max(20, Math.ceil(state.now / 10) * 10);
  const x = (t) => (t / span) * 1000;
  const now = state.now;
  let out = "";
  for (let s = 0; s <= span; s += span > 40 ? 10 : 5) {
    out += `<line x1="${x(s)}" y1="0" x2="${x(s)}" y2="150" stroke="#1f2a37"/>` +
      `<text x="${x(s) + 3}" y="146" fill="#5b6875" font-size="10">${s}s</text>`;
  }
  out += `<text x="4" y="14" fill="#8b98a5" font-size="11">caller</text><text x="4" y="58" fill="#8b98a5" font-size="11">agent</text>`;
  for (const [a, b] of state.caller) out += `<rect x="${x(a)}" y="18" width="${Math.max(2, x(b ?? now) - x(a))}" height="22" rx="3" fill="#4cc2ff"/>`;
  for (const [a, b] of state.agent) out += `<rect x="${x(a)}" y="62" width="${Math.max(2, x(b ?? now) - x(a))}" height="22" rx="3" fill="#b48cff"/>`;
  for (const [a, b] of state.overlaps) out += `<rect x="${x(a)}" y="14" width="${Math.max(2, x(b ?? now) - x(a))}" height="74" fill="#ff5d5d" opacity="0.18"/>`;
  for (const e of state.marks) {
    const c = COLORS[e.type] || "#fff";
    out += `<line x1="${x(e.t)}" y1="10" x2="${x(e.t)}" y2="100" stroke="${c}" stroke-width="2"/>` +
      `<circle cx="${x(e.t)}" cy="108" r="5" fill="${c}"/>` +
      `<text x="${x(e.t) + 7}" y="${e.type === "end_of_turn" ? 132 : 120}" fill="${c}" font-size="11">${e.type.replace(/_/g, " ")}</text>`;
  }
  svg.innerHTML = out;
}

$("call").onclick = call;
$("hangup").onclick = hangup;
if (params.get("agent")) $("agent").value = params.get("agent");
draw();
if (params.get("autocall")) call();
