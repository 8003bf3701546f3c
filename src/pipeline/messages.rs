//! The typed edges of the pipeline. Every message after VAD carries its [`Turn`], so a stage can
//! drop messages of a cancelled (stale) turn on arrival, and the turn's clock collects the
//! per-stage timestamps reported in `turn_completed`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

/// Monotonic turn number within a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TurnId(pub u64);

/// One user turn: its id, its cancellation token (child of the session's), and its clock.
#[derive(Debug)]
pub struct Turn {
    pub id: TurnId,
    pub cancel: CancellationToken,
    pub clock: TurnClock,
    /// Reply audio handed to the transport so far, in milliseconds.
    pub played_ms: AtomicU64,
}

impl Turn {
    pub fn new(id: TurnId, cancel: CancellationToken) -> Self {
        Self {
            id,
            cancel,
            clock: TurnClock::starting_now(),
            played_ms: AtomicU64::new(0),
        }
    }

    pub fn is_stale(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn add_played(&self, samples: usize, rate: u32) {
        let ms = samples as u64 * 1000 / u64::from(rate.max(1));
        self.played_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn played_s(&self) -> f32 {
        self.played_ms.load(Ordering::Relaxed) as f32 / 1000.0
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
        }
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
    pub asr_compute_s: f32,
    pub tts_rtf: Option<f32>,
}

/// Ingest → VAD: audio at the pipeline rate, mono.
#[derive(Debug)]
pub enum Ingest {
    Audio(Vec<f32>),
    /// The caller has no more audio for now: finish any utterance in progress.
    EndOfInput,
}

/// VAD → ASR: one utterance.
#[derive(Debug)]
pub struct Utterance {
    pub turn: Arc<Turn>,
    pub pcm: Vec<f32>,
}

/// ASR → language id.
#[derive(Debug)]
pub struct Transcript {
    pub turn: Arc<Turn>,
    pub text: String,
    pub spoken_language: String,
    pub spoken_prob: f32,
    pub candidates: Vec<(String, f32)>,
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
}
