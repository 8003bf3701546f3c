//! What flows through a session's pipeline and what its stages share: the messages on the edges,
//! the events a transport receives, turn control, the session's language and memory, the
//! endpointer, and the settings a transport chooses. It sits below both `stages` (which use it)
//! and `pipeline` (which wires the stages), so neither depends on the other's internals.

pub mod endpoint;
pub mod events;
pub mod language;
pub mod language_id;
pub mod memory;
pub mod messages;
pub mod turns;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use events::PipelineEvent;
pub use memory::{HistorySink, SessionMemory};
pub use messages::{Ingest, TurnId};
pub use turns::TurnControl;

/// Per-session settings that transports choose.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub session_id: String,
    /// Detect among these; a single entry fixes the language.
    pub languages: Vec<String>,
    /// User speech during a reply interrupts it (live audio). Off for files.
    pub barge_in: bool,
    pub speech_rate: f32,
    /// Overrides `vad.min_silence_ms` (a file's question may hold long pauses).
    pub min_silence_ms: Option<u32>,
    /// Start answering at short pauses (live audio; `turn.speculative_pause_ms`).
    pub speculative: bool,
    /// Hand reply audio out in real time (at most `turn.output_lead_ms` ahead), so that an
    /// interruption stops what was not heard. Live transports; files go as fast as possible.
    pub pace_output: bool,
    /// Captions only, no reply audio.
    pub text_only: bool,
    /// language -> voice name chosen by the user.
    pub voices: BTreeMap<String, String>,
    /// History to continue and where to keep it; `None` = a fresh, unpersisted conversation.
    pub memory: Option<Arc<SessionMemory>>,
    /// The transport reports which reply audio was really played (telephony marks, paced
    /// frames): an interruption keeps only that in the history.
    pub playback_acks: bool,
    /// The caller's audio was 8 kHz (a phone line): VAD runs Silero's 8 kHz mode on it.
    pub narrowband: bool,
    /// The user's own language, used while detection is unsure (one of `languages`).
    pub preferred_language: Option<String>,
}

impl SessionSettings {
    /// Settings for a file or a test: no barge-in, no speculation, no pacing.
    pub fn new(session_id: impl Into<String>, languages: Vec<String>) -> Self {
        Self {
            session_id: session_id.into(),
            languages,
            barge_in: false,
            speech_rate: 1.0,
            min_silence_ms: None,
            speculative: false,
            pace_output: false,
            text_only: false,
            voices: BTreeMap::new(),
            preferred_language: None,
            memory: None,
            playback_acks: false,
            narrowband: false,
        }
    }

    /// Settings for a live conversation: barge-in, speculative starts and paced output on.
    pub fn live(session_id: impl Into<String>, languages: Vec<String>) -> Self {
        Self {
            barge_in: true,
            speculative: true,
            pace_output: true,
            ..Self::new(session_id, languages)
        }
    }
}
