//! `[compute]`: which processor runs the models: the CPU, or an NVIDIA GPU where this build and
//! this machine have one (see `backend::device`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    /// `auto`: an NVIDIA GPU where this build (`--features cuda`) and this machine have one,
    /// else the CPU; `cuda`: the same, but a missing GPU is warned about; `cpu`: the CPU only.
    pub device: DeviceChoice,
    /// Which GPU (CUDA's device index).
    pub gpu: u32,
    /// An ONNX Runtime library loaded instead of the fetched CPU one: the `onnxruntime-gpu`
    /// wheel's `libonnxruntime.so`, whose CUDA provider runs Kokoro and Piper on the GPU.
    pub onnxruntime_lib: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl ComputeConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(lib) = &self.onnxruntime_lib {
            if !lib.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "compute.onnxruntime_lib: {} is not a readable file",
                    lib.display()
                )));
            }
        }
        Ok(())
    }
}
