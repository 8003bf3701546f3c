#!/usr/bin/env python3
"""The provider side of a telephony media stream, for vaak's end-to-end tests.

This client behaves like Twilio, Exotel, Plivo or Asterisk (AudioSocket) towards vaak: it
connects to vaak, streams a caller's audio in real time exactly as that provider does, and plays
vaak's replies on a simulated phone (echoing marks / checkpoints when the audio before them has
been "played", dropping unplayed audio on clear). Everything vaak sends is validated against the
provider's public documentation; what does not conform is collected in "violations".

Needs only the standard library and websockets (asyncio API, tested with websockets 17.4).
The file is self-contained (no import from vaak_client.py).

Command line
------------
  telephony_client.py --provider {twilio,exotel,plivo,audiosocket}
      --url URL            websocket providers: full ws:// URL with query
                           (e.g. ws://127.0.0.1:PORT/telephony/twilio?token=X)
      --addr HOST:PORT     audiosocket only
      --header 'Name: value'   repeatable: extra HTTP headers on the upgrade (Authorization …)
      --wav PATH           repeatable: the caller's utterances (16 kHz mono PCM16), in order
      --gap-s 4.0          silence after each wav before the next one (at least; see below) and
                           after the last one, until the reply ends or --reply-wait-s
      --reply-wait-s 25    after the caller's last speech, how long to wait for a reply to end
      --rate 8000          exotel/plivo PCM rate (8000 or 16000; exotel also 24000); twilio is
                           always μ-law 8000, audiosocket always slin 8000
      --encoding {mulaw,pcm16}  plivo only (audio/x-mulaw or audio/x-l16); default mulaw
      --param k=v          repeatable: custom parameters (twilio start.customParameters, exotel
                           start.custom_parameters, plivo extra_headers "k=v;k2=v2")
      --scenario {call,barge_in,dtmf,hangup,malformed,wrong_rate,unknown_event,no_start}
      --dtmf DIGITS        scenario dtmf: digits pressed 300 ms apart once the first reply started
      --save-dir DIR       write each reply's audio as a 16-bit WAV at the stream's rate
                           (8 kHz unless exotel/plivo run at 16 kHz): reply_<n>.wav, n from 1
      --timeout-s 120      global watchdog: exit 3 with {"ok": false, "error": "watchdog …"}
      --probe-wait-s 3.0   probe scenarios: how long to watch the server's reaction

Exit status: 0 the run completed (even if vaak misbehaved: the caller judges the JSON), 1 client
error (could not connect, handshake refused, unreadable WAV …), 2 usage, 3 watchdog.
stdout carries exactly ONE JSON object:

  {"ok": bool,                      ran to completion and no violations
   "provider", "scenario", "error": str|null, "http_status": int|null (refused handshake),
   "stream_id", "started_at": unix s (time 0 of every *_s below: the connection is open),
   "utterances": [{"wav", "sent_start_s", "sent_end_s", "speech_start_s", "speech_end_s",
                   "speech_threshold_dbfs", "partial", "first_reply_audio_ms",
                   "first_new_reply_ms"}],
   "replies": [{"first_audio_s", "last_audio_s", "audio_s", "rms_dbfs", "messages", "saved"}],
   "received": {"media": n, "marks": n, "clear": n, "other": {event: count}},
               (media: media / playAudio / 0x10 frames; marks: mark / checkpoint; clear:
               clear / clearAudio; other: any other event or frame type)
   "marks": {"sent_by_server", "echoed_played", "echoed_cleared", "dropped_by_clear"},
   "barge_in": {"triggered_s", "triggered_by": "reply_audio"|"timeout", "reply_first_audio_s",
                "reply_playing", "speech_start_s", "clear_s", "clear_after_ms",
                "audio_stopped_after_ms", "media_after_clear", "dropped_audio_s",
                "marks_echoed_cleared"}|null,
   "dtmf": {"digits", "reply_started_s", "sent": [{"digit", "sent_s"}], "closed_after_digit",
            "closed_after_ms"}|null,
   "probe": {"kind", "sent_s", "steps": [...], "closed", "closed_after_ms", "close_code",
             "close_reason", "error_frame", "events_after": {event: n}, "continued_call"}|null,
   "hangup": {"sent_s", "closed_after_ms", "closed_by"}|null   (null sent_s: the server closed
             first, the client never hung up),
   "pacing": {"frames", "interval_ms_p5", "p50", "p95", "mean", "max"}|null,
   "close": {"by": "server"|"client"|null, "code", "reason", "after_last_send_ms",
             "error_frame": hex|null, "hangup_frame": bool},
   "violations": [str]}

Definitions
-----------
* speech_end_s: the send time of the chunk holding the last 20 ms frame of the clip whose RMS is
  speech (above -45 dBFS and within 30 dB of the clip's loudest 20 ms frame): the true end of the
  caller's speech as the server can first know it (for Twilio/Plivo/AudioSocket a chunk is that
  20 ms frame; for Exotel it is the 100 ms chunk holding it). speech_start_s likewise (first).
* first_reply_audio_ms: speech_end_s to the arrival of the first reply-audio message after it.
  first_new_reply_ms: speech_end_s to the first reply (see below) that starts after it.
* replies: reply audio split where ≥ 700 ms pass between arrivals.
* pacing (audiosocket): intervals between consecutive reply audio frames within a reply.
* marks: the simulated phone plays reply audio in real time from its arrival (queued behind
  earlier audio); a mark (checkpoint) is echoed once the audio before it has been played. On
  clear (clearAudio) the unplayed audio is dropped; Twilio and Exotel then echo every pending mark
  at once (counted echoed_cleared); Plivo sends clearedAudio and never reports the dropped
  checkpoints (counted dropped_by_clear), since playedStream is only sent for played audio.

Scenarios
---------
* call: each wav in turn; after a wav, silence for --gap-s, then (if a reply is still playing)
  until it ends, bounded by --reply-wait-s from the speech end, before the next wav. After the
  last wav: until the reply to it has ended (played out and 1.5 s without audio) or
  --reply-wait-s. Then hang up (twilio/exotel `stop`, plivo closes the socket, audiosocket 0x00)
  and wait ≤ 5 s for the server to close.
* barge_in: first wav; 1.0 s after reply audio started arriving, the second wav at once.
  barge_in.clear_after_ms: barge-in speech start → clear/clearAudio (null if none);
  audio_stopped_after_ms: barge-in speech start → the last reply audio of the interrupted reply
  (frames closer than 300 ms). Then as call.
* dtmf: first wav; once reply audio arrives, the --dtmf digits 300 ms apart; records whether and
  when the server closed after a digit. Then as call (if still open).
* hangup: 1 s of the first wav, then hang up; hangup.closed_after_ms.
* malformed / unknown_event / wrong_rate / no_start: a protocol probe after (or instead of) the
  start; probe.* records the reaction within --probe-wait-s (close code/reason, AudioSocket 0xff
  error frame). After malformed/unknown_event a still-open stream continues as call with the wavs
  (to show the server survived); wrong_rate/no_start hang up.

Wire formats used (from the providers' public documentation):
* Twilio Media Streams: connected, start (streamSid MZ…, accountSid AC…, callSid CA…, tracks
  ["inbound"], mediaFormat audio/x-mulaw 8000 1, customParameters), media (track inbound, chunk,
  timestamp, 20 ms μ-law), dtmf (track inbound_track), mark (echo), stop; sequenceNumber, chunk
  and timestamp are strings. From the server: media, mark, clear.
* Exotel Voicebot (AgentStream): connected, start (stream_sid, call_sid, account_sid, from, to,
  custom_parameters, media_format {encoding audio/x-raw, sample_rate "8000", bit_rate "16"}),
  media (100 ms PCM16 LE chunks), dtmf {digit, duration}, mark (echo), stop {reason callended};
  sequence_number, chunk, timestamp are strings as in the developer.exotel.com examples. From
  the server: media (multiple of 320 bytes, 3 200 to 100 000 bytes), mark, clear.
* Plivo Audio Stream: start (callId, streamId, accountId, tracks, mediaFormat {encoding,
  sampleRate}), extra_headers, media (track, timestamp = unix ms string, chunk, payload; 20 ms),
  dtmf {track, digit, timestamp}, playedStream, clearedAudio; sequenceNumber numbers. Hang-up
  closes the socket (Plivo reports stream stop over HTTP, not on the socket). From the server:
  playAudio (media.contentType/sampleRate must match the stream), checkpoint, clearAudio,
  sendDTMF.
* AudioSocket: 3-byte header (type, big-endian payload length); 0x01 UUID first, 0x10 20 ms
  slin 8 kHz LE frames (320 bytes), 0x03 one ASCII DTMF digit, 0x00 hang-up, 0xff error.
"""

