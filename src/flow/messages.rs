//! The typed edges of the pipeline. Every message after VAD carries its [`Turn`], so a stage can
//! drop messages of a cancelled (stale) turn on arrival, and the turn's clock collects the
//! per-stage timestamps reported in `turn_completed`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

/// Monotonic turn number within a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TurnId(pub u64);

/// One user turn: its id, its cancellation token (child of the session's), and its clock.
///
/// A turn may start speculatively (at a short pause): its reply is prepared but held back from
/// the transport until [`Turn::confirm`] (the pause became the end of the turn); if the user goes
/// on, the turn is abandoned (cancelled without ever being heard). A turn heard over a reply is
/// tentative until its transcript shows it is not a backchannel.
#[derive(Debug)]
pub struct Turn {
    pub id: TurnId,
    pub cancel: CancellationToken,
    pub clock: TurnClock,
    /// Reply audio handed to the transport so far, in milliseconds.
    pub played_ms: AtomicU64,
    /// The transport reports what was really played (telephony marks, paced frames): then
    /// that, not the time since the first audio, is what the user heard.
    playback_acks: bool,
    /// Reply audio the transport reported as played, in milliseconds.
    acked_ms: AtomicU64,
    confirmed: tokio::sync::watch::Sender<bool>,
    /// Set when the user interrupted the reply: what had been played at that moment (ms).
    interrupted_at_ms: OnceLock<u64>,
    /// Clauses handed out: (text, start ms within the reply, duration ms).
    clauses: Mutex<Vec<(String, u64, u64)>>,
    /// Heard while the assistant was answering another turn.
    pub over_reply: AtomicBool,
    /// The user's words once recognised: (text, language, confidence).
    pub user_text: OnceLock<(String, String, f32)>,
    /// The final transcript event went out (once per turn, whichever stage sees the turn
    /// confirmed first with its words known).
    final_transcript_sent: AtomicBool,
    /// A stage reported this turn failed (the event and the count happen once).
    failed: AtomicBool,
}

impl Turn {
    pub fn new(id: TurnId, cancel: CancellationToken) -> Self {
        Self::with_confirmation(id, cancel, true)
    }

    /// A turn whose reply is held until [`Turn::confirm`].
    pub fn speculative(id: TurnId, cancel: CancellationToken) -> Self {
        Self::with_confirmation(id, cancel, false)
    }

    fn with_confirmation(id: TurnId, cancel: CancellationToken, confirmed: bool) -> Self {
        Self {
            id,
            cancel,
            clock: TurnClock::starting_now(),
            played_ms: AtomicU64::new(0),
            playback_acks: false,
            acked_ms: AtomicU64::new(0),
            confirmed: tokio::sync::watch::Sender::new(confirmed),
            interrupted_at_ms: OnceLock::new(),
            clauses: Mutex::new(Vec::new()),
            over_reply: AtomicBool::new(false),
            user_text: OnceLock::new(),
            final_transcript_sent: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        }
    }

    /// True the first time it is called for this turn: that caller reports the failure.
    pub fn claim_failure(&self) -> bool {
        !self.failed.swap(true, Ordering::AcqRel)
    }

    /// True the first time it is called for this turn: that caller sends the final transcript.
    pub fn claim_final_transcript(&self) -> bool {
        !self.final_transcript_sent.swap(true, Ordering::AcqRel)
    }

    pub fn is_stale(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn is_confirmed(&self) -> bool {
        *self.confirmed.borrow()
    }

    /// The pause was the end of the turn: its reply may go out. Returns false if it already was.
    pub fn confirm(&self) -> bool {
        self.confirmed
            .send_if_modified(|c| !std::mem::replace(c, true))
    }

    /// Waits until the turn is confirmed; false if it was cancelled first.
    pub async fn wait_confirmed(&self) -> bool {
        let mut rx = self.confirmed.subscribe();
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => false,
            r = rx.wait_for(|c| *c) => r.is_ok(),
        }
    }

