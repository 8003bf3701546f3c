//! Which processor runs each model. vaak runs on the CPU by default; with an NVIDIA GPU,
//! whisper.cpp (a `--features cuda` build), llama.cpp (a `vaak-llm` built with its `cuda`
//! feature) and ONNX Runtime (the `onnxruntime-gpu` library, `compute.onnxruntime_lib`) can run
//! on it. The plan is made once at start from `[compute]`, this build's features and what the
//! NVIDIA driver reports; a GPU that is asked for but missing leaves that model on the CPU with
//! one warning naming what is missing. Silero VAD always stays on the CPU: it runs a 32 ms frame
//! at a time, and a GPU round trip per frame costs more than the 0.07 ms the CPU needs.

use std::ffi::{c_char, c_int, c_uint, CStr};
use std::fmt;

use crate::config::{ComputeConfig, DeviceChoice};

/// Where one model runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(Gpu),
}

impl Device {
    /// The GPU, if on one.
    pub fn gpu(&self) -> Option<&Gpu> {
        match self {
            Device::Cpu => None,
            Device::Cuda(g) => Some(g),
        }
    }

    /// CUDA's index of the GPU, if on one.
    pub fn gpu_index(&self) -> Option<u32> {
        self.gpu().map(|g| g.index)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(g) => write!(f, "cuda:{} ({})", g.index, g.name),
        }
    }
}

/// One GPU as the NVIDIA driver names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
}

/// What the NVIDIA driver says: its GPUs, or why there are none to use.
pub type Probe = Result<Vec<Gpu>, String>;

/// Asks the NVIDIA driver (libcuda, loaded at run time so that a CPU machine needs none) for its
/// GPUs. Cheap (tens of milliseconds); no GPU memory is taken.
pub fn probe() -> Probe {
    // SAFETY: libcuda.so.1 is NVIDIA's driver library; loading it runs its initialisers only.
    let lib = unsafe { libloading::Library::new("libcuda.so.1") }
        .map_err(|_| "no NVIDIA driver (libcuda.so.1 not found)".to_string())?;
    type Init = unsafe extern "C" fn(c_uint) -> c_int;
    type Count = unsafe extern "C" fn(*mut c_int) -> c_int;
    type Name = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
    // SAFETY: the three symbols have these C signatures in every CUDA driver since 3.2
    // (cuda.h: cuInit, cuDeviceGetCount, cuDeviceGetName), and a CUdevice
    // is an int ordinal for devices 0..count. The buffer passed to cuDeviceGetName is 256 bytes
    // and its length says so; the driver writes a NUL-terminated name into it.
    unsafe {
        let symbol = |e: libloading::Error| format!("the NVIDIA driver is unusable ({e})");
        let init: libloading::Symbol<Init> = lib.get(b"cuInit\0").map_err(symbol)?;
        let count: libloading::Symbol<Count> = lib.get(b"cuDeviceGetCount\0").map_err(symbol)?;
        let name: libloading::Symbol<Name> = lib.get(b"cuDeviceGetName\0").map_err(symbol)?;
        let rc = init(0);
        if rc != 0 {
            return Err(format!(
                "the NVIDIA driver found no usable GPU (cuInit: error {rc})"
            ));
        }
        let mut n: c_int = 0;
        if count(&mut n) != 0 || n <= 0 {
            return Err("the NVIDIA driver reports no GPU".into());
        }
        Ok((0..n)
            .map(|i| {
                let mut buf = [0 as c_char; 256];
                let shown = if name(buf.as_mut_ptr(), buf.len() as c_int, i) == 0 {
                    CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
                } else {
                    "unnamed GPU".into()
                };
                Gpu {
                    index: i as u32,
                    name: shown,
                }
            })
            .collect())
    }
}

/// This build's whisper.cpp can run on CUDA.
pub const WHISPER_CUDA: bool = cfg!(feature = "cuda");

/// Where each model is to run, and the warnings that plan owes the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub asr: Device,
    /// The LLM worker is asked to use this; it says what it really used when it starts. The CPU
    /// here means the whole plan is the CPU.
    pub llm: Device,
    /// ONNX Runtime's models (Kokoro, Piper) try this; the library may lack the CUDA provider.
    pub tts: Device,
    /// One line each, for `warn!` at start and `vaak config check`.
    pub warnings: Vec<String>,
    /// Why no GPU is used, when none is (for the operator's information, not a warning).
    pub cpu_because: Option<String>,
}