import argparse
import array
import asyncio
import base64
import binascii
import bisect
import collections
import json
import math
import operator
import os
import random
import sys
import threading
import time
import uuid

from pcm_tools import (dbfs, mulaw_decode, mulaw_encode, pcm16_from_bytes, pcm16_to_bytes,
                       read_wav, rms, write_wav)

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_WATCHDOG = 3

PROVIDERS = ("twilio", "exotel", "plivo", "audiosocket")
SCENARIOS = ("call", "barge_in", "dtmf", "hangup", "malformed", "wrong_rate", "unknown_event",
             "no_start")

SPEECH_DBFS = -45.0          # a 20 ms frame is speech above this …
SPEECH_REL_DB = 30.0         # … and within this of the clip's loudest frame
REPLY_GAP_S = 0.7            # reply audio arrivals this far apart start a new reply
STOP_GAP_S = 0.3             # barge-in: the interrupted reply stopped at a gap this long
REPLY_QUIET_S = 1.5          # a reply has ended: played out and no audio for this long
BARGE_AFTER_S = 1.0          # barge-in: this long after the reply audio started arriving
DTMF_SPACING_S = 0.3
CLOSE_WAIT_S = 5.0           # after hanging up, how long the server has to close
MALFORMED_MEDIA = '{"event": "media", "media": {"payload": "!!!not base64"}}'
NOT_JSON = "not json at all"

_print_lock = threading.Lock()
_printed = False


def emit(obj, code=EXIT_OK):
    """Print the one JSON object (once) and exit without interpreter shutdown."""
    global _printed
    with _print_lock:
        if not _printed:
            _printed = True
            sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    if code != EXIT_OK and isinstance(obj, dict) and obj.get("error"):
        sys.stderr.write("telephony_client: %s\n" % obj["error"])
    sys.stderr.flush()
    os._exit(code)


def start_watchdog(timeout_s, provider, scenario):
    def fire():
        emit({"ok": False, "provider": provider, "scenario": scenario,
              "error": "watchdog: no result within --timeout-s %.1f s" % timeout_s},
             EXIT_WATCHDOG)

    t = threading.Timer(timeout_s, fire)
    t.daemon = True
    t.start()
    return t


class ClientError(Exception):
    def __init__(self, msg, http_status=None):
        super().__init__(msg)
        self.http_status = http_status


# --------------------------------------------------------------------------------------------
# Audio: WAV I/O, windowed-sinc resampling, G.711 μ-law, levels
# --------------------------------------------------------------------------------------------

def _lowpass(cutoff, ntaps):
    """Blackman-windowed sinc low-pass, unity DC gain; cutoff as a fraction of the sample rate."""
    m = ntaps - 1
    taps = []
    for n in range(ntaps):
        x = n - m / 2.0
        s = 2.0 * cutoff if x == 0 else math.sin(2.0 * math.pi * cutoff * x) / (math.pi * x)
        w = 0.42 - 0.5 * math.cos(2.0 * math.pi * n / m) + 0.08 * math.cos(4.0 * math.pi * n / m)
        taps.append(s * w)
    g = sum(taps)
    return [t / g for t in taps]


def _fir(x, taps, step=1):
    """Symmetric FIR over x (zero-padded), one output every `step` inputs."""
    h = len(taps) // 2
    xp = [0.0] * h + list(x) + [0.0] * h
    n = len(taps)
    mul = operator.mul
    return [sum(map(mul, taps, xp[i:i + n])) for i in range(0, len(x), step)]


def _clip16(values):
    out = array.array("h", bytes(2 * len(values)))
    for i, v in enumerate(values):
        v = int(round(v))
        out[i] = 32767 if v > 32767 else (-32768 if v < -32768 else v)
    return out


def resample(a, src, dst):
    """Windowed-sinc resampling: exact polyphase for integer ratios (16 kHz → 8 kHz is a
    97-tap low-pass at 3.7 kHz then decimation), low-pass + linear interpolation otherwise."""
    if src == dst or len(a) == 0:
        return array.array("h", a)
    if src % dst == 0:
        k = src // dst
        return _clip16(_fir(a, _lowpass(0.46 / k, 48 * k + 1), k))
    if dst % src == 0:
        k = dst // src
        up = [0.0] * (len(a) * k)
        up[::k] = [float(v) * k for v in a]
        return _clip16(_fir(up, _lowpass(0.46 / k, 48 * k + 1)))
    x = list(a)
    if dst < src:
        ratio = src / dst
        x = _fir(x, _lowpass(0.46 / ratio, 48 * int(math.ceil(ratio)) + 1))
    n_out = int(len(a) * dst / src)
    step = src / dst
    last = len(x) - 1
    out = []
    for i in range(n_out):
        pos = i * step
        j = int(pos)
        out.append(x[last] if j >= last else x[j] + (x[j + 1] - x[j]) * (pos - j))
    return _clip16(out)


def noise_ratio(a):
    """Energy of the first difference over the signal energy: ~2 for white noise (audio decoded
    with the wrong codec or byte order), well under 1 for speech."""
    if len(a) < 2:
        return 0.0
    e = sum(v * v for v in a)
    if e == 0:
        return 0.0
    d = sum((a[i] - a[i - 1]) ** 2 for i in range(1, len(a)))
    return d / e


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * p / 100.0
    f = int(math.floor(k))
    c = min(f + 1, len(sorted_vals) - 1)
    return sorted_vals[f] + (sorted_vals[c] - sorted_vals[f]) * (k - f)


def r3(x):
    return None if x is None else round(x, 3)


def ms(x):
    return None if x is None else round(x * 1000.0, 1)