    pub fn add_played(&self, samples: usize, rate: u32) {
        let ms = samples as u64 * 1000 / u64::from(rate.max(1));
        self.played_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Reply audio the user has had: what was handed out, and — for live transports that pace
    /// audio in real time — no more than the time since the first audio went out.
    pub fn played_s(&self) -> f32 {
        if let Some(ms) = self.interrupted_at_ms.get() {
            return *ms as f32 / 1000.0;
        }
        self.played_now_ms() as f32 / 1000.0
    }

    /// A turn whose heard audio is what the transport reports ([`Turn::report_played`]).
    pub fn with_playback_acks(mut self, on: bool) -> Self {
        self.playback_acks = on;
        self
    }

    /// The transport's report: the first `ms` of the reply have been played to the user.
    pub fn report_played(&self, ms: u64) {
        self.acked_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn played_now_ms(&self) -> u64 {
        if self.playback_acks {
            return self.acked_ms.load(Ordering::Relaxed);
        }
        let sent = self.played_ms.load(Ordering::Relaxed);
        match self.clock.output_first_audio.get() {
            Some(first) => sent.min(first.elapsed().as_millis() as u64),
            None => 0,
        }
    }

    /// Records a clause of the reply as it is handed out.
    pub fn record_clause(&self, text: &str, start_ms: u64, duration_ms: u64) {
        self.lock_clauses()
            .push((text.to_string(), start_ms, duration_ms));
    }

    fn lock_clauses(&self) -> std::sync::MutexGuard<'_, Vec<(String, u64, u64)>> {
        // A plain Vec of clauses: a panic elsewhere cannot leave it torn.
        self.clauses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Barge-in: freezes how much was played, then cancels the turn. Returns false if the turn
    /// had already been cancelled (someone else interrupted or abandoned it).
    pub fn interrupt(&self) -> bool {
        if self.is_stale() {
            return false;
        }
        let _ = self.interrupted_at_ms.set(self.played_now_ms());
        self.cancel.cancel();
        true
    }

    pub fn was_interrupted(&self) -> bool {
        self.interrupted_at_ms.get().is_some()
    }

    /// The part of the reply the user heard: whole clauses played, and the played share of the
    /// clause in progress (by words).
    pub fn heard_text(&self) -> String {
        let played = (self.played_s() * 1000.0) as u64;
        let mut out: Vec<String> = Vec::new();
        for (text, start, dur) in self.lock_clauses().iter() {
            if *start >= played {
                break;
            }
            if start + dur <= played {
                out.push(text.clone());
                continue;
            }
            let words: Vec<&str> = text.split_whitespace().collect();
            let share = (played - start) as f64 / (*dur).max(1) as f64;
            let n = ((words.len() as f64) * share).floor() as usize;
            if n > 0 {
                out.push(words[..n].join(" "));
            }
        }
        out.join(" ")
    }
}

/// Instants at which a turn passed each stage; each is set once.
#[derive(Debug)]
pub struct TurnClock {
    /// VAD decided the user stopped speaking (or the input ended).
    pub speech_end: Instant,
    pub asr_done: OnceLock<Instant>,
    pub lang_done: OnceLock<Instant>,
    pub llm_first_token: OnceLock<Instant>,
    pub first_clause: OnceLock<Instant>,
    pub llm_done: OnceLock<Instant>,
    pub tts_first_audio: OnceLock<Instant>,
    pub output_first_audio: OnceLock<Instant>,
    /// Time this turn's jobs spent queued for the CPU scheduler (LLM prompt, TTS), µs.
    pub cpu_wait_us: AtomicU64,
}

impl TurnClock {
    pub fn starting_now() -> Self {
        Self {
            speech_end: Instant::now(),
            asr_done: OnceLock::new(),
            lang_done: OnceLock::new(),
            llm_first_token: OnceLock::new(),
            first_clause: OnceLock::new(),
            llm_done: OnceLock::new(),
            tts_first_audio: OnceLock::new(),
            output_first_audio: OnceLock::new(),
            cpu_wait_us: AtomicU64::new(0),
        }
    }

    /// Adds a wait of one of this turn's jobs for the CPU.
    pub fn add_cpu_wait(&self, waited: Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.cpu_wait_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Marks `slot` now unless it was already marked.
    pub fn mark(slot: &OnceLock<Instant>) {
        let _ = slot.set(Instant::now());
    }

    /// Durations for the turn-completed report.
    pub fn timings(&self, asr_s: f32, tts_rtf: Option<f32>) -> StageTimings {
        let since =
            |slot: &OnceLock<Instant>| slot.get().map(|t| t.duration_since(self.speech_end));
        StageTimings {
            asr: since(&self.asr_done),
            lang_id: match (self.lang_done.get(), self.asr_done.get()) {
                (Some(l), Some(a)) => Some(l.duration_since(*a)),
                _ => None,
            },
            llm_first_token: match (self.llm_first_token.get(), self.lang_done.get()) {
                (Some(f), Some(l)) => Some(f.duration_since(*l)),
                _ => None,
            },
            first_clause: since(&self.first_clause),
            tts_first_audio: match (self.tts_first_audio.get(), self.first_clause.get()) {
                (Some(t), Some(c)) => Some(t.duration_since(*c)),
                _ => None,
            },
            end_to_first_audio: since(&self.output_first_audio),
            llm_total: since(&self.llm_done),
            cpu_wait: Duration::from_micros(self.cpu_wait_us.load(Ordering::Relaxed)),
            asr_compute_s: asr_s,
            tts_rtf,
        }
    }
}

/// Per-stage latency of one turn (each measured as documented on the field).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageTimings {
    /// End of speech → transcript ready.
    pub asr: Option<Duration>,
    /// Transcript → language decided.
    pub lang_id: Option<Duration>,
    /// Language decided → first LLM token.
    pub llm_first_token: Option<Duration>,
    /// End of speech → first complete clause of the reply.
    pub first_clause: Option<Duration>,
    /// First clause → its audio synthesised.
    pub tts_first_audio: Option<Duration>,
    /// End of speech → first reply audio handed to the transport.
    pub end_to_first_audio: Option<Duration>,
    /// End of speech → LLM finished.
    pub llm_total: Option<Duration>,
    /// Time the turn's LLM prompt and TTS clauses waited for the CPU scheduler, in all.
    pub cpu_wait: Duration,
    pub asr_compute_s: f32,
    pub tts_rtf: Option<f32>,
}

/// Ingest → VAD: audio at the pipeline rate, mono.
#[derive(Debug)]
pub enum Ingest {
    Audio(Vec<f32>),
    /// A typed user turn (accessibility, chat fallback): skips VAD and ASR.
    Text(String),
    /// The caller has no more audio for now: finish any utterance in progress.
    EndOfInput,
}

/// VAD → ASR: the user's speech as it arrives (the recogniser works while the user talks), and
/// the moments a transcript is wanted.
#[derive(Debug)]
pub enum SpeechInput {
    /// Confirmed speech started. `resume`: the user goes on with a turn that was not answered
    /// yet, so its audio and words carry into this one; otherwise a new utterance begins.
    Start { resume: bool },
    /// Audio of the utterance in progress, in order; its last `trailing_silence` samples are
    /// non-speech so far.
    Audio {
        pcm: Vec<f32>,
        trailing_silence: usize,
    },
    /// A transcript of all the speech so far is wanted for `turn`: a speculative start at a
    /// pause, or the end of the utterance.
    Decide(Arc<Turn>),
    /// A typed user turn (accessibility, chat fallback): no recognition.
    Typed { turn: Arc<Turn>, text: String },
}

/// ASR → language id.
/// What the streaming recogniser has committed of the utterance still being spoken: the LLM
/// stage prefills it into the session's KV cache, so that at the end of the turn only the rest
/// of the sentence remains to be read. Sent from the first partial on, when the language is
/// known, even before any word is committed (`text` empty): the history and the language's
/// greeting are then read while the user speaks. Travels on a `watch` edge (one slot, the
/// newest replaces an unread older one: only the latest words matter).
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    pub text: String,
    pub language: String,
    /// Which utterance (the recogniser's count): the same words in a new utterance are news.
    pub utterance: u64,
}

#[derive(Debug)]
pub struct Transcript {
    pub turn: Arc<Turn>,
    pub text: String,
    /// The committed start of `text` (the streaming recogniser will not change it).
    pub stable: String,
    pub spoken_language: String,
    pub spoken_prob: f32,
    pub candidates: Vec<(String, f32)>,
    /// The recogniser kept the session's language although it heard another (hysteresis).
    pub held: bool,
    pub audio_s: f32,
    pub asr_compute_s: f32,
}

/// Language id → LLM: the user's words and the language to answer in.
#[derive(Debug)]
pub struct UserTurn {
    pub turn: Arc<Turn>,
    pub text: String,
    pub language: String,
    pub confidence: f32,
    /// The user mixed the language with English: answer in the same register.
    pub mixed_with_english: bool,
    pub asr_compute_s: f32,
}

/// LLM → TTS: one clause of the reply (`last` closes the reply; its text may be empty).
#[derive(Debug)]
pub struct ReplyText {
    pub turn: Arc<Turn>,
    pub text: String,
    pub language: String,
    pub last: bool,
    pub asr_compute_s: f32,
}

/// TTS → output: audio of one clause.
#[derive(Debug)]
pub struct ReplyAudio {
    pub turn: Arc<Turn>,
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub text: String,
    /// The voice that spoke it (e.g. `kokoro:hf_alpha`).
    pub voice: String,
    pub last: bool,
    pub asr_compute_s: f32,
    pub synth_s: f32,
    /// Length of the whole clause's audio (set on its first chunk), for what-was-heard.
    pub clause_ms: u64,
}
