// vaak's audio taps, run on the page's audio thread. One processor class serves both taps:
//  - "mic": reports the end time of each 20 ms block of the user's voice (a block at least
//    0.12 x as loud as the loudest of the last 10 s, the rule `vaak bench latency` uses to
//    find the end of speech in a clip), so the page can time end of speech -> first reply.
//  - "reply": reports each onset of reply audio (sound after 300 ms of silence) and where the
//    sound stopped (300 ms later) and, when asked, hands over the reply's samples (tests
//    transcribe what the browser received).
// Time is the AudioContext clock (`currentTime`), shared by both taps.

const BLOCK = 960; // 20 ms at 48 kHz; other rates scale below
const SPEECH_FLOOR = 0.12;
const REPLY_SOUND = 0.003; // about -50 dBFS
const REPLY_GAP_S = 0.3;

class VaakTap extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.role = options.processorOptions.role;
    this.block = Math.round((BLOCK * sampleRate) / 48000);
    this.acc = 0;
    this.n = 0;
    this.loud = [];
    this.lastSound = -1;
    this.ended = true;
    this.recording = false;
    this.pending = [];
    this.pendingLen = 0;
    this.port.onmessage = (e) => {
      if (e.data && e.data.record !== undefined) this.recording = !!e.data.record;
    };
  }

  blockDone(rms, end) {
    if (this.role === "mic") {
      // Loudness reference: the loudest block of the last 10 s (500 blocks).
      this.loud.push(rms);
      if (this.loud.length > 500) this.loud.shift();
      const ref = Math.max(...this.loud);
      if (rms >= 0.002 && rms >= ref * SPEECH_FLOOR) this.port.postMessage({ voice: end });
    } else {
      if (rms >= REPLY_SOUND) {
        if (this.lastSound < 0 || end - this.lastSound > REPLY_GAP_S) {
          this.port.postMessage({ onset: end - this.block / sampleRate });
        }
        this.lastSound = end;
        this.ended = false;
      } else if (!this.ended && this.lastSound >= 0 && end - this.lastSound > REPLY_GAP_S) {
        // The reply went quiet: when its sound stopped (barge-in checks read this).
        this.port.postMessage({ soundEnd: this.lastSound });
        this.ended = true;
      }
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const ch = input[0];
    for (let i = 0; i < ch.length; i++) {
      this.acc += ch[i] * ch[i];
      this.n++;
      if (this.n === this.block) {
        const end = currentTime + (i + 1) / sampleRate;
        this.blockDone(Math.sqrt(this.acc / this.n), end);
        this.acc = 0;
        this.n = 0;
      }
    }
    if (this.recording) {
      this.pending.push(new Float32Array(ch));
      this.pendingLen += ch.length;
      if (this.pendingLen >= 8192) {
        const out = new Float32Array(this.pendingLen);
        let o = 0;
        for (const p of this.pending) {
          out.set(p, o);
          o += p.length;
        }
        this.pending = [];
        this.pendingLen = 0;
        this.port.postMessage({ pcm: out }, [out.buffer]);
      }
    }
    return true;
  }
}

registerProcessor("vaak-tap", VaakTap);
