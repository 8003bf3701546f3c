//! `[kiosk]`: the offline kiosk's audio devices, wake mode, duplex and greetings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConfigError;

pub const DEFAULT_KIOSK_GREETING_IDLE_S: u64 = 120;

pub const DEFAULT_KIOSK_DEVICE_RETRY_MS: u64 = 2_000;

/// How a kiosk hears the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wake {
    /// Always listening; the VAD finds speech.
    Vad,
    /// Listening only while talking is switched on (Enter toggles it on the terminal).
    PushToTalk,
}

/// How a kiosk keeps from hearing itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Duplex {
    /// The microphone is muted while the reply plays (and for a short tail after it).
    Half,
    /// The microphone stays open; what it hears is compared with the reply being played and
    /// passed on only when it is clearly louder than the reply's echo, so the user can still
    /// interrupt.
    EchoSuppression,
}

/// `vaak kiosk`: a microphone and a speaker on this machine, no network.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KioskConfig {
    /// Capture device name (as `vaak kiosk --list-devices` prints it); empty = the default.
    pub input_device: String,
    /// Playback device name; empty = the default.
    pub output_device: String,
    pub wake: Wake,
    pub duplex: Duplex,
    /// Greet again after this many seconds without speech (0 = greet only at start).
    pub greeting_idle_s: u64,
    /// Greeting per language (spoken in each of `pipeline.languages` that has one); languages
    /// without an entry use the built-in greeting.
    pub greetings: BTreeMap<String, String>,
    /// An unplugged or failed device is reopened this often until it is back.
    pub device_retry_ms: u64,
}

impl Default for KioskConfig {
    fn default() -> Self {
        Self {
            input_device: String::new(),
            output_device: String::new(),
            wake: Wake::Vad,
            duplex: Duplex::Half,
            greeting_idle_s: DEFAULT_KIOSK_GREETING_IDLE_S,
            greetings: BTreeMap::new(),
            device_retry_ms: DEFAULT_KIOSK_DEVICE_RETRY_MS,
        }
    }
}

impl KioskConfig {
    pub(super) fn validate(&self, served: &[String]) -> Result<(), ConfigError> {
        if let Some(lang) = self.greetings.keys().find(|l| !served.contains(l)) {
            return Err(ConfigError::Invalid(format!(
                "kiosk.greetings: `{lang}` is not in pipeline.languages"
            )));
        }
        if self.device_retry_ms < 100 {
            return Err(ConfigError::Invalid(
                "kiosk.device_retry_ms must be at least 100".into(),
            ));
        }
        Ok(())
    }
}
