//! What a session's pipeline tells its transport: the same events a gRPC stream, a WebRTC data
//! channel or the `converse` command show to the user.

use super::messages::{StageTimings, TurnId};

#[derive(Debug, Clone)]
pub enum PipelineEvent {
    SpeechStarted,
    SpeechStopped {
        turn: TurnId,
        audio_s: f32,
    },
    /// What the user said. `is_final` is false while the user speaks (the streaming
    /// recogniser's text so far) and for a speculative turn (the user paused but may go on);
    /// the final one follows when the turn is confirmed.
    Transcript {
        turn: TurnId,
        text: String,
        /// The start of `text` that will not change any more in this turn (the committed
        /// words); all of `text` in a final transcript.
        stable: String,
        language: String,
        confidence: f32,
        /// Whisper's spoken-language candidates (restricted to the configured set).
        spoken: Vec<(String, f32)>,
        is_final: bool,
    },
    /// The language chosen for a turn and why (every final turn has one).
    LanguageDecided {
        turn: TurnId,
        language: String,
        /// What detection alone said.
        detected: String,
        confidence: f32,
        /// `first`, `same`, `confident`, `repeated`, `held` or `preferred`.
        reason: &'static str,
        /// The user mixed the language with English (Hinglish and its kin).
        mixed_with_english: bool,
    },
    /// The session's language changed with this turn.
    LanguageChanged {
        turn: TurnId,
        from: String,
        to: String,
    },
    /// The user went on speaking before this turn was answered: its words are carried into the
    /// next turn, which answers them (this turn gets no reply of its own).
    TurnContinued {
        turn: TurnId,
    },
    /// Short speech over the reply that was an acknowledgement ("haan", "ok"): not a turn.
    Backchannel {
        turn: TurnId,
        text: String,
    },
    /// A caption: one clause of the reply, sent just before its audio.
    ReplyText {
        turn: TurnId,
        text: String,
    },
    ReplyAudio {
        turn: TurnId,
        samples: Vec<f32>,
        sample_rate: u32,
        /// Offset of the first sample within this turn's reply audio.
        offset_samples: u64,
    },
    TurnCompleted {
        turn: TurnId,
        reply_text: String,
        voice: String,
        language: String,
        timings: StageTimings,
    },
    /// The user spoke over the reply; `played_s` of it had been heard, and the history keeps
    /// `kept_text` of it.
    Interrupted {
        turn: TurnId,
        played_s: f32,
        kept_text: String,
    },
    /// A turn could not be answered; the session goes on.
    TurnFailed {
        turn: TurnId,
        stage: &'static str,
        message: String,
    },
    /// The input ended and no speech was heard in it at all.
    NoSpeech,
}
