//! Supervises the `vaak-llm` worker process: starts it, waits for its readiness line, publishes
//! its address, restarts it with back-off when it dies, and stops it with the daemon. llama.cpp
//! lives in that separate process because its ggml cannot be linked beside whisper.cpp's, and so
//! that a crash of the largest component costs one turn, not the daemon.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// Line the worker prints on stdout once it listens.
pub const READY_PREFIX: &str = "VAAK_LLM_LISTENING ";
/// Line the worker prints on stdout before that: where its model runs (`cpu`, `cuda:0 (…)`).
pub const DEVICE_PREFIX: &str = "VAAK_LLM_DEVICE ";
/// How long a worker may take to load its model before it is considered failed.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);
/// Restart back-off bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a stopping worker gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub binary: PathBuf,
    pub model: PathBuf,
    pub threads: usize,
    pub ctx_size: u32,
    pub max_slots: u32,
    /// Silent on `/health` this long: hung, killed, restarted.
    pub hung_after: Duration,
    /// CUDA's index of the GPU to offload the model to (`--gpu`); the worker falls back to the
    /// CPU, saying so, where it has no CUDA or no such GPU.
    pub gpu: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("LLM worker binary not found (looked for {0}); build it with `cargo build --workspace` or set llm.worker.binary")]
    BinaryMissing(PathBuf),
    #[error("LLM model not found at {0}: run `vaak models fetch`")]
    ModelMissing(PathBuf),
    #[error("LLM worker did not become ready: {0}")]
    Startup(String),
}

/// Finds `vaak-llm` next to the running executable (also from `target/*/deps` in tests).
pub fn locate_binary(configured: Option<&Path>) -> Result<PathBuf, WorkerError> {
    if let Some(p) = configured {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(WorkerError::BinaryMissing(p.to_path_buf()))
        };
    }
    if let Some(p) = std::env::var_os("VAAK_LLM_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(WorkerError::BinaryMissing(p))
        };
    }
    let exe = std::env::current_exe().map_err(|e| WorkerError::Startup(e.to_string()))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates = [dir.join("vaak-llm"), dir.join("../vaak-llm")];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| WorkerError::BinaryMissing(candidates[0].clone()))
}

/// Asks the worker `binary` where it would run a model on CUDA GPU `gpu` (`vaak-llm --probe`):
/// `cuda:0 (…)`, or `cpu (why not)`. Loads no model; blocking, for `vaak config check`.
pub fn probe_device(binary: &Path, gpu: u32) -> Result<String, WorkerError> {
    let out = std::process::Command::new(binary)
        .args(["--probe", "--gpu", &gpu.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| WorkerError::Startup(format!("{}: {e}", binary.display())))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(DEVICE_PREFIX))
        .map(|d| d.trim().to_string())
        .ok_or_else(|| {
            WorkerError::Startup(format!(
                "{} --probe said nothing about its device ({})",
                binary.display(),
                out.status
            ))
        })
}

/// Handle to the supervised worker: its current base URL (`None` while it is down).
#[derive(Clone)]
pub struct WorkerHandle {
    pub endpoint: watch::Receiver<Option<String>>,
    device: Arc<Mutex<String>>,
}

