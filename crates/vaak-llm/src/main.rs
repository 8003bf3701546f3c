//! `vaak-llm`: vaak's LLM worker process.
//!
//! The daemon links whisper.cpp and llama.cpp vendors a second, incompatible ggml, so the LLM
//! lives in this separate binary, which the daemon spawns, health-checks and restarts. It
//! loads one GGUF model once and serves the OpenAI-compatible chat-completions protocol
//! (streaming over SSE) on loopback, with per-session KV-cache slots — the same protocol the
//! daemon uses for a remote vLLM / llama.cpp server.
//!
//! Start-up contract on stdout, nothing else: once the model is loaded, one line
//! `VAAK_LLM_DEVICE <where it runs>`, then one line `VAAK_LLM_LISTENING <host>:<port>` once the
//! socket is bound (`--probe` prints the first and exits, loading nothing); logs go to stderr. A missing or unreadable model is
//! exit code 2 with a one-line message naming the path. SIGTERM/SIGINT stop at once.

mod api;
mod device;
mod engine;
mod prompt;
mod server;
mod slots;
mod text;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::{send_logs_to_tracing, LogOptions};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineConfig};
use crate::prompt::PromptBuilder;
use crate::server::AppState;

/// vaak's LLM worker: llama.cpp behind an OpenAI-compatible streaming endpoint.
#[derive(Debug, Parser)]
#[command(name = "vaak-llm", version)]
struct Cli {
    /// GGUF model file.
    #[arg(long, required_unless_present = "probe")]
    model: Option<PathBuf>,
    /// Offload the model to this CUDA GPU (a build with `--features cuda`; else the CPU, with a
    /// warning).
    #[arg(long)]
    gpu: Option<u32>,
    /// Print where the model would run (`VAAK_LLM_DEVICE …`) and exit.
    #[arg(long)]
    probe: bool,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind (0 = any free port; the chosen one is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Context window per session slot, in tokens (prompt + reply).
    #[arg(long, default_value_t = 4096)]
    ctx_size: u32,
    /// CPU threads for inference (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Session KV-cache slots kept at once (LRU-evicted beyond); one more serves key-less
    /// requests. Also the number of requests generating at the same time.
    #[arg(long, default_value_t = 4)]
    max_slots: usize,
    /// `max_tokens` when a request gives none.
    #[arg(long, default_value_t = 256)]
    max_tokens_default: u32,
    /// Requests that may wait for the inference thread before new ones get HTTP 429.
    #[arg(long, default_value_t = 16)]
    queue_depth: usize,
    /// Model name reported by the API (default: the file name without extension).
    #[arg(long)]
    model_name: Option<String>,
}

/// Log filter unless `RUST_LOG` says otherwise: llama.cpp's own messages (target
/// `llama-cpp-2`) only from warnings up; the crate's log bridge is chatty about progress dots.
const DEFAULT_LOG_FILTER: &str = "info,llama-cpp-2=warn,llama_cpp_2=error";

/// Exit code for a missing or invalid model file.
const EXIT_BAD_MODEL: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let backend = match load_backend() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("vaak-llm: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let placement = device::place(&backend, cli.gpu);
    if let Some(w) = &placement.warning {
        tracing::warn!("{w}");
    }
    let Some(path) = cli.model.clone().filter(|_| !cli.probe) else {
        return match say_device(&placement) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vaak-llm: {e:#}");
                ExitCode::FAILURE
            }
        };
    };
    let model = match load_model(&backend, &path, &placement) {
        Ok(m) => m,
        Err(msg) => {
            eprintln!("vaak-llm: {msg}");
            return ExitCode::from(EXIT_BAD_MODEL);
        }
    };
    if let Err(e) = say_device(&placement) {
        eprintln!("vaak-llm: {e:#}");
        return ExitCode::FAILURE;
    }
    match run(cli, backend, model) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vaak-llm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load_backend() -> anyhow::Result<Arc<LlamaBackend>> {
    send_logs_to_tracing(LogOptions::default());
    let backend = LlamaBackend::init().context("initialising llama.cpp")?;
    Ok(Arc::new(backend))
}

fn say_device(placement: &device::Placement) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}{}", device::DEVICE_PREFIX, placement.shown).context("writing to stdout")?;
    out.flush().context("flushing stdout")
}