class Utterance:
    """A caller clip at the stream's rate, cut into the provider's chunks (the last one padded
    with silence), with the 20 ms speech frames located."""

    def __init__(self, path, rate, chunk_samples, encode):
        samples, src = read_wav(path, ClientError)
        x = resample(samples, src, rate)
        self.path = path
        f = rate // 50
        frame_rms = [rms(x[i:i + f]) for i in range(0, len(x), f)]
        loudest = max(frame_rms) if frame_rms else 0.0
        self.threshold = max(32768.0 * 10 ** (SPEECH_DBFS / 20.0),
                             loudest * 10 ** (-SPEECH_REL_DB / 20.0))
        speech_frames = [i for i, r in enumerate(frame_rms) if r > self.threshold]
        self.speech_chunks = sorted({(i * f) // chunk_samples for i in speech_frames})
        self.chunks = []
        for i in range(0, len(x), chunk_samples):
            c = x[i:i + chunk_samples]
            if len(c) < chunk_samples:
                c = c + array.array("h", bytes(2 * (chunk_samples - len(c))))
            self.chunks.append(encode(c))
        self.sent = [None] * len(self.chunks)
        self.limit = len(self.chunks)      # chunks to send (hang-up sends fewer)
        self.done = None

    def chunks_for(self, seconds, chunk_s):
        return min(len(self.chunks), max(1, int(round(seconds / chunk_s))))

    def sent_speech(self):
        return [self.sent[i] for i in self.speech_chunks
                if i < len(self.sent) and self.sent[i] is not None]

    @property
    def speech_start(self):
        s = self.sent_speech()
        return s[0] if s else None

    @property
    def speech_end(self):
        s = self.sent_speech()
        return s[-1] if s else None

    @property
    def sent_start(self):
        return self.sent[0]

    @property
    def sent_end(self):
        done = [t for t in self.sent if t is not None]
        return done[-1] if done else None

    @property
    def ref(self):
        """When the caller stopped speaking (speech end, else the last chunk sent)."""
        return self.speech_end if self.speech_end is not None else self.sent_end


# --------------------------------------------------------------------------------------------
# The call: clock, microphone, simulated phone (playback, marks), records
# --------------------------------------------------------------------------------------------

class Session:
    def __init__(self, args):
        self.args = args
        self.provider = None
        self.t0 = None
        self.started_at = None
        self.rate = 8000
        # microphone
        self.mic_queue = collections.deque()
        self.mic_paused = False
        self.mic_task = None
        self.chunk_s = 0.02
        self.silence = b""
        # phone
        self.arrivals = []            # (t, samples) of reply audio, in arrival order
        self.arrival_times = []
        self.play_end = 0.0
        self.pending_marks = collections.deque()
        self.mark_wake = None
        self.clears = []
        self.received = {"media": 0, "marks": 0, "clear": 0, "other": collections.Counter()}
        self.marks = {"sent_by_server": 0, "echoed_played": 0, "echoed_cleared": 0,
                      "dropped_by_clear": 0}
        self._viol = collections.OrderedDict()
        self.closed = None
        self.close = {"by": None, "code": None, "reason": None, "after_last_send_ms": None,
                      "error_frame": None, "hangup_frame": False}
        self.close_t = None
        self.stopping = False
        self.client_closing = False
        self.last_send_t = None
        self.dropped_by_clear_s = 0.0

    # clock ---------------------------------------------------------------------------------
    def begin(self):
        self.t0 = time.monotonic()
        self.started_at = time.time()
        self.mark_wake = asyncio.Event()
        self.closed = asyncio.Event()

    def now(self):
        return time.monotonic() - self.t0

    def sent(self):
        self.last_send_t = self.now()

    def violation(self, key, msg):
        if key in self._viol:
            self._viol[key][1] += 1
        elif len(self._viol) < 60:
            self._viol[key] = [msg, 1]

    def violations(self):
        return [m if n == 1 else "%s [x%d]" % (m, n) for m, n in self._viol.values()]

    def other(self, event):
        self.received["other"][str(event)[:40]] += 1

    # microphone ------------------------------------------------------------------------------
    async def mic(self):
        """Sends one chunk per slot of a monotonic schedule: queued caller audio, else silence.
        Missed slots (a pause, a stall) are skipped, never bunched; caller audio is never
        dropped."""
        base = time.monotonic()
        k = 0
        try:
            while not self.stopping and not self.closed.is_set():
                target = base + k * self.chunk_s
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.1:
                    k = int((time.monotonic() - base) / self.chunk_s)
                if self.stopping or self.closed.is_set():
                    break
                k += 1
                if self.mic_paused:
                    continue
                item = self.mic_queue.popleft() if self.mic_queue else None
                payload = self.silence if item is None else item[0].chunks[item[1]]
                t = self.now()
                if not await self.provider.send_audio(payload):
                    break
                if item is not None:
                    utt, idx = item
                    utt.sent[idx] = t
                    if idx == utt.limit - 1:
                        utt.done.set()
        finally:
            for utt, _ in list(self.mic_queue):
                utt.done.set()

    async def say(self, utt, chunks=None):
        """Queues the clip (or its first `chunks` chunks) and waits until it has been sent."""
        utt.limit = len(utt.chunks) if chunks is None else chunks
        utt.done = asyncio.Event()
        for i in range(utt.limit):
            self.mic_queue.append((utt, i))
        waiter = asyncio.ensure_future(utt.done.wait())
        closer = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        closer.cancel()
        self.mic_queue = collections.deque(x for x in self.mic_queue if x[0] is not utt)

    # phone -----------------------------------------------------------------------------------
    async def on_audio(self, t, samples):
        self.received["media"] += 1
        if len(samples) == 0:
            return
        start = max(t, self.play_end)
        self.play_end = start + len(samples) / float(self.rate)
        self.arrivals.append((t, samples))
        self.arrival_times.append(t)

    async def on_mark(self, t, name):
        self.received["marks"] += 1
        self.marks["sent_by_server"] += 1
        self.pending_marks.append((max(t, self.play_end), name))
        self.mark_wake.set()

    async def on_clear(self, t):
        self.received["clear"] += 1
        self.clears.append(t)
        self.dropped_by_clear_s += max(0.0, self.play_end - t)
        self.play_end = t
        pending = list(self.pending_marks)
        self.pending_marks.clear()
        await self.provider.after_clear([name for _, name in pending])
        self.mark_wake.set()

    async def marks_loop(self):
        """Echoes each pending mark when the audio before it has been played."""
        while not self.closed.is_set():
            timeout = None
            if self.pending_marks:
                due, name = self.pending_marks[0]
                delay = due - self.now()
                if delay <= 0:
                    self.pending_marks.popleft()
                    if not self.stopping:
                        await self.provider.echo_mark(name)
                        self.marks["echoed_played"] += 1
                    continue
                timeout = delay
            self.mark_wake.clear()
            try:
                await asyncio.wait_for(self.mark_wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def playing(self):
        return self.now() < self.play_end

    def first_arrival_after(self, t):
        i = bisect.bisect_left(self.arrival_times, t)
        return self.arrival_times[i] if i < len(self.arrival_times) else None

    def last_arrival(self):
        return self.arrival_times[-1] if self.arrival_times else None

    def reply_finished_after(self, ref):
        """A reply started after `ref`, has been played out and no audio came for a while."""
        if self.first_arrival_after(ref) is None:
            return False
        now = self.now()
        return (now - self.last_arrival() >= REPLY_QUIET_S and now >= self.play_end
                and not self.pending_marks)

    async def wait_until(self, pred, timeout):
        """True once pred() holds; False at the timeout or when the connection closed."""
        end = time.monotonic() + max(0.0, timeout)
        while True:
            if pred():
                return True
            if self.closed.is_set() or time.monotonic() >= end:
                return False
            await asyncio.sleep(0.02)

    async def wait_closed(self, timeout):
        try:
            await asyncio.wait_for(self.closed.wait(), max(0.0, timeout))
            return True
        except asyncio.TimeoutError:
            return False

    def record_close(self, by, code=None, reason=None):
        if self.closed.is_set():
            return
        self.close_t = self.now()
        self.close["by"] = by
        self.close["code"] = code
        self.close["reason"] = reason
        if self.last_send_t is not None:
            self.close["after_last_send_ms"] = ms(self.close_t - self.last_send_t)
        self.closed.set()
        self.mark_wake.set()

    # results ---------------------------------------------------------------------------------
    def segments(self, gap=REPLY_GAP_S):
        segs = []
        for t, samples in self.arrivals:
            if not segs or t - segs[-1][-1][0] >= gap:
                segs.append([])
            segs[-1].append((t, samples))
        return segs

    def replies(self, save_dir):
        out = []
        for n, seg in enumerate(self.segments(), start=1):
            audio = array.array("h")
            for _, s in seg:
                audio.extend(s)
            r = rms(audio)
            saved = None
            if save_dir:
                os.makedirs(save_dir, exist_ok=True)
                saved = os.path.abspath(os.path.join(save_dir, "reply_%d.wav" % n))
                write_wav(saved, audio, self.rate)
            audio_s = len(audio) / float(self.rate)
            nr = noise_ratio(audio)
            if audio_s >= 0.3 and r > 32768.0 * 10 ** (-40 / 20.0) and nr > 1.5:
                self.violation("noise%d" % n,
                               "reply %d sounds like broadband noise (difference/energy ratio "
                               "%.2f): wrong codec or byte order?" % (n, nr))
            out.append({"first_audio_s": r3(seg[0][0]), "last_audio_s": r3(seg[-1][0]),
                        "audio_s": r3(audio_s), "rms_dbfs": dbfs(r), "messages": len(seg),
                        "saved": saved})
        return out

    def pacing(self):
        iv = []
        for seg in self.segments():
            iv.extend((b[0] - a[0]) * 1000.0 for a, b in zip(seg, seg[1:]))
        if not iv:
            return None
        iv.sort()
        rnd = lambda x: None if x is None else round(x, 2)  # noqa: E731
        return {"frames": len(iv) + len(self.segments()), "interval_ms_p5": rnd(percentile(iv, 5)),
                "p50": rnd(percentile(iv, 50)), "p95": rnd(percentile(iv, 95)),
                "mean": rnd(sum(iv) / len(iv)), "max": rnd(iv[-1])}

    def utterance_report(self, utt):
        se = utt.speech_end
        fa = self.first_arrival_after(se) if se is not None else None
        new = None
        if se is not None:
            for seg in self.segments():
                if seg[0][0] >= se:
                    new = seg[0][0]
                    break
        return {"wav": utt.path, "sent_start_s": r3(utt.sent_start), "sent_end_s": r3(utt.sent_end),
                "speech_start_s": r3(utt.speech_start), "speech_end_s": r3(se),
                "speech_threshold_dbfs": dbfs(utt.threshold),
                "partial": utt.limit < len(utt.chunks),
                "first_reply_audio_ms": None if fa is None else ms(fa - se),
                "first_new_reply_ms": None if new is None else ms(new - se)}


# --------------------------------------------------------------------------------------------
# Providers
# --------------------------------------------------------------------------------------------

def b64decode_strict(s):
    if not isinstance(s, str):
        raise ValueError("not a string")
    return base64.b64decode(s.encode("ascii"), validate=True)


def hexid(n):
    return "".join(random.choice("0123456789abcdef") for _ in range(n))


class Provider:
    """What every provider does (see the comment at the end of the class)."""

    name = ""
    chunk_ms = 20

    def __init__(self, args, session):
        self.args = args
        self.s = session
        self.rate = 8000
        self.mulaw = False
        self.stream_id = None
        self.params = collections.OrderedDict()
        for p in args.param or []:
            k, v = p.split("=", 1)
            self.params[k] = v

    @property
    def chunk_samples(self):
        return self.rate * self.chunk_ms // 1000

    def encode(self, samples):
        return mulaw_encode(samples) if self.mulaw else pcm16_to_bytes(samples)

    def decode(self, data):
        return mulaw_decode(data) if self.mulaw else pcm16_from_bytes(data)

    # to be provided: open, start, send_audio, send_dtmf, hangup, client_close, recv_loop,
    # echo_mark, after_clear, probe_malformed, probe_unknown, probe_wrong_rate


class WsProvider(Provider):
    user_agent = None

    def __init__(self, args, session):
        super().__init__(args, session)
        self.ws = None
        self.lock = asyncio.Lock()
        self.seq = 0
        self.chunk = 0
        self.media_t0 = None

    def next_seq(self):
        self.seq += 1
        return self.seq

    async def after_clear(self, names):
        """Like Twilio (and, by default, Exotel): a clear that empties the buffer sends back every
        pending mark at once. Plivo overrides this."""
        for name in names:
            if not self.s.stopping:
                await self.echo_mark(name)
                self.s.marks["echoed_cleared"] += 1

    async def mark_or_clear(self, obj, ev, t, sid_field):
        """`mark` and `clear`, which Twilio and Exotel accept in the same shape (with their own
        stream-id field); False for any other event."""
        if ev == "mark":
            self.check_stream(obj, sid_field)
            name = self.mark_name(obj, ["mark", "name"])
            if name is not None:
                await self.s.on_mark(t, name)
            return True
        if ev == "clear":
            self.check_stream(obj, sid_field)
            await self.s.on_clear(t)
            return True
        return False

    async def open(self):
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, InvalidHandshake, InvalidURI
        headers = []
        for h in self.args.header or []:
            name, _, value = h.partition(":")
            headers.append((name.strip(), value.strip()))
        try:
            self.ws = await connect(self.args.url, additional_headers=headers or None,
                                    user_agent_header=self.user_agent, compression=None,
                                    proxy=None, open_timeout=10, ping_interval=None,
                                    close_timeout=3, max_size=4 * 1024 * 1024)
        except InvalidStatus as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            raise ClientError("handshake refused: HTTP %s" % status, http_status=status)
        except (InvalidHandshake, InvalidURI) as e:
            raise ClientError("websocket handshake failed: %s" % e)
        except (OSError, asyncio.TimeoutError) as e:
            raise ClientError("cannot connect to %s: %s" % (self.args.url, e or type(e).__name__))

    async def send_text(self, text):
        from websockets.exceptions import ConnectionClosed
        if self.s.closed.is_set():
            return False
        try:
            async with self.lock:
                await self.ws.send(text)
            self.s.sent()
            return True
        except ConnectionClosed:
            return False

    async def send_json(self, obj):
        return await self.send_text(json.dumps(obj))

    def media_clock(self):
        if self.media_t0 is None:
            self.media_t0 = time.monotonic()
        return str(int((time.monotonic() - self.media_t0) * 1000))

    async def client_close(self):
        self.s.client_closing = True
        try:
            await self.ws.close(1000)
        except Exception:
            pass

    async def recv_loop(self):
        from websockets.exceptions import ConnectionClosed
        try:
            async for msg in self.ws:
                t = self.s.now()
                if isinstance(msg, bytes):
                    self.s.violation("binary", "server sent a binary frame (%d bytes); %s "
                                     "streams are JSON text" % (len(msg), self.name))
                    self.s.other("<binary>")
                    continue
                try:
                    obj = json.loads(msg)
                except ValueError:
                    self.s.violation("json", "server sent text that is not JSON: %r" % msg[:80])
                    self.s.other("<not json>")
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
                    self.s.violation("noevent", "server message without a string `event`: %r"
                                     % msg[:80])
                    self.s.other("<no event>")
                    continue
                await self.handle(t, obj)
        except ConnectionClosed:
            pass
        except Exception as e:  # a bug here must not hang the run
            self.s.violation("recv", "client receive error: %r" % e)
        finally:
            self._record_close()

    def _record_close(self):
        proto = getattr(self.ws, "protocol", None)
        rcvd = getattr(proto, "close_rcvd", None)
        sent = getattr(proto, "close_sent", None)
        rts = getattr(proto, "close_rcvd_then_sent", None)
        if rcvd is not None and (sent is None or rts):
            by = "server"
        elif sent is not None and (rcvd is None or rts is False):
            by = "client"
        else:
            by = "client" if self.s.client_closing else "server"
        self.s.record_close(by, None if rcvd is None else rcvd.code,
                            None if rcvd is None else rcvd.reason)

    def check_stream(self, obj, key):
        got = obj.get(key)
        if got != self.stream_id:
            self.s.violation("sid-" + obj["event"], "%s `%s` is %r, not the stream's %r"
                             % (obj["event"], key, got, self.stream_id))

    def media_bytes(self, obj, container="media"):
        media = obj.get(container)
        if not isinstance(media, dict):
            self.s.violation("nomedia", "%s without a `%s` object" % (obj["event"], container))
            return None
        try:
            data = b64decode_strict(media.get("payload"))
        except (ValueError, binascii.Error):
            self.s.violation("b64", "%s payload is not valid base64" % obj["event"])
            return None
        if not data:
            self.s.violation("empty", "%s with an empty payload" % obj["event"])
        return data

    def mark_name(self, obj, path):
        cur = obj
        for key in path:
            cur = cur.get(key) if isinstance(cur, dict) else None
        if not isinstance(cur, str):
            self.s.violation("markname", "%s without a string %s" % (obj["event"], ".".join(path)))
            return None
        return cur

    async def hangup(self):
        await self.send_json(self.stop_message())

    async def probe_malformed(self):
        steps = []
        for text in (MALFORMED_MEDIA, NOT_JSON):
            t = self.s.now()
            steps.append({"sent": text, "sent_s": r3(t), "delivered": await self.send_text(text)})
        return steps

    async def probe_unknown(self):
        t = self.s.now()
        ok = await self.send_json({"event": "bogus"})
        return [{"sent": '{"event": "bogus"}', "sent_s": r3(t), "delivered": ok}]

    async def probe_wrong_rate(self):
        return [{"sent": "start with an unsupported rate"}]


class Twilio(WsProvider):
    """Twilio Media Streams, bidirectional (<Connect><Stream>)."""

    name = "twilio"
    chunk_ms = 20
    user_agent = "Twilio.TmeWs/1.0"

    def __init__(self, args, session):
        super().__init__(args, session)
        self.mulaw = True
        self.stream_id = "MZ" + hexid(32)
        self.call_sid = "CA" + hexid(32)
        self.account_sid = "AC" + hexid(32)

    def seqs(self):
        return str(self.next_seq())

    async def start(self, send_start=True, wrong_rate=False):
        await self.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        if not send_start:
            return
        await self.send_json({
            "event": "start", "sequenceNumber": self.seqs(),
            "start": {"accountSid": self.account_sid, "streamSid": self.stream_id,
                      "callSid": self.call_sid, "tracks": ["inbound"],
                      "customParameters": dict(self.params),
                      "mediaFormat": {"encoding": "audio/x-mulaw",
                                      "sampleRate": 16000 if wrong_rate else 8000,
                                      "channels": 1}},
            "streamSid": self.stream_id})

    async def send_audio(self, payload):
        self.chunk += 1
        return await self.send_json({
            "event": "media", "sequenceNumber": self.seqs(),
            "media": {"track": "inbound", "chunk": str(self.chunk),
                      "timestamp": self.media_clock(),
                      "payload": base64.b64encode(payload).decode("ascii")},
            "streamSid": self.stream_id})

    async def send_dtmf(self, digit):
        return await self.send_json({"event": "dtmf", "streamSid": self.stream_id,
                                     "sequenceNumber": self.seqs(),
                                     "dtmf": {"track": "inbound_track", "digit": digit}})

    def stop_message(self):
        return {"event": "stop", "sequenceNumber": self.seqs(), "streamSid": self.stream_id,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}}

    async def echo_mark(self, name):
        await self.send_json({"event": "mark", "sequenceNumber": self.seqs(),
                              "streamSid": self.stream_id, "mark": {"name": name}})

    async def handle(self, t, obj):
        ev = obj["event"]
        if ev == "media":
            self.check_stream(obj, "streamSid")
            data = self.media_bytes(obj)
            if data is not None:
                await self.s.on_audio(t, self.decode(data))
        elif not await self.mark_or_clear(obj, ev, t, "streamSid"):
            self.s.other(ev)
            self.s.violation("ev-" + ev[:20], "Twilio accepts media, mark and clear; the server "
                             "sent `%s`" % ev[:40])


class Exotel(WsProvider):
    """Exotel Voicebot applet (AgentStream), bidirectional."""

    name = "exotel"
    chunk_ms = 100          # Exotel streams raw PCM every ~100 ms
    MIN_CHUNK, MAX_CHUNK, QUANTUM = 3200, 100000, 320

    def __init__(self, args, session):
        super().__init__(args, session)
        self.rate = args.rate
        self.stream_id = hexid(32)
        self.call_sid = hexid(32)
        self.account_sid = "vaaktest" + hexid(4)

    def seqs(self):
        return str(self.next_seq())

    async def start(self, send_start=True, wrong_rate=False):
        await self.send_json({"event": "connected"})
        if not send_start:
            return
        await self.send_json({
            "event": "start", "sequence_number": self.seqs(), "stream_sid": self.stream_id,
            "start": {"stream_sid": self.stream_id, "call_sid": self.call_sid,
                      "account_sid": self.account_sid, "from": "+910000000000",
                      "to": "+910000000001", "custom_parameters": dict(self.params),
                      "media_format": {"encoding": "audio/x-raw",
                                       "sample_rate": "44100" if wrong_rate else str(self.rate),
                                       "bit_rate": "16"}}})

    async def send_audio(self, payload):
        self.chunk += 1
        return await self.send_json({
            "event": "media", "sequence_number": self.seqs(), "stream_sid": self.stream_id,
            "media": {"chunk": str(self.chunk), "timestamp": self.media_clock(),
                      "payload": base64.b64encode(payload).decode("ascii")}})

    async def send_dtmf(self, digit):
        return await self.send_json({"event": "dtmf", "sequence_number": self.seqs(),
                                     "stream_sid": self.stream_id,
                                     "dtmf": {"digit": digit, "duration": "250"}})

    def stop_message(self):
        return {"event": "stop", "sequence_number": self.seqs(), "stream_sid": self.stream_id,
                "stop": {"call_sid": self.call_sid, "account_sid": self.account_sid,
                         "reason": "callended"}}

    async def echo_mark(self, name):
        await self.send_json({"event": "mark", "sequence_number": self.seqs(),
                              "stream_sid": self.stream_id, "mark": {"name": name}})

    async def handle(self, t, obj):
        ev = obj["event"]
        if ev == "media":
            self.check_stream(obj, "stream_sid")
            data = self.media_bytes(obj)
            if data is not None:
                n = len(data)
                if n % self.QUANTUM:
                    self.s.violation("chunkq", "Exotel media chunk of %d bytes is not a multiple "
                                     "of %d" % (n, self.QUANTUM))
                if n < self.MIN_CHUNK:
                    self.s.violation("chunkmin", "Exotel media chunk of %d bytes is below the "
                                     "3.2 kB minimum" % n)
                if n > self.MAX_CHUNK:
                    self.s.violation("chunkmax", "Exotel media chunk of %d bytes is above the "
                                     "100 kB maximum" % n)
                await self.s.on_audio(t, self.decode(data))
        elif not await self.mark_or_clear(obj, ev, t, "stream_sid"):
            self.s.other(ev)
            self.s.violation("ev-" + ev[:20], "Exotel accepts media, mark and clear; the server "
                             "sent `%s`" % ev[:40])


class Plivo(WsProvider):
    """Plivo Audio Stream, bidirectional (<Stream bidirectional="true">)."""

    name = "plivo"
    chunk_ms = 20

    def __init__(self, args, session):
        super().__init__(args, session)
        self.rate = args.rate
        self.mulaw = args.encoding == "mulaw"
        self.content_type = "audio/x-mulaw" if self.mulaw else "audio/x-l16"
        self.stream_id = str(uuid.uuid4())
        self.call_id = str(uuid.uuid4())
        self.account_id = "MA" + "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789")
                                         for _ in range(18))
        self.extra_headers = ";".join("%s=%s" % kv for kv in self.params.items())

    async def start(self, send_start=True, wrong_rate=False):
        if not send_start:
            return
        msg = {"event": "start", "sequenceNumber": self.next_seq(),
               "start": {"callId": self.call_id, "streamId": self.stream_id,
                         "accountId": self.account_id, "tracks": ["inbound"],
                         "mediaFormat": {"encoding": "audio/x-l16" if wrong_rate
                                         else self.content_type,
                                         "sampleRate": 44100 if wrong_rate else self.rate}},
               "extra_headers": self.extra_headers}
        await self.send_json(msg)

    async def send_audio(self, payload):
        self.chunk += 1
        return await self.send_json({
            "event": "media", "sequenceNumber": self.next_seq(), "streamId": self.stream_id,
            "media": {"track": "inbound", "timestamp": str(int(time.time() * 1000)),
                      "chunk": self.chunk, "payload": base64.b64encode(payload).decode("ascii")},
            "extra_headers": self.extra_headers})

    async def send_dtmf(self, digit):
        return await self.send_json({"event": "dtmf", "sequenceNumber": self.next_seq(),
                                     "streamId": self.stream_id,
                                     "dtmf": {"track": "inbound", "digit": digit,
                                              "timestamp": str(int(time.time() * 1000))},
                                     "extra_headers": self.extra_headers})

    async def hangup(self):
        # Plivo ends a stream by closing the socket; stop is reported over HTTP.
        await self.client_close()

    async def echo_mark(self, name):
        await self.send_json({"event": "playedStream", "sequenceNumber": self.next_seq(),
                              "streamId": self.stream_id, "name": name})

    async def after_clear(self, names):
        # playedStream is only emitted for played audio: dropped checkpoints are never reported.
        self.s.marks["dropped_by_clear"] += len(names)
        if not self.s.stopping:
            await self.send_json({"event": "clearedAudio", "sequenceNumber": self.next_seq(),
                                  "streamId": self.stream_id})

    async def handle(self, t, obj):
        ev = obj["event"]
        if ev == "playAudio":
            if "streamId" in obj:
                self.check_stream(obj, "streamId")
            media = obj.get("media")
            if isinstance(media, dict):
                ct = media.get("contentType")
                if ct != self.content_type:
                    self.s.violation("ct", "playAudio media.contentType %r, the stream is %r"
                                     % (ct, self.content_type))
                sr = media.get("sampleRate")
                try:
                    sr_ok = int(str(sr)) == self.rate and not isinstance(sr, bool)
                except ValueError:
                    sr_ok = False
                if not sr_ok:
                    self.s.violation("sr", "playAudio media.sampleRate %r, the stream is %d"
                                     % (sr, self.rate))
            data = self.media_bytes(obj)
            if data is not None:
                if not self.mulaw and len(data) % 2:
                    self.s.violation("odd", "playAudio audio/x-l16 payload of odd length %d"
                                     % len(data))
                await self.s.on_audio(t, self.decode(data))
        elif ev == "checkpoint":
            self.check_stream(obj, "streamId")
            name = self.mark_name(obj, ["name"])
            if name is not None:
                await self.s.on_mark(t, name)
        elif ev == "clearAudio":
            self.check_stream(obj, "streamId")
            await self.s.on_clear(t)
        elif ev == "sendDTMF":
            self.s.other(ev)
        else:
            self.s.other(ev)
            self.s.violation("ev-" + ev[:20], "Plivo accepts playAudio, checkpoint, clearAudio and "
                             "sendDTMF; the server sent `%s`" % ev[:40])