impl WorkerHandle {
    /// Where the worker's model runs, as it said when it last started.
    pub fn device(&self) -> String {
        self.device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until the worker is ready (first start can take a while: the model loads).
    pub async fn ready(&self, timeout: Duration) -> Result<String, WorkerError> {
        let mut rx = self.endpoint.clone();
        let found = tokio::time::timeout(timeout, async {
            rx.wait_for(|v| v.is_some()).await.map(|v| v.clone())
        })
        .await;
        match found {
            Ok(Ok(v)) => Ok(v.unwrap_or_default()),
            Ok(Err(_)) => Err(WorkerError::Startup("supervisor stopped".into())),
            Err(_) => Err(WorkerError::Startup(format!(
                "not ready within {timeout:?}"
            ))),
        }
    }
}

/// Starts the supervisor task (owned by `tracker`, stopped by `shutdown`).
pub fn supervise(
    spec: WorkerSpec,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<WorkerHandle, WorkerError> {
    if !spec.binary.is_file() {
        return Err(WorkerError::BinaryMissing(spec.binary));
    }
    if !spec.model.is_file() {
        return Err(WorkerError::ModelMissing(spec.model));
    }
    let (tx, rx) = watch::channel(None);
    let device = Arc::new(Mutex::new("not started".to_string()));
    let reported = Arc::clone(&device);
    tracker.spawn(async move {
        let mut backoff = BACKOFF_MIN;
        loop {
            match run_once(&spec, &tx, &reported, &shutdown).await {
                RunEnd::Shutdown => break,
                RunEnd::Exited { ran_for } => {
                    // A worker that ran a while resets the back-off; a crash loop grows it.
                    if ran_for > Duration::from_secs(60) {
                        backoff = BACKOFF_MIN;
                    }
                }
            }
            let _ = tx.send(None);
            warn!(
                delay_ms = backoff.as_millis() as u64,
                "restarting LLM worker"
            );
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        let _ = tx.send(None);
    });
    Ok(WorkerHandle {
        endpoint: rx,
        device,
    })
}

enum RunEnd {
    Shutdown,
    Exited { ran_for: Duration },
}

async fn run_once(
    spec: &WorkerSpec,
    tx: &watch::Sender<Option<String>>,
    device: &Mutex<String>,
    shutdown: &CancellationToken,
) -> RunEnd {
    let started = tokio::time::Instant::now();
    let mut command = Command::new(&spec.binary);
    if let Some(gpu) = spec.gpu {
        command.args(["--gpu", &gpu.to_string()]);
    }
    let mut child = match command
        .arg("--model")
        .arg(&spec.model)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(["--threads", &spec.threads.to_string()])
        .args(["--ctx-size", &spec.ctx_size.to_string()])
        .args(["--max-slots", &spec.max_slots.to_string()])
        // llama.cpp's threads must not spin while idle: they share 2 cores with ASR and TTS.
        .env("OMP_WAIT_POLICY", "passive")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            error!(binary = %spec.binary.display(), error = %e, "cannot start LLM worker");
            return RunEnd::Exited {
                ran_for: Duration::ZERO,
            };
        }
    };
    let Some(stdout) = child.stdout.take() else {
        stop(&mut child).await;
        return RunEnd::Exited {
            ran_for: Duration::ZERO,
        };
    };
    let mut lines = BufReader::new(stdout).lines();
    let ready = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix(READY_PREFIX) {
                return Some(addr.trim().to_string());
            }
            if let Some(on) = line.strip_prefix(DEVICE_PREFIX) {
                *device.lock().unwrap_or_else(|p| p.into_inner()) = on.trim().to_string();
            }
        }
        None
    };
    let addr = tokio::select! {
        biased;
        _ = shutdown.cancelled() => { stop(&mut child).await; return RunEnd::Shutdown; }
        r = tokio::time::timeout(STARTUP_TIMEOUT, ready) => r,
    };
    let addr = match addr {
        Ok(Some(addr)) => {
            let on = device.lock().unwrap_or_else(|p| p.into_inner()).clone();
            info!(%addr, pid = child.id().unwrap_or(0), device = %on, "LLM worker ready");
            let _ = tx.send(Some(format!("http://{addr}")));
            addr
        }
        Ok(None) => {
            let status = child.wait().await.ok();
            error!(?status, "LLM worker exited before becoming ready");
            return RunEnd::Exited {
                ran_for: started.elapsed(),
            };
        }
        Err(_) => {
            error!(
                timeout_s = STARTUP_TIMEOUT.as_secs(),
                "LLM worker start-up timed out"
            );
            stop(&mut child).await;
            return RunEnd::Exited {
                ran_for: started.elapsed(),
            };
        }
    };
    // Drain stdout so the worker never blocks on a full pipe.
    let drain = async { while let Ok(Some(_)) = lines.next_line().await {} };
    let health = format!("http://{addr}/health");
    let end = tokio::select! {
        biased;
        _ = shutdown.cancelled() => None,
        status = async { drain.await; child.wait().await } => Some(Ok(status)),
        () = hung(&health, spec.hung_after) => Some(Err(())),
    };
    match end {
        None => {
            stop(&mut child).await;
            RunEnd::Shutdown
        }
        Some(Ok(status)) => {
            error!(?status, "LLM worker exited");
            RunEnd::Exited {
                ran_for: started.elapsed(),
            }
        }
        Some(Err(())) => {
            error!(
                hung_after_ms = spec.hung_after.as_millis() as u64,
                "LLM worker stopped answering its health check; killing it"
            );
            // SIGKILL works on a stopped (SIGSTOP) or deadlocked process alike.
            let _ = child.kill().await;
            RunEnd::Exited {
                ran_for: started.elapsed(),
            }
        }
    }
}

/// Resolves once the worker at `url` (its `/health`) has left every probe unanswered for
/// `after`: probed every quarter of it, each probe given a quarter to answer.
async fn hung(url: &str, after: Duration) {
    let every = after / 4;
    let client = reqwest::Client::new();
    let mut silent_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(every).await;
        let answered = tokio::time::timeout(every, client.get(url).send())
            .await
            .is_ok_and(|r| r.is_ok_and(|r| r.status().is_success()));
        if answered {
            silent_since = None;
            continue;
        }
        let since = *silent_since.get_or_insert_with(|| tokio::time::Instant::now() - every);
        if since.elapsed() >= after {
            return;
        }
        warn!(url, "LLM worker did not answer its health check");
    }
}

/// SIGTERM, a grace period, then SIGKILL.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}
