//! Backends behind each model stage, as traits so an embedded engine, a remote server or a
//! scripted fake can stand behind a stage. `Backends::load` builds the embedded defaults once
//! per process; sessions share them through `Arc`.

pub mod asr;
pub mod device;
pub mod fake;
pub mod llm;
pub mod onnx;
pub mod tts;
pub mod vad;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, LlmKind};
use crate::models::ResolvedModels;
use crate::scheduler::CpuScheduler;
use asr::remote::{RemoteAsr, RemoteAsrOptions};
use asr::routed::RoutedAsr;
use asr::whisper::{WhisperAsr, WhisperOptions};
use asr::Asr;
use device::{Device, Plan};
use llm::fallback::{FallbackLlm, FallbackPolicy};
use llm::openai::{Endpoint, OpenAiClient};
use llm::worker::{self, WorkerHandle, WorkerSpec};
use llm::Llm;
use onnx::OnnxRuntime;
use tts::{TtsEngine, TtsError, Voices};
use vad::silero::SileroModel;
use vad::VadFactory;

/// Voices by language (the embedded `Voices`, or a fake in tests).
pub trait VoiceBank: Send + Sync {
    fn for_language(&self, lang: &str) -> Result<Arc<dyn TtsEngine>, TtsError>;
    /// A voice the user chose by name (see [`VoiceBank::voices`]) for `lang`.
    fn named(&self, name: &str, lang: &str) -> Result<Arc<dyn TtsEngine>, TtsError>;
    /// Every voice that can be chosen: (name, language, sample rate, is the language's default).
    fn voices(&self) -> Vec<tts::VoiceChoice>;
    /// Requests this backend's remote part failed and its embedded fallback answered (0 for a
    /// backend with no fallback); served at `/metrics`.
    fn fallbacks(&self) -> u64 {
        0
    }
}

impl VoiceBank for Voices {
    fn fallbacks(&self) -> u64 {
        self.remote_fallbacks()
    }
    fn for_language(&self, lang: &str) -> Result<Arc<dyn TtsEngine>, TtsError> {
        Voices::for_language(self, lang)
    }
    fn named(&self, name: &str, lang: &str) -> Result<Arc<dyn TtsEngine>, TtsError> {
        Voices::named(self, name, lang)
    }
    fn voices(&self) -> Vec<tts::VoiceChoice> {
        Voices::choices(self)
    }
}

/// The shared models of one process.
/// Why a request to a remote backend (`url`'s client, `timeout` for the whole exchange) failed,
/// in words for its error: before an answer (`body: None`: no answer in time, or unreachable) or
/// while reading its body (`body: Some("audio")`: not complete in time, or cut off).
pub(crate) fn request_failure(e: &reqwest::Error, timeout: Duration, body: Option<&str>) -> String {
    let ms = timeout.as_millis();
    match (body, e.is_timeout()) {
        (None, true) => format!("no answer within {ms} ms"),
        (None, false) => format!("unreachable ({e})"),
        (Some(what), true) => format!("{what} not complete within {ms} ms"),
        (Some(what), false) => format!("{what} cut off ({e})"),
    }
}

pub struct Backends {
    pub config: Arc<Config>,
    pub vad: Arc<dyn VadFactory>,
    pub asr: Arc<dyn Asr>,
    pub llm: Arc<dyn Llm>,
    pub tts: Arc<dyn VoiceBank>,
    /// The supervised worker, when the LLM is embedded.
    pub worker: Option<WorkerHandle>,
    /// The one queue for the cores, shared by every session's inference.
    pub cpu: CpuScheduler,
    /// Where the embedded models run.
    pub devices: Devices,
}

/// Where the embedded models run (the LLM worker reports its own: [`WorkerHandle::device`]).
#[derive(Debug, Clone)]
pub struct Devices {
    pub asr: Device,
    pub tts: Device,
}

impl Devices {
    /// Everything on the CPU (the scripted backends of tests).
    pub fn cpu() -> Self {
        Self {
            asr: Device::Cpu,
            tts: Device::Cpu,
        }
    }

