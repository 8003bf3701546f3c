//! TTS configuration: which engine and voice speaks each language, and how fast.
//!
//! Part of the one config door (no engine is loaded to parse or validate it); the engines in
//! `backend::tts` read it. Defaults: Kokoro for Hindi and English,
//! espeak-ng for the other Indian languages (the only voices for them in any registry).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use super::ConfigError;

/// Default speaking speed multiplier.
pub const DEFAULT_SPEED: f32 = 1.0;
/// Slowest speed the engines accept (requests below are clamped).
pub const MIN_SPEED: f32 = 0.5;
/// Fastest speed the engines accept (requests above are clamped).
pub const MAX_SPEED: f32 = 2.0;
/// The speed a client's request asks for: 0 means `default`; anything else must be a finite
/// number in [`MIN_SPEED`]..=[`MAX_SPEED`] (returned as the error otherwise). One rule for
/// sessions and one-off syntheses.
pub fn requested_speed(asked: f32, default: f32) -> Result<f32, f32> {
    if asked == 0.0 {
        Ok(default)
    } else if asked.is_finite() && (MIN_SPEED..=MAX_SPEED).contains(&asked) {
        Ok(asked)
    } else {
        Err(asked)
    }
}

/// Default ONNX Runtime intra-op threads per TTS session.
pub const DEFAULT_ONNX_THREADS: usize = 2;
/// Default Kokoro voice for Hindi.
pub const DEFAULT_HINDI_KOKORO_VOICE: &str = "hf_alpha";
/// espeak-ng voice that phonemizes Hindi for Kokoro.
pub const DEFAULT_HINDI_ESPEAK_VOICE: &str = "hi";
/// Default Kokoro voice for English.
pub const DEFAULT_ENGLISH_KOKORO_VOICE: &str = "af_heart";
/// espeak-ng voice that phonemizes English for Kokoro.
pub const DEFAULT_ENGLISH_ESPEAK_VOICE: &str = "en-us";
/// Languages spoken by espeak-ng by default: (language code, espeak-ng voice name as
/// `espeak-ng --voices` lists it in 1.51).
pub const DEFAULT_ESPEAK_LANGUAGES: &[(&str, &str)] = &[
    ("as", "as"),
    ("bn", "bn"),
    ("gu", "gu"),
    ("kn", "kn"),
    ("ml", "ml"),
    ("mr", "mr"),
    ("ne", "ne"),
    ("or", "or"),
    ("pa", "pa"),
    ("ta", "ta"),
    ("te", "te"),
    ("ur", "ur"),
];

/// How one language is spoken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum VoiceSpec {
    /// A Kokoro-82M voice pack (`hf_alpha`, `af_heart`, … from the voices folder).
    Kokoro {
        voice: String,
        /// espeak-ng voice for the phonemes; default from the voice name's first letter
        /// (`h` → `hi`, `a` → `en-us`, `b` → `en-gb` …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        espeak_voice: Option<String>,
    },
    /// Any Piper VITS voice (`*.onnx` + `*.onnx.json`).
    Piper {
        model: PathBuf,
        /// The voice's JSON config; default `<model>.json`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<PathBuf>,
        /// Speaker id for multi-speaker voices (default 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speaker: Option<i64>,
        /// espeak-ng voice for the phonemes; default the JSON's `espeak.voice`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        espeak_voice: Option<String>,
    },
    /// espeak-ng's own formant synthesiser.
    Espeak { voice: String },
}

/// The `[tts]` section of the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TtsConfig {
    /// Language code → voice. Entries given in the config file replace the default for that
    /// language; languages not mentioned keep their default voice.
    #[serde(deserialize_with = "merge_with_default_voices")]
    pub voices: BTreeMap<String, VoiceSpec>,
    /// Speaking speed multiplier the TTS stage passes to the engines.
    pub default_speed: f32,
    /// ONNX Runtime intra-op threads for each Kokoro/Piper session.
    pub onnx_threads: usize,
    /// Some languages spoken by a remote OpenAI-compatible speech server, the language's own
    /// voice above answering when it fails or is late.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteTtsConfig>,
}

/// Default remote speech model and voice (OpenAI's names; vaak's own endpoint takes them too).
pub const DEFAULT_REMOTE_TTS_MODEL: &str = "tts-1";
pub const DEFAULT_REMOTE_TTS_VOICE: &str = "alloy";
/// A clause's audio must be back within this long, else the local voice says it.
pub const DEFAULT_REMOTE_TTS_TIMEOUT_MS: u64 = 8_000;

