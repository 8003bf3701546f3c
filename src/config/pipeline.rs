//! `[pipeline]`, `[vad]`, `[turn]` and `[sessions]`: the languages served, end-of-speech
//! detection, turn-taking (speculative starts, barge-in, backchannels) and how long a
//! session's history is kept.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

pub const DEFAULT_LANGUAGES: &[&str] = &[
    "en", "hi", "bn", "ta", "te", "mr", "gu", "kn", "ml", "pa", "ur",
];

pub const DEFAULT_VAD_THRESHOLD: f32 = 0.5;

pub const DEFAULT_VAD_NEG_THRESHOLD: f32 = 0.35;

pub const DEFAULT_MIN_SPEECH_MS: u32 = 250;

pub const DEFAULT_MIN_SILENCE_MS: u32 = 500;

pub const DEFAULT_SPEECH_PAD_MS: u32 = 200;

pub const DEFAULT_MAX_UTTERANCE_MS: u32 = 28_000;

pub const DEFAULT_INPUT_BUFFER_MS: u32 = 2_000;

pub const DEFAULT_SESSION_TTL_S: u64 = 1_800;

pub const DEFAULT_SPECULATIVE_PAUSE_MS: u32 = 200;

/// A pause this long ends a turn whose words sound finished (a question, a sentence).
pub const DEFAULT_FINISHED_PAUSE_MS: u32 = 300;

/// A turn whose words trail off ("and…", "मतलब") ends only after a pause this long.
pub const DEFAULT_UNFINISHED_PAUSE_MS: u32 = 1_000;

/// Longer than this, a user who stopped would think vaak did not hear them.
pub const MAX_UNFINISHED_PAUSE_MS: u32 = 3_000;

pub const DEFAULT_BARGE_IN_MIN_MS: u32 = 600;

pub const DEFAULT_OUTPUT_LEAD_MS: u32 = 400;

pub const DEFAULT_PARTIAL_EVERY_MS: u32 = 2_500;

/// Short acknowledgements that do not interrupt the assistant, per language (matched after
/// lower-casing and removing punctuation).
pub const DEFAULT_BACKCHANNELS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "ok", "okay", "hmm", "mm", "mhm", "uh huh", "yeah", "yes", "right", "i see", "sure",
        ],
    ),
    (
        "hi",
        &[
            "हाँ",
            "हां",
            "हम्म",
            "अच्छा",
            "ठीक है",
            "जी",
            "जी हाँ",
            "ओके",
            "haan",
            "han",
            "accha",
            "acha",
            "theek hai",
            "ji",
            "hmm",
            "ok",
        ],
    ),
    ("bn", &["হ্যাঁ", "আচ্ছা", "ঠিক আছে", "হুম", "ওকে"]),
    ("ta", &["ஆமா", "ஆமாம்", "சரி", "ம்ம்", "ஓகே"]),
    ("te", &["అవును", "సరే", "అలాగే", "హ్మ్", "ఓకే", "ఊ"]),
    ("mr", &["हो", "हां", "बरं", "ठीक आहे", "ओके"]),
    ("gu", &["હા", "બરાબર", "સારું", "ઓકે"]),
    ("kn", &["ಹೌದು", "ಸರಿ", "ಹ್ಮ್", "ಓಕೆ"]),
    ("ml", &["അതെ", "ശരി", "ഉം", "ഓക്കെ"]),
    ("pa", &["ਹਾਂ", "ਠੀਕ ਹੈ", "ਅੱਛਾ", "ਓਕੇ"]),
    ("ur", &["جی", "ہاں", "اچھا", "ٹھیک ہے", "اوکے"]),
];

/// Turn-taking of live conversations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// A pause this long starts answering speculatively (held until `vad.min_silence_ms`
    /// confirms the end of the turn, cancelled if the user goes on); 0 = off.
    pub speculative_pause_ms: u32,
    /// Once the speculative pause's transcript is known, a turn whose words sound finished (a
    /// question, a sentence: `text::turn_end`) ends after this much silence instead of
    /// `vad.min_silence_ms`; 0 = never shorter. Needs `speculative_pause_ms`.
    pub finished_pause_ms: u32,
    /// … and a turn that trails off on a conjunction or a filler waits this long; 0 = never
    /// longer.
    pub unfinished_pause_ms: u32,
    /// User speech over the reply must last this long to interrupt it (shorter speech is
    /// transcribed, and interrupts only if it is not a backchannel).
    pub barge_in_min_ms: u32,
    /// Live transports send reply audio at most this far ahead of real-time playback, so an
    /// interruption stops what the user has not heard yet.
    pub output_lead_ms: u32,
    /// A partial transcript of a long utterance every this much speech (it uses the CPU while
    /// the user talks, when it is otherwise idle); 0 = only at pauses.
    pub partial_every_ms: u32,
    /// language -> phrases that never interrupt ("haan", "ok" …).
    pub backchannels: BTreeMap<String, Vec<String>>,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            speculative_pause_ms: DEFAULT_SPECULATIVE_PAUSE_MS,
            finished_pause_ms: DEFAULT_FINISHED_PAUSE_MS,
            unfinished_pause_ms: DEFAULT_UNFINISHED_PAUSE_MS,
            barge_in_min_ms: DEFAULT_BARGE_IN_MIN_MS,
            output_lead_ms: DEFAULT_OUTPUT_LEAD_MS,
            partial_every_ms: DEFAULT_PARTIAL_EVERY_MS,
            backchannels: DEFAULT_BACKCHANNELS
                .iter()
                .map(|(l, w)| (l.to_string(), w.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }
}

