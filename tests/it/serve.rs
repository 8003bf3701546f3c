//! `vaak serve` as an operator runs it: it loads the models once, starts the LLM worker, logs one
//! readiness line, answers gRPC health with SERVING, and on SIGTERM stops cleanly (exit 0,
//! worker process gone) within the drain deadline.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::common::{log_field, vaak};

#[test]
fn serve_reports_ready_serves_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("serve.toml");
    std::fs::write(
        &cfg,
        "[server]\ngrpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [telephony]\naudiosocket_listen = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = vaak()
        .env("VAAK_LOG", "info")
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            let _ = tx.send(line);
        }
    });

    let deadline = Instant::now() + Duration::from_secs(240);
    let mut grpc = None;
    let mut worker_pid = None;
    while grpc.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("no readiness line within 240 s");
        if line.contains("LLM worker ready") {
            worker_pid = log_field(&line, "pid").and_then(|p| p.parse::<u32>().ok());
        }
        if line.contains("vaak ready") {
            grpc = log_field(&line, "grpc");
            // This machine (and CI's) has no NVIDIA driver: every model on the CPU, the LLM
            // worker's own report included.
            assert!(
                line.contains(r#"devices="vad=cpu asr=cpu llm=cpu tts=cpu""#),
                "{line}"
            );
        }
    }
    let addr = grpc.unwrap();
    let worker_pid = worker_pid.expect("worker pid logged");
    assert!(std::path::Path::new(&format!("/proc/{worker_pid}")).exists());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to gRPC");
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        client
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status
    });
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < stop_deadline,
            "vaak serve did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        lines.iter().any(|l| l.contains("vaak stopped")),
        "no clean-stop line"
    );
    let gone = !std::path::Path::new(&format!("/proc/{worker_pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{worker_pid}/stat"))
            .is_ok_and(|s| s.contains(") Z "));
    assert!(
        gone,
        "LLM worker {worker_pid} still running after the daemon stopped"
    );
}