class AudioSocket(Provider):
    """Asterisk AudioSocket (TCP): 3-byte header, type + big-endian payload length."""

    name = "audiosocket"
    chunk_ms = 20
    HANGUP, UUID, DTMF, SLIN, ERROR = 0x00, 0x01, 0x03, 0x10, 0xFF
    FRAME_BYTES = 320

    def __init__(self, args, session):
        super().__init__(args, session)
        self.uuid = uuid.uuid4()
        self.stream_id = str(self.uuid)
        self.reader = self.writer = None
        self.lock = asyncio.Lock()

    @staticmethod
    def frame(kind, payload=b""):
        return bytes([kind]) + len(payload).to_bytes(2, "big") + payload

    async def open(self):
        host, _, port = self.args.addr.rpartition(":")
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), 10)
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            raise ClientError("cannot connect to %s: %s" % (self.args.addr, e or type(e).__name__))

    async def send_raw(self, data):
        if self.s.closed.is_set() or self.writer is None:
            return False
        try:
            async with self.lock:
                self.writer.write(data)
                await self.writer.drain()
            self.s.sent()
            return True
        except (OSError, ConnectionError):
            return False

    async def start(self, send_start=True, wrong_rate=False):
        if send_start:
            await self.send_raw(self.frame(self.UUID, self.uuid.bytes))

    async def send_uuid(self):
        return await self.send_raw(self.frame(self.UUID, self.uuid.bytes))

    async def send_audio(self, payload):
        return await self.send_raw(self.frame(self.SLIN, payload))

    async def send_dtmf(self, digit):
        return await self.send_raw(self.frame(self.DTMF, digit.encode("ascii")))

    async def hangup(self):
        await self.send_raw(self.frame(self.HANGUP))

    async def client_close(self):
        self.s.client_closing = True
        if self.writer is not None:
            try:
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except Exception:
                pass
        self.s.record_close("client")

    async def echo_mark(self, name):
        pass

    async def after_clear(self, names):
        pass

    async def recv_loop(self):
        s = self.s
        try:
            while True:
                hdr = await self.reader.readexactly(3)
                kind, n = hdr[0], int.from_bytes(hdr[1:3], "big")
                payload = await self.reader.readexactly(n) if n else b""
                t = s.now()
                if kind == self.SLIN:
                    if n != self.FRAME_BYTES:
                        s.violation("len%d" % n, "audio frame of %d bytes (20 ms of slin 8 kHz is "
                                    "%d)" % (n, self.FRAME_BYTES))
                    await s.on_audio(t, self.decode(payload))
                elif kind == self.HANGUP:
                    s.other("hangup")
                    s.close["hangup_frame"] = True
                elif kind == self.ERROR:
                    s.other("error")
                    if s.close["error_frame"] is None:
                        s.close["error_frame"] = (hdr + payload).hex()
                elif kind == self.DTMF:
                    s.other("dtmf")
                elif 0x11 <= kind <= 0x18:
                    s.other("audio_0x%02x" % kind)
                    s.violation("kind%d" % kind, "audio frame of type 0x%02x (not 8 kHz slin) "
                                "on an 8 kHz stream" % kind)
                else:
                    s.other("type_0x%02x" % kind)
                    s.violation("kind%d" % kind, "frame of type 0x%02x from the server" % kind)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                s.violation("trunc", "connection closed inside a frame (%d bytes)" % len(e.partial))
        except (OSError, ConnectionError):
            pass
        except Exception as e:
            s.violation("recv", "client receive error: %r" % e)
        finally:
            s.record_close("client" if s.client_closing else "server")

    async def probe_malformed(self):
        """An odd-length slin frame; then a frame whose header promises 320 bytes but only 160
        follow (the mic is held 2 s so nothing fills the gap), completed afterwards so the
        stream resynchronises if the server is still there."""
        s = self.s
        steps = [{"sent": "100003010203 (slin frame of odd length 3)", "sent_s": r3(s.now())}]
        await self.send_raw(self.frame(self.SLIN, b"\x01\x02\x03"))
        closed = await s.wait_closed(max(1.0, self.args.probe_wait_s / 2))
        steps[-1]["closed"] = closed
        if closed:
            return steps
        s.mic_paused = True
        async with self.lock:
            try:
                self.writer.write(bytes([self.SLIN]) + (320).to_bytes(2, "big") + bytes(160))
                await self.writer.drain()
                s.sent()
            except (OSError, ConnectionError):
                pass
        steps.append({"sent": "100140 + 160 of 320 bytes (truncated slin frame)",
                      "sent_s": r3(s.now())})
        closed = await s.wait_closed(2.0)
        steps[-1]["closed"] = closed
        if not closed:
            await self.send_raw(bytes(160))
            steps.append({"sent": "the missing 160 bytes", "sent_s": r3(s.now())})
        s.mic_paused = False
        return steps

    async def probe_unknown(self):
        await self.send_raw(self.frame(0x20))
        return [{"sent": "200000 (frame of unknown type 0x20)"}]

    async def probe_wrong_rate(self):
        await self.send_raw(self.frame(0x12, bytes(640)))
        return [{"sent": "120280 + 640 bytes (type 0x12: slin 16 kHz, 20 ms)"}]


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

