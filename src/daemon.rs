//! `vaak serve`: loads every model once, starts the LLM worker, serves gRPC health (the
//! streaming API is served from here as transports land), reports readiness in one log line, and
//! on SIGINT/SIGTERM turns health to NOT_SERVING, cancels the shutdown tree and waits for every
//! owned task with a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::backend::{BackendError, Backends};
use crate::config::Config;
use crate::models::ResolvedModels;

/// How long open work gets to finish after a stop signal.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("invalid listen address `{0}`")]
    Listen(String),
    #[error("cannot serve gRPC on {addr}: {detail}")]
    Serve { addr: SocketAddr, detail: String },
    #[error("LLM worker: {0}")]
    Worker(String),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Runs the daemon until SIGINT/SIGTERM (or `stop` is cancelled).
pub async fn serve(
    config: Arc<Config>,
    models: ResolvedModels,
    stop: CancellationToken,
) -> Result<(), DaemonError> {
    let started = Instant::now();
    let addr: SocketAddr = config
        .server
        .grpc_listen
        .parse()
        .map_err(|_| DaemonError::Listen(config.server.grpc_listen.clone()))?;
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();

    let load_cfg = Arc::clone(&config);
    let (tracker2, shutdown2) = (tracker.clone(), shutdown.clone());
    // Model loading is blocking work (file reads, graph optimisation).
    let loaded = tokio::task::spawn_blocking(move || {
        Backends::load(load_cfg, &models, &tracker2, shutdown2)
    })
    .await
    .map_err(|e| DaemonError::Worker(format!("model loading panicked: {e}")))?;
    let (backends, times) = match loaded {
        Ok(b) => b,
        Err(e) => {
            shutdown.cancel();
            tracker.close();
            tracker.wait().await;
            return Err(e.into());
        }
    };
    let backends = Arc::new(backends);
    if let Some(w) = &backends.worker {
        if let Err(e) = w.ready(crate::backend::llm::worker::STARTUP_TIMEOUT).await {
            shutdown.cancel();
            tracker.close();
            tracker.wait().await;
            return Err(DaemonError::Worker(e.to_string()));
        }
    }

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("vaak.v1.Vaak", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| DaemonError::Serve {
            addr,
            detail: e.to_string(),
        })?;
    let bound = listener.local_addr().map_err(|e| DaemonError::Serve {
        addr,
        detail: e.to_string(),
    })?;
    let grpc_stop = shutdown.clone();
    let server = tracker.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(tokio_stream_from(listener), grpc_stop.cancelled_owned())
            .await
    });

    info!(
        grpc = %bound,
        load_ms = started.elapsed().as_millis() as u64,
        vad_ms = times.vad.as_millis() as u64,
        asr_ms = times.asr.as_millis() as u64,
        tts_ms = times.tts.as_millis() as u64,
        languages = ?config.pipeline.languages,
        "vaak ready"
    );

    wait_for_stop(&stop).await?;
    info!("stopping: health NOT_SERVING, draining");
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status("vaak.v1.Vaak", tonic_health::ServingStatus::NotServing)
        .await;
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            deadline_s = DRAIN_DEADLINE.as_secs(),
            "tasks still running at the drain deadline"
        );
    }
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_millis(10), server).await {
        warn!(error = %e, "gRPC server ended with an error");
    }
    info!("vaak stopped");
    Ok(())
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
    futures::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

async fn wait_for_stop(stop: &CancellationToken) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    tokio::select! {
        biased;
        _ = stop.cancelled() => {}
        _ = term.recv() => info!("SIGTERM"),
        _ = int.recv() => info!("SIGINT"),
    }
    Ok(())
}