/// Loads the model where `placement` says, or returns the one-line message for exit code 2.
fn load_model(
    backend: &LlamaBackend,
    path: &Path,
    placement: &device::Placement,
) -> Result<Arc<LlamaModel>, String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(format!("model {shown} is not a file")),
        Err(e) => return Err(format!("cannot read model {shown}: {e}")),
    }
    let started = std::time::Instant::now();
    let params = device::model_params(placement)?;
    let model = LlamaModel::load_from_file(backend, path, &params)
        .map_err(|e| format!("cannot load model {shown}: not a valid GGUF model ({e})"))?;
    tracing::info!(
        path = %shown,
        device = %placement.shown,
        params = model.n_params(),
        n_ctx_train = model.n_ctx_train(),
        ms = started.elapsed().as_millis() as u64,
        "model loaded"
    );
    Ok(Arc::new(model))
}

fn model_name(cli: &Cli, model: &LlamaModel) -> String {
    if let Some(n) = &cli.model_name {
        return n.clone();
    }
    cli.model
        .as_deref()
        .and_then(Path::file_stem)
        .map(|s| s.to_string_lossy().into_owned())
        .or_else(|| model.meta_val_str("general.name").ok())
        .unwrap_or_else(|| "vaak-llm".into())
}

fn run(cli: Cli, backend: Arc<LlamaBackend>, model: Arc<LlamaModel>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(cli.max_slots >= 1, "--max-slots must be at least 1");
    anyhow::ensure!(cli.ctx_size >= 16, "--ctx-size must be at least 16");
    let threads = cli
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let ctx_per_slot = cli.ctx_size.min(model.n_ctx_train().max(16));
    if ctx_per_slot < cli.ctx_size {
        tracing::warn!(
            requested = cli.ctx_size,
            used = ctx_per_slot,
            "--ctx-size exceeds the model's training context; clamped"
        );
    }
    let name = model_name(&cli, &model);
    let prompt = PromptBuilder::new(model.clone());
    tracing::info!(template = %prompt.template_name, "chat template");

    let engine_exited = CancellationToken::new();
    let engine = Engine::start(
        backend,
        model,
        EngineConfig {
            threads: i32::try_from(threads).unwrap_or(i32::MAX),
            ctx_per_slot,
            max_slots: cli.max_slots,
            queue_depth: cli.queue_depth,
        },
        engine_exited.clone(),
    )?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let state = Arc::new(AppState {
        engine: engine.sender(),
        prompt,
        model_name: name,
        ctx_per_slot: ctx_per_slot as usize,
        max_tokens_default: cli.max_tokens_default,
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        next_id: AtomicU64::new(0),
    });
    let addr = format!("{}:{}", cli.host, cli.port);
    let outcome = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "VAAK_LLM_LISTENING {local}").context("writing to stdout")?;
            out.flush().context("flushing stdout")?;
        }
        tracing::info!(%local, "listening");
        let app = server::router(state);
        tokio::select! {
            r = axum::serve(listener, app) => {
                r.context("HTTP server failed")?;
                Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
            }
            sig = shutdown_signal() => {
                tracing::info!(signal = sig, "shutting down");
                Ok(ExitCode::SUCCESS)
            }
            () = engine_exited.cancelled() => {
                tracing::error!("inference thread exited unexpectedly");
                Ok(ExitCode::FAILURE)
            }
        }
    });
    // Open connections and their streams are dropped with the runtime; generations in flight
    // are abandoned, not finished.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    engine.shutdown();
    outcome
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            // Without signal handlers the default action (terminate) still applies.
            tracing::warn!("could not install signal handlers");
            std::future::pending().await
        }
    }
}