async def wait_after(s, utt, final):
    """Silence after a clip: --gap-s at least; then the reply to it (if any) is let finish,
    bounded by --reply-wait-s from the speech end. After the last clip a reply is awaited."""
    a = s.args
    ref = utt.ref if utt.ref is not None else s.now()
    end_sent = utt.sent_end if utt.sent_end is not None else s.now()
    await s.wait_until(lambda: s.now() >= end_sent + a.gap_s, a.gap_s + 1)
    deadline = ref + a.reply_wait_s

    def settled():
        if s.now() >= deadline or s.reply_finished_after(ref):
            return True
        if not final and s.first_arrival_after(ref) is None:
            return True     # no reply under way: go on with the next clip
        return False
    await s.wait_until(settled, deadline - s.now() + 1)


async def play_clips(s, utts):
    for i, utt in enumerate(utts):
        if s.closed.is_set():
            return
        await s.say(utt)
        await wait_after(s, utt, final=(i == len(utts) - 1))


async def end_call(s):
    """Hang up like the provider and give the server CLOSE_WAIT_S to close."""
    p = s.provider
    h = {"sent_s": None, "closed_after_ms": None, "closed_by": None}
    if not s.closed.is_set():
        s.stopping = True
        if s.mic_task is not None:      # no caller audio after the hang-up
            await asyncio.wait({s.mic_task}, timeout=1.0)
        h["sent_s"] = r3(s.now())
        t = s.now()
        await p.hangup()
        if not await s.wait_closed(CLOSE_WAIT_S):
            await p.client_close()
            await s.wait_closed(3.0)
        elif s.close_t is not None:
            h["closed_after_ms"] = ms(s.close_t - t)
    h["closed_by"] = s.close["by"]
    return h


