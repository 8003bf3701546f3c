//! Where the model runs. The daemon passes `--gpu N` when its plan puts the LLM on CUDA GPU `N`;
//! this worker offloads every layer there if it was built with `--features cuda` and llama.cpp
//! sees that GPU, and otherwise stays on the CPU with one warning saying why. Either way it
//! reports the outcome on stdout (`VAAK_LLM_DEVICE …`) for the daemon's ready line.

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::{list_llama_ggml_backend_devices, LlamaBackendDevice};

/// Line printed on stdout before `VAAK_LLM_LISTENING`.
pub const DEVICE_PREFIX: &str = "VAAK_LLM_DEVICE ";

/// Every layer goes to the GPU (llama.cpp clamps this to the model's layer count).
const ALL_LAYERS: u32 = 999;

/// Where the model is to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// llama.cpp's device index of the GPU (`None`: the CPU).
    pub ggml_device: Option<usize>,
    /// For the operator: `cpu`, `cuda:0 (NVIDIA H100 80GB HBM3)`, or `cpu (why not the GPU)`.
    pub shown: String,
    /// Set when a GPU was asked for and cannot be used.
    pub warning: Option<String>,
}

/// This binary's llama.cpp has the CUDA backend.
const BUILT_WITH_CUDA: bool = cfg!(feature = "cuda");

/// Chooses from what llama.cpp offers: `gpu` counts CUDA devices only, as CUDA numbers them.
/// `offload`: llama.cpp has a usable GPU backend; `with_cuda`: this binary was built with one.
pub fn choose(
    gpu: Option<u32>,
    offload: bool,
    with_cuda: bool,
    devices: &[LlamaBackendDevice],
) -> Placement {
    let cpu = |why: String| Placement {
        ggml_device: None,
        shown: format!("cpu ({why})"),
        warning: Some(format!("{why}: the model runs on the CPU")),
    };
    let Some(index) = gpu else {
        return Placement {
            ggml_device: None,
            shown: "cpu".into(),
            warning: None,
        };
    };
    if !with_cuda {
        return cpu(
            "this vaak-llm was built without CUDA (build it with --features cuda)".to_string(),
        );
    }
    if !offload {
        return cpu(
            "llama.cpp found no usable CUDA GPU (is the NVIDIA driver installed and new enough?)"
                .to_string(),
        );
    }
    let cuda = devices
        .iter()
        .filter(|d| d.backend.eq_ignore_ascii_case("cuda"))
        .nth(index as usize);
    match cuda {
        Some(d) => Placement {
            ggml_device: Some(d.index),
            shown: format!("cuda:{index} ({})", d.description),
            warning: None,
        },
        None => cpu(format!("llama.cpp sees no CUDA GPU {index}")),
    }
}

/// [`choose`] on this process's llama.cpp.
pub fn place(backend: &LlamaBackend, gpu: Option<u32>) -> Placement {
    choose(
        gpu,
        backend.supports_gpu_offload(),
        BUILT_WITH_CUDA,
        &list_llama_ggml_backend_devices(),
    )
}

/// Model parameters for `placement`: all layers on its GPU, or none anywhere but the CPU.
pub fn model_params(placement: &Placement) -> Result<LlamaModelParams, String> {
    match placement.ggml_device {
        None => Ok(LlamaModelParams::default().with_n_gpu_layers(0)),
        Some(device) => LlamaModelParams::default()
            .with_n_gpu_layers(ALL_LAYERS)
            .with_devices(&[device])
            .map_err(|e| format!("cannot use llama.cpp device {device}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llama_cpp_2::LlamaBackendDeviceType;

    fn device(index: usize, backend: &str, description: &str) -> LlamaBackendDevice {
        LlamaBackendDevice {
            index,
            name: format!("{backend}{index}"),
            description: description.into(),
            backend: backend.into(),
            memory_total: 0,
            memory_free: 0,
            device_type: if backend == "CPU" {
                LlamaBackendDeviceType::Cpu
            } else {
                LlamaBackendDeviceType::Gpu
            },
        }
    }

    #[test]
    fn no_gpu_asked_is_the_cpu_without_a_word() {
        let p = choose(None, true, true, &[device(0, "CUDA", "NVIDIA H100")]);
        assert_eq!(p.ggml_device, None);
        assert_eq!(p.shown, "cpu");
        assert_eq!(p.warning, None);
    }

    #[test]
    fn cuda_gpus_are_counted_as_cuda_numbers_them() {
        let devices = [
            device(0, "CUDA", "NVIDIA H100 80GB HBM3"),
            device(1, "CUDA", "NVIDIA L4"),
            device(2, "CPU", "AMD EPYC"),
        ];
        let p = choose(Some(1), true, true, &devices);
        assert_eq!(p.ggml_device, Some(1));
        assert_eq!(p.shown, "cuda:1 (NVIDIA L4)");
        assert_eq!(p.warning, None);
        let missing = choose(Some(2), true, true, &devices);
        assert_eq!(missing.ggml_device, None);
        assert_eq!(missing.shown, "cpu (llama.cpp sees no CUDA GPU 2)");
    }

    #[test]
    fn a_build_without_cuda_says_how_to_get_it() {
        let p = choose(Some(0), false, false, &[device(0, "CPU", "AMD EPYC")]);
        assert_eq!(p.ggml_device, None);
        assert!(p.shown.contains("built without CUDA"), "{}", p.shown);
        assert!(p.warning.unwrap().contains("--features cuda"));
        // A CUDA build whose CUDA did not start (no driver, as on this machine's CUDA build).
        let p = choose(Some(0), false, true, &[device(0, "CPU", "AMD EPYC")]);
        assert_eq!(
            p.shown,
            "cpu (llama.cpp found no usable CUDA GPU (is the NVIDIA driver installed and new enough?))"
        );
    }

    #[test]
    fn the_cpu_keeps_every_layer() {
        let cpu = choose(None, true, true, &[]);
        assert_eq!(model_params(&cpu).unwrap().n_gpu_layers(), 0);
    }
}
