//! Transports: how audio and events reach a session from outside. Each one maps its wire
//! protocol onto [`crate::session::service::SessionService`] (limits, tenants, resume) and a
//! session's pipeline: gRPC, and telephony (Twilio, Exotel, Plivo, Asterisk AudioSocket) on
//! the HTTP listener and a TCP one; WebRTC browser calls (signalling on the HTTP listener, the
//! web page at `/`); the OpenAI-compatible speech endpoints on the HTTP listener (one-off
//! recognition and synthesis, `oneoff.rs`, shared with gRPC's unary calls); the Wyoming
//! protocol for Home Assistant (its own TCP listener); the kiosk's own microphone and speaker.
//! Every live call (gRPC `Converse`, phone, browser, kiosk) runs in one kernel, `call.rs`; each
//! of those transports supplies only its protocol, as the kernel's `Side`.

pub mod auth;
pub mod call;
pub mod codec;
pub mod events;
pub mod grpc;
pub mod http;
pub mod kiosk;
pub mod oneoff;
pub mod openai;
pub mod telephony;
pub mod webrtc;
pub mod wyoming;

/// A peer that takes nothing we write for this long has stopped reading (its TCP or HTTP/2
/// window is full): its session ends rather than hold a slot, and every stage behind it,
/// indefinitely.
pub const WRITE_STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// `write`, unless it makes no progress for [`WRITE_STALL`] (`None`: the peer stopped reading).
pub(crate) async fn unless_stalled<F: std::future::Future>(write: F) -> Option<F::Output> {
    let out = tokio::time::timeout(WRITE_STALL, write).await.ok();
    if out.is_none() {
        tracing::info!(
            stall_s = WRITE_STALL.as_secs(),
            "the peer stopped reading: ending its session"
        );
    }
    out
}

/// The TCP listeners' one accept loop step: the next connection from a peer in `allow` (any
/// peer when it is empty), or `None` once `stop` fires. A failed accept (out of descriptors)
/// is logged and retried after a pause; a peer not allowed is logged and closed. `what` and
/// `allow_key` name the listener and its allow list in the log.
pub(crate) async fn accept_allowed(
    listener: &tokio::net::TcpListener,
    allow: &[std::net::IpAddr],
    stop: &tokio_util::sync::CancellationToken,
    what: &'static str,
    allow_key: &'static str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(listener = what, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if !allow.is_empty() && !allow.contains(&peer.ip()) {
            tracing::warn!(listener = what, %peer, allow = allow_key, "connection from a peer not allowed");
            continue;
        }
        return Some((stream, peer));
    }
}

/// The addresses of an allow list (validated at start-up).
pub(crate) fn allow_list(addresses: &[String]) -> Vec<std::net::IpAddr> {
    addresses.iter().filter_map(|a| a.parse().ok()).collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_let_go_after_the_stall() {
        // A full edge to a reader that never reads (a client whose window is full).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        tx.send(1).await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(unless_stalled(tx.send(2)).await.is_none());
        assert_eq!(started.elapsed(), WRITE_STALL);
        // A slow reader that takes it within the stall: the write goes through.
        let reader = tokio::spawn(async move {
            tokio::time::sleep(WRITE_STALL / 2).await;
            let first = rx.recv().await;
            (first, rx.recv().await)
        });
        let sent = unless_stalled(tx.send(3)).await;
        assert!(sent.as_ref().is_some_and(|r| r.is_ok()), "{sent:?}");
        assert_eq!(reader.await.unwrap(), (Some(1), Some(3)));
    }
}