async def scenario_call(s, utts):
    await play_clips(s, utts)


async def scenario_barge_in(s, utts):
    first, second = utts[0], utts[1]
    await s.say(first)
    ref = first.ref if first.ref is not None else s.now()
    fa_box = {}

    def heard_enough():
        fa = s.first_arrival_after(ref)
        if fa is None:
            return False
        fa_box["fa"] = fa
        return s.now() >= fa + BARGE_AFTER_S
    triggered = await s.wait_until(heard_enough, ref + s.args.reply_wait_s - s.now())
    info = {"triggered_s": r3(s.now()), "triggered_by": "reply_audio" if triggered else "timeout",
            "reply_first_audio_s": r3(fa_box.get("fa")), "reply_playing": s.playing(),
            "speech_start_s": None, "clear_s": None, "clear_after_ms": None,
            "audio_stopped_after_ms": None, "media_after_clear": None,
            "dropped_audio_s": None, "marks_echoed_cleared": None}
    if s.closed.is_set():
        return info
    dropped0 = s.dropped_by_clear_s
    cleared0 = s.marks["echoed_cleared"] + s.marks["dropped_by_clear"]
    await s.say(second)
    bi = second.speech_start if second.speech_start is not None else second.sent_start
    info["speech_start_s"] = r3(bi)
    await wait_after(s, second, final=(len(utts) == 2))
    if bi is not None:
        start = second.sent_start
        clear = next((c for c in s.clears if c >= start), None)
        if clear is not None:
            info["clear_s"] = r3(clear)
            info["clear_after_ms"] = ms(clear - bi)
            end = second.ref if second.ref is not None else clear
            info["media_after_clear"] = sum(1 for t, _ in s.arrivals if clear < t <= end)
        # The interrupted reply: frames from before the barge-in on, while closer than 300 ms.
        times = [t for t, _ in s.arrivals]
        prev = [t for t in times if t < bi]
        if prev and bi - prev[-1] < STOP_GAP_S:
            last = prev[-1]
            for t in times[len(prev):]:
                if t - last >= STOP_GAP_S:
                    break
                last = t
            info["audio_stopped_after_ms"] = ms(last - bi)
        elif prev:
            info["audio_stopped_after_ms"] = ms(prev[-1] - bi)
    info["dropped_audio_s"] = r3(s.dropped_by_clear_s - dropped0)
    info["marks_echoed_cleared"] = (s.marks["echoed_cleared"] + s.marks["dropped_by_clear"]
                                    - cleared0)
    await play_clips(s, utts[2:])
    return info


