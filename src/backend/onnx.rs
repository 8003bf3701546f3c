//! The process-wide ONNX Runtime environment. ONNX Runtime allows one environment per process
//! and is loaded at run time from the shared library of the `onnxruntime` wheel (the `ort`
//! crate's `load-dynamic` mode), so every ONNX model (Silero VAD, Kokoro, Piper) shares this.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

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
