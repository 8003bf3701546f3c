//! `vaak serve`: loads every model once, starts the LLM worker, opens the session store, serves
//! the gRPC API (with health and reflection), reports readiness in one log line, and on
//! SIGINT/SIGTERM turns health to NOT_SERVING, refuses new sessions, lets open ones finish until
//! the drain deadline, then stops every owned task (awaited with a deadline).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::backend::{BackendError, Backends};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::models::ResolvedModels;
use crate::session::service::SessionService;
use crate::session::store::{self, Store};
use crate::transport::{grpc, http, telephony, wyoming};

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
    #[error("session store: {0}")]
    Store(String),
    #[error("HTTP listener: {0}")]
    Http(http::HttpError),
}

/// How often expired sessions are deleted from the store.
pub const PURGE_EVERY: Duration = Duration::from_secs(60);

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

    let store = open_store(&config).await?;
    let metrics = Arc::new(Metrics::default());
    // Sessions get their own token: they stop at the drain deadline, after the listener.
    let sessions_stop = CancellationToken::new();
    let svc = Arc::new(SessionService::new(
        Arc::clone(&backends),
        Arc::clone(&metrics),
        store,
        tracker.clone(),
        sessions_stop.clone(),
    ));

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
    let listener_stop = CancellationToken::new();
    let server = tracker.spawn(grpc::serve(
        Arc::clone(&svc),
        listener,
        health,
        listener_stop.clone(),
    ));
    let http = bind_optional(&config.server.http_listen).await?;
    let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
    let http_tls = http::tls_acceptor(&config.server).map_err(DaemonError::Http)?;
    // What refused phone callers hear, shared by the providers' WebSockets and AudioSocket.
    let busy_prompts = Arc::new(telephony::busy::BusyPrompts::default());
    let http_server = http.map(|l| {
        tracker.spawn(http::serve(
            Arc::clone(&svc),
            Arc::clone(&busy_prompts),
            l,
            http_tls,
            listener_stop.clone(),
        ))
    });
    let http_server = async move {
        match http_server {
            Some(h) => h.await,
            None => std::future::pending().await,
        }
    };
    let audiosocket = bind_optional(&config.telephony.audiosocket_listen).await?;
    let audiosocket_addr = audiosocket.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(l) = audiosocket {
        tracker.spawn(telephony::serve_audiosocket(
            Arc::clone(&svc),
            busy_prompts,
            l,
            listener_stop.clone(),
        ));
    }
    let wyoming_listener = bind_optional(&config.wyoming.bind).await?;
    let wyoming_addr = wyoming_listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(l) = wyoming_listener {
        tracker.spawn(wyoming::serve(Arc::clone(&svc), l, listener_stop.clone()));
    }
    let purge_svc = Arc::clone(&svc);
    let purge_stop = shutdown.clone();
    tracker.spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = purge_stop.cancelled() => break,
                _ = tokio::time::sleep(PURGE_EVERY) => purge_svc.purge_expired().await,
            }
        }
    });

    info!(
        grpc = %bound,
        http = %http_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        audiosocket = %audiosocket_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        wyoming = %wyoming_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        tls = config.server.tls.is_some(),
        auth = !config.server.api_keys.is_empty(),
        max_sessions = config.server.max_sessions,
        cpu_slots = backends.cpu.slots(),
        devices = ?backends.devices_line(),
        load_ms = started.elapsed().as_millis() as u64,
        vad_ms = times.vad.as_millis() as u64,
        asr_ms = times.asr.as_millis() as u64,
        tts_ms = times.tts.as_millis() as u64,
        languages = ?config.pipeline.languages,
        "vaak ready"
    );

    tokio::select! {
        biased;
        r = wait_for_stop(&stop) => r?,
        r = server => {
            // The listener died on its own (e.g. a TLS error): stop everything.
            let detail = match r {
                Ok(Ok(())) => "gRPC server stopped".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            return Err(stop_all(&shutdown, &sessions_stop, &tracker, bound, detail).await);
        }
        r = http_server => {
            let detail = match r {
                Ok(()) => "HTTP server stopped".to_string(),
                Err(e) => e.to_string(),
            };
            return Err(stop_all(&shutdown, &sessions_stop, &tracker, bound, detail).await);
        }
    }
    let open = svc.open_sessions();
    info!(
        open_sessions = open,
        "stopping: health NOT_SERVING, refusing new sessions, draining"
    );
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status("vaak.v1.Vaak", tonic_health::ServingStatus::NotServing)
        .await;
    svc.start_draining();
    // Open conversations get until the deadline to finish; new ones are refused meanwhile.
    let drain_until = tokio::time::Instant::now() + DRAIN_DEADLINE;
    while svc.open_sessions() > 0 && tokio::time::Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if svc.open_sessions() > 0 {
        warn!(
            open_sessions = svc.open_sessions(),
            "sessions still open at the drain deadline: ending them"
        );
    }
    sessions_stop.cancel();
    listener_stop.cancel();
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
    info!("vaak stopped");
    Ok(())
}

/// A listener died on its own: stops everything and says why.
async fn stop_all(
    shutdown: &CancellationToken,
    sessions_stop: &CancellationToken,
    tracker: &TaskTracker,
    addr: SocketAddr,
    detail: String,
) -> DaemonError {
    shutdown.cancel();
    sessions_stop.cancel();
    tracker.close();
    let _ = tokio::time::timeout(DRAIN_DEADLINE, tracker.wait()).await;
    DaemonError::Serve { addr, detail }
}

/// Binds `addr` unless it is empty (the listener is off).
async fn bind_optional(addr: &str) -> Result<Option<tokio::net::TcpListener>, DaemonError> {
    if addr.trim().is_empty() {
        return Ok(None);
    }
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|_| DaemonError::Listen(addr.to_string()))?;
    tokio::net::TcpListener::bind(parsed)
        .await
        .map(Some)
        .map_err(|e| DaemonError::Serve {
            addr: parsed,
            detail: e.to_string(),
        })
}

/// The session store: the configured SQLite file or PostgreSQL database, or memory only.
async fn open_store(config: &Config) -> Result<Option<Arc<dyn Store>>, DaemonError> {
    let sessions = config.sessions.clone();
    let opened = tokio::task::spawn_blocking(move || store::open(&sessions))
        .await
        .map_err(|e| DaemonError::Store(e.to_string()))?
        .map_err(|e| DaemonError::Store(e.to_string()))?;
    Ok(Some(opened))
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
