//! Phone calls: the media streams of IVR providers (Twilio, Exotel, Plivo — WebSockets on the
//! daemon's HTTP listener) and Asterisk's AudioSocket (TCP). Each call is one session of the
//! [`SessionService`], with the limits, memory and store of a gRPC stream; its 8 kHz audio goes
//! through the shared codecs (G.711, resampling) and Silero's 8 kHz mode; replies go back at
//! the call's rate, paced, with marks telling what was played.
//!
//! ```text
//!  provider ──ws/tcp──► Reader ──Inbound──► call loop ──Ingest──► pipeline
//!  provider ◄─ws/tcp─── writer task ◄──Out (audio, bounded) ◄── call loop ◄── PipelineEvent
//!                                   ◄──Control (clear, close: served first)
//! ```

pub mod audiosocket;
pub mod busy;
pub mod call;
mod end;
pub mod exotel;
pub mod frames;
pub mod plivo;
pub mod reader;
pub mod twilio;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{info_span, warn, Instrument};

use crate::config::ProviderConfig;
use crate::session::service::SessionService;
use crate::transport::auth::constant_time_eq;
use crate::transport::{accept_allowed, allow_list};
use busy::BusyPrompts;
use call::CallSetup;
use frames::{Inbound, WireError};
use reader::Reader;
use writer::Connection;

/// Largest WebSocket message accepted (a provider's media message is a few kB).
pub const MAX_WS_MESSAGE: usize = frames::MAX_TEXT_MESSAGE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Twilio,
    Exotel,
    Plivo,
    AudioSocket,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Exotel => "exotel",
            Provider::Plivo => "plivo",
            Provider::AudioSocket => "audiosocket",
        }
    }

    fn from_path(p: &str) -> Option<Self> {
        match p {
            "twilio" => Some(Provider::Twilio),
            "exotel" => Some(Provider::Exotel),
            "plivo" => Some(Provider::Plivo),
            _ => None,
        }
    }

    /// Parses one text message of this provider's WebSocket protocol.
    pub fn parse(self, text: &str, default_rate: u32) -> Result<Inbound, WireError> {
        match self {
            Provider::Twilio => twilio::parse(text),
            Provider::Exotel => exotel::parse(text, default_rate),
            Provider::Plivo => plivo::parse(text),
            Provider::AudioSocket => Err(WireError::Frame(
                "AudioSocket is not a WebSocket protocol".into(),
            )),
        }
    }
}

/// A provider's endpoint settings with its secret read once from the environment.
#[derive(Clone)]
struct Endpoint {
    cfg: ProviderConfig,
    secret: Option<String>,
}

#[derive(Clone)]
struct HttpState {
    svc: Arc<SessionService>,
    endpoints: Arc<HashMap<&'static str, Endpoint>>,
    prompts: Arc<BusyPrompts>,
}

/// The providers' WebSocket endpoints, `/telephony/{twilio,exotel,plivo}`, for the daemon's
/// HTTP router (`transport::http`).
pub fn routes(svc: Arc<SessionService>, prompts: Arc<BusyPrompts>) -> Router {
    let t = &svc.backends.config.telephony;
    let endpoints: HashMap<&'static str, Endpoint> = t
        .providers()
        .into_iter()
        .map(|(name, cfg)| {
            let secret = cfg.secret_env.as_ref().and_then(|v| std::env::var(v).ok());
            (
                name,
                Endpoint {
                    cfg: cfg.clone(),
                    secret,
                },
            )
        })
        .collect();
    let state = HttpState {
        svc,
        endpoints: Arc::new(endpoints),
        prompts,
    };
    Router::new()
        .route("/telephony/{provider}", get(telephony_ws))
        .with_state(state)
}

async fn telephony_ws(
    State(st): State<HttpState>,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(provider) = Provider::from_path(&name) else {
        return (StatusCode::NOT_FOUND, "unknown provider\n").into_response();
    };
    let Some(ep) = st.endpoints.get(provider.name()).filter(|e| e.cfg.enabled) else {
        return (StatusCode::NOT_FOUND, "this provider is not enabled\n").into_response();
    };
    if let Err(why) = authorize(provider, ep, &headers, &uri, &query) {
        warn!(provider = provider.name(), %peer, why, "telephony connection refused");
        return (StatusCode::UNAUTHORIZED, format!("{why}\n")).into_response();
    }
    let Ok(ws) = ws else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint takes a WebSocket media stream\n",
        )
            .into_response();
    };
    let default_rate = query
        .get("sample-rate")
        .and_then(|r| r.parse().ok())
        .unwrap_or(8_000);
    let mut url_params = query;
    url_params.remove("token");
    url_params.remove("sample-rate");
    let setup = CallSetup {
        provider,
        tenant: ep.cfg.tenant.clone(),
        url_params,
        prompts: Arc::clone(&st.prompts),
    };
    let svc = Arc::clone(&st.svc);
    ws.max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| async move {
            // The call belongs to the session service's tracker (awaited at shutdown), not to
            // the HTTP server's connection task.
            let span = info_span!("call", provider = provider.name(), %peer);
            let owner = Arc::clone(&svc);
            owner
                .tracker()
                .spawn(ws_call(svc, setup, socket, default_rate).instrument(span));
        })
}

