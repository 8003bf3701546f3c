//! Browser calls over WebRTC. Signalling is WHIP-style on the daemon's HTTP listener: the page
//! `POST`s its SDP offer to `/whip` (authenticated like the gRPC API) and gets the answer with
//! a `Location` to `DELETE` to hang up. Media is Opus over DTLS-SRTP; a data channel carries
//! the gRPC stream's events as JSON. The page itself (`assets/web/`) is served at `/`.
//!
//! ```text
//!  browser ──Opus/RTP──► reader task ──Ingest (try_send, drop+count)──► pipeline
//!  browser ◄─Opus/RTP─── writer task (paced 20 ms) ◄──Out (bounded) ◄── call loop ◄── events
//!                                    ◄──Control::Clear (served first)
//!  browser ◄─data channel JSON────────────────────────────────────────── call loop
//! ```

pub mod call;
pub mod events;
pub mod media;
pub mod offer;
pub mod peer;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use crate::metrics::Metrics;
use crate::session::service::{AudioSource, OpenError, OpenRequest, SessionService};
use crate::transport::auth::ApiKeys;
use crate::transport::language_list;

/// Largest offer accepted (a browser's audio + data-channel offer is 2–6 kB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

const INDEX_HTML: &str = include_str!("../../../assets/web/index.html");
const APP_JS: &str = include_str!("../../../assets/web/app.js");
const CAPTURE_WORKLET_JS: &str = include_str!("../../../assets/web/capture-worklet.js");

/// The calls open now, by id, each with its hang-up token.
#[derive(Default)]
struct Calls {
    open: Mutex<HashMap<String, OpenCall>>,
}

struct OpenCall {
    tenant: String,
    hangup: CancellationToken,
}

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OpenCall>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is used as is.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes its call from [`Calls`] when the call ends (or its setup fails).
struct CallGuard {
    calls: Arc<Calls>,
    id: String,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.calls.lock().remove(&self.id);
    }
}

#[derive(Clone)]
struct WebState {
    svc: Arc<SessionService>,
    keys: ApiKeys,
    calls: Arc<Calls>,
}

/// The page at `/` and WHIP signalling at `/whip`, for the daemon's HTTP router.
pub fn routes(svc: Arc<SessionService>) -> Router {
    let cfg = &svc.backends.config;
    let page = Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/capture-worklet.js",
            get(|| async { page(CAPTURE_WORKLET_JS, "text/javascript; charset=utf-8") }),
        );
    if !cfg.webrtc.enabled {
        return page;
    }
    let state = WebState {
        keys: ApiKeys::from_config(&cfg.server),
        svc,
        calls: Arc::new(Calls::default()),
    };
    page.merge(
        Router::new()
            .route("/whip", post(offer))
            .route("/whip/{id}", delete(hang_up))
            .route("/webrtc/ice-servers", get(ice_servers))
            .layer(DefaultBodyLimit::max(MAX_OFFER_BYTES))
            .with_state(state),
    )
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A refused offer: counted, logged with its reason, answered with a plain-text reason.
fn refuse(svc: &SessionService, status: StatusCode, why: String) -> Response {
    Metrics::incr(&svc.metrics.webrtc_refused);
    warn!(status = status.as_u16(), why, "WebRTC offer refused");
    let mut resp = (status, format!("{why}\n")).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let secs = svc
            .backends
            .config
            .server
            .retry_after_ms
            .div_ceil(1000)
            .max(1);
        if let Ok(v) = secs.to_string().parse() {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

fn authenticate(st: &WebState, headers: &HeaderMap) -> Result<String, &'static str> {
    st.keys.authenticate(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        headers.get("x-api-key").map(|v| v.as_bytes()),
    )
}

/// The session a page asks for: `?languages=hi,en&preferred_language=hi&session_id=…`.
fn open_request(tenant: String, q: &BTreeMap<String, String>, defaults: &[String]) -> OpenRequest {
    OpenRequest {
        tenant,
        session_id: q.get("session_id").cloned(),
        languages: q
            .get("languages")
            .map(|l| language_list(l))
            .unwrap_or_else(|| defaults.to_vec()),
        voices: Default::default(),
        text_only: false,
        speech_rate: q
            .get("speech_rate")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0.0),
        barge_in: q.get("barge_in").is_none_or(|v| v != "false"),
        playback_acks: true,
        narrowband: false,
        preferred_language: q
            .get("preferred_language")
            .filter(|l| !l.is_empty())
            .cloned(),
        source: AudioSource::Live,
    }
}

