//! The daemon's HTTP listener (`server.http_listen`): `GET /healthz` for load balancers,
//! `GET /metrics` (Prometheus text), the telephony providers' WebSocket media streams under
//! `/telephony/{provider}`, browser calls (the web page at `/` and WHIP signalling at `/whip`),
//! and the OpenAI-compatible speech endpoints under `/v1`. One axum router; each transport adds
//! its routes here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::session::service::SessionService;
use crate::transport::{openai, telephony, webrtc};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot serve HTTP on {addr}: {detail}")]
    Serve { addr: SocketAddr, detail: String },
}

/// Serves the router on `listener` until `stop`.
pub async fn serve(
    svc: Arc<SessionService>,
    listener: TcpListener,
    stop: CancellationToken,
) -> Result<(), HttpError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(Arc::clone(&svc))
        .merge(telephony::routes(Arc::clone(&svc)))
        .merge(openai::routes(Arc::clone(&svc)))
        .merge(webrtc::routes(svc));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.cancelled_owned())
    .await
    .map_err(|e| HttpError::Serve {
        addr,
        detail: e.to_string(),
    })
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