impl Plan {
    /// Plans from the config, the driver's answer and whether this build's whisper.cpp has CUDA.
    pub fn new(cfg: &ComputeConfig, probe: Probe, whisper_cuda: bool) -> Plan {
        let cpu_only = |because: String, warnings: Vec<String>| Plan {
            asr: Device::Cpu,
            llm: Device::Cpu,
            tts: Device::Cpu,
            warnings,
            cpu_because: Some(because),
        };
        if cfg.device == DeviceChoice::Cpu {
            return cpu_only("compute.device = \"cpu\"".into(), Vec::new());
        }
        let wanted = cfg.device == DeviceChoice::Cuda;
        let gpu = match probe {
            Err(why) => {
                let warnings = if wanted {
                    vec![format!(
                        "compute.device = \"cuda\" but {why}: every model runs on the CPU"
                    )]
                } else {
                    Vec::new()
                };
                return cpu_only(why, warnings);
            }
            Ok(gpus) => match gpus.into_iter().find(|g| g.index == cfg.gpu) {
                Some(g) => g,
                None => {
                    let why = format!("the NVIDIA driver has no GPU {}", cfg.gpu);
                    let warnings = vec![format!(
                        "compute.gpu = {}: {why}: every model runs on the CPU",
                        cfg.gpu
                    )];
                    return cpu_only(why, warnings);
                }
            },
        };
        let on_gpu = Device::Cuda(gpu);
        let mut warnings = Vec::new();
        let asr = if whisper_cuda {
            on_gpu.clone()
        } else {
            warnings.push(format!(
                "{} is here, but this vaak was built without CUDA: speech recognition runs on the \
                 CPU (build with `--features cuda`: scripts/gpu-check.sh)",
                on_gpu
            ));
            Device::Cpu
        };
        let tts = if cfg.onnxruntime_lib.is_some() {
            on_gpu.clone()
        } else {
            warnings.push(format!(
                "{on_gpu} is here, but the fetched ONNX Runtime is the CPU one: the voices run on \
                 the CPU (set compute.onnxruntime_lib to the onnxruntime-gpu wheel's library)"
            ));
            Device::Cpu
        };
        Plan {
            asr,
            llm: on_gpu,
            tts,
            warnings,
            cpu_because: None,
        }
    }

    /// Everything on the CPU.
    pub fn cpu() -> Plan {
        Plan::new(
            &ComputeConfig {
                device: DeviceChoice::Cpu,
                ..ComputeConfig::default()
            },
            Err(String::new()),
            false,
        )
    }

    /// The plan for this machine: probes the driver unless the config rules the GPU out.
    pub fn for_machine(cfg: &ComputeConfig) -> Plan {
        let probe = match cfg.device {
            DeviceChoice::Cpu => Err("compute.device = \"cpu\"".to_string()),
            _ => probe(),
        };
        Plan::new(cfg, probe, WHISPER_CUDA)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100() -> Gpu {
        Gpu {
            index: 0,
            name: "NVIDIA H100 80GB HBM3".into(),
        }
    }

    fn cfg(device: DeviceChoice, ort_gpu: bool) -> ComputeConfig {
        ComputeConfig {
            device,
            gpu: 0,
            onnxruntime_lib: ort_gpu.then(|| "/opt/ort-gpu/libonnxruntime.so".into()),
        }
    }

    #[test]
    fn without_a_driver_auto_is_quietly_the_cpu_and_cuda_warns_once() {
        let none = || Err("no NVIDIA driver (libcuda.so.1 not found)".to_string());
        let auto = Plan::new(&cfg(DeviceChoice::Auto, true), none(), true);
        assert_eq!(
            (auto.asr, auto.llm, auto.tts),
            (Device::Cpu, Device::Cpu, Device::Cpu)
        );
        assert!(auto.warnings.is_empty());
        assert_eq!(
            auto.cpu_because.as_deref(),
            Some("no NVIDIA driver (libcuda.so.1 not found)")
        );
        let cuda = Plan::new(&cfg(DeviceChoice::Cuda, true), none(), true);
        assert_eq!(cuda.llm, Device::Cpu);
        assert_eq!(
            cuda.warnings,
            [
                "compute.device = \"cuda\" but no NVIDIA driver (libcuda.so.1 not found): every \
              model runs on the CPU"
            ]
        );
    }

    #[test]
    fn a_gpu_takes_every_model_that_this_build_can_put_on_it() {
        let full = Plan::new(&cfg(DeviceChoice::Auto, true), Ok(vec![h100()]), true);
        let gpu = Device::Cuda(h100());
        assert_eq!((&full.asr, &full.llm, &full.tts), (&gpu, &gpu, &gpu));
        assert!(full.warnings.is_empty(), "{:?}", full.warnings);
        assert_eq!(gpu.to_string(), "cuda:0 (NVIDIA H100 80GB HBM3)");

        let cpu_build = Plan::new(&cfg(DeviceChoice::Cuda, false), Ok(vec![h100()]), false);
        assert_eq!(cpu_build.asr, Device::Cpu);
        assert_eq!(cpu_build.tts, Device::Cpu);
        assert_eq!(cpu_build.llm, gpu, "the worker decides for itself");
        assert_eq!(cpu_build.warnings.len(), 2);
        assert!(cpu_build.warnings[0].contains("built without CUDA"));
        assert!(cpu_build.warnings[1].contains("onnxruntime-gpu"));
    }

    #[test]
    fn cpu_is_never_overruled_and_a_missing_index_is_named() {
        let cpu = Plan::new(&cfg(DeviceChoice::Cpu, true), Ok(vec![h100()]), true);
        assert_eq!(cpu.llm, Device::Cpu);
        assert!(cpu.warnings.is_empty());
        let mut second = cfg(DeviceChoice::Auto, true);
        second.gpu = 1;
        let plan = Plan::new(&second, Ok(vec![h100()]), true);
        assert_eq!(plan.asr, Device::Cpu);
        assert_eq!(
            plan.warnings,
            ["compute.gpu = 1: the NVIDIA driver has no GPU 1: every model runs on the CPU"]
        );
    }

    #[test]
    fn this_machine_has_no_nvidia_driver_and_plans_the_cpu() {
        // The CI machines and this one have no NVIDIA driver; a machine with one must plan it.
        let plan = Plan::for_machine(&ComputeConfig::default());
        match probe() {
            Ok(gpus) => assert_eq!(plan.llm.gpu(), gpus.first()),
            Err(why) => {
                assert_eq!(plan.asr, Device::Cpu);
                assert_eq!(plan.cpu_because, Some(why));
            }
        }
    }
}
