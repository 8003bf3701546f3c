//! The command line's work, by command family (the `clap` definitions and the dispatch stay in
//! `main.rs`): [`talk`] (converse, transcribe, kiosk), [`models`], [`eval`], [`bench`], and the
//! helpers they share here.

pub(crate) mod bench;
pub(crate) mod eval;
pub(crate) mod models;
pub(crate) mod talk;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use vaak::backend::Backends;
use vaak::config::Config;
use vaak::models::{ModelSet, ModelStore};

/// `vaak config check FILE`: the file is valid, and where each model would run on this machine.
pub(crate) fn check_config(file: &std::path::Path) -> Result<()> {
    use vaak::backend::device::{Device, Plan};
    use vaak::backend::llm::worker;
    let config = Config::load(file)?;
    println!("{}: ok", file.display());
    let plan = Plan::for_machine(&config.compute);
    let llm = match (config.llm.kind, &plan.llm) {
        (vaak::config::LlmKind::Openai, _) if !config.llm.openai.fallback_to_worker => {
            "remote".to_string()
        }
        (_, Device::Cpu) => "cpu".to_string(),
        (_, Device::Cuda(gpu)) => worker::locate_binary(config.llm.worker.binary.as_deref())
            .and_then(|bin| worker::probe_device(&bin, gpu.index))
            .unwrap_or_else(|e| format!("unknown ({e})")),
    };
    let tts = match &plan.tts {
        Device::Cpu => "cpu".to_string(),
        gpu => format!("{gpu} if compute.onnxruntime_lib has the CUDA provider"),
    };
    print!("devices: vad=cpu asr={} llm={llm} tts={tts}", plan.asr);
    match &plan.cpu_because {
        Some(why) => println!(" ({why})"),
        None => println!(),
    }
    for warning in &plan.warnings {
        println!("warning: {warning}");
    }
    Ok(())
}

pub(crate) fn store_for(config: &Config) -> ModelStore {
    match &config.models.dir {
        Some(dir) => ModelStore::new(dir.clone()),
        None => ModelStore::default_location(),
    }
}

pub(crate) fn parse_set(s: &str) -> Result<ModelSet> {
    s.parse::<ModelSet>().map_err(|e| anyhow::anyhow!("{e}"))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn backends_for(
    config: Config,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<Arc<Backends>> {
    let store = store_for(&config);
    let resolved = vaak::models::resolve(&store, parse_set(&config.models.set)?)?;
    let (b, _) = Backends::load(Arc::new(config), &resolved, tracker, shutdown)?;
    Ok(Arc::new(b))
}

/// Loads the models, waits for the LLM worker, runs `job` on them, then stops and drains every
/// task the load started (within the daemon's drain deadline), whatever `job` returned. `job`
/// gets the shutdown token and the tracker that owns those tasks.
pub(crate) async fn with_backends<T, Fut>(
    config: Config,
    job: impl FnOnce(Arc<Backends>, CancellationToken, TaskTracker) -> Fut,
) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let backends = backends_for(config, &tracker, shutdown.clone())?;
    if let Some(w) = &backends.worker {
        w.ready(vaak::backend::llm::worker::STARTUP_TIMEOUT).await?;
    }
    let out = job(backends, shutdown.clone(), tracker.clone()).await;
    shutdown.cancel();
    tracker.close();
    let _ = tokio::time::timeout(vaak::daemon::DRAIN_DEADLINE, tracker.wait()).await;
    out
}

/// Clips from several manifests, interleaved (en, hi, te, en, hi, te …), `n` in all.
pub(crate) fn interleave(manifests: &[PathBuf], n: usize) -> Result<Vec<vaak::bench::Clip>> {
    let mut lists = Vec::new();
    for m in manifests {
        lists.push(vaak::bench::read_manifest(m)?);
    }
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n && lists.iter().any(|l| i < l.len()) {
        for l in &lists {
            if let Some(c) = l.get(i) {
                if out.len() < n {
                    out.push(c.clone());
                }
            }
        }
        i += 1;
    }
    Ok(out)
}

/// The configured recognisers: the embedded Whisper (the model set's, or `asr.model`) with
/// `asr.models` and `asr.remote` routed around it. Call inside a Tokio runtime (a remote
/// recogniser makes its requests on it).
pub(crate) fn load_recognisers(
    config: &Config,
) -> Result<std::sync::Arc<dyn vaak::backend::asr::Asr>> {
    use vaak::backend::asr::whisper::WhisperAsr;
    let store = store_for(config);
    let resolved = vaak::models::resolve(&store, parse_set(&config.models.set)?)?;
    let path = config.asr.model.clone().unwrap_or(resolved.whisper_ggml);
    let plan = vaak::backend::device::Plan::for_machine(&config.compute);
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
    let embedded = WhisperAsr::load(&path, vaak::backend::whisper_options(config, &plan))?;
    Ok(vaak::backend::recognisers(config, &plan, embedded)?)
}
