//! `[telephony]`: phone calls through Twilio, Exotel, Plivo (WebSocket media streams) and
//! Asterisk AudioSocket: listeners, allowed peers, keypad hand-off and the providers' secrets.

use serde::{Deserialize, Serialize};

use super::server::check_secret;
use super::ConfigError;

pub const DEFAULT_AUDIOSOCKET_LISTEN: &str = "127.0.0.1:9092";

pub const DEFAULT_HANDOFF_DIGIT: &str = "0";

pub const DEFAULT_DTMF_TURN_MS: u64 = 2_000;

/// Phone calls through an IVR provider or Asterisk: each call is a session with the same
/// limits, memory and store as a gRPC stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelephonyConfig {
    /// Asterisk AudioSocket TCP listen address; empty = off.
    pub audiosocket_listen: String,
    /// IP addresses allowed to connect to AudioSocket (the protocol has no credentials);
    /// empty = any (keep the listener on a private address then).
    pub audiosocket_allow: Vec<String>,
    /// Languages of calls whose parameters name none; empty = `pipeline.languages`.
    pub languages: Vec<String>,
    /// Pressing this key (as the first key, not inside a number being typed) ends vaak's part
    /// of the call: the media stream closes and the provider's flow goes on to its next step
    /// (a `<Dial>` to a person, the dialplan's next priority); empty = off.
    pub handoff_digit: String,
    /// Other keys pressed become a typed user turn after `#` or this long without a key.
    pub dtmf_turn_ms: u64,
    pub twilio: ProviderConfig,
    pub exotel: ProviderConfig,
    pub plivo: ProviderConfig,
}

impl Default for TelephonyConfig {
    fn default() -> Self {
        Self {
            audiosocket_listen: DEFAULT_AUDIOSOCKET_LISTEN.into(),
            audiosocket_allow: Vec::new(),
            languages: Vec::new(),
            handoff_digit: DEFAULT_HANDOFF_DIGIT.into(),
            dtmf_turn_ms: DEFAULT_DTMF_TURN_MS,
            twilio: ProviderConfig::named("twilio"),
            exotel: ProviderConfig::named("exotel"),
            plivo: ProviderConfig::named("plivo"),
        }
    }
}

/// One provider's WebSocket endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub enabled: bool,
    /// Sessions of this provider's calls belong to this tenant.
    pub tenant: String,
    /// Environment variable holding the provider's secret (Twilio: the account's auth token,
    /// which signs every request; all: a token accepted as `?token=` or as the password of
    /// HTTP basic auth). Unset = no authentication (keep the listener on loopback then).
    pub secret_env: Option<String>,
    /// The public `wss://` base URL the provider connects to (Twilio signs the URL it used).
    pub public_url: Option<String>,
}

impl TelephonyConfig {
    /// The WebSocket providers with their path names (`/telephony/<name>`).
    pub fn providers(&self) -> [(&'static str, &ProviderConfig); 3] {
        [
            ("twilio", &self.twilio),
            ("exotel", &self.exotel),
            ("plivo", &self.plivo),
        ]
    }

    /// The languages of a call that names none: `telephony.languages`, else every served one.
    pub fn default_languages(&self, pipeline: &super::PipelineConfig) -> Vec<String> {
        if self.languages.is_empty() {
            pipeline.languages.clone()
        } else {
            self.languages.clone()
        }
    }

    pub(super) fn validate(&self, served: &[String]) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        for l in &self.languages {
            if !served.contains(l) {
                return bad(format!(
                    "telephony.languages: `{l}` is not in pipeline.languages"
                ));
            }
        }
        for ip in &self.audiosocket_allow {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return bad(format!(
                    "telephony.audiosocket_allow: `{ip}` is not an IP address"
                ));
            }
        }
        let mut digits = self.handoff_digit.chars();
        if let (Some(c), rest) = (digits.next(), digits.as_str()) {
            if !rest.is_empty() || !matches!(c, '0'..='9' | '*' | 'A'..='D') {
                return bad(format!(
                    "telephony.handoff_digit must be one key 0-9, * or A-D, not `{}`",
                    self.handoff_digit
                ));
            }
        }
        if self.dtmf_turn_ms < 200 {
            return bad("telephony.dtmf_turn_ms must be at least 200".into());
        }
        for (name, p) in self.providers() {
            if p.tenant.trim().is_empty() {
                return bad(format!("telephony.{name}.tenant must not be empty"));
            }
            if let Some(var) = p.secret_env.as_ref().filter(|_| p.enabled) {
                check_secret(&format!("telephony.{name}.secret_env"), var)?;
            }
            if let Some(u) = &p.public_url {
                if !(u.starts_with("wss://") || u.starts_with("ws://")) {
                    return bad(format!(
                        "telephony.{name}.public_url must start with wss:// or ws://"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl ProviderConfig {
    fn named(name: &str) -> Self {
        Self {
            enabled: true,
            tenant: name.into(),
            secret_env: None,
            public_url: None,
        }
    }
}
