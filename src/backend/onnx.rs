//! The process-wide ONNX Runtime environment. ONNX Runtime allows one environment per process
//! and is loaded at run time from the shared library of the `onnxruntime` wheel (the `ort`
//! crate's `load-dynamic` mode), so every ONNX model (Silero VAD, Kokoro, Piper) shares this.
//! With the `onnxruntime-gpu` library (`compute.onnxruntime_lib`) the voices run on its CUDA
//! provider.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use ort::environment::Environment;
use ort::session::builder::SessionBuilder;
use ort::session::Session;

use crate::backend::device::{Device, Gpu};

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("ONNX Runtime library not found at {0}: run `vaak models fetch`")]
    Missing(PathBuf),
    #[error("cannot start ONNX Runtime from {path}: {detail}")]
    Init { path: PathBuf, detail: String },
}

/// Loads ONNX Runtime from `dylib` on first use and returns the shared environment. Later calls
/// return the same environment whatever path they pass.
pub fn environment(dylib: &Path) -> Result<Environment, OnnxError> {
    if ENVIRONMENT.get().is_none() && !dylib.is_file() {
        return Err(OnnxError::Missing(dylib.to_path_buf()));
    }
    let result = ENVIRONMENT.get_or_init(|| {
        let builder = ort::init_from(dylib).map_err(|e| e.to_string())?;
        // Microsoft's ONNX Runtime builds (the PyPI wheel's library) send usage telemetry to
        // mobile.events.data.microsoft.com by default, from Linux too: never from vaak. This
        // stops later events; `ORT_DISABLE_TELEMETRY=1` (set by `main`) stops the first one.
        builder
            .with_name("vaak")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    });
    result.clone().map_err(|detail| OnnxError::Init {
        path: dylib.to_path_buf(),
        detail,
    })
}

/// The process's ONNX Runtime and the GPU its sessions are planned for (`backend::device`).
#[derive(Clone)]
pub struct OnnxRuntime {
    pub env: Environment,
    /// The GPU to try first; `None` = the CPU.
    pub gpu: Option<Gpu>,
    /// Whether the CUDA provider's failure was already warned about (one warning per process).
    warned: Arc<AtomicBool>,
}

impl OnnxRuntime {
    /// Loads ONNX Runtime from `dylib` (see [`environment`]) for sessions on `gpu` or the CPU.
    pub fn load(dylib: &Path, gpu: Option<Gpu>) -> Result<Self, OnnxError> {
        Ok(Self {
            env: environment(dylib)?,
            gpu,
            warned: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The library `compute.onnxruntime_lib` names (else the fetched one, `fetched`), for the
    /// voices' planned device.
    pub fn for_plan(
        compute: &crate::config::ComputeConfig,
        fetched: &Path,
        plan: &crate::backend::device::Plan,
    ) -> Result<Self, OnnxError> {
        let dylib = compute.onnxruntime_lib.as_deref().unwrap_or(fetched);
        Self::load(dylib, plan.tts.gpu().cloned())
    }

    /// Opens `path` with the options `configure` sets, on the planned GPU through ONNX Runtime's
    /// CUDA provider where there is one; where the library lacks that provider or it fails, on
    /// the CPU, with one warning. Returns the session and where it runs.
    pub fn session(
        &self,
        path: &Path,
        configure: impl Fn(SessionBuilder) -> ort::Result<SessionBuilder>,
    ) -> ort::Result<(Session, Device)> {
        if let Some(gpu) = &self.gpu {
            let index = gpu.index;
            let cuda = ort::ep::CUDA::default()
                .with_device_id(i32::try_from(index).unwrap_or(0))
                .build()
                .error_on_failure();
            let on_gpu = Session::builder(&self.env)
                .and_then(|b| b.with_execution_providers([cuda]).map_err(ort::Error::from))
                .and_then(&configure)
                .and_then(|mut b| b.commit_from_file(path));
            match on_gpu {
                Ok(session) => return Ok((session, Device::Cuda(gpu.clone()))),
                Err(e) if !self.warned.swap(true, Ordering::Relaxed) => {
                    tracing::warn!(
                        model = %path.display(),
                        error = %e,
                        "ONNX Runtime cannot run on GPU {index} (is compute.onnxruntime_lib the \
                         onnxruntime-gpu library, with CUDA and cuDNN beside it?): its models \
                         run on the CPU"
                    );
                }
                Err(_) => {}
            }
        }
        let session = configure(Session::builder(&self.env)?)?.commit_from_file(path)?;
        Ok((session, Device::Cpu))
    }
}
