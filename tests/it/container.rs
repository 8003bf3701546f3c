//! The container image, built from Debian packages only (`scripts/container.sh build`:
//! mmdebstrap base, podman build) and run with podman: a non-root `vaak` user, the health
//! check answering, a spoken gRPC turn held against the daemon inside, and SIGTERM draining it
//! to a clean exit within the stop timeout.
//!
//! This host is cgroup v1 without CAP_SYS_RESOURCE: crun refuses hybrid cgroups and no runtime
//! may raise a resource limit, so the container runs with runc and limits at most the host's
//! (`RUN_ARGS`). Networking is the host's (the daemon listens on free loopback ports).

use std::process::Command;
use std::time::{Duration, Instant};

use super::common::{free_port, sh};
use super::grpc_api::{run_python, Run};

const RUN_ARGS: &[&str] = &[
    "--runtime",
    "runc",
    "--network=host",
    "--ulimit",
    "nofile=16384:16384",
    "--ulimit",
    "nproc=8192:8192",
];
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/vaak_client.py");

fn podman(args: &[&str]) -> (bool, String) {
    sh("podman", args)
}

/// Removes the container however the test ends.
struct Running(String);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.0]);
    }
}

#[test]
fn the_container_image_serves_a_turn_and_drains_on_sigterm() {
    let built = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/container.sh"))
        .arg("build")
        .output()
        .expect("run scripts/container.sh");
    let log = String::from_utf8_lossy(&built.stderr).into_owned();
    assert!(built.status.success(), "container.sh build failed:\n{log}");
    let image = String::from_utf8_lossy(&built.stdout).trim().to_string();
    assert_eq!(image, "localhost/vaak:dev", "{log}");

    let (_, config) = podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Healthcheck.Test}} {{.Size}}",
        &image,
    ]);
    let mut fields = config.split_whitespace();
    assert_eq!(
        fields.next(),
        Some("vaak"),
        "the image runs as root: {config}"
    );
    assert!(config.contains("healthz"), "no health check: {config}");
    let size: u64 = fields.last().and_then(|s| s.parse().ok()).unwrap_or(0);
    eprintln!("image {image}: {} MB", size / 1_000_000);

    let (grpc, http) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vaak.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ngrpc_listen = \"127.0.0.1:{grpc}\"\nhttp_listen = \"127.0.0.1:{http}\"\n\
             [telephony]\naudiosocket_listen = \"127.0.0.1:{}\"\n[llm]\nmax_tokens = 24\n",
            free_port()
        ),
    )
    .unwrap();
    let models = std::env::var("VAAK_MODELS_DIR").expect("VAAK_MODELS_DIR");
    let name = format!("vaak-test-{}", std::process::id());
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend_from_slice(RUN_ARGS);
    let models_mount = format!("{models}:/models:ro");
    let cfg_mount = format!("{}:/etc/vaak/vaak.toml:ro", cfg.display());
    let port_env = format!("VAAK_HTTP_PORT={http}");
    args.extend_from_slice(&[
        "-v",
        &models_mount,
        "-v",
        &cfg_mount,
        "-e",
        &port_env,
        &image,
    ]);
    let (ok, out) = podman(&args);
    assert!(ok, "podman run failed:\n{out}");
    let running = Running(name.clone());
    let logs = || podman(&["logs", &running.0]).1;

    // Ready: the image's own health check passes.
    let deadline = Instant::now() + Duration::from_secs(180);
    while !podman(&["healthcheck", "run", &name]).0 {
        assert!(
            Instant::now() < deadline,
            "the health check never passed; the container's log:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A spoken turn over gRPC against the daemon in the container.
    let addr = format!("127.0.0.1:{grpc}");
    let turn: Run = run_python(
        CLIENT,
        &[
            "converse",
            "--addr",
            &addr,
            "--timeout-s",
            "120",
            "--text",
            "What is the capital of India?",
        ],
        120,
    );
    assert!(
        turn.ok() && turn.f("/turns/0/reply_audio/seconds") > 0.5,
        "no spoken turn from the container:\n{}\n{}",
        turn.show(),
        logs()
    );
    assert!(
        turn.s("/turns/0/reply_text")
            .to_lowercase()
            .contains("delhi"),
        "{}",
        turn.show()
    );

    // SIGTERM (podman stop) drains and exits 0 well within the stop timeout.
    let stopping = Instant::now();
    let (ok, out) = podman(&["stop", "-t", "30", &name]);
    assert!(ok, "podman stop: {out}");
    let took = stopping.elapsed();
    let (_, code) = podman(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    let logs = logs();
    assert_eq!(code.trim(), "0", "exit code {code}; log:\n{logs}");
    assert!(
        logs.contains("draining") && logs.contains("vaak stopped"),
        "no drain in the log:\n{logs}"
    );
    assert!(took < Duration::from_secs(25), "stopping took {took:?}");
}