async def scenario_dtmf(s, utts, digits):
    info = {"digits": digits, "reply_started_s": None, "sent": [], "closed_after_digit": None,
            "closed_after_ms": None}
    sent = []
    first = utts[0] if utts else None
    if first is not None:
        await s.say(first)
        ref = first.ref if first.ref is not None else s.now()
        await s.wait_until(lambda: s.first_arrival_after(ref) is not None,
                           ref + s.args.reply_wait_s - s.now())
        info["reply_started_s"] = r3(s.first_arrival_after(ref))
    for i, d in enumerate(digits):
        if s.closed.is_set():
            break
        if i:
            await s.wait_closed(DTMF_SPACING_S)
            if s.closed.is_set():
                break
        t = s.now()
        if await s.provider.send_dtmf(d):
            sent.append((d, t))
            info["sent"].append({"digit": d, "sent_s": r3(t)})
    if not s.closed.is_set() and sent:
        await s.wait_closed(max(1.0, s.args.probe_wait_s))
    if s.closed.is_set() and s.close["by"] == "server" and sent:
        before = [x for x in sent if x[1] <= s.close_t]
        if before:
            info["closed_after_digit"] = before[-1][0]
            info["closed_after_ms"] = ms(s.close_t - before[-1][1])
    if not s.closed.is_set() and first is not None:
        await wait_after(s, first, final=len(utts) == 1)
        await play_clips(s, utts[1:])
    return info


