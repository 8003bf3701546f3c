//! `[asr]`: speech recognition: the embedded Whisper's threads and streaming passes, per-language
//! models, spoken-language detection, and the optional remote recogniser.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::server::check_secret;
use super::ConfigError;

pub const DEFAULT_ASR_THREADS: usize = 2;

pub const DEFAULT_AUDIO_CTX_PADDING_MS: u32 = 1_000;

pub const DEFAULT_ASR_PASS_EVERY_MS: u32 = 1_000;

pub const DEFAULT_ASR_MAX_WINDOW_MS: u32 = 8_000;

/// The stream's language is decided on the first pass over at least this much audio.
pub const ASR_LID_MS: u32 = 1_500;

pub const DEFAULT_LID_SWITCH_CONFIDENCE: f32 = 0.8;

pub const DEFAULT_REMOTE_ASR_MODEL: &str = "whisper-1";

pub const DEFAULT_REMOTE_ASR_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsrConfig {
    /// A whisper.cpp ggml model file; empty = the model set's Whisper.
    pub model: Option<PathBuf>,
    pub threads: usize,
    pub audio_ctx_padding_ms: u32,
    /// 1 = greedy decoding; >1 = beam search.
    pub beam_size: u32,
    pub temperature_fallback: bool,
    /// Prompt the decoder in the language's own script.
    pub native_script_prompt: bool,
    /// While decoding a language, give no probability to tokens of other scripts (Devanagari
    /// or Urdu letters in a Telugu transcript). Latin stays allowed.
    pub suppress_foreign_scripts: bool,
    /// Hysteresis: a detected language this sure (0–1) switches the session's language at
    /// once; a less sure one only on the second turn in a row (the decoder meanwhile keeps the
    /// session's language). 0 = every turn follows detection.
    pub switch_confidence: f32,
    /// Per-language whisper.cpp ggml files (an Indic fine-tune for `hi`, …); the embedded
    /// model detects the language and answers for every other one, and if these fail.
    pub models: BTreeMap<String, PathBuf>,
    /// A remote OpenAI-compatible recogniser for some languages.
    pub remote: Option<RemoteAsrConfig>,
    /// Recognise while the user speaks (a pass every `pass_every_ms` of new speech, agreed
    /// words committed); false = one decode of the whole utterance at its end.
    pub streaming: bool,
    /// Streaming: a pass (and a partial transcript) every this much new speech, the first
    /// one once this much was heard.
    pub pass_every_ms: u32,
    /// Streaming: a window longer than this with no pause is cut at its quietest point, so a
    /// pass costs a bounded amount however long the user talks.
    pub max_window_ms: u32,
}

/// `[asr.remote]`: `POST <url>` as OpenAI's `/v1/audio/transcriptions` (multipart WAV).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteAsrConfig {
    /// The full endpoint URL, e.g. `https://api.example.com/v1/audio/transcriptions`.
    pub url: String,
    #[serde(default = "default_remote_asr_model")]
    pub model: String,
    /// Environment variable holding the bearer token (never the token itself).
    pub api_key_env: Option<String>,
    /// The languages sent there (each must be in `pipeline.languages`).
    pub languages: Vec<String>,
    #[serde(default = "default_remote_asr_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_remote_asr_model() -> String {
    DEFAULT_REMOTE_ASR_MODEL.into()
}

fn default_remote_asr_timeout_ms() -> u64 {
    DEFAULT_REMOTE_ASR_TIMEOUT_MS
}

impl AsrConfig {
    pub(super) fn validate(&self, served: &[String]) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.threads == 0 {
            return bad("thread counts must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.switch_confidence) {
            return bad("asr.switch_confidence must be within 0..1".into());
        }
        if !(250..=10_000).contains(&self.pass_every_ms)
            || !(4_000..=28_000).contains(&self.max_window_ms)
        {
            return bad(
                "asr.pass_every_ms must be within 250..10000 and asr.max_window_ms within \
                 4000..28000"
                    .into(),
            );
        }
        for (lang, path) in &self.models {
            if !served.contains(lang) {
                return bad(format!("asr.models: `{lang}` is not in pipeline.languages"));
            }
            if !path.is_file() {
                return bad(format!(
                    "asr.models.{lang}: {} is not a readable file",
                    path.display()
                ));
            }
        }
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        if !(remote.url.starts_with("http://") || remote.url.starts_with("https://")) {
            return bad(format!(
                "asr.remote.url must be an http(s) URL, not `{}`",
                remote.url
            ));
        }
        if remote.languages.is_empty() || remote.timeout_ms == 0 {
            return bad("asr.remote needs languages and a timeout_ms above 0".into());
        }
        for lang in &remote.languages {
            if !served.contains(lang) {
                return bad(format!(
                    "asr.remote.languages: `{lang}` is not in pipeline.languages"
                ));
            }
            if self.models.contains_key(lang) {
                return bad(format!(
                    "asr: `{lang}` is in both asr.models and asr.remote"
                ));
            }
        }
        if let Some(var) = &remote.api_key_env {
            check_secret("asr.remote.api_key_env", var)?;
        }
        Ok(())
    }
}

impl Default for AsrConfig {
    fn default() -> Self {
        Self {
            model: None,
            threads: DEFAULT_ASR_THREADS,
            audio_ctx_padding_ms: DEFAULT_AUDIO_CTX_PADDING_MS,
            beam_size: 1,
            temperature_fallback: false,
            native_script_prompt: true,
            suppress_foreign_scripts: true,
            switch_confidence: DEFAULT_LID_SWITCH_CONFIDENCE,
            models: BTreeMap::new(),
            remote: None,
            streaming: true,
            pass_every_ms: DEFAULT_ASR_PASS_EVERY_MS,
            max_window_ms: DEFAULT_ASR_MAX_WINDOW_MS,
        }
    }
}
