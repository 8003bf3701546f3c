#!/usr/bin/env python3
"""A real gRPC client for `vaak serve`, used by the end-to-end tests.

The stubs and the one-shot calls come from vaak's Python client package (clients/python,
installed into the venv of scripts/py-env.sh with grpcio, grpcio-health-checking and
grpcio-reflection): run this with that venv's python.

Every subcommand prints ONE JSON object on stdout. Exit status: 0 success, 1 failure (the JSON
has "ok": false, "error" and, for an RPC failure, "code"/"details"), 2 usage, 3 the global
--timeout-s watchdog fired.

  converse   one Converse stream: config, WAV / text turns, optional barge-in, reply analysis
  unary      ListLanguages, ListVoices, Synthesize (hi, en), Transcribe (an eval clip), and one
             turn through the package's VaakClient.converse
  delete     DeleteSession
  raw        bad-input probes; prints the gRPC status it got (exit 0 if one was received)
  health     grpc.health.v1 Check for "" and "vaak.v1.Vaak"
  reflection list services over grpc.reflection.v1 and v1alpha

converse latency: "speech_end" is the send time of the last chunk of the WAV whose RMS is speech
(above --speech-dbfs and within --speech-rel-db of the loudest chunk); for a typed turn it is the
send time of the text. "cut_in" is true if reply audio arrived before that moment.
"""

import argparse
import array
import json
import math
import os
import queue
import sys
import threading
import time

import grpc
import vaak
from vaak.v1 import vaak_pb2, vaak_pb2_grpc

from pcm_tools import (dbfs, mulaw_decode, mulaw_encode, pcm16_from_bytes, pcm16_to_bytes,
                       read_wav, rms, write_wav)

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_EVAL_DIR = os.path.abspath(os.path.join(REPO_ROOT, "..", "shared", "eval"))
SERVICE = "vaak.v1.Vaak"

EXIT_FAIL = 1
EXIT_WATCHDOG = 3

_print_lock = threading.Lock()
_printed = False


def emit(obj, code=0):
    """Print the one JSON object (once) and exit."""
    global _printed
    with _print_lock:
        if not _printed:
            _printed = True
            sys.stdout.write(json.dumps(obj, ensure_ascii=False, sort_keys=False) + "\n")
            sys.stdout.flush()
    if code != 0:
        msg = obj.get("error") if isinstance(obj, dict) else None
        if msg:
            sys.stderr.write("vaak_client: %s\n" % msg)
    sys.stderr.flush()
    # No interpreter shutdown: a stuck gRPC thread must never keep the process alive.
    os._exit(code)


class Fail(Exception):
    def __init__(self, msg, extra=None):
        super().__init__(msg)
        self.extra = extra or {}


def start_watchdog(timeout_s, command):
    def fire():
        global _printed
        with _print_lock:
            if not _printed:
                _printed = True
                sys.stdout.write(json.dumps({
                    "ok": False, "command": command,
                    "error": "watchdog: no result within --timeout-s %.1f s" % timeout_s,
                    "code": "CLIENT_TIMEOUT"}) + "\n")
                sys.stdout.flush()
        sys.stderr.write("vaak_client: watchdog fired after %.1f s\n" % timeout_s)
        os._exit(EXIT_WATCHDOG)

    t = threading.Timer(timeout_s, fire)
    t.daemon = True
    t.start()
    return t


# --------------------------------------------------------------------------------------------
# Audio: WAV reading, linear resampling, mu-law, RMS
# --------------------------------------------------------------------------------------------

def resample(a, src, dst):
    """Linear interpolation; a box pre-filter when downsampling. Pure Python."""
    if src == dst or len(a) == 0:
        return array.array("h", a)
    x = a
    if dst < src:
        k = int(round(src / dst))
        if k > 1:
            # Moving average of width k (cheap anti-aliasing).
            acc, out, s = 0, [], list(a)
            for i, v in enumerate(s):
                acc += v
                if i >= k:
                    acc -= s[i - k]
                out.append(acc / min(i + 1, k))
            x = out
    n_out = int(len(a) * dst / src)
    step = src / dst
    last = len(x) - 1
    out = array.array("h", bytes(2 * n_out))
    for i in range(n_out):
        pos = i * step
        j = int(pos)
        if j >= last:
            v = x[last]
        else:
            f = pos - j
            v = x[j] + (x[j + 1] - x[j]) * f
        v = int(round(v))
        out[i] = 32767 if v > 32767 else (-32768 if v < -32768 else v)
    return out


class Utterance:
    """A WAV prepared for sending: chunks in the wire format plus per-chunk RMS."""

    def __init__(self, path, rate, mulaw, chunk_ms, speech_dbfs, speech_rel_db):
        samples, src_rate = read_wav(path, Fail)
        self.path = path
        self.src_rate = src_rate
        self.audio_s = len(samples) / float(src_rate)
        s = resample(samples, src_rate, rate)
        n = max(1, int(rate * chunk_ms / 1000))
        self.chunks = []
        self.chunk_rms = []
        for i in range(0, len(s), n):
            c = s[i:i + n]
            self.chunk_rms.append(rms(c))
            self.chunks.append(mulaw_encode(c) if mulaw else pcm16_to_bytes(c))
        loudest = max(self.chunk_rms) if self.chunk_rms else 0.0
        self.threshold = max(32768.0 * 10 ** (speech_dbfs / 20.0),
                             loudest * 10 ** (-speech_rel_db / 20.0))
        speech = [i for i, r in enumerate(self.chunk_rms) if r > self.threshold]
        self.first_speech_chunk = speech[0] if speech else None
        self.last_speech_chunk = speech[-1] if speech else None
        self.chunk_s = n / float(rate)

    def describe(self):
        return {
            "wav": self.path,
            "audio_s": round(self.audio_s, 3),
            "chunks": len(self.chunks),
            "speech_threshold_dbfs": dbfs(self.threshold),
            "speech_start_s": None if self.first_speech_chunk is None
            else round(self.first_speech_chunk * self.chunk_s, 3),
            "speech_end_s": None if self.last_speech_chunk is None
            else round((self.last_speech_chunk + 1) * self.chunk_s, 3),
        }