async def scenario_hangup(s, utts):
    if utts:
        await s.say(utts[0], utts[0].chunks_for(1.0, s.chunk_s))
    else:
        await asyncio.sleep(1.0)


async def scenario_probe(s, utts, kind):
    p = s.provider
    info = {"kind": kind, "sent_s": r3(s.now()), "steps": [], "closed": False,
            "closed_after_ms": None, "close_code": None, "close_reason": None,
            "error_frame": None, "events_after": {}, "continued_call": False}
    before = collections.Counter(s.received["other"])
    media0, marks0, clears0 = (s.received["media"], s.received["marks"], s.received["clear"])
    t = s.now()
    if kind == "malformed":
        info["steps"] = await p.probe_malformed()
    elif kind == "unknown_event":
        info["steps"] = await p.probe_unknown()
    elif kind == "wrong_rate":
        info["steps"] = await p.probe_wrong_rate()
    elif kind == "no_start":
        info["steps"] = [{"sent": "media before any start"}]
    await s.wait_closed(s.args.probe_wait_s)
    after = {}
    for k, n in (("media", s.received["media"] - media0), ("marks", s.received["marks"] - marks0),
                 ("clear", s.received["clear"] - clears0)):
        if n:
            after[k] = n
    for k, n in (s.received["other"] - before).items():
        after[k] = n
    info["events_after"] = after
    info["error_frame"] = s.close["error_frame"]
    if s.closed.is_set():
        info["closed"] = True
        info["closed_after_ms"] = ms(s.close_t - t)
        info["close_code"] = s.close["code"]
        info["close_reason"] = s.close["reason"]
    elif kind in ("malformed", "unknown_event") and utts:
        info["continued_call"] = True
        await play_clips(s, utts)
    return info


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def make_provider(args, s):
    return {"twilio": Twilio, "exotel": Exotel, "plivo": Plivo,
            "audiosocket": AudioSocket}[args.provider](args, s)


def base_result(args):
    return {"ok": False, "provider": args.provider, "scenario": args.scenario, "error": None,
            "http_status": None, "stream_id": None, "started_at": None, "utterances": [],
            "replies": [], "received": {"media": 0, "marks": 0, "clear": 0, "other": {}},
            "marks": None, "barge_in": None, "dtmf": None, "probe": None, "hangup": None,
            "pacing": None, "close": None, "violations": []}


async def run(args):
    res = base_result(args)
    s = Session(args)
    p = make_provider(args, s)
    s.provider = p
    s.rate = p.rate
    s.chunk_s = p.chunk_ms / 1000.0
    s.silence = p.encode(array.array("h", bytes(2 * p.chunk_samples)))
    res["stream_id"] = p.stream_id
    utts = [Utterance(w, p.rate, p.chunk_samples, p.encode) for w in (args.wav or [])]

    await p.open()
    s.begin()
    res["started_at"] = round(s.started_at, 3)
    tasks = [asyncio.ensure_future(p.recv_loop()), asyncio.ensure_future(s.marks_loop())]
    scen = args.scenario
    mic = None
    try:
        await p.start(send_start=(scen != "no_start"), wrong_rate=(scen == "wrong_rate"))
        mic = s.mic_task = asyncio.ensure_future(s.mic())
        if scen == "call":
            await scenario_call(s, utts)
        elif scen == "barge_in":
            res["barge_in"] = await scenario_barge_in(s, utts)
        elif scen == "dtmf":
            res["dtmf"] = await scenario_dtmf(s, utts, args.dtmf)
        elif scen == "hangup":
            await scenario_hangup(s, utts)
        else:
            res["probe"] = await scenario_probe(s, utts, scen)
        res["hangup"] = await end_call(s)
    finally:
        s.stopping = True
        if not s.closed.is_set():
            await p.client_close()
            await s.wait_closed(3.0)
        for t in tasks + ([mic] if mic else []):
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, *([mic] if mic else []), return_exceptions=True)

    res["utterances"] = [s.utterance_report(u) for u in utts if u.sent_start is not None]
    res["replies"] = s.replies(args.save_dir)
    if args.provider == "audiosocket":
        res["pacing"] = s.pacing()
    res["received"] = {"media": s.received["media"], "marks": s.received["marks"],
                       "clear": s.received["clear"], "other": dict(s.received["other"])}
    res["marks"] = s.marks
    res["close"] = s.close
    res["violations"] = s.violations()
    res["ok"] = not res["violations"]
    return res


class Parser(argparse.ArgumentParser):
    def error(self, message):
        emit({"ok": False, "provider": None, "scenario": None,
              "error": "usage: %s" % message}, EXIT_USAGE)


def parse_args(argv):
    ap = Parser(description="Provider-side telephony media-stream client for vaak's tests.")
    ap.add_argument("--provider", required=True, choices=PROVIDERS)
    ap.add_argument("--url")
    ap.add_argument("--addr")
    ap.add_argument("--header", action="append")
    ap.add_argument("--wav", action="append")
    ap.add_argument("--gap-s", type=float, default=4.0)
    ap.add_argument("--reply-wait-s", type=float, default=25.0)
    ap.add_argument("--rate", type=int, default=8000)
    ap.add_argument("--encoding", choices=("mulaw", "pcm16"))
    ap.add_argument("--param", action="append")
    ap.add_argument("--scenario", default="call", choices=SCENARIOS)
    ap.add_argument("--dtmf", default="")
    ap.add_argument("--save-dir")
    ap.add_argument("--timeout-s", type=float, default=120.0)
    ap.add_argument("--probe-wait-s", type=float, default=3.0)
    args = ap.parse_args(argv)
    if args.provider == "audiosocket":
        if not args.addr or ":" not in args.addr:
            ap.error("--addr HOST:PORT is required for audiosocket")
    elif not args.url:
        ap.error("--url is required for %s" % args.provider)
    for h in args.header or []:
        if ":" not in h:
            ap.error("--header wants 'Name: value', got %r" % h)
    for prm in args.param or []:
        if "=" not in prm:
            ap.error("--param wants k=v, got %r" % prm)
    if args.provider == "plivo":
        args.encoding = args.encoding or "mulaw"
        if args.rate not in (8000, 16000):
            ap.error("plivo streams at 8000 or 16000 Hz")
        if args.encoding == "mulaw" and args.rate != 8000:
            ap.error("plivo audio/x-mulaw is 8000 Hz only")
    elif args.provider == "exotel":
        if args.rate not in (8000, 16000, 24000):
            ap.error("exotel streams at 8000, 16000 or 24000 Hz")
    else:
        args.rate = 8000
    if args.encoding and args.provider != "plivo":
        ap.error("--encoding is for plivo only")
    if args.scenario == "barge_in" and len(args.wav or []) < 2:
        ap.error("barge_in needs two --wav (the first utterance and the barge-in)")
    if args.scenario == "call" and not args.wav:
        ap.error("call needs at least one --wav")
    if args.scenario == "dtmf":
        if not args.dtmf or any(c not in "0123456789*#ABCD" for c in args.dtmf):
            ap.error("dtmf needs --dtmf DIGITS from 0-9 * # A-D")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    start_watchdog(args.timeout_s, args.provider, args.scenario)
    try:
        res = asyncio.run(run(args))
    except ClientError as e:
        res = base_result(args)
        res["error"] = str(e)
        res["http_status"] = e.http_status
        emit(res, EXIT_FAIL)
    except Exception as e:  # a client bug: report it as such, never hang
        res = base_result(args)
        res["error"] = "client error: %r" % e
        emit(res, EXIT_FAIL)
    emit(res, EXIT_OK)


if __name__ == "__main__":
    main()
