//! `[wyoming]`: the Wyoming protocol server for Home Assistant (off by default): where it
//! listens and which peers may connect (the protocol has no credentials).

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WyomingConfig {
    /// TCP listen address (`127.0.0.1:10300` is Home Assistant's usual); empty = off.
    pub bind: String,
    /// IP addresses allowed to connect; empty = any (keep the listener on a private address
    /// then: Wyoming carries no credentials).
    pub allow: Vec<String>,
}

impl WyomingConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.bind.is_empty() && self.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "wyoming.bind `{}` is not an address:port",
                self.bind
            )));
        }
        if let Some(bad) = self
            .allow
            .iter()
            .find(|a| a.parse::<std::net::IpAddr>().is_err())
        {
            return Err(ConfigError::Invalid(format!(
                "wyoming.allow: `{bad}` is not an IP address"
            )));
        }
        Ok(())
    }
}