def silence_chunk(rate, mulaw, chunk_ms):
    n = max(1, int(rate * chunk_ms / 1000))
    return (b"\xff" * n) if mulaw else bytes(2 * n)


# --------------------------------------------------------------------------------------------
# Channel helpers
# --------------------------------------------------------------------------------------------

def make_channel(args):
    opts = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
            ("grpc.enable_retries", 0)]
    if getattr(args, "tls_ca", None):
        with open(args.tls_ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        if args.tls_server_name:
            opts.append(("grpc.ssl_target_name_override", args.tls_server_name))
        ch = grpc.secure_channel(args.addr, creds, options=opts)
    else:
        ch = grpc.insecure_channel(args.addr, options=opts)
    try:
        grpc.channel_ready_future(ch).result(timeout=args.connect_timeout_s)
    except grpc.FutureTimeoutError:
        ch.close()
        raise Fail("cannot connect to %s within %.1f s" % (args.addr, args.connect_timeout_s),
                   {"code": "UNAVAILABLE"})
    return ch


def metadata(args):
    md = []
    if args.api_key is not None:
        if args.api_key_header == "x-api-key":
            md.append(("x-api-key", args.api_key))
        else:
            md.append(("authorization", "Bearer " + args.api_key))
    return md


def rpc_error_info(e):
    info = {"code": None, "details": None}
    try:
        info["code"] = e.code().name
        info["details"] = e.details()
    except Exception:  # not a Call
        info["details"] = str(e)
    try:
        tm = e.trailing_metadata()
        if tm:
            info["trailers"] = {k: (v if isinstance(v, str) else v.hex()) for k, v in tm}
    except Exception:
        pass
    return info


def fmt_dict(pb2, fmt):
    if fmt is None:
        return None
    return {"encoding": pb2.AudioEncoding.Name(fmt.encoding), "sample_rate": fmt.sample_rate}


def msg_fields(msg, ndigits=3):
    d = {}
    for f in msg.DESCRIPTOR.fields:
        v = getattr(msg, f.name)
        if isinstance(v, float):
            v = round(v, ndigits)
        d[f.name] = v
    return d


def parse_voices(items):
    voices = {}
    for it in items or []:
        if "=" not in it:
            raise Fail("--voice wants LANG=NAME, got %r" % it)
        k, v = it.split("=", 1)
        voices[k] = v
    return voices


def session_config(pb2, args, input_rate=None, mulaw=None):
    mulaw = args.mulaw if mulaw is None else mulaw
    rate = input_rate if input_rate is not None else args.input_rate
    cfg = pb2.SessionConfig(
        session_id=args.session_id or "",
        languages=args.language or [],
        voices=parse_voices(args.voice),
        input_format=pb2.AudioFormat(encoding=pb2.MULAW if mulaw else pb2.PCM16, sample_rate=rate),
        text_only=bool(getattr(args, "text_only", False)),
        speech_rate=float(getattr(args, "speech_rate", 0.0) or 0.0),
    )
    if getattr(args, "output_rate", None) or getattr(args, "output_mulaw", False):
        cfg.output_format.CopyFrom(pb2.AudioFormat(
            encoding=pb2.MULAW if args.output_mulaw else pb2.PCM16,
            sample_rate=args.output_rate or (8000 if args.output_mulaw else 0)))
    if getattr(args, "no_barge_in", False):
        cfg.barge_in = False
    return cfg


# --------------------------------------------------------------------------------------------
# converse
# --------------------------------------------------------------------------------------------

class Stream:
    """One Converse call: a request queue (the generator stamps send times) and a reader
    thread that records every event with its arrival time."""

    def __init__(self, stub, md, timeout_s, pb2):
        self.pb2 = pb2
        self.q = queue.Queue()
        self.cond = threading.Condition()
        self.events = []           # (t, kind, msg)
        self.done = False
        self.status = None         # {"code", "details", ...}
        self.sent = 0
        self.closed = False
        self.call = stub.Converse(self._requests(), metadata=md, timeout=timeout_s)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _requests(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            msg, stamp = item
            if stamp is not None:
                stamp[0] = time.monotonic()
            self.sent += 1
            yield msg

    def send(self, msg, stamp=None):
        if not self.closed:
            self.q.put((msg, stamp))

    def close(self):
        if not self.closed:
            self.closed = True
            self.q.put(None)

    def _read(self):
        try:
            for ev in self.call:
                t = time.monotonic()
                kind = ev.WhichOneof("event") or "unknown"
                with self.cond:
                    self.events.append((t, kind, getattr(ev, kind) if kind != "unknown" else ev))
                    self.cond.notify_all()
            st = {"code": "OK", "details": self.call.details() or ""}
            try:
                tm = self.call.trailing_metadata()
                if tm:
                    st["trailers"] = {k: (v if isinstance(v, str) else v.hex()) for k, v in tm}
            except Exception:
                pass
        except grpc.RpcError as e:
            st = rpc_error_info(e)
        except Exception as e:  # noqa: BLE001
            st = {"code": "CLIENT_ERROR", "details": repr(e)}
        with self.cond:
            self.status = st
            self.done = True
            self.cond.notify_all()


class TurnLog:
    """What happened during one step (a WAV or a typed turn)."""

    def __init__(self, kind, label):
        self.kind = kind
        self.label = label
        self.ev_start = 0
        self.ev_end = None
        self.utt = None
        self.last_speech_sent = None     # send time of the last chunk above the threshold
        self.first_speech_sent = None
        self.last_chunk_sent = None
        self.text_sent = None
        self.barge = None                # dict for the barge-in of this step
        self.timed_out = False


def analyse_step(pb2, st, step, out_fmt, save_dir, index):
    evs = st.events[step.ev_start:step.ev_end]
    kinds, counts = [], {}
    for _, k, _ in evs:
        counts[k] = counts.get(k, 0) + 1
        if not kinds or kinds[-1] != k:
            kinds.append(k)
    r = {"input": step.kind}
    if step.kind == "wav":
        r.update(step.utt.describe())
    else:
        r["text"] = step.label
    turns = sorted({getattr(m, "turn") for _, k, m in evs
                    if k not in ("session_started", "speech_started", "unknown")
                    and hasattr(m, "turn") and getattr(m, "turn")})
    r["server_turns"] = turns
    r["events"] = kinds
    r["event_counts"] = counts
    transcripts = [dict(msg_fields(m), t=t) for t, k, m in evs if k == "transcript"]
    finals = [x for x in transcripts if x["is_final"]]
    fin = finals[-1] if finals else (transcripts[-1] if transcripts else None)
    r["transcript"] = None if fin is None else {
        "text": fin["text"], "language": fin["language"], "confidence": fin["confidence"],
        "is_final": fin["is_final"], "turn": fin["turn"]}
    r["transcripts"] = [{k: v for k, v in x.items() if k != "t"} for x in transcripts]
    r["language_changed"] = [msg_fields(m) for _, k, m in evs if k == "language_changed"]
    clauses = [m.text for _, k, m in evs if k == "reply_text"]
    r["reply_clauses"] = clauses
    r["reply_text"] = " ".join(c.strip() for c in clauses if c.strip())
    # Reply audio
    audio_evs = [(t, m) for t, k, m in evs if k == "reply_audio"]
    enc = out_fmt.encoding if out_fmt is not None else pb2.PCM16
    rate = 0
    samples = array.array("h")
    offset_mismatch = 0
    per_turn_pos = {}
    for _, m in audio_evs:
        rate = rate or m.sample_rate
        dec = mulaw_decode(m.audio) if enc == pb2.MULAW else pcm16_from_bytes(m.audio)
        exp = per_turn_pos.get(m.turn, 0)
        if m.offset_samples != exp:
            offset_mismatch += 1
        per_turn_pos[m.turn] = max(exp, m.offset_samples) + len(dec)
        samples.extend(dec)
    if not rate and out_fmt is not None:
        rate = out_fmt.sample_rate
    rr = rms(samples)
    peak = max((abs(v) for v in samples), default=0)
    r["reply_audio"] = {
        "chunks": len(audio_evs),
        "bytes": sum(len(m.audio) for _, m in audio_evs),
        "sample_rate": rate,
        "seconds": round(len(samples) / float(rate), 3) if rate else 0.0,
        "rms": round(rr, 1),
        "rms_dbfs": dbfs(rr),
        "peak": peak,
        "offset_mismatches": offset_mismatch,
    }
    if save_dir and len(samples) and rate:
        os.makedirs(save_dir, exist_ok=True)
        p = os.path.join(save_dir, "turn%d.wav" % index)
        write_wav(p, samples, rate)
        r["reply_audio"]["saved"] = p
    tc = [m for _, k, m in evs if k == "turn_completed"]
    r["turn_completed"] = [
        {"turn": m.turn, "reply_text": m.reply_text, "voice": m.voice, "language": m.language,
         "timings": msg_fields(m.timings, 1)} for m in tc]
    r["timings"] = r["turn_completed"][-1]["timings"] if tc else None
    r["interrupted"] = [msg_fields(m) for _, k, m in evs if k == "interrupted"]
    r["backchannels"] = [msg_fields(m) for _, k, m in evs if k == "backchannel"]
    r["errors"] = [msg_fields(m) for _, k, m in evs if k == "error"]
    r["timed_out"] = step.timed_out
    # The same, per server turn (a barge-in step has the interrupted turn and the new one).
    by_turn = []
    for tn in turns:
        tev = [(t, k, m) for t, k, m in evs if getattr(m, "turn", None) == tn]
        tk = []
        for _, k, _ in tev:
            if not tk or tk[-1] != k:
                tk.append(k)
        ta = array.array("h")
        for _, k, m in tev:
            if k == "reply_audio":
                ta.extend(mulaw_decode(m.audio) if enc == pb2.MULAW else pcm16_from_bytes(m.audio))
        tx = [m for _, k, m in tev if k == "transcript"]
        by_turn.append({
            "turn": tn, "events": tk,
            "transcript": tx[-1].text if tx else None,
            "language": tx[-1].language if tx else None,
            "reply_text": " ".join(m.text.strip() for _, k, m in tev if k == "reply_text"),
            "reply_audio_s": round(len(ta) / float(rate), 3) if rate else 0.0,
            "reply_audio_rms": round(rms(ta), 1),
            "completed": any(k == "turn_completed" for _, k, _ in tev),
            "interrupted": any(k == "interrupted" for _, k, _ in tev),
            "errors": [m.code for _, k, m in tev if k == "error"],
        })
    r["by_turn"] = by_turn
    # Client-side latency.
    first_audio_t = audio_evs[0][0] if audio_evs else None
    lat = {}
    ref = step.last_speech_sent if step.kind == "wav" else step.text_sent
    if ref is not None:
        def ms(t):
            return None if t is None else round((t - ref) * 1000.0, 1)
        first_tx = next((t for t, k, _ in evs if k == "transcript"), None)
        first_rt = next((t for t, k, _ in evs if k == "reply_text"), None)
        last_tc = next((t for t, k, _ in evs if k == "turn_completed"), None)
        lat = {
            "speech_end_to_first_audio_ms": ms(first_audio_t),
            "speech_end_to_transcript_ms": ms(first_tx),
            "speech_end_to_first_reply_text_ms": ms(first_rt),
            "speech_end_to_turn_completed_ms": ms(last_tc),
        }
        if step.kind == "wav" and step.last_chunk_sent is not None and first_audio_t is not None:
            lat["last_chunk_sent_to_first_audio_ms"] = round(
                (first_audio_t - step.last_chunk_sent) * 1000.0, 1)
    r["latency"] = lat
    r["cut_in"] = bool(step.kind == "wav" and first_audio_t is not None
                       and (step.last_speech_sent is None or first_audio_t < step.last_speech_sent))
    if step.barge is not None:
        b = step.barge
        bd = {"wav": b["utt"].path, "after_ms": b["after_ms"], "started": b["t_start"] is not None}
        if b["t_start"] is not None:
            sp = b["speech_sent"][0] or b["t_start"]
            intr = next((t for t, k, _ in evs if k == "interrupted" and t >= b["t_start"]), None)
            bc = next((t for t, k, _ in evs if k == "backchannel" and t >= b["t_start"]), None)
            intr_turn = next((m.turn for t, k, m in evs if k == "interrupted" and t >= b["t_start"]),
                             None)
            audio_after = [m for t, m in audio_evs
                           if intr is not None and t > intr and m.turn == intr_turn]
            bd.update({
                "reply_audio_before_barge_in_s": round(sum(
                    len(m.audio) / (1 if enc == pb2.MULAW else 2) for t, m in audio_evs
                    if t < b["t_start"]) / float(rate or 1), 3),
                "speech_start_to_interrupted_ms": None if intr is None
                else round((intr - sp) * 1000.0, 1),
                "speech_start_to_backchannel_ms": None if bc is None
                else round((bc - sp) * 1000.0, 1),
                "reply_audio_chunks_after_interrupted": len(audio_after),
            })
        r["barge_in"] = bd
    return r


class _TurnAction(argparse.Action):
    def __call__(self, parser, ns, values, option_string=None):
        lst = getattr(ns, "turns", None)
        if lst is None:
            lst = []
            setattr(ns, "turns", lst)
        kind = "wav" if option_string == "--wav" else "text"
        for v in (values if isinstance(values, list) else [values]):
            lst.append((kind, v))


def cmd_converse(args, pb2, pb2_grpc):
    t_begin = time.monotonic()
    deadline = t_begin + args.timeout_s - 2.0
    steps_in = args.turns or []
    if not steps_in:
        raise Fail("converse needs at least one --wav or --text")
    rate = args.input_rate or (8000 if args.mulaw else 16000)
    if args.mulaw and args.input_rate is None:
        rate = 8000
    chunk_ms = args.chunk_ms
    prep = lambda p: Utterance(p, rate, args.mulaw, chunk_ms, args.speech_dbfs, args.speech_rel_db)  # noqa: E731
    steps = []
    for kind, v in steps_in:
        s = TurnLog(kind, v)
        if kind == "wav":
            s.utt = prep(v)
        steps.append(s)
    barge_utt = None
    if args.barge_in_wav:
        if args.barge_in_after_ms is None:
            raise Fail("--barge-in-wav needs --barge-in-after-ms")
        barge_utt = prep(args.barge_in_wav)
        bi = args.barge_in_turn - 1
        if not (0 <= bi < len(steps)):
            raise Fail("--barge-in-turn %d is not a step" % args.barge_in_turn)
        steps[bi].barge = {"utt": barge_utt, "after_ms": args.barge_in_after_ms, "stamps": None,
                           "t_start": None, "speech_sent": [None]}
    silence = silence_chunk(rate, args.mulaw, chunk_ms)
    chunk_s = chunk_ms / 1000.0
    tail_n = int(math.ceil(args.tail_silence_ms / float(chunk_ms)))

    ch = make_channel(args)
    stub = pb2_grpc.VaakStub(ch)
    st = Stream(stub, metadata(args), max(1.0, deadline - time.monotonic()), pb2)
    st.send(pb2.ClientMessage(config=session_config(pb2, args, input_rate=rate)))

    result = {"ok": False, "command": "converse", "addr": args.addr}

    # Wait for session_started (or an early status).
    with st.cond:
        st.cond.wait_for(lambda: st.done or any(k == "session_started" for _, k, _ in st.events),
                         timeout=min(args.turn_timeout_s, max(0.1, deadline - time.monotonic())))
        ss = next((m for _, k, m in st.events if k == "session_started"), None)
    out_fmt = None
    if ss is not None:
        out_fmt = ss.output_format if ss.HasField("output_format") else None
        result.update({"session_id": ss.session_id, "resumed": ss.resumed,
                       "history_turns": ss.history_turns, "output_format": fmt_dict(pb2, out_fmt)})
    else:
        result.update({"session_id": None, "resumed": None})

    # Sending machinery: `pending` holds [bytes, stamp, kind] sent at pace; stamp is a
    # one-element list the request generator fills with the send time; kind is "utt"
    # (speech or barge-in audio), "tail" (tail silence) or "idle" (mic silence while waiting).
    pending = []
    next_t = [time.monotonic()]

    def send_due(realtime):
        """Send what is due; returns when the next chunk is due (None: nothing waits)."""
        now = time.monotonic()
        while pending:
            if realtime and next_t[0] > now:
                return next_t[0]
            data, stamp, _ = pending.pop(0)
            st.send(pb2.ClientMessage(audio=data), stamp)
            next_t[0] = max(next_t[0] + chunk_s, now - 0.2) if realtime else now
        return None

    def queue_utt(utt):
        stamps = []
        for c in utt.chunks:
            stamp = [None]
            stamps.append(stamp)
            pending.append((c, stamp, "utt"))
        for _ in range(tail_n):
            pending.append((silence, None, "tail"))
        return stamps

    def summarise(evs):
        open_speech, turns, terminal, errors = 0, set(), set(), 0
        kinds_of = {}
        for _, k, m in evs:
            if k == "speech_started":
                open_speech += 1
            elif k == "speech_stopped":
                open_speech = max(0, open_speech - 1)
            if k not in ("session_started", "speech_started", "unknown") and getattr(m, "turn", 0):
                turns.add(m.turn)
                kinds_of.setdefault(m.turn, set()).add(k)
            # A backchannel ends its (tentative) turn: it is acknowledged, never answered; a
            # continued turn is answered by a later one.
            if k in ("turn_completed", "interrupted", "backchannel", "turn_continued") or (
                k == "error" and m.turn
            ):
                terminal.add(m.turn)
            if k == "error":
                errors += 1
        # A turn with no reply that a later turn followed was continued by the user before any
        # answer: the server merges it into the later turn (and sends nothing more for it).
        merged_kinds = {"speech_stopped", "transcript", "language_changed"}
        for t in turns:
            if kinds_of.get(t, set()) <= merged_kinds and any(u > t for u in turns):
                terminal.add(t)
        return open_speech, turns, terminal, errors

    failed = None if ss is not None else "no session_started"
    for idx, step in enumerate(steps if ss is not None else []):
        if st.done:
            failed = "stream ended before step %d" % (idx + 1)
            break
        with st.cond:
            step.ev_start = n_before = len(st.events)
        stamps, text_stamp = [], [None]
        if step.kind == "wav":
            stamps = queue_utt(step.utt)
        else:
            st.send(pb2.ClientMessage(text=step.label), text_stamp)
        barge = step.barge
        step_deadline = min(deadline, time.monotonic() + args.turn_timeout_s
                            + (step.utt.audio_s if step.utt else 0)
                            + (barge["utt"].audio_s if barge else 0))

        def step_done():
            if any(p[2] != "idle" for p in pending):
                return False
            evs = st.events[n_before:]
            open_speech, turns, terminal, errors = summarise(evs)
            if open_speech:
                return False
            if barge is not None:
                if barge["stamps"] is None:
                    # Not triggered yet: only done if the turn ended without reply audio.
                    if any(k == "reply_audio" for _, k, _ in evs):
                        return False
                elif barge["stamps"][0][0] is None:
                    return False
                else:
                    t0 = barge["stamps"][0][0]
                    after = [(t, k, m) for t, k, m in evs if t >= t0]
                    if not any(k == "backchannel" for _, k, _ in after):
                        first = min(turns) if turns else 0
                        if not any(getattr(m, "turn", 0) > first for _, k, m in after
                                   if k not in ("session_started", "speech_started", "unknown")):
                            return False
            if not turns:
                return errors > 0
            return turns <= terminal

        while True:
            # Barge-in: N ms after this step's first reply audio, speak over the reply.
            if barge is not None and barge["stamps"] is None:
                fa = next((t for t, k, _ in st.events[n_before:] if k == "reply_audio"), None)
                if fa is not None and time.monotonic() >= fa + barge["after_ms"] / 1000.0:
                    del pending[:]          # only idle silence can be left here
                    next_t[0] = time.monotonic()
                    barge["stamps"] = queue_utt(barge["utt"])
            # Barge-in audio always goes at real-time pace.
            rt = args.realtime or (barge is not None and barge["stamps"] is not None)
            nxt = send_due(rt)
            if not pending and args.realtime and not args.no_idle_silence:
                # A live microphone keeps streaming: silence while we wait.
                pending.append((silence, None, "idle"))
                nxt = next_t[0]
            with st.cond:
                if step_done() or st.done:
                    break
                now = time.monotonic()
                if now >= step_deadline:
                    step.timed_out = True
                    break
                st.cond.wait(timeout=0.05 if nxt is None else max(0.0, min(0.05, nxt - now)))
        pending[:] = [p for p in pending if p[2] != "idle"]
        with st.cond:
            step.ev_end = len(st.events)
        if step.kind == "wav":
            u = step.utt
            step.last_chunk_sent = stamps[-1][0] if stamps else None
            if u.last_speech_chunk is not None:
                step.last_speech_sent = stamps[u.last_speech_chunk][0]
                step.first_speech_sent = stamps[u.first_speech_chunk][0]
        else:
            step.text_sent = text_stamp[0]
        if barge is not None and barge["stamps"]:
            b = barge["utt"]
            barge["t_start"] = barge["stamps"][0][0]
            if b.first_speech_chunk is not None:
                barge["speech_sent"][0] = barge["stamps"][b.first_speech_chunk][0]
        if step.timed_out:
            failed = "step %d (%s %s): no turn_completed in time (--turn-timeout-s %.1f)" % (
                idx + 1, step.kind, step.label, args.turn_timeout_s)
            break
    if args.hang_up and not st.done:
        st.send(pb2.ClientMessage(control=pb2.Control(kind=pb2.Control.HANG_UP)))
    st.close()
    with st.cond:
        st.cond.wait_for(lambda: st.done, timeout=max(0.1, min(args.close_timeout_s,
                                                               deadline - time.monotonic())))
    if not st.done:
        st.call.cancel()
        with st.cond:
            st.cond.wait_for(lambda: st.done, timeout=2.0)
    # Events that came after the last step (e.g. while closing) go to the last step.
    if steps:
        last = max((s for s in steps if s.ev_end is not None), key=lambda s: s.ev_end, default=None)
        if last is not None:
            last.ev_end = len(st.events)
    done_steps = [s for s in steps if s.ev_end is not None]
    result["turns"] = [analyse_step(pb2, st, s, out_fmt, args.save_reply, i + 1)
                       for i, s in enumerate(done_steps)]
    result["session_errors"] = [msg_fields(m) for _, k, m in st.events
                                if k == "error" and not m.turn]
    result["stream_status"] = st.status or {"code": "CLIENT_TIMEOUT", "details": "stream not closed"}
    result["messages_sent"] = st.sent
    result["elapsed_s"] = round(time.monotonic() - t_begin, 3)
    ch.close()
    result["event_kinds"] = [k for i, (_, k, _) in enumerate(st.events)
                             if i == 0 or st.events[i - 1][1] != k]
    if ss is None:
        failed = "no session_started (status %s: %s)" % (
            result["stream_status"].get("code"), result["stream_status"].get("details"))
    code = result["stream_status"].get("code")
    if failed is None and code not in ("OK", "CANCELLED" if args.hang_up else "OK"):
        failed = "stream ended with %s: %s" % (code, result["stream_status"].get("details"))
    if failed is None and len(done_steps) < len(steps):
        failed = "only %d of %d steps ran" % (len(done_steps), len(steps))
    if failed:
        result["error"] = failed
        result["code"] = code if code != "OK" else None
        emit(result, EXIT_FAIL)
    result["ok"] = True
    emit(result, 0)


# --------------------------------------------------------------------------------------------
# unary, delete, raw, health, reflection
# --------------------------------------------------------------------------------------------

def first_eval_clip(eval_dir, lang):
    man = os.path.join(eval_dir, lang, "manifest.tsv")
    with open(man, encoding="utf-8") as f:
        lines = f.read().splitlines()
    cols = lines[0].split("\t")
    row = dict(zip(cols, lines[1].split("\t")))
    return os.path.join(eval_dir, lang, row["path"]), row


def reference_for(wav):
    """The manifest row of an eval clip, if the WAV sits next to a manifest.tsv."""
    man = os.path.join(os.path.dirname(os.path.abspath(wav)), "manifest.tsv")
    if not os.path.isfile(man):
        return None
    with open(man, encoding="utf-8") as f:
        lines = f.read().splitlines()
    cols = lines[0].split("\t")
    for ln in lines[1:]:
        row = dict(zip(cols, ln.split("\t")))
        if row.get("path") == os.path.basename(wav):
            return row
    return None


def audio_summary(pb2, audio, rate, encoding=None):
    a = mulaw_decode(audio) if encoding == pb2.MULAW else pcm16_from_bytes(audio)
    r = rms(a)
    return {"bytes": len(audio), "sample_rate": rate,
            "seconds": round(len(a) / float(rate), 3) if rate else None,
            "rms": round(r, 1), "rms_dbfs": dbfs(r), "peak": max((abs(v) for v in a), default=0)}


def cmd_unary(args, pb2, pb2_grpc):
    """The one-shot calls and one conversation, each through the client package's VaakClient."""
    client = vaak.VaakClient(channel=make_channel(args), api_key=args.api_key)
    t_end = time.monotonic() + args.timeout_s - 2.0
    out = {"ok": False, "command": "unary", "addr": args.addr}
    failures = []

    def call(name, fn):
        t0 = time.monotonic()
        try:
            res = fn(max(1.0, t_end - time.monotonic()))
            res["ms"] = round((time.monotonic() - t0) * 1000.0, 1)
            return res
        except vaak.VaakError as e:
            failures.append(name)
            return {"code": e.code, "details": e.details,
                    "ms": round((time.monotonic() - t0) * 1000.0, 1)}

    out["list_languages"] = call("ListLanguages", lambda to: {"languages": [
        vars(l) for l in client.list_languages(timeout_s=to)]})
    out["list_voices"] = call("ListVoices", lambda to: {"voices": [
        vars(v) for v in client.list_voices(timeout_s=to)]})
    synth = {}
    for lang, text in (("hi", args.hi_text), ("en", args.en_text)):
        def do(to, lang=lang, text=text):
            r = client.synthesize(text, language=lang, timeout_s=to)
            s = audio_summary(pb2, r.audio, r.sample_rate)
            s.update({"voice": r.voice, "audio_s": round(r.audio_s, 3), "text": text})
            return s
        synth[lang] = call("Synthesize(%s)" % lang, do)
    out["synthesize"] = synth
    wav = args.wav
    if wav is None:
        wav, _ = first_eval_clip(args.eval_dir, "hi")

    def tr(to):
        r = client.transcribe(wav, languages=args.language or [], timeout_s=to)
        d = {"wav": wav, "text": r.text, "language": r.language,
             "confidence": round(r.confidence, 3),
             "candidates": [{"language": c.language, "probability": round(c.probability, 3)}
                            for c in r.candidates],
             "audio_s": round(r.audio_s, 3), "compute_s": round(r.compute_s, 3)}
        ref = reference_for(wav)
        if ref:
            d["reference"] = {"text": ref.get("text"), "language": ref.get("language")}
        return d
    out["transcribe"] = call("Transcribe", tr)

    def converse(to):
        """The clip spoken in real time, then half-closed: every event kind that came, the
        final transcript and the reply (its text and audio)."""
        kinds, final, reply, audio, rate = [], None, None, 0, 0
        for ev in client.converse(wav, languages=args.language or [], timeout_s=to):
            name = type(ev).__name__
            if not kinds or kinds[-1] != name:
                kinds.append(name)
            if isinstance(ev, vaak.Transcript) and ev.is_final:
                final = {"text": ev.text, "language": ev.language}
            elif isinstance(ev, vaak.ReplyAudio):
                audio += len(ev.audio)
                rate = ev.sample_rate
            elif isinstance(ev, vaak.TurnCompleted):
                reply = {"text": ev.reply_text, "language": ev.language,
                         "end_to_first_audio_ms": round(ev.timings["end_to_first_audio_ms"])}
            elif isinstance(ev, vaak.Error):
                raise vaak.VaakError("EVENT_" + ev.code, ev.message)
        return {"events": kinds, "transcript": final, "reply": reply,
                "reply_audio_s": round(audio / 2.0 / rate, 2) if rate else 0.0}
    out["converse"] = call("VaakClient.converse", converse)
    client.close()
    if failures:
        out["error"] = "failed: " + ", ".join(failures)
        emit(out, EXIT_FAIL)
    out["ok"] = True
    emit(out, 0)


def cmd_delete(args, pb2, pb2_grpc):
    ch = make_channel(args)
    stub = pb2_grpc.VaakStub(ch)
    out = {"command": "delete", "session_id": args.session_id}
    try:
        r = stub.DeleteSession(pb2.DeleteSessionRequest(session_id=args.session_id),
                               metadata=metadata(args), timeout=args.timeout_s - 2.0)
    except grpc.RpcError as e:
        out.update(rpc_error_info(e))
        out.update({"ok": False, "error": "DeleteSession: %s %s" % (out["code"], out["details"])})
        emit(out, EXIT_FAIL)
    out.update({"ok": True, "deleted": r.deleted, "code": "OK"})
    emit(out, 0)


def cmd_raw(args, pb2, pb2_grpc):
    ch = make_channel(args)
    stub = pb2_grpc.VaakStub(ch)
    md = metadata(args)
    to = max(1.0, args.timeout_s - 3.0)
    out = {"command": "raw", "rpc": args.rpc}
    rate = args.input_rate or (8000 if args.mulaw else 16000)
    if args.rpc != "converse":
        try:
            if args.rpc == "synthesize":
                fmt = None
                if args.output_rate or args.output_mulaw:
                    fmt = pb2.AudioFormat(encoding=pb2.MULAW if args.output_mulaw else pb2.PCM16,
                                          sample_rate=args.output_rate or 0)
                req = pb2.SynthesizeRequest(text=args.text if args.text is not None else "hello",
                                            language=(args.language or [""])[0],
                                            voice=args.voice_name or "")
                if fmt is not None:
                    req.output_format.CopyFrom(fmt)
                r = stub.Synthesize(req, metadata=md, timeout=to)
                out["response"] = audio_summary(pb2, r.audio, r.sample_rate)
                out["response"]["voice"] = r.voice
                if args.save_wav:
                    if args.output_mulaw:
                        raise Fail("--save-wav writes PCM16 only")
                    write_wav(args.save_wav, pcm16_from_bytes(r.audio), r.sample_rate)
                    out["response"]["saved"] = args.save_wav
            elif args.rpc == "transcribe":
                if args.oversized_bytes:
                    audio = bytes(args.oversized_bytes)
                elif args.wav:
                    s, src = read_wav(args.wav, Fail)
                    s = resample(s, src, rate)
                    audio = mulaw_encode(s) if args.mulaw else pcm16_to_bytes(s)
                else:
                    audio = bytes(args.audio_bytes)
                r = stub.Transcribe(pb2.TranscribeRequest(
                    audio=audio, format=pb2.AudioFormat(
                        encoding=pb2.MULAW if args.mulaw else pb2.PCM16, sample_rate=rate),
                    languages=args.language or []), metadata=md, timeout=to)
                out["response"] = {"text": r.text, "language": r.language}
            elif args.rpc == "list-voices":
                r = stub.ListVoices(pb2.ListVoicesRequest(), metadata=md, timeout=to)
                out["response"] = {"voices": len(r.voices)}
            elif args.rpc == "delete":
                r = stub.DeleteSession(pb2.DeleteSessionRequest(session_id=args.session_id or ""),
                                       metadata=md, timeout=to)
                out["response"] = {"deleted": r.deleted}
            out.update({"ok": True, "code": "OK", "details": ""})
        except grpc.RpcError as e:
            out.update(rpc_error_info(e))
            out["ok"] = True
        ch.close()
        if out["code"] == "DEADLINE_EXCEEDED" and (out.get("details") or "").lower().startswith("deadline exceeded"):
            out.update({"ok": False, "error": "client deadline passed with no status from the server"})
            emit(out, EXIT_FAIL)
        emit(out, 0)

    # Converse probes.
    msgs = []
    fm = args.first_message
    if fm == "audio":
        msgs.append(pb2.ClientMessage(audio=bytes(2 * 320)))
    elif fm == "text":
        msgs.append(pb2.ClientMessage(text="hello"))
    elif fm == "control":
        msgs.append(pb2.ClientMessage(control=pb2.Control(kind=pb2.Control.END_OF_INPUT)))
    elif fm == "empty":
        msgs.append(pb2.ClientMessage())
    elif fm == "config":
        cfg = session_config(pb2, args, input_rate=rate)
        if args.encoding is not None:
            cfg.input_format.encoding = args.encoding
        msgs.append(pb2.ClientMessage(config=cfg))
        if args.second_config:
            msgs.append(pb2.ClientMessage(config=cfg))
    if args.oversized_bytes:
        msgs.append(pb2.ClientMessage(audio=bytes(args.oversized_bytes)))
    if args.wav:
        u = Utterance(args.wav, rate, args.mulaw, 20, -40, 30)
        msgs.extend(pb2.ClientMessage(audio=c) for c in u.chunks)
        tail = silence_chunk(rate, args.mulaw, 20)
        msgs.extend(pb2.ClientMessage(audio=tail) for _ in range(75))
    if args.text is not None and fm != "text":
        msgs.append(pb2.ClientMessage(text=args.text))

    st = Stream(stub, md, to, pb2)
    for m in msgs:
        st.send(m)
    # Hold the stream open (a status may come on its own), then half-close and wait.
    with st.cond:
        st.cond.wait_for(lambda: st.done, timeout=args.hold_s)
    st.close()
    with st.cond:
        st.cond.wait_for(lambda: st.done, timeout=max(0.5, to - args.hold_s))
    if not st.done:
        st.call.cancel()
    ch.close()
    out["events"] = [k for _, k, _ in st.events]
    out["event_errors"] = [msg_fields(m) for _, k, m in st.events if k == "error"]
    ss = next((m for _, k, m in st.events if k == "session_started"), None)
    if ss is not None:
        out["session_id"] = ss.session_id
    out["messages_sent"] = st.sent
    stt = st.status or {"code": None, "details": None}
    out.update(stt)
    if not st.done or stt.get("code") in (None, "CLIENT_ERROR") or (
            stt.get("code") == "DEADLINE_EXCEEDED"
            and (stt.get("details") or "").lower().startswith("deadline exceeded")):
        out.update({"ok": False, "error": "no status received from the server (%s)" % stt.get("code")})
        emit(out, EXIT_FAIL)
    out["ok"] = True
    emit(out, 0)


def cmd_health(args, pb2, pb2_grpc):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    ch = make_channel(args)
    stub = health_pb2_grpc.HealthStub(ch)
    services = args.service if args.service else ["", SERVICE]
    out = {"command": "health", "addr": args.addr, "status": {}}
    bad = []
    for s in services:
        try:
            r = stub.Check(health_pb2.HealthCheckRequest(service=s), metadata=metadata(args),
                           timeout=min(10.0, args.timeout_s - 2.0))
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
            out["status"][s] = name
            if args.expect != "any" and name != args.expect:
                bad.append("%r is %s" % (s, name))
        except grpc.RpcError as e:
            info = rpc_error_info(e)
            out["status"][s] = {"code": info["code"], "details": info["details"]}
            bad.append("%r: %s %s" % (s, info["code"], info["details"]))
    ch.close()
    if bad:
        out.update({"ok": False, "error": "health: " + "; ".join(bad)})
        emit(out, EXIT_FAIL)
    out["ok"] = True
    emit(out, 0)


def cmd_reflection(args, pb2, pb2_grpc):
    from grpc_reflection.v1alpha import reflection_pb2
    ch = make_channel(args)
    out = {"command": "reflection", "addr": args.addr}
    ok_any = False
    for ver in ("v1", "v1alpha"):
        method = "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % ver
        # v1 and v1alpha messages are identical on the wire.
        rpc = ch.stream_stream(method,
                               request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                               response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        try:
            resps = list(rpc(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                             metadata=metadata(args), timeout=min(10.0, args.timeout_s - 2.0)))
            names = []
            for r in resps:
                if r.HasField("error_response"):
                    raise Fail("reflection %s error %s" % (ver, r.error_response.error_message))
                names.extend(s.name for s in r.list_services_response.service)
            out[ver] = sorted(names)
            ok_any = True
        except grpc.RpcError as e:
            info = rpc_error_info(e)
            out[ver] = {"code": info["code"], "details": info["details"]}
    ch.close()
    if not ok_any:
        out.update({"ok": False, "error": "no reflection service answered"})
        emit(out, EXIT_FAIL)
    out["ok"] = True
    emit(out, 0)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--addr", required=True, help="HOST:PORT of vaak serve")
    common.add_argument("--api-key", help="sent as 'authorization: Bearer K'")
    common.add_argument("--api-key-header", choices=["authorization", "x-api-key"],
                        default="authorization")
    common.add_argument("--timeout-s", type=float, default=120.0,
                        help="hard limit for the whole command (default 120)")
    common.add_argument("--connect-timeout-s", type=float, default=10.0)
    common.add_argument("--tls-ca", metavar="PEM",
                        help="connect over TLS, trusting this CA / self-signed certificate")
    common.add_argument("--tls-server-name", help="with --tls-ca: the name to verify")

    session = argparse.ArgumentParser(add_help=False)
    session.add_argument("--session-id")
    session.add_argument("--language", nargs="+", action="extend",
                         help="languages to detect among (repeatable)")
    session.add_argument("--voice", action="append", metavar="LANG=NAME")
    session.add_argument("--input-rate", type=int, default=None,
                         help="8000, 16000 (default), 24000, 48000; mu-law implies 8000")
    session.add_argument("--mulaw", action="store_true", help="send G.711 mu-law")
    session.add_argument("--output-rate", type=int, default=None)
    session.add_argument("--output-mulaw", action="store_true")
    session.add_argument("--text-only", action="store_true")
    session.add_argument("--speech-rate", type=float, default=0.0)
    session.add_argument("--no-barge-in", action="store_true", help="SessionConfig.barge_in=false")

    p = argparse.ArgumentParser(prog="vaak_client.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("converse", parents=[common, session], help="one Converse stream")
    c.add_argument("--wav", action=_TurnAction, help="a spoken turn (repeatable, in order)")
    c.add_argument("--text", action=_TurnAction, help="a typed turn (repeatable, in order)")
    c.add_argument("--realtime", action="store_true", help="pace audio in real time")
    c.add_argument("--no-idle-silence", action="store_true",
                   help="with --realtime, do not stream silence while waiting for the reply")
    c.add_argument("--chunk-ms", type=int, default=20)
    c.add_argument("--tail-silence-ms", type=int, default=1500)
    c.add_argument("--turn-timeout-s", type=float, default=60.0,
                   help="per turn, beyond the audio's own duration")
    c.add_argument("--close-timeout-s", type=float, default=15.0)
    c.add_argument("--barge-in-after-ms", type=int, help="ms after the first reply audio")
    c.add_argument("--barge-in-wav")
    c.add_argument("--barge-in-turn", type=int, default=1, help="which step (1-based)")
    c.add_argument("--hang-up", action="store_true", help="send Control HANG_UP before closing")
    c.add_argument("--save-reply", metavar="DIR")
    c.add_argument("--speech-dbfs", type=float, default=-40.0,
                   help="a chunk is speech above this RMS (dBFS) ...")
    c.add_argument("--speech-rel-db", type=float, default=30.0,
                   help="... and within this many dB of the loudest chunk")
    c.set_defaults(turns=None)

    u = sub.add_parser("unary", parents=[common], help="ListLanguages/ListVoices/Synthesize/Transcribe")
    u.add_argument("--wav", help="clip for Transcribe (default: the first hi eval clip)")
    u.add_argument("--language", nargs="+", action="extend")
    u.add_argument("--eval-dir", default=os.environ.get("VAAK_EVAL_DIR", DEFAULT_EVAL_DIR))
    u.add_argument("--hi-text", default="नमस्ते, आप कैसे हैं?")
    u.add_argument("--en-text", default="Hello, how are you today?")

    d = sub.add_parser("delete", parents=[common], help="DeleteSession")
    d.add_argument("--session-id", required=True)

    r = sub.add_parser("raw", parents=[common, session], help="bad-input probes")
    r.add_argument("--rpc", choices=["converse", "synthesize", "transcribe", "list-voices", "delete"],
                   default="converse")
    r.add_argument("--first-message", choices=["config", "none", "audio", "text", "control", "empty"],
                   default="config", help="none = send nothing and half-close")
    r.add_argument("--second-config", action="store_true", help="send the config twice")
    r.add_argument("--encoding", type=int, default=None, help="raw AudioEncoding number")
    r.add_argument("--oversized-bytes", type=int, default=0,
                   help="after the config, one audio message of N bytes")
    r.add_argument("--audio-bytes", type=int, default=3200, help="transcribe: N zero bytes")
    r.add_argument("--wav", help="audio to send after the config")
    r.add_argument("--text", help="a text message (converse) / text (synthesize)")
    r.add_argument("--voice-name", help="synthesize: SynthesizeRequest.voice")
    r.add_argument("--save-wav", metavar="FILE", help="synthesize: write the audio as a WAV")
    r.add_argument("--hold-s", type=float, default=5.0,
                   help="converse: keep the stream open this long before half-closing")

    h = sub.add_parser("health", parents=[common], help="grpc.health.v1 Check")
    h.add_argument("--service", action="append", help="default: '' and vaak.v1.Vaak")
    h.add_argument("--expect", default="SERVING",
                   help="required status (SERVING, NOT_SERVING, ...) or 'any'")

    sub.add_parser("reflection", parents=[common], help="list services via reflection v1/v1alpha")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.timeout_s <= 3:
        args.timeout_s = 3.0
    start_watchdog(args.timeout_s, args.cmd)
    try:
        pb2, pb2_grpc = vaak_pb2, vaak_pb2_grpc
        fn = {"converse": cmd_converse, "unary": cmd_unary, "delete": cmd_delete, "raw": cmd_raw,
              "health": cmd_health, "reflection": cmd_reflection}[args.cmd]
        fn(args, pb2, pb2_grpc)
    except Fail as e:
        out = {"ok": False, "command": args.cmd, "error": str(e)}
        out.update(e.extra)
        emit(out, EXIT_FAIL)
    except grpc.RpcError as e:
        out = {"ok": False, "command": args.cmd}
        out.update(rpc_error_info(e))
        out["error"] = "%s: %s" % (out.get("code"), out.get("details"))
        emit(out, EXIT_FAIL)
    except Exception as e:  # noqa: BLE001 - a bug here must still give one JSON line and exit
        import traceback
        traceback.print_exc()
        emit({"ok": False, "command": args.cmd, "error": "client error: %r" % (e,)}, EXIT_FAIL)


if __name__ == "__main__":
    main()
