//! `[server]`: the gRPC and HTTP listeners, session limits and load-aware admission, API keys
//! (named by the environment variables that hold them) and TLS.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:50051";

pub const DEFAULT_MAX_SESSIONS: u32 = 8;

pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";

pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

pub const DEFAULT_MAX_SESSION_S: u64 = 3_600;

pub const DEFAULT_IDLE_TIMEOUT_S: u64 = 120;

pub const DEFAULT_RETRY_AFTER_MS: u64 = 2_000;

/// Load-aware admission: refuse a new conversation while the cores were saturated for more than
/// this share of the last ~10 s…
pub const DEFAULT_ADMIT_MAX_BUSY: f64 = 0.85;

/// …or while the work users wait for (transcripts, first clauses) typically queued this long.
pub const DEFAULT_ADMIT_MAX_WAIT_MS: u64 = 400;

/// …or while this many conversations are in a turn (their user speaking, or being answered);
/// 0 = one per two cores. A new conversation's load comes seconds after it is admitted, when
/// its user speaks: the turns in flight say what is coming, the CPU's recent use only what was.
pub const DEFAULT_ADMIT_MAX_TALKING: u32 = 0;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC listen address (the `vaak.v1.Vaak` API, health and reflection).
    pub grpc_listen: String,
    /// HTTP listen address: `/healthz`, `/metrics` and the telephony providers' WebSocket media
    /// streams (`/telephony/twilio`, `/telephony/exotel`, `/telephony/plivo`); empty = off.
    pub http_listen: String,
    /// Conversations open at once; one more is refused with RESOURCE_EXHAUSTED.
    pub max_sessions: u32,
    /// Largest gRPC message accepted (an audio chunk, a text turn).
    pub max_message_bytes: usize,
    /// A conversation ends after this long, whatever happens in it.
    pub max_session_s: u64,
    /// A conversation with no client message for this long ends.
    pub idle_timeout_s: u64,
    /// Sent as `retry-after-ms` when the session limit refuses a stream.
    pub retry_after_ms: u64,
    /// Load-aware admission (below `max_sessions`): while at least one conversation is open, a
    /// new one is refused when the CPU scheduler was saturated more than this share (0..=1)
    /// of the last ~10 s, so that the open ones keep their latency.
    pub admit_max_busy: f64,
    /// … or when transcripts, first clauses and next audio typically waited longer than this
    /// for the CPU (ms).
    pub admit_max_wait_ms: u64,
    /// … or when this many conversations are in a turn (0 = one per two cores).
    pub admit_max_talking: u32,
    /// API keys, each named by the environment variable that holds it. Empty = no auth
    /// (bind to loopback then).
    pub api_keys: Vec<ApiKeyConfig>,
    /// Serve TLS (rustls) with this certificate chain and key (PEM files), on the gRPC and
    /// the HTTP listener.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_listen: DEFAULT_GRPC_LISTEN.into(),
            http_listen: DEFAULT_HTTP_LISTEN.into(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_session_s: DEFAULT_MAX_SESSION_S,
            idle_timeout_s: DEFAULT_IDLE_TIMEOUT_S,
            retry_after_ms: DEFAULT_RETRY_AFTER_MS,
            admit_max_busy: DEFAULT_ADMIT_MAX_BUSY,
            admit_max_wait_ms: DEFAULT_ADMIT_MAX_WAIT_MS,
            admit_max_talking: DEFAULT_ADMIT_MAX_TALKING,
            api_keys: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who the key belongs to (sessions are visible only to their tenant).
    pub tenant: String,
    /// Environment variable holding the key.
    pub key_env: String,
    /// Conversations and one-off requests (transcriptions, syntheses) this tenant may start per
    /// minute, in bursts of up to a sixth of that; none = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A secret named by `var` (an API key, a provider's token) must be set in the environment and
/// at least 16 characters long.
pub(super) fn check_secret(what: &str, var: &str) -> Result<(), ConfigError> {
    match std::env::var(var) {
        Ok(v) if v.len() >= 16 => Ok(()),
        Ok(_) => Err(ConfigError::Invalid(format!(
            "{what}: the secret in `{var}` is shorter than 16 characters"
        ))),
        Err(_) => Err(ConfigError::Invalid(format!(
            "{what}: environment variable `{var}` is not set"
        ))),
    }
}

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.max_sessions == 0 || self.max_message_bytes < 1024 {
            return bad("server.max_sessions must be >= 1 and max_message_bytes >= 1024".into());
        }
        if !(self.admit_max_busy > 0.0 && self.admit_max_busy <= 1.0) {
            return bad(format!(
                "server.admit_max_busy {} must be in (0, 1] (1 = admit by max_sessions only)",
                self.admit_max_busy
            ));
        }
        if self.max_session_s == 0 || self.idle_timeout_s == 0 {
            return bad("server.max_session_s and server.idle_timeout_s must be > 0".into());
        }
        for k in &self.api_keys {
            if k.tenant.trim().is_empty() {
                return bad("server.api_keys: every key needs a tenant".into());
            }
            if k.requests_per_minute == Some(0) {
                return bad(format!(
                    "server.api_keys (tenant {}): requests_per_minute must be at least 1",
                    k.tenant
                ));
            }
            check_secret(
                &format!("server.api_keys (tenant {})", k.tenant),
                &k.key_env,
            )?;
        }
        if let Some(tls) = &self.tls {
            for p in [&tls.cert, &tls.key] {
                if !p.is_file() {
                    return bad(format!(
                        "server.tls: {} is not a readable file",
                        p.display()
                    ));
                }
            }
        }
        Ok(())
    }
}