/// `[tts.remote]`: `POST <url>` as OpenAI's `/v1/audio/speech` (JSON in, audio out), for the
/// listed languages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteTtsConfig {
    /// The full endpoint URL, e.g. `https://tts.example.com/v1/audio/speech`.
    pub url: String,
    #[serde(default = "default_remote_tts_model")]
    pub model: String,
    /// The server's voice for every listed language, unless `voices` names one for it.
    #[serde(default = "default_remote_tts_voice")]
    pub voice: String,
    #[serde(default)]
    pub voices: BTreeMap<String, String>,
    /// Environment variable holding the bearer token (never the token itself).
    pub api_key_env: Option<String>,
    /// The languages spoken there (each keeps its own voice in `voices` as the fallback).
    pub languages: Vec<String>,
    #[serde(default = "default_remote_tts_timeout_ms")]
    pub timeout_ms: u64,
    /// `pcm` (16-bit mono at 24 kHz, as OpenAI's) or `wav` (any rate; converted).
    #[serde(default = "default_remote_tts_format")]
    pub response_format: String,
}

fn default_remote_tts_model() -> String {
    DEFAULT_REMOTE_TTS_MODEL.into()
}

fn default_remote_tts_voice() -> String {
    DEFAULT_REMOTE_TTS_VOICE.into()
}

fn default_remote_tts_timeout_ms() -> u64 {
    DEFAULT_REMOTE_TTS_TIMEOUT_MS
}

fn default_remote_tts_format() -> String {
    "pcm".into()
}

impl RemoteTtsConfig {
    /// The server's voice for `language`.
    pub fn voice_for(&self, language: &str) -> &str {
        self.voices.get(language).unwrap_or(&self.voice)
    }

    fn validate(&self, local: &BTreeMap<String, VoiceSpec>) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "remote.url must be an http(s) URL, not `{}`",
                self.url
            ));
        }
        if self.languages.is_empty() {
            return Err("remote.languages is empty".into());
        }
        if let Some(l) = self.languages.iter().find(|l| !local.contains_key(*l)) {
            return Err(format!(
                "remote.languages: `{l}` has no voice of its own in tts.voices to fall back on"
            ));
        }
        if let Some(l) = self.voices.keys().find(|l| !self.languages.contains(l)) {
            return Err(format!("remote.voices: `{l}` is not in remote.languages"));
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err(format!(
                "remote.timeout_ms {} must be 1..=60000",
                self.timeout_ms
            ));
        }
        if !["pcm", "wav"].contains(&self.response_format.as_str()) {
            return Err(format!(
                "remote.response_format `{}` must be pcm or wav",
                self.response_format
            ));
        }
        if let Some(var) = &self.api_key_env {
            super::server::check_secret("remote.api_key_env", var).map_err(|e| match e {
                ConfigError::Invalid(m) => m,
                other => other.to_string(),
            })?;
        }
        Ok(())
    }
}

impl Default for TtsConfig {
    fn default() -> Self {
        TtsConfig {
            voices: default_voices(),
            default_speed: DEFAULT_SPEED,
            onnx_threads: DEFAULT_ONNX_THREADS,
            remote: None,
        }
    }
}

/// The default language → voice map.
pub fn default_voices() -> BTreeMap<String, VoiceSpec> {
    let mut voices = BTreeMap::new();
    voices.insert(
        "hi".to_string(),
        VoiceSpec::Kokoro {
            voice: DEFAULT_HINDI_KOKORO_VOICE.to_string(),
            espeak_voice: Some(DEFAULT_HINDI_ESPEAK_VOICE.to_string()),
        },
    );
    voices.insert(
        "en".to_string(),
        VoiceSpec::Kokoro {
            voice: DEFAULT_ENGLISH_KOKORO_VOICE.to_string(),
            espeak_voice: Some(DEFAULT_ENGLISH_ESPEAK_VOICE.to_string()),
        },
    );
    for (language, voice) in DEFAULT_ESPEAK_LANGUAGES {
        voices.insert(
            language.to_string(),
            VoiceSpec::Espeak {
                voice: voice.to_string(),
            },
        );
    }
    voices
}

fn merge_with_default_voices<'de, D>(de: D) -> Result<BTreeMap<String, VoiceSpec>, D::Error>
where
    D: Deserializer<'de>,
{
    let given = BTreeMap::<String, VoiceSpec>::deserialize(de)?;
    let mut voices = default_voices();
    voices.extend(given);
    Ok(voices)
}

/// `<model>.json`, where Piper keeps a voice's config.
pub(crate) fn piper_config_path(model: &Path) -> PathBuf {
    let mut s = model.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

fn is_language_code(code: &str) -> bool {
    (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase())
}

/// A voice name that is safe to join onto a folder (no separators, no `..`).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
}

