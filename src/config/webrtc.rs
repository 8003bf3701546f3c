//! `[webrtc]`: browser calls over WHIP: the media address, ICE servers, call limits and the
//! Opus encoder's settings.

use serde::{Deserialize, Serialize};

use super::ConfigError;

pub const DEFAULT_WEBRTC_BIND_IP: &str = "127.0.0.1";

pub const DEFAULT_WEBRTC_MAX_CALLS: u32 = 8;

pub const DEFAULT_OPUS_COMPLEXITY: i32 = 5;

pub const DEFAULT_OPUS_BITRATE: i32 = 32_000;

pub const DEFAULT_OPUS_LOSS_PERC: i32 = 10;

/// Browser calls over WebRTC: signalling on the HTTP listener (`POST /whip`), media over
/// DTLS-SRTP on UDP, the web client at `/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcConfig {
    pub enabled: bool,
    /// Address whose UDP ports carry the media (the host candidate): this machine's address on
    /// the browsers' network; behind NAT, also name STUN/TURN servers.
    pub bind_ip: String,
    /// STUN and TURN servers offered to ICE (`stun:host:port`, `turn:host:port?transport=udp`).
    pub ice_servers: Vec<IceServerConfig>,
    /// Browser calls open at once; one more gets 503 (the session limit applies too).
    pub max_calls: u32,
    /// Languages of calls whose offer names none; empty = `pipeline.languages`.
    pub languages: Vec<String>,
    /// Opus encoder complexity of reply audio, 0..=5 (CPU per call; 5 is near 10's quality
    /// for speech).
    pub opus_complexity: i32,
    /// Reply audio bit rate (bits/s, 6000..=64000).
    pub opus_bitrate: i32,
    /// Packet loss the reply encoder plans in-band FEC for (percent, 0..=30).
    pub opus_loss_perc: i32,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind_ip: DEFAULT_WEBRTC_BIND_IP.into(),
            ice_servers: Vec::new(),
            max_calls: DEFAULT_WEBRTC_MAX_CALLS,
            languages: Vec::new(),
            opus_complexity: DEFAULT_OPUS_COMPLEXITY,
            opus_bitrate: DEFAULT_OPUS_BITRATE,
            opus_loss_perc: DEFAULT_OPUS_LOSS_PERC,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the TURN credential (never the credential itself).
    #[serde(default)]
    pub credential_env: Option<String>,
}

impl WebrtcConfig {
    pub(super) fn validate(&self, served: &[String]) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        match self.bind_ip.parse::<std::net::IpAddr>() {
            Err(_) => {
                return bad(format!(
                    "webrtc.bind_ip: `{}` is not an IP address",
                    self.bind_ip
                ))
            }
            Ok(ip) if ip.is_unspecified() => {
                return bad(format!(
                    "webrtc.bind_ip: `{ip}` is no address a browser can reach; name this \
                     machine's address on the browsers' network (or 127.0.0.1)"
                ))
            }
            Ok(_) => {}
        }
        if self.max_calls == 0 {
            return bad("webrtc.max_calls must be at least 1".into());
        }
        if !(0..=5).contains(&self.opus_complexity) {
            return bad("webrtc.opus_complexity must be within 0..=5".into());
        }
        if !(6_000..=64_000).contains(&self.opus_bitrate) {
            return bad("webrtc.opus_bitrate must be within 6000..=64000".into());
        }
        if !(0..=30).contains(&self.opus_loss_perc) {
            return bad("webrtc.opus_loss_perc must be within 0..=30".into());
        }
        for l in &self.languages {
            if !served.contains(l) {
                return bad(format!(
                    "webrtc.languages: `{l}` is not in pipeline.languages"
                ));
            }
        }
        for s in &self.ice_servers {
            if s.urls.is_empty() {
                return bad("webrtc.ice_servers: every server needs `urls`".into());
            }
            for u in &s.urls {
                let turn = u.starts_with("turn:") || u.starts_with("turns:");
                if !(turn || u.starts_with("stun:") || u.starts_with("stuns:")) {
                    return bad(format!(
                        "webrtc.ice_servers: `{u}` is not a stun:, stuns:, turn: or turns: URL"
                    ));
                }
                if turn && (s.username.is_none() || s.credential_env.is_none()) {
                    return bad(format!(
                        "webrtc.ice_servers: `{u}` needs `username` and `credential_env`"
                    ));
                }
            }
            if let Some(var) = &s.credential_env {
                if std::env::var_os(var).is_none() {
                    return bad(format!(
                        "webrtc.ice_servers: `credential_env` names `{var}`, which is not set"
                    ));
                }
            }
        }
        Ok(())
    }
}
