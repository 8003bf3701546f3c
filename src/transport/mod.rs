//! Transports: how audio and events reach a session from outside. Each one maps its wire
//! protocol onto [`crate::session::service::SessionService`] (limits, tenants, resume) and a
//! session's pipeline: gRPC, and telephony (Twilio, Exotel, Plivo, Asterisk AudioSocket) on
//! the HTTP listener and a TCP one; WebRTC browser calls (signalling on the HTTP listener, the
//! web page at `/`); the OpenAI-compatible speech endpoints on the HTTP listener (one-off
//! recognition and synthesis, `oneoff.rs`, shared with gRPC's unary calls); the Wyoming
//! protocol for Home Assistant (its own TCP listener); the kiosk's own microphone and speaker.

pub mod auth;
pub mod codec;
pub mod grpc;
pub mod http;
pub mod kiosk;
pub mod oneoff;
pub mod openai;
pub mod telephony;
pub mod webrtc;
pub mod wyoming;

/// Sleeps until `at`, or forever when there is no deadline (a `select!` branch that is off).
pub(crate) async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Languages a caller named in a URL parameter: `hi,en`, `hi en`, `hi+en` or `hi|en`.
pub(crate) fn language_list(s: &str) -> Vec<String> {
    s.split([',', ' ', '+', '|'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