impl TtsConfig {
    /// Checks everything that can be checked without loading a model: language codes, speed,
    /// thread count, voice names, and that Piper files exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(format!("tts: {msg}")));
        if self.voices.is_empty() {
            return bad("no voices configured".into());
        }
        if !self.default_speed.is_finite() || !(MIN_SPEED..=MAX_SPEED).contains(&self.default_speed)
        {
            return bad(format!(
                "default_speed {} is outside {MIN_SPEED}..={MAX_SPEED}",
                self.default_speed
            ));
        }
        if self.onnx_threads == 0 || self.onnx_threads > 256 {
            return bad(format!(
                "onnx_threads {} must be 1..=256",
                self.onnx_threads
            ));
        }
        for (language, spec) in &self.voices {
            if !is_language_code(language) {
                return bad(format!(
                    "`{language}` is not a language code (2–3 lowercase letters, e.g. `hi`, `te`)"
                ));
            }
            let espeak_voice = match spec {
                VoiceSpec::Kokoro {
                    voice,
                    espeak_voice,
                } => {
                    if !is_plain_name(voice) {
                        return bad(format!(
                            "voices.{language}: bad Kokoro voice name `{voice}`"
                        ));
                    }
                    espeak_voice.as_deref()
                }
                VoiceSpec::Piper {
                    model,
                    config,
                    espeak_voice,
                    speaker,
                } => {
                    let json = config.clone().unwrap_or_else(|| piper_config_path(model));
                    for (what, path) in [("model", model), ("config", &json)] {
                        if !path.is_file() {
                            return bad(format!(
                                "voices.{language}: Piper {what} {} does not exist",
                                path.display()
                            ));
                        }
                    }
                    if speaker.is_some_and(|s| s < 0) {
                        return bad(format!("voices.{language}: Piper speaker must be ≥ 0"));
                    }
                    espeak_voice.as_deref()
                }
                VoiceSpec::Espeak { voice } => Some(voice.as_str()),
            };
            if let Some(v) = espeak_voice {
                if !is_plain_name(v) {
                    return bad(format!("voices.{language}: bad espeak-ng voice name `{v}`"));
                }
            }
        }
        if let Some(remote) = &self.remote {
            remote
                .validate(&self.voices)
                .map_err(|m| ConfigError::Invalid(format!("tts.{m}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let c = TtsConfig::default();
        c.validate().unwrap();
        assert_eq!(c.voices.len(), 14);
        assert_eq!(c.default_speed, DEFAULT_SPEED);
        assert_eq!(c.onnx_threads, DEFAULT_ONNX_THREADS);
    }

    #[test]
    fn empty_section_gives_defaults() {
        let c: TtsConfig = toml::from_str("").unwrap();
        assert_eq!(c, TtsConfig::default());
    }

    #[test]
    fn entries_override_defaults_per_language() {
        let c: TtsConfig = toml::from_str(
            "onnx_threads = 1\n[voices.hi]\nkind = \"kokoro\"\nvoice = \"hm_omega\"\n\
             [voices.sa]\nkind = \"espeak\"\nvoice = \"hi\"\n",
        )
        .unwrap();
        assert_eq!(
            c.voices["hi"],
            VoiceSpec::Kokoro {
                voice: "hm_omega".into(),
                espeak_voice: None
            }
        );
        assert_eq!(c.voices["sa"], VoiceSpec::Espeak { voice: "hi".into() });
        assert_eq!(c.voices["te"], VoiceSpec::Espeak { voice: "te".into() });
        assert_eq!(c.onnx_threads, 1);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_kinds_are_rejected() {
        assert!(toml::from_str::<TtsConfig>("speed = 1.0").is_err());
        assert!(toml::from_str::<TtsConfig>(
            "[voices.hi]\nkind = \"kokoro\"\nvoice = \"a\"\npitch = 1\n"
        )
        .is_err());
        assert!(
            toml::from_str::<TtsConfig>("[voices.hi]\nkind = \"festival\"\nvoice = \"a\"\n")
                .is_err()
        );
    }

    #[test]
    fn round_trips_through_toml() {
        let c = TtsConfig::default();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<TtsConfig>(&text).unwrap(), c);
    }

    #[test]
    fn validate_rejects_bad_values() {
        let mut c = TtsConfig::default();
        c.voices
            .insert("Hindi".into(), VoiceSpec::Espeak { voice: "hi".into() });
        assert!(c.validate().unwrap_err().to_string().contains("Hindi"));

        let mut c = TtsConfig::default();
        c.voices.insert(
            "te".into(),
            VoiceSpec::Piper {
                model: "/nonexistent/te_IN.onnx".into(),
                config: None,
                speaker: None,
                espeak_voice: None,
            },
        );
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.contains("/nonexistent/te_IN.onnx"), "{msg}");

        let mut c = TtsConfig::default();
        c.voices.insert(
            "hi".into(),
            VoiceSpec::Kokoro {
                voice: "../../etc/passwd".into(),
                espeak_voice: None,
            },
        );
        assert!(c.validate().is_err());

        let c = TtsConfig {
            default_speed: f32::NAN,
            ..TtsConfig::default()
        };
        assert!(c.validate().is_err());
        let c = TtsConfig {
            onnx_threads: 0,
            ..TtsConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn piper_config_defaults_to_model_json() {
        assert_eq!(
            piper_config_path(Path::new("/v/en_US-joe-medium.onnx")),
            PathBuf::from("/v/en_US-joe-medium.onnx.json")
        );
    }
}
