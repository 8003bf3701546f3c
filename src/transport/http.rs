//! The daemon's HTTP listener (`server.http_listen`): `GET /healthz` for load balancers,
//! `GET /metrics` (Prometheus text), the telephony providers' WebSocket media streams under
//! `/telephony/{provider}`, browser calls (the web page at `/` and WHIP signalling at `/whip`),
//! and the OpenAI-compatible speech endpoints under `/v1`. One axum router; each transport adds
//! its routes here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;
use tracing::{debug, warn};

use crate::config::ServerConfig;
use crate::session::service::SessionService;
use crate::transport::{accept_allowed, openai, telephony, webrtc};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("server.tls: cannot read the {what} {path}: {detail}")]
    TlsFile {
        what: &'static str,
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("server.tls: {0}")]
    Tls(String),
}

/// The HTTP listener's TLS (the `[server.tls]` certificate and key the gRPC listener uses),
/// or `None` without `[server.tls]`.
pub fn tls_acceptor(cfg: &ServerConfig) -> Result<Option<TlsAcceptor>, HttpError> {
    let Some(tls) = &cfg.tls else {
        return Ok(None);
    };
    let file_err = |what, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |e: rustls::pki_types::pem::Error| HttpError::TlsFile {
            what,
            path,
            detail: e.to_string(),
        }
    };
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(file_err("certificate", &tls.cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_err("certificate", &tls.cert))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(file_err("key", &tls.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| HttpError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// A TLS handshake must be done within this long (a slow one holds nothing else).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client must send a request's whole header within this long (slow-loris: a connection
/// that dribbles its header is closed; it never reaches a handler nor holds a session slot).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, open connections get this long to finish their requests.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves the router on `listener` until `stop`: one task per connection, HTTP/1.1 with
/// upgrades (the telephony WebSockets) and a header read deadline; over TLS when `tls` is set
/// (`https://`, `wss://` for the telephony providers).
pub async fn serve(
    svc: Arc<SessionService>,
    prompts: Arc<telephony::busy::BusyPrompts>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(Arc::clone(&svc))
        .merge(telephony::routes(Arc::clone(&svc), prompts))
        .merge(openai::routes(Arc::clone(&svc)))
        .merge(webrtc::routes(svc));
    let connections = TaskTracker::new();
    while let Some((stream, peer)) = accept_allowed(&listener, &[], &stop, "http", "").await {
        let (app, stop) = (app.clone(), stop.clone());
        match tls.clone() {
            None => connections.spawn(connection(app, stream, peer, stop)),
            Some(acceptor) => connections.spawn(async move {
                let handshake =
                    tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(tls)) => connection(app, tls, peer, stop).await,
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            }),
        };
    }
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait())
        .await
        .is_err()
    {
        warn!("HTTP connections still open at the drain deadline");
    }
}

/// One HTTP connection: requests carry the peer's address (`ConnectInfo`) like axum's own
/// server gives it; on `stop` the connection finishes its request and closes.
async fn connection<S>(app: Router, stream: S, peer: SocketAddr, stop: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { app.call(req.map(Body::new)).await }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(%peer, error = %e, "HTTP connection ended");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn healthz(State(svc): State<Arc<SessionService>>) -> Response {
    if svc.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn metrics(State(svc): State<Arc<SessionService>>) -> Response {
    let mut body = svc.metrics.render_prometheus();
    body.push_str(&format!(
        "# HELP vaak_open_sessions Sessions open now.\n# TYPE vaak_open_sessions gauge\n\
         vaak_open_sessions {}\n",
        svc.open_sessions()
    ));
    let b = &svc.backends;
    body.push_str(
        "# HELP vaak_backend_fallbacks_total Requests a remote backend failed that the embedded \
         one answered.\n# TYPE vaak_backend_fallbacks_total counter\n",
    );
    for (backend, n) in [
        ("asr", b.asr.fallbacks()),
        ("llm", b.llm.fallbacks()),
        ("tts", b.tts.fallbacks()),
    ] {
        body.push_str(&format!(
            "vaak_backend_fallbacks_total{{backend=\"{backend}\"}} {n}\n"
        ));
    }
    let cpu = b.cpu.snapshot();
    for (name, help, value) in [
        (
            "vaak_cpu_slots",
            "Slots of the cores' scheduler (jobs that may run at once).",
            cpu.slots as f64,
        ),
        ("vaak_cpu_slots_free", "Slots free now.", cpu.free as f64),
        (
            "vaak_cpu_jobs_waiting",
            "Inference jobs waiting for a slot now.",
            cpu.waiting as f64,
        ),
        (
            "vaak_cpu_oldest_wait_seconds",
            "How long the longest-waiting job has waited.",
            cpu.oldest_wait.as_secs_f64(),
        ),
    ] {
        body.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
