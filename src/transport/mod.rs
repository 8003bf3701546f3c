//! Transports: how audio and events reach a session from outside. Each one maps its wire
//! protocol onto [`crate::session::service::SessionService`] (limits, tenants, resume) and a
//! session's pipeline; gRPC is here, WebRTC, telephony and the kiosk microphone follow.

pub mod grpc;
