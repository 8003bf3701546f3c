//! The one door for configuration: a TOML file deserialised into these structs (unknown keys are
//! errors), every default a named constant, validated once at start-up. Secrets never live here:
//! an API key is named by the environment variable that holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod asr;
mod compute;
mod kiosk;
mod llm;
mod pipeline;
mod server;
mod telephony;
mod tts;
mod webrtc;
mod wyoming;

pub use asr::*;
pub use compute::*;
pub use kiosk::*;
pub use llm::*;
pub use pipeline::*;
pub use server::*;
pub use telephony::*;
pub use tts::*;
pub use webrtc::*;
pub use wyoming::*;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub models: ModelsConfig,
    pub compute: ComputeConfig,
    pub server: ServerConfig,
    pub pipeline: PipelineConfig,
    pub vad: VadConfig,
    pub asr: AsrConfig,
    pub llm: LlmConfig,
    pub tts: TtsConfig,
    pub turn: TurnConfig,
    pub sessions: SessionsConfig,
    pub telephony: TelephonyConfig,
    pub kiosk: KioskConfig,
    pub webrtc: WebrtcConfig,
    pub wyoming: WyomingConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Model cache directory; empty = `$VAAK_MODELS_DIR`, else `$XDG_CACHE_HOME/vaak/models`.
    pub dir: Option<PathBuf>,
    /// Which manifest set to use: `default`, `small` or `large`.
    pub set: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            set: "default".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is invalid: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { detail, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                detail,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            detail: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The defaults as a commented TOML document (`vaak config print-default`).
    pub fn default_toml() -> String {
        let body = toml::to_string_pretty(&Config::default())
            .unwrap_or_else(|e| format!("# cannot render defaults: {e}\n"));
        format!(
            "# vaak configuration: every key below is optional and shows its default.\n\
             # Unknown keys are errors. Secrets are never written here: llm.openai.api_key_env\n\
             # names the environment variable that holds the key.\n\n{body}"
        )
    }

    /// Checks every section (each has its own validator) and what ties sections together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !["default", "small", "fast"].contains(&self.models.set.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "models.set must be default, small or fast, not `{}`",
                self.models.set
            )));
        }
        let served = &self.pipeline.languages;
        self.pipeline.validate()?;
        self.compute.validate()?;
        self.vad.validate()?;
        self.asr.validate(served)?;
        self.llm.validate()?;
        self.server.validate()?;
        self.telephony.validate(served)?;
        self.webrtc.validate(served)?;
        self.kiosk.validate(served)?;
        self.wyoming.validate()?;
        self.sessions.validate()?;
        self.turn.validate(&self.vad)?;
        self.tts.validate()?;
        Ok(())
    }

    /// Per-language map of configured voices, for display.
    pub fn languages(&self) -> BTreeMap<String, String> {
        self.pipeline
            .languages
            .iter()
            .map(|l| (l.clone(), crate::text::script::language_name(l).to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
