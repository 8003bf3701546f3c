//! How a call ended, and how each ending is told to the provider: a WebSocket close code and
//! reason, or an AudioSocket error frame.

use super::audiosocket;
use super::frames::WireError;
use crate::session::service::OpenError;

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The caller hung up or the provider stopped the stream.
    HungUp,
    /// The caller asked for a person: vaak's part ends, the provider's flow goes on.
    Handoff,
    /// The session ended on vaak's side (time limit, taken over, deleted).
    Finished(String),
    ShuttingDown,
    Busy(String),
    /// The provider sent something its protocol does not allow.
    Protocol(String),
    /// Valid protocol, but a format or parameter vaak does not serve.
    Unsupported(String),
    Internal(String),
}

impl End {
    /// WebSocket close code (RFC 6455 §7.4.1) and reason.
    pub fn close_frame(&self) -> (u16, String) {
        let (code, reason) = match self {
            End::HungUp => (1000, "call ended".to_string()),
            End::Handoff => (1000, "handoff".to_string()),
            End::Finished(m) => (1000, m.clone()),
            End::ShuttingDown => (1001, "vaak is shutting down".to_string()),
            End::Busy(m) => (1013, m.clone()),
            End::Protocol(m) => (1007, m.clone()),
            End::Unsupported(m) => (1003, m.clone()),
            End::Internal(m) => (1011, m.clone()),
        };
        // A close reason is at most 123 bytes.
        let mut reason = reason;
        while reason.len() > 123 {
            reason.pop();
        }
        (code, reason)
    }

    /// AudioSocket error code sent before closing, if the end is an error.
    pub fn audiosocket_error(&self) -> Option<u8> {
        match self {
            End::Protocol(_) | End::Unsupported(_) => Some(audiosocket::ERROR_PROTOCOL),
            End::Busy(_) | End::ShuttingDown => Some(audiosocket::ERROR_BUSY),
            End::Internal(_) => Some(audiosocket::ERROR_INTERNAL),
            _ => None,
        }
    }

    pub(super) fn from_wire(e: WireError) -> Self {
        match e {
            WireError::Format(m) => End::Unsupported(m),
            WireError::UnknownEvent(_) => End::Unsupported(e.to_string()),
            other => End::Protocol(other.to_string()),
        }
    }

    pub(super) fn from_open(e: OpenError) -> Self {
        match e {
            OpenError::Full { .. } | OpenError::Overloaded { .. } | OpenError::Draining => {
                End::Busy(e.to_string())
            }
            OpenError::Store(_) | OpenError::Randomness(_) => End::Internal(e.to_string()),
            other => End::Unsupported(other.to_string()),
        }
    }

    pub(super) fn is_error(&self) -> bool {
        matches!(
            self,
            End::Protocol(_) | End::Unsupported(_) | End::Internal(_) | End::Busy(_)
        )
    }
}
