//! `vaak config`: the printed defaults parse back; unknown keys and bad values are rejected
//! with the key named.

use super::common::{run, stderr};

#[test]
fn print_default_round_trips_through_check() {
    let o = run(&["config", "print-default"]);
    assert!(o.status.success());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("vaak.toml");
    std::fs::write(&f, &o.stdout).unwrap();
    let c = run(&["config", "check", f.to_str().unwrap()]);
    assert!(c.status.success(), "{}", stderr(&c));
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "[asr]\nthreds = 4\n").unwrap();
    let c = run(&["config", "check", f.to_str().unwrap()]);
    assert!(!c.status.success());
    assert!(stderr(&c).contains("threds"), "{}", stderr(&c));
}

/// `[compute] device = "cuda"` with this CPU build: the check passes, says every model runs on
/// the CPU and why, and warns about each missing part (on a machine without an NVIDIA driver, as
/// here and in CI, once: the driver).
#[test]
fn check_says_where_each_model_runs_and_warns_when_a_wanted_gpu_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gpu.toml");
    std::fs::write(&f, "[compute]\ndevice = \"cuda\"\n").unwrap();
    let c = run(&["config", "check", f.to_str().unwrap()]);
    assert!(c.status.success(), "{}", stderr(&c));
    let out = String::from_utf8_lossy(&c.stdout);
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning:")).collect();
    if vaak::backend::device::probe().is_ok() {
        // A GPU machine running the CPU build: the GPU is there, nothing here can use it.
        assert!(
            out.contains("asr=cpu llm=cpu (this vaak-llm was built without CUDA"),
            "{out}"
        );
        assert_eq!(warnings.len(), 2, "{out}");
        assert!(warnings[0].contains("built without CUDA"), "{out}");
        assert!(warnings[1].contains("onnxruntime-gpu"), "{out}");
        return;
    }
    assert!(
        out.contains(
            "devices: vad=cpu asr=cpu llm=cpu tts=cpu (no NVIDIA driver (libcuda.so.1 not found))"
        ),
        "{out}"
    );
    assert_eq!(
        warnings,
        [
            "warning: compute.device = \"cuda\" but no NVIDIA driver (libcuda.so.1 not found): \
          every model runs on the CPU"
        ],
        "{out}"
    );

    std::fs::write(&f, "[compute]\ndevice = \"gpu\"\n").unwrap();
    let bad = run(&["config", "check", f.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("gpu"), "{}", stderr(&bad));
    std::fs::write(
        &f,
        "[compute]\nonnxruntime_lib = \"/nonexistent/libonnxruntime.so\"\n",
    )
    .unwrap();
    let missing = run(&["config", "check", f.to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("compute.onnxruntime_lib: /nonexistent/libonnxruntime.so"),
        "{}",
        stderr(&missing)
    );
}

/// The LLM worker asked for a GPU it cannot use (this build has no CUDA) says so and how to get
/// it, in the line the daemon reads, and loads nothing.
#[test]
fn the_worker_without_cuda_answers_a_gpu_request_with_the_cpu_and_the_reason() {
    use vaak::backend::llm::worker;
    let bin = worker::locate_binary(None).expect("vaak-llm built with the workspace");
    let device = worker::probe_device(&bin, 0).expect("the probe answers");
    assert_eq!(
        device,
        "cpu (this vaak-llm was built without CUDA (build it with --features cuda))"
    );
}