/// Where conversations are kept so that a client can reconnect and continue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// SQLite file; empty = `$XDG_STATE_HOME/vaak/sessions.sqlite` (`~/.local/state/…`). Or a
    /// PostgreSQL URL (`postgres://user@host:5432/db`) shared by replicas; its password comes
    /// from the `PGPASSWORD` environment variable, never from this file.
    pub store: Option<PathBuf>,
    /// Keep nothing on disk (history lives only as long as the stream).
    pub in_memory: bool,
    /// A session not resumed within this long is deleted.
    pub ttl_s: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            store: None,
            in_memory: false,
            ttl_s: DEFAULT_SESSION_TTL_S,
        }
    }
}

impl SessionsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.ttl_s == 0 {
            return Err(ConfigError::Invalid("sessions.ttl_s must be > 0".into()));
        }
        if let Some(url) = self.postgres_url() {
            let parsed: postgres::Config = url.parse().map_err(|e| {
                ConfigError::Invalid(format!("sessions.store is not a PostgreSQL URL: {e}"))
            })?;
            if parsed.get_password().is_some() {
                return Err(ConfigError::Invalid(
                    "sessions.store must not hold a password; set PGPASSWORD in the environment"
                        .into(),
                ));
            }
            if self.in_memory {
                return Err(ConfigError::Invalid(
                    "sessions.in_memory and a PostgreSQL sessions.store exclude each other".into(),
                ));
            }
        }
        Ok(())
    }

    /// The PostgreSQL URL, when `store` is one.
    pub fn postgres_url(&self) -> Option<&str> {
        self.store
            .as_deref()
            .and_then(|p| p.to_str())
            .filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
    }

    pub fn store_path(&self) -> PathBuf {
        if let Some(p) = &self.store {
            return p.clone();
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("vaak").join("sessions.sqlite")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Audio the ingest edge may hold before a realtime transport starts dropping (ms).
    pub input_buffer_ms: u32,
    /// Languages the assistant understands and answers in (Whisper codes).
    pub languages: Vec<String>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            input_buffer_ms: DEFAULT_INPUT_BUFFER_MS,
            languages: DEFAULT_LANGUAGES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VadConfig {
    /// Speech probability above which a frame is speech.
    pub threshold: f32,
    /// Probability below which a frame counts towards the end of speech.
    pub neg_threshold: f32,
    /// Speech shorter than this is ignored (clicks, coughs).
    pub min_speech_ms: u32,
    /// Silence that ends an utterance.
    pub min_silence_ms: u32,
    /// Audio kept before speech starts and after it ends.
    pub speech_pad_ms: u32,
    /// An utterance is cut here (Whisper's window is 30 s).
    pub max_utterance_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_VAD_THRESHOLD,
            neg_threshold: DEFAULT_VAD_NEG_THRESHOLD,
            min_speech_ms: DEFAULT_MIN_SPEECH_MS,
            min_silence_ms: DEFAULT_MIN_SILENCE_MS,
            speech_pad_ms: DEFAULT_SPEECH_PAD_MS,
            max_utterance_ms: DEFAULT_MAX_UTTERANCE_MS,
        }
    }
}

impl PipelineConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.languages.is_empty() {
            return bad("pipeline.languages must name at least one language".into());
        }
        for l in &self.languages {
            if crate::text::script::Script::of_language(l).is_none() {
                return bad(format!("pipeline.languages: unknown language code `{l}`"));
            }
        }
        if self.input_buffer_ms < 100 {
            return bad("pipeline.input_buffer_ms must be at least 100".into());
        }
        Ok(())
    }
}

impl VadConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if !(0.0..=1.0).contains(&self.threshold) || !(0.0..=1.0).contains(&self.neg_threshold) {
            return bad("vad thresholds must be within 0..1");
        }
        if self.neg_threshold > self.threshold {
            return bad("vad.neg_threshold must not exceed vad.threshold");
        }
        if self.min_silence_ms < 100
            || self.max_utterance_ms > 30_000
            || self.max_utterance_ms < 1_000
        {
            return bad(
                "vad.min_silence_ms must be >= 100 and vad.max_utterance_ms within 1000..30000",
            );
        }
        Ok(())
    }
}

impl TurnConfig {
    pub(super) fn validate(&self, vad: &VadConfig) -> Result<(), ConfigError> {
        if self.speculative_pause_ms >= vad.min_silence_ms {
            return Err(ConfigError::Invalid(
                "turn.speculative_pause_ms must be shorter than vad.min_silence_ms (0 = off)"
                    .into(),
            ));
        }
        let finished = self.finished_pause_ms;
        if finished != 0 && (finished <= self.speculative_pause_ms || finished > vad.min_silence_ms)
        {
            return Err(ConfigError::Invalid(
                "turn.finished_pause_ms must be longer than turn.speculative_pause_ms and at most \
                 vad.min_silence_ms (0 = off)"
                    .into(),
            ));
        }
        let unfinished = self.unfinished_pause_ms;
        if unfinished != 0 && !(vad.min_silence_ms..=MAX_UNFINISHED_PAUSE_MS).contains(&unfinished)
        {
            return Err(ConfigError::Invalid(format!(
                "turn.unfinished_pause_ms must be within vad.min_silence_ms..\
                 {MAX_UNFINISHED_PAUSE_MS} (0 = off)"
            )));
        }
        Ok(())
    }
}