/// Twilio: a valid `X-Twilio-Signature` (HMAC-SHA1 of the URL Twilio connected to, keyed by
/// the auth token). Every provider: the secret as `?token=` or as the basic-auth password.
fn authorize(
    provider: Provider,
    ep: &Endpoint,
    headers: &HeaderMap,
    uri: &Uri,
    query: &BTreeMap<String, String>,
) -> Result<(), &'static str> {
    let Some(secret) = &ep.secret else {
        return Ok(());
    };
    if query
        .get("token")
        .is_some_and(|t| constant_time_eq(t.as_bytes(), secret.as_bytes()))
    {
        return Ok(());
    }
    if let Some(pass) = basic_password(headers) {
        if constant_time_eq(pass.as_bytes(), secret.as_bytes()) {
            return Ok(());
        }
    }
    if provider == Provider::Twilio {
        if let Some(sig) = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
        {
            let base = ep
                .cfg
                .public_url
                .clone()
                .or_else(|| {
                    headers
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .map(|h| format!("wss://{h}"))
                })
                .unwrap_or_default();
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let url = format!("{}{path}", base.trim_end_matches('/'));
            if constant_time_eq(twilio_signature(secret, &url).as_bytes(), sig.as_bytes()) {
                return Ok(());
            }
            return Err("X-Twilio-Signature does not match");
        }
    }
    Err("missing or wrong credentials")
}

/// Twilio's request signature of a URL without POST parameters: base64(HMAC-SHA1(token, url)).
pub fn twilio_signature(auth_token: &str, url: &str) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn basic_password(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    Some(text.split_once(':')?.1.to_string())
}

async fn ws_call(svc: Arc<SessionService>, setup: CallSetup, socket: WebSocket, default_rate: u32) {
    let (sink, stream) = socket.split();
    let reader = Reader::Ws {
        stream,
        provider: setup.provider,
        default_rate,
    };
    call::serve(svc, setup, reader, Connection::Ws(sink)).await;
}

/// Accepts AudioSocket connections on `listener` until `stop`; each is a call.
pub async fn serve_audiosocket(
    svc: Arc<SessionService>,
    prompts: Arc<BusyPrompts>,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let allow = allow_list(&svc.backends.config.telephony.audiosocket_allow);
    while let Some((stream, peer)) = accept_allowed(
        &listener,
        &allow,
        &stop,
        "audiosocket",
        "telephony.audiosocket_allow",
    )
    .await
    {
        let _ = stream.set_nodelay(true);
        let span = info_span!("call", provider = "audiosocket", %peer);
        let owner = Arc::clone(&svc);
        owner.tracker().spawn(
            audiosocket_call(Arc::clone(&svc), Arc::clone(&prompts), stream).instrument(span),
        );
    }
}

async fn audiosocket_call(svc: Arc<SessionService>, prompts: Arc<BusyPrompts>, stream: TcpStream) {
    let (read, write) = stream.into_split();
    let reader = Reader::Tcp {
        read,
        buf: bytes::BytesMut::with_capacity(4096),
    };
    let setup = CallSetup {
        provider: Provider::AudioSocket,
        tenant: "audiosocket".into(),
        url_params: BTreeMap::new(),
        prompts,
    };
    call::serve(svc, setup, reader, Connection::Tcp(write)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(secret: Option<&str>) -> Endpoint {
        Endpoint {
            cfg: ProviderConfig {
                enabled: true,
                tenant: "t".into(),
                secret_env: None,
                public_url: Some("wss://vaak.example.in".into()),
            },
            secret: secret.map(str::to_string),
        }
    }

    #[test]
    fn twilio_signature_matches_twilios_algorithm() {
        // HMAC-SHA1 test vector (RFC 2202, case 2), base64-encoded.
        assert_eq!(
            twilio_signature("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn credentials_are_checked() {
        let uri: Uri = "/telephony/twilio?x=1".parse().unwrap();
        let none = HeaderMap::new();
        let q = BTreeMap::new();
        assert!(authorize(Provider::Twilio, &endpoint(None), &none, &uri, &q).is_ok());
        let ep = endpoint(Some("a-secret-of-16-chars"));
        assert!(authorize(Provider::Twilio, &ep, &none, &uri, &q).is_err());
        let token: BTreeMap<String, String> =
            [("token".to_string(), "a-secret-of-16-chars".to_string())].into();
        assert!(authorize(Provider::Plivo, &ep, &none, &uri, &token).is_ok());
        let mut h = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("key:a-secret-of-16-chars");
        h.insert("authorization", format!("Basic {basic}").parse().unwrap());
        assert!(authorize(Provider::Exotel, &ep, &h, &uri, &q).is_ok());
        let mut h = HeaderMap::new();
        let sig = twilio_signature(
            "a-secret-of-16-chars",
            "wss://vaak.example.in/telephony/twilio?x=1",
        );
        h.insert("x-twilio-signature", sig.parse().unwrap());
        assert!(authorize(Provider::Twilio, &ep, &h, &uri, &q).is_ok());
        h.insert("x-twilio-signature", "AAAA".parse().unwrap());
        assert!(authorize(Provider::Twilio, &ep, &h, &uri, &q).is_err());
    }
}
