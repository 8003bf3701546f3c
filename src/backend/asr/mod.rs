//! Speech recognition backends. The trait takes one utterance at the pipeline rate and returns
//! its text plus the spoken-language decision, so a remote recogniser or a per-language model
//! can replace the embedded whisper.cpp one.

pub mod whisper;

use tokio_util::sync::CancellationToken;

/// How the recogniser should choose the language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LanguageHint {
    /// Detect among these language codes (Whisper codes: `en`, `hi`, `te` …).
    DetectAmong(Vec<String>),
    /// The caller knows the language.
    Fixed(String),
}

/// One recognised utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    pub text: String,
    pub language: String,
    /// Probability of `language` after restricting detection to the allowed set (1.0 if fixed).
    pub language_prob: f32,
    /// The best three candidates, most likely first.
    pub candidates: Vec<(String, f32)>,
    pub audio_s: f32,
    pub elapsed_s: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("ASR model not found at {0}: run `vaak models fetch`")]
    Missing(std::path::PathBuf),
    #[error("cannot load the ASR model {path}: {detail}")]
    Load {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("language `{0}` is not supported by this ASR model")]
    UnsupportedLanguage(String),
    #[error("utterance too short to transcribe ({0:.2} s)")]
    TooShort(f32),
    #[error("transcription cancelled")]
    Cancelled,
    #[error("transcription failed: {0}")]
    Failed(String),
}

/// A speech recogniser. Blocking: callers run it with `spawn_blocking`.
pub trait Asr: Send + Sync {
    fn transcribe(
        &self,
        pcm_16k: &[f32],
        hint: &LanguageHint,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError>;

    /// Every decode slot is taken: optional work (partial transcripts) should be skipped.
    fn is_busy(&self) -> bool {
        false
    }
}