    /// `vad=cpu asr=… llm=… tts=…`, for the ready line.
    pub fn describe(&self, llm: &str) -> String {
        format!("vad=cpu asr={} llm={llm} tts={}", self.asr, self.tts)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Onnx(#[from] onnx::OnnxError),
    #[error(transparent)]
    Vad(#[from] vad::VadError),
    #[error(transparent)]
    Asr(#[from] asr::AsrError),
    #[error(transparent)]
    Tts(#[from] TtsError),
    #[error(transparent)]
    Worker(#[from] worker::WorkerError),
    #[error(transparent)]
    Llm(#[from] llm::LlmError),
}

/// The embedded recogniser, behind a router when some languages have a model of their own
/// (`asr.models`) or go to a remote service (`asr.remote`).
pub fn recognisers(
    config: &Config,
    plan: &Plan,
    embedded: WhisperAsr,
) -> Result<Arc<dyn Asr>, BackendError> {
    let asr = &config.asr;
    if asr.models.is_empty() && asr.remote.is_none() {
        return Ok(Arc::new(embedded));
    }
    let mut routed = RoutedAsr::new(Arc::new(embedded));
    for (lang, path) in &asr.models {
        let model = WhisperAsr::load(path, whisper_options(config, plan))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        routed = routed.route(lang, Arc::new(model), name);
    }
    if let Some(r) = &asr.remote {
        let remote = Arc::new(RemoteAsr::new(RemoteAsrOptions {
            url: r.url.clone(),
            model: r.model.clone(),
            api_key: r.api_key_env.as_ref().and_then(|v| std::env::var(v).ok()),
            timeout: std::time::Duration::from_millis(r.timeout_ms),
        })?);
        for lang in &r.languages {
            routed = routed.route(lang, remote.clone(), format!("remote {}", r.url));
        }
    }
    for (lang, name) in routed.routes() {
        tracing::info!(
            language = lang,
            recogniser = name,
            "per-language recogniser"
        );
    }
    Ok(Arc::new(routed))
}

/// Whisper decoder options from the config, on the planned device.
pub fn whisper_options(config: &Config, plan: &Plan) -> WhisperOptions {
    WhisperOptions {
        gpu: plan.asr.gpu_index(),
        threads: config.asr.threads,
        audio_ctx_padding_ms: config.asr.audio_ctx_padding_ms,
        beam_size: config.asr.beam_size,
        temperature_fallback: config.asr.temperature_fallback,
        native_script_prompt: config.asr.native_script_prompt,
        suppress_foreign_scripts: config.asr.suppress_foreign_scripts,
    }
}

/// Time each model took to load, for the readiness log line.
#[derive(Debug, Default, Clone)]
pub struct LoadTimes {
    pub vad: Duration,
    pub asr: Duration,
    pub tts: Duration,
}

/// Starts the supervised `vaak-llm` worker and a client that follows it across restarts.
fn start_worker(
    config: &Config,
    plan: &Plan,
    models: &ResolvedModels,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(OpenAiClient, WorkerHandle), BackendError> {
    let spec = WorkerSpec {
        binary: worker::locate_binary(config.llm.worker.binary.as_deref())?,
        model: config
            .llm
            .worker
            .model
            .clone()
            .unwrap_or_else(|| models.llm_gguf.clone()),
        threads: config.llm.worker.threads,
        ctx_size: config.llm.worker.ctx_size,
        max_slots: config.llm.worker.max_slots,
        hung_after: std::time::Duration::from_millis(config.llm.worker.hung_after_ms),
        gpu: plan.llm.gpu_index(),
    };
    let handle = worker::supervise(spec, tracker, shutdown)?;
    // A restarting worker may take a while: wait up to the start-up timeout.
    let connect = Duration::from_millis(config.llm.connect_timeout_ms);
    let client = OpenAiClient::new(
        Endpoint::Worker(handle.endpoint.clone()),
        "vaak-llm".into(),
        None,
        worker::STARTUP_TIMEOUT.max(connect),
    )?;
    Ok((client, handle))
}

impl Backends {
    /// Where each model runs, e.g. `vad=cpu asr=cuda:0 (NVIDIA L4) llm=cuda:0 (NVIDIA L4) tts=cpu`.
    pub fn devices_line(&self) -> String {
        let llm = match (self.config.llm.kind, &self.worker) {
            (LlmKind::Worker, Some(w)) => w.device(),
            (LlmKind::Openai, Some(w)) => format!("remote, fallback {}", w.device()),
            (LlmKind::Openai, None) => "remote".into(),
            (LlmKind::Worker, None) => "scripted".into(),
        };
        self.devices.describe(&llm)
    }

    /// Loads every embedded model once and starts the LLM worker (owned by `tracker`).
    pub fn load(
        config: Arc<Config>,
        models: &ResolvedModels,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<(Self, LoadTimes), BackendError> {
        let mut times = LoadTimes::default();
        let plan = Plan::for_machine(&config.compute);
        for warning in &plan.warnings {
            tracing::warn!("{warning}");
        }
        // The LLM worker loads its model in its own process: start it first so that it loads
        // while this process loads the others.
        let connect = Duration::from_millis(config.llm.connect_timeout_ms);
        let (llm, worker): (Arc<dyn Llm>, Option<WorkerHandle>) = match config.llm.kind {
            LlmKind::Worker => {
                let (client, handle) = start_worker(&config, &plan, models, tracker, shutdown)?;
                (Arc::new(client), Some(handle))
            }
            LlmKind::Openai => {
                let key = config
                    .llm
                    .openai
                    .api_key_env
                    .as_ref()
                    .and_then(|v| std::env::var(v).ok());
                let remote: Arc<dyn Llm> = Arc::new(OpenAiClient::new(
                    Endpoint::Fixed(config.llm.openai.base_url.clone()),
                    config.llm.openai.model.clone(),
                    key,
                    connect,
                )?);
                // The embedded worker answers while the server is down (it loads its model
                // now, so it is ready by the time it is needed).
                let (fallback, handle) = if config.llm.openai.fallback_to_worker {
                    let (client, handle) = start_worker(&config, &plan, models, tracker, shutdown)?;
                    (Some(Arc::new(client) as Arc<dyn Llm>), Some(handle))
                } else {
                    (None, None)
                };
                let policy = FallbackPolicy::for_remote(&config.llm, fallback.is_some());
                (Arc::new(FallbackLlm::new(remote, fallback, policy)), handle)
            }
        };

        let onnx = OnnxRuntime::for_plan(&config.compute, &models.onnxruntime_lib, &plan)?;

        let t = std::time::Instant::now();
        let vad = SileroModel::load(&onnx.env, &models.silero_vad)?;
        times.vad = t.elapsed();

        let t = std::time::Instant::now();
        let whisper_path = config
            .asr
            .model
            .clone()
            .unwrap_or_else(|| models.whisper_ggml.clone());
        let asr = recognisers(
            &config,
            &plan,
            WhisperAsr::load(&whisper_path, whisper_options(&config, &plan))?,
        )?;
        times.asr = t.elapsed();

        let t = std::time::Instant::now();
        let voices = Voices::build(&config.tts, &tts::TtsAssets::of(models), &onnx)?;
        voices.warm_up()?;
        times.tts = t.elapsed();

        // Jobs of whichever engine uses the most threads fit the cores one slot at a time.
        let cpu = CpuScheduler::for_cores(config.asr.threads.max(config.tts.onnx_threads));
        let devices = Devices {
            asr: plan.asr.clone(),
            tts: voices.device().clone(),
        };
        Ok((
            Self {
                devices,
                config,
                vad: Arc::new(vad),
                asr,
                llm,
                tts: Arc::new(voices),
                worker,
                cpu,
            },
            times,
        ))
    }
}