fn open_error_status(e: &OpenError) -> StatusCode {
    match e {
        OpenError::Full { .. } | OpenError::Overloaded { .. } | OpenError::Draining => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        OpenError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        OpenError::Store(_) | OpenError::Randomness(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `POST /whip`: an SDP offer in, the answer out (201, `Location: /whip/<id>`).
async fn offer(
    State(st): State<WebState>,
    Query(query): Query<BTreeMap<String, String>>,
    ConnectInfo(peer_addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let svc = &st.svc;
    let cfg = &svc.backends.config;
    let tenant = match authenticate(&st, &headers) {
        Ok(t) => t,
        Err(why) => return refuse(svc, StatusCode::UNAUTHORIZED, why.to_string()),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/sdp") {
        return refuse(
            svc,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the offer must be sent as `Content-Type: application/sdp`, not `{content_type}`"
            ),
        );
    }
    let Ok(sdp) = std::str::from_utf8(&body) else {
        return refuse(
            svc,
            StatusCode::BAD_REQUEST,
            "the offer is not UTF-8 text".into(),
        );
    };
    let offer = match offer::check_offer(sdp) {
        Ok(o) => o,
        Err(why) => return refuse(svc, StatusCode::BAD_REQUEST, why),
    };
    // Reserve the call's place before any work, so concurrent offers cannot overshoot.
    let id = format!("{:032x}", rand::random::<u128>());
    let hangup = CancellationToken::new();
    {
        let mut open = st.calls.lock();
        if open.len() >= cfg.webrtc.max_calls as usize {
            let n = open.len();
            drop(open);
            return refuse(
                svc,
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "too many browser calls: {n} open, the limit is {} (webrtc.max_calls)",
                    cfg.webrtc.max_calls
                ),
            );
        }
        open.insert(
            id.clone(),
            OpenCall {
                tenant: tenant.clone(),
                hangup: hangup.clone(),
            },
        );
    }
    let guard = CallGuard {
        calls: Arc::clone(&st.calls),
        id: id.clone(),
    };
    let slot = match svc.admit("webrtc", &tenant) {
        Ok(s) => s,
        Err(e) => return refuse(svc, open_error_status(&e), e.to_string()),
    };
    let defaults = if cfg.webrtc.languages.is_empty() {
        &cfg.pipeline.languages
    } else {
        &cfg.webrtc.languages
    };
    let session = match svc.open(slot, open_request(tenant, &query, defaults)).await {
        Ok(s) => s,
        Err(e) => return refuse(svc, open_error_status(&e), e.to_string()),
    };
    let (peer, events, answer) = match peer::answer(&cfg.webrtc, offer).await {
        Ok(r) => r,
        Err(e @ peer::PeerError::Negotiation(_)) => {
            session.cancel.cancel();
            return refuse(svc, StatusCode::BAD_REQUEST, e.to_string());
        }
        Err(e) => {
            session.cancel.cancel();
            return refuse(svc, StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };
    Metrics::incr(&svc.metrics.webrtc_calls);
    // The call id is not logged in full: it is the hang-up capability.
    let span = info_span!("webrtc_call", call = &id[..8], %peer_addr, session = %session.id);
    info!(parent: &span, resumed = session.resumed, "browser call answered");
    let owner = Arc::clone(svc);
    owner
        .tracker()
        .spawn(call::run(Arc::clone(svc), session, peer, events, hangup, guard).instrument(span));
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, format!("/whip/{id}")),
        ],
        answer,
    )
        .into_response()
}

/// `GET /webrtc/ice-servers`: the STUN/TURN servers for the page's own `RTCPeerConnection`
/// (TURN credentials included, so only for an authenticated caller).
async fn ice_servers(State(st): State<WebState>, headers: HeaderMap) -> Response {
    if let Err(why) = authenticate(&st, &headers) {
        return refuse(&st.svc, StatusCode::UNAUTHORIZED, why.to_string());
    }
    let servers: Vec<serde_json::Value> = st
        .svc
        .backends
        .config
        .webrtc
        .ice_servers
        .iter()
        .map(|s| {
            let mut v = serde_json::json!({ "urls": s.urls });
            if let (Some(user), Some(var)) = (&s.username, &s.credential_env) {
                v["username"] = user.clone().into();
                v["credential"] = std::env::var(var).unwrap_or_default().into();
            }
            v
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::from(servers).to_string(),
    )
        .into_response()
}

/// `DELETE /whip/<id>`: hang up (the caller's own tenant only).
async fn hang_up(
    State(st): State<WebState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let tenant = match authenticate(&st, &headers) {
        Ok(t) => t,
        Err(why) => return refuse(&st.svc, StatusCode::UNAUTHORIZED, why.to_string()),
    };
    let token = st
        .calls
        .lock()
        .get(&id)
        .filter(|c| c.tenant == tenant)
        .map(|c| c.hangup.clone());
    match token {
        Some(t) => {
            t.cancel();
            (StatusCode::OK, "call ended\n").into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such call\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_parameters_choose_languages() {
        let q: BTreeMap<String, String> = [
            ("languages".to_string(), "hi,en".to_string()),
            ("preferred_language".to_string(), "hi".to_string()),
            ("barge_in".to_string(), "false".to_string()),
        ]
        .into();
        let r = open_request("t".into(), &q, &["te".to_string()]);
        assert_eq!(r.languages, vec!["hi", "en"]);
        assert_eq!(r.preferred_language.as_deref(), Some("hi"));
        assert!(!r.barge_in && r.playback_acks && !r.narrowband);
        let r = open_request("t".into(), &BTreeMap::new(), &["te".to_string()]);
        assert_eq!(r.languages, vec!["te"]);
        assert!(r.barge_in && r.preferred_language.is_none());
    }

    #[test]
    fn the_page_names_what_it_loads() {
        assert!(INDEX_HTML.contains("app.js"));
        assert!(APP_JS.contains("/whip"));
        assert!(APP_JS.contains("capture-worklet.js"));
        assert!(CAPTURE_WORKLET_JS.contains("registerProcessor"));
    }
}
